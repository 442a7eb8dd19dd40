/* django-support-chat panel: the chat dialog behind the launcher.
 *
 * Loaded on demand by loader.js, which calls window.SupportChatPanel(root, config,
 * setBadge) once and gets back {open, toggle, close}. Plain JavaScript, no dependencies;
 * the look comes from the host's Bootstrap 5 classes plus panel.css.
 *
 * Safety rule: message text reaches the DOM only as textContent, or as the server's `html`
 * field (escaped and linkified on the server). Never as raw HTML.
 *
 * Data flow: the newest history page from the REST API, then live events over the shared
 * socket client (../realtime.js: reconnects, dedupes, fills holes by seq, calls back after
 * each hello to resend the queue). Outgoing messages wait in a per-user localStorage queue
 * until the server acknowledges their client_id: a reload loses nothing, and a resend
 * (after retry_after too) is never stored twice.
 */
(function () {
  "use strict";

  var WINDOW = 120; // most messages kept in the DOM at once (long histories stay light)
  var STEP = 40; // messages added at one end when the window slides
  var EDGE = 160; // px from either end of the log that makes the window slide
  var NEAR_BOTTOM = 48; // px: "at the bottom" for auto-scroll and read receipts
  var GROUP_GAP = 5 * 60 * 1000; // same sender within 5 minutes: one group
  var SEND_TIMEOUT = 15000; // ms without an answer before a send counts as failed
  var TOAST_TIME = 8000; // ms a toast stays (paused while hovered or focused)
  var SNIPPET = 80; // characters of a reply shown in its toast

  // -- small helpers -------------------------------------------------------------------

  function h(tag, props, children) {
    var el = document.createElement(tag);
    Object.keys(props || {}).forEach(function (key) {
      var value = props[key];
      if (value == null || value === false) return;
      if (key === "class") el.className = value;
      else if (key === "text") el.textContent = value;
      else if (key.slice(0, 2) === "on") el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : value);
    });
    (children || []).forEach(function (child) {
      if (child) el.append(child);
    });
    return el;
  }

  // Icons come from the server (icons.py, in the config): SVG path data drawn here into
  // the same wrapper as {% support_chat_icon %}, or Font Awesome classes when ICONS is
  // "fontawesome". Never markup.
  var ICONS = {};
  var SVG_NS = "http://www.w3.org/2000/svg"; // a name, never fetched
  var SVG_ATTRS = {
    class: "sc-icon",
    viewBox: "0 0 16 16",
    width: "1em",
    height: "1em",
    fill: "currentColor",
    "fill-rule": "evenodd",
    "aria-hidden": "true",
    focusable: "false",
  };

  function icon(name) {
    if (ICONS.fa) return h("i", { class: ICONS.fa[name], "aria-hidden": "true" });
    var svg = document.createElementNS(SVG_NS, "svg");
    var path = document.createElementNS(SVG_NS, "path");
    Object.keys(SVG_ATTRS).forEach(function (key) {
      svg.setAttribute(key, SVG_ATTRS[key]);
    });
    path.setAttribute("d", (ICONS.svg || {})[name] || "");
    svg.appendChild(path);
    return svg;
  }

  function srOnly(text) {
    return h("span", { class: "visually-hidden", text: text });
  }

  // Storage by name: even reading window.localStorage throws where storage is disabled.
  function readJSON(storage, key) {
    try {
      return JSON.parse(window[storage].getItem(key));
    } catch (e) {
      return null; // disabled or corrupt
    }
  }

  function writeJSON(storage, key, value) {
    try {
      if (value == null) window[storage].removeItem(key);
      else window[storage].setItem(key, JSON.stringify(value));
      return true;
    } catch (e) {
      return false; // full or disabled: callers keep an in-memory copy
    }
  }

  function cookie(name) {
    var match = document.cookie.match(new RegExp("(?:^|; )" + name + "=([^;]*)"));
    return match ? decodeURIComponent(match[1]) : null;
  }

  function dayKey(date) {
    return date.getFullYear() * 10000 + date.getMonth() * 100 + date.getDate();
  }

  function formatter(lang, options) {
    try {
      return new Intl.DateTimeFormat(lang || undefined, options);
    } catch (e) {
      return new Intl.DateTimeFormat(undefined, options); // unknown language tag
    }
  }

  // -- the panel -------------------------------------------------------------------------

  window.SupportChatPanel = function (root, cfg, setBadge) {
    var T = cfg.texts;
    ICONS = cfg.icons || {};
    var apiBase = cfg.api; // ".../conversations/"
    var SESSION_KEY = "support-chat:" + cfg.user;
    var QUEUE_KEY = "support-chat:queue:" + cfg.user;
    var timeFormat = formatter(cfg.lang, { hour: "numeric", minute: "2-digit" });
    var dateFormat = formatter(cfg.lang, { weekday: "long", day: "numeric", month: "long" });
    var yearFormat = formatter(cfg.lang, { day: "numeric", month: "long", year: "numeric" });
    var limits = {
      heartbeat: cfg.heartbeat_interval,
      typing: cfg.typing_timeout,
      maxLength: cfg.max_message_length,
    };

    var convId = cfg.conversation || null;
    var items = []; // confirmed messages of this conversation, ascending id
    var byId = new Map();
    var historyLoaded = false;
    var historyLoading = null;
    var olderUrl = null;
    var loadingOlder = false;
    var winStart = 0; // items[winStart, winEnd) are rendered
    var winEnd = 0;
    var newCount = 0; // arrivals while the user is scrolled up
    var staffDelivered = 0; // watermarks: support got / read our messages up to these ids
    var staffRead = 0;
    var maxSupportId = 0; // newest message from support seen by this page
    var sentDelivered = 0; // what we last reported for support's messages
    var sentRead = 0;
    var isOpen = false;
    var memoryQueue = null; // used only when localStorage refuses writes
    var inflight = new Map(); // client_id -> token of the send on its way
    var againTimer = null;

    var rt = null; // the SupportChatSocket of this conversation
    var typingSentAt = 0;
    var typingStopTimer = null;
    var typingHideTimer = null;

    // -- DOM ---------------------------------------------------------------------------

    var button = root.querySelector(".support-chat-launcher");
    var dot = h("span", { class: "scw-dot badge rounded-pill bg-secondary" }, [srOnly(T.away)]);
    var minimizeButton = h("button", {
      type: "button",
      class: "btn btn-sm btn-light rounded-circle scw-icon-btn",
      "aria-label": T.minimize,
      title: T.minimize,
      onclick: function () { hide("min"); },
    }, [icon("minus")]);
    var closeButton = h("button", {
      type: "button",
      class: "btn btn-sm btn-light rounded-circle scw-icon-btn",
      "aria-label": T.close,
      title: T.close,
      onclick: function () { hide("closed"); },
    }, [icon("times")]);
    var olderRow = h("div", { class: "scw-older text-center text-muted small py-2", hidden: true }, [
      h("span", { class: "spinner-border spinner-border-sm", "aria-hidden": "true" }),
      srOnly(T.loading),
    ]);
    var errorRow = h("div", { class: "scw-error text-center small py-2", hidden: true }, [
      h("span", { class: "text-danger me-2", text: T.load_error }),
      h("button", {
        type: "button",
        class: "btn btn-sm btn-outline-secondary",
        text: T.try_again,
        onclick: function () { ensureHistory(); },
      }),
    ]);
    var empty = h("p", { class: "scw-empty text-muted text-center small my-auto px-4", text: T.empty, hidden: true });
    var list = h("div", { class: "scw-list px-3" });
    var pendingBox = h("div", { class: "scw-pending px-3" });
    var typingRow = h("div", { class: "scw-typing px-3 pt-2", hidden: true }, [
      h("span", { class: "scw-dots bg-white border rounded-3", "aria-hidden": "true" }, [
        h("span"), h("span"), h("span"),
      ]),
      srOnly(T.typing),
    ]);
    var newBadge = h("button", {
      type: "button",
      class: "scw-new badge rounded-pill bg-primary shadow border-0",
      hidden: true,
      onclick: function () { jumpToBottom(); },
    });
    var log = h("div", {
      class: "scw-log bg-light",
      role: "log",
      "aria-live": "off", // announcements go through the live region below, one per message
      "aria-label": T.messages,
      tabindex: "0",
      onscroll: onScroll,
    }, [olderRow, errorRow, empty, list, pendingBox, typingRow, h("div", { class: "scw-spacer" }), newBadge]);
    var banner = h("div", {
      class: "scw-offline small px-3 py-2 border-top bg-warning-subtle text-warning-emphasis",
      role: "status",
      hidden: true,
    }, [icon("wifi"), " ", T.offline]);
    var textarea = h("textarea", {
      class: "form-control scw-input",
      rows: "1",
      placeholder: T.placeholder,
      "aria-label": T.placeholder,
      maxlength: String(limits.maxLength),
      oninput: onInput,
      onkeydown: onKeyDown,
      onblur: stopTyping,
    });
    var sendButton = h("button", { type: "submit", class: "btn btn-primary scw-send", "aria-label": T.send, title: T.send }, [
      icon("paper-plane"),
    ]);
    var form = h("form", { class: "scw-composer border-top p-2", onsubmit: onSubmit }, [
      h("div", { class: "input-group" }, [textarea, sendButton]),
    ]);
    var panel = h("div", {
      class: "scw-panel card shadow rounded",
      id: "support-chat-panel",
      role: "dialog",
      "aria-modal": "false",
      "aria-labelledby": "support-chat-title",
      hidden: true,
      onkeydown: function (event) {
        if (event.key === "Escape" && !event.isComposing) {
          event.stopPropagation();
          hide("closed");
        }
      },
    }, [
      h("div", { class: "card-header d-flex align-items-center justify-content-between py-2" }, [
        h("div", { class: "d-flex align-items-center gap-2" }, [
          h("h2", { class: "h6 mb-0 fw-semibold", id: "support-chat-title", text: T.title }),
          dot,
        ]),
        h("div", { class: "d-flex gap-1" }, [minimizeButton, closeButton]),
      ]),
      h("div", { class: "card-body p-0 scw-body" }, [log, banner, form]),
    ]);
    // Screen readers hear each incoming message once, here, not the whole log re-rendering
    // (and the toast's text while the panel is hidden): the widget's one live region.
    var announcer = h("div", { class: "visually-hidden", "aria-live": "polite" });

    // The toast beside the launcher, for a staff reply while the panel is hidden. Text only.
    var toastName = h("strong", { class: "scw-toast-name" });
    var toastText = h("span", { class: "scw-toast-text" });
    var toastTimer = null;
    var toastId = 0; // the message last shown: never twice
    var toastBox = h("div", {
      class: "scw-toast toast show",
      hidden: true,
      onpointerenter: holdToast,
      onpointerleave: releaseToast,
      onfocusin: holdToast,
      onfocusout: releaseToast,
      onkeydown: function (event) {
        if (event.key === "Escape") hideToast();
      },
    }, [
      h("button", {
        type: "button",
        class: "scw-toast-open toast-body",
        onclick: function () {
          hideToast();
          open(true);
        },
      }, [toastName, toastText]),
      h("button", {
        type: "button",
        class: "scw-icon-btn",
        "aria-label": T.dismiss,
        title: T.dismiss,
        onclick: hideToast,
      }, [icon("times")]),
    ]);
    root.append(panel, announcer, toastBox);
    button.setAttribute("aria-controls", panel.id);

    // -- storage -----------------------------------------------------------------------

    function session(patch) {
      var state = readJSON("sessionStorage", SESSION_KEY) || {};
      if (patch) {
        Object.assign(state, patch);
        writeJSON("sessionStorage", SESSION_KEY, state);
      }
      return state;
    }

    // The outgoing queue, shared by every tab and page of this user. Entries:
    // {id: client_id, conv, text, at, failed, error}. Always read-modify-write, so a
    // tab never resurrects an entry another tab has settled.
    function queueAll() {
      if (memoryQueue) return memoryQueue.slice();
      var entries = readJSON("localStorage", QUEUE_KEY);
      return Array.isArray(entries) ? entries : [];
    }

    function queueSave(entries) {
      if (writeJSON("localStorage", QUEUE_KEY, entries.length ? entries : null)) memoryQueue = null;
      else memoryQueue = entries;
    }

    function queueUpdate(clientId, patch) {
      queueSave(queueAll().map(function (entry) {
        return entry.id === clientId ? Object.assign({}, entry, patch) : entry;
      }));
    }

    function mine(entry) {
      return entry.conv === convId || entry.conv == null;
    }

    // -- REST --------------------------------------------------------------------------

    function api(url, body) {
      var options = { credentials: "same-origin", headers: { Accept: "application/json" } };
      if (body !== undefined) {
        options.method = "POST";
        options.headers["Content-Type"] = "application/json";
        // The cookie is fresher than the page if the user signed in again meanwhile.
        options.headers["X-CSRFToken"] = cookie(cfg.csrf_cookie) || cfg.csrf;
        options.body = JSON.stringify(body);
      }
      return fetch(url, options).then(function (response) {
        return response.json().catch(function () { return {}; }).then(function (data) {
          if (response.ok) return data;
          var error = new Error(data.detail || (data.text && data.text[0]) || response.statusText);
          error.status = response.status;
          error.retry_after = response.headers.get("Retry-After");
          throw error;
        });
      });
    }

    // Pagination links are absolute URLs built by the server; keep only path and query,
    // so a proxy that hides https cannot turn them into mixed content.
    function localUrl(url) {
      if (!url) return null;
      var parsed = new URL(url, location.href);
      return parsed.pathname + parsed.search;
    }

    function ensureConversation() {
      if (convId) return Promise.resolve(convId);
      return api(apiBase).then(function (page) {
        convId = page.results[0].id;
        queueSave(queueAll().map(function (entry) {
          return entry.conv == null ? Object.assign({}, entry, { conv: convId }) : entry;
        }));
        return convId;
      });
    }

    function ensureHistory() {
      if (historyLoaded) return Promise.resolve();
      if (historyLoading) return historyLoading;
      errorRow.hidden = true;
      olderRow.hidden = false;
      historyLoading = ensureConversation()
        .then(function () {
          connect();
          return api(apiBase + convId + "/messages/");
        })
        .then(function (page) {
          olderUrl = localUrl(page.next);
          historyLoaded = true;
          merge(page.results.slice().reverse());
          winEnd = items.length;
          winStart = Math.max(0, winEnd - WINDOW);
          render("bottom");
          renderPending();
          // From here the client drops duplicates and fills holes (by seq); catch up on
          // what arrived between the page and the socket.
          rt.hold(page.results);
          rt.sync();
          reportDelivered();
          reportRead();
        })
        .catch(function () {
          errorRow.hidden = false;
        })
        .then(function () {
          historyLoading = null;
          olderRow.hidden = true;
          updateEmpty();
        });
      return historyLoading;
    }

    function loadOlder() {
      if (loadingOlder || !olderUrl) return;
      loadingOlder = true;
      olderRow.hidden = false;
      api(olderUrl)
        .then(function (page) {
          olderUrl = localUrl(page.next);
          var before = items.length;
          merge(page.results.slice().reverse());
          var added = items.length - before; // older messages land before the window
          winStart = Math.max(0, winStart + added - STEP);
          winEnd = Math.min(winEnd + added, winStart + WINDOW);
          render("keep");
        })
        .catch(function () { /* the next scroll to the top tries again */ })
        .then(function () {
          loadingOlder = false;
          olderRow.hidden = true;
        });
    }

    // -- messages ----------------------------------------------------------------------

    function isOwn(message) {
      return message.sender_side === "user";
    }

    // First index whose message id is >= id (binary search: items are sorted by id).
    function find(id) {
      var lo = 0;
      var hi = items.length;
      while (lo < hi) {
        var mid = (lo + hi) >> 1;
        if (items[mid].id < id) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    }

    // Insert confirmed messages into `items` (sorted, no duplicates); returns the new
    // ones. Does not touch the DOM.
    function merge(messages) {
      var fresh = [];
      messages.forEach(function (message) {
        if (!message || message.conversation !== convId || byId.has(message.id)) return;
        byId.set(message.id, message);
        noteSupportMessage(message);
        if (isOwn(message)) {
          if (message.status === "read") staffRead = Math.max(staffRead, message.id);
          if (message.status !== "sent") staffDelivered = Math.max(staffDelivered, message.id);
        }
        items.splice(find(message.id), 0, message);
        fresh.push(message);
      });
      return fresh;
    }

    // Messages that arrived live, through sync or as a send's answer: add them and show
    // them without moving what the user is reading.
    function receive(messages, live) {
      messages.forEach(function (message) { settle(message.client_id); });
      if (!historyLoaded) {
        // The panel was never opened: opening loads the newest page anyway. Keep only
        // what receipts need.
        messages.forEach(noteSupportMessage);
        if (live) messages.forEach(showToast);
        reportDelivered();
        return;
      }
      var followed = winEnd === items.length; // the window shows the newest messages
      var stick = followed && nearBottom();
      var firstId = winStart < winEnd ? items[winStart].id : null;
      var endId = winStart < winEnd ? items[winEnd - 1].id : null;
      var previousLast = lastId();
      var fresh = merge(messages);
      if (fresh.length) {
        if (firstId !== null) {
          // Re-find the window's ends: earlier insertions shift the indexes.
          winStart = find(firstId);
          winEnd = find(endId) + 1;
          var inside = fresh.some(function (m) { return m.id > firstId && m.id < endId; });
          if (inside) render("keep"); // rare: a late message among those on screen
        }
        var tail = fresh.filter(function (m) { return m.id > previousLast; });
        tail.sort(function (a, b) { return a.id - b.id; });
        var ownSent = tail.some(isOwn);
        if (followed) {
          tail.forEach(function (message) {
            var index = find(message.id);
            list.append(itemElement(message, items[index - 1]));
            winEnd = index + 1;
          });
          if (stick || ownSent) {
            trimTop();
            scrollToBottom();
          } else if (winEnd - winStart > WINDOW) {
            var anchor = visibleAnchor();
            trimTop();
            restoreAnchor(anchor);
          }
        } else if (ownSent) {
          jumpToBottom();
        }
        tail.forEach(function (message) {
          if (isOwn(message)) return;
          if (!(stick && isOpen)) newCount++;
          // Live or through sync: a message:new may come after the sync that brought it.
          hideTyping();
          if (isOpen) announce(((message.sender && message.sender.name) || T.title) + ": " + message.text);
          else showToast(message); // which announces it
        });
        updateNewBadge();
        updateEmpty();
        refreshReceipts();
      }
      reportDelivered();
      reportRead();
    }

    function noteSupportMessage(message) {
      if (message.conversation === convId && !isOwn(message)) {
        maxSupportId = Math.max(maxSupportId, message.id);
        // Whoever replies has seen what came before (the server moves its watermark too).
        staffRead = Math.max(staffRead, message.id);
        staffDelivered = Math.max(staffDelivered, message.id);
      }
    }

    function lastId() {
      return items.length ? items[items.length - 1].id : 0;
    }

    // -- rendering -----------------------------------------------------------------------

    function dayLabel(date) {
      var today = new Date();
      var yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
      if (dayKey(date) === dayKey(today)) return T.today;
      if (dayKey(date) === dayKey(yesterday)) return T.yesterday;
      return (date.getFullYear() === today.getFullYear() ? dateFormat : yearFormat).format(date);
    }

    function statusOf(message) {
      if (message.id <= staffRead) return "read";
      if (message.id <= staffDelivered) return "delivered";
      return "sent";
    }

    function statusIcon(state) {
      var names = { sent: "check", delivered: "check-double", read: "check-double", sending: "clock" };
      return h("span", { class: "scw-status scw-status-" + state, title: T[state] }, [icon(names[state]), srOnly(T[state])]);
    }

    // One message (with its date divider when the day changes): a single element, so the
    // window can add and drop messages one node at a time.
    function itemElement(message, previous, pending) {
      var own = isOwn(message);
      var at = new Date(message.created_at);
      var previousAt = previous && new Date(previous.created_at);
      var newDay = !previous || dayKey(previousAt) !== dayKey(at);
      var grouped = !newDay && previous.sender_side === message.sender_side && at - previousAt < GROUP_GAP;
      var text = h("div", { class: "scw-text" });
      if (pending) text.textContent = message.text;
      else text.innerHTML = message.html; // escaped + linkified by the server: safe
      var meta = h("div", { class: "scw-meta " + (own ? "text-light" : "text-muted") }, [
        h("time", { datetime: message.created_at, text: timeFormat.format(at) }),
      ]);
      if (own) meta.append(" ", pending ? pendingStatus(message) : statusIcon(statusOf(message)));
      var bubble = h("div", {
        class: own ? "scw-bubble bg-primary text-white rounded-3 ms-auto" : "scw-bubble bg-white border rounded-3 me-auto",
      }, [srOnly((own ? T.you : (message.sender && message.sender.name) || T.title) + ": "), text, meta]);
      var line = h("div", { class: "scw-line d-flex " + (grouped ? "mt-1" : "mt-2") }, [bubble]);
      var item = h("div", {
        class: "scw-item " + (own ? "scw-own" : "scw-theirs") + (pending ? " scw-" + pending.state : ""),
        "data-id": pending ? null : message.id,
        "data-client-id": pending ? message.client_id : null,
      }, [
        newDay ? h("div", { class: "scw-day text-center text-muted small mt-3 mb-1", text: dayLabel(at) }) : null,
        !own && !grouped && message.sender && message.sender.name
          ? h("div", { class: "scw-name small text-muted mt-2", text: message.sender.name })
          : null,
        line,
      ]);
      if (pending && pending.state === "failed") {
        bubble.addEventListener("click", function () { retry(message.client_id); });
      }
      return item;
    }

    function pendingStatus(message) {
      if (message.failed) {
        return h("button", {
          type: "button",
          class: "btn btn-light btn-sm rounded-circle scw-retry",
          title: T.retry,
          "aria-label": T.failed + ". " + T.retry,
          onclick: function (event) {
            event.stopPropagation();
            retry(message.client_id);
          },
        }, [icon("redo")]);
      }
      return statusIcon("sending");
    }

    // Rebuild the window. "keep" holds the first visible message where it is on screen;
    // "bottom" scrolls to the newest.
    function render(mode) {
      var anchor = mode === "keep" ? visibleAnchor() : null;
      var fragment = document.createDocumentFragment();
      for (var i = winStart; i < winEnd; i++) fragment.append(itemElement(items[i], items[i - 1]));
      list.replaceChildren(fragment);
      var atEnd = winEnd === items.length;
      pendingBox.hidden = !atEnd;
      typingRow.hidden = !atEnd || typingRow.dataset.on !== "1";
      if (anchor) restoreAnchor(anchor);
      else if (mode === "bottom") scrollToBottom();
      updateEmpty();
    }

    function renderPending() {
      var previous = items[items.length - 1];
      var fragment = document.createDocumentFragment();
      queueAll().filter(mine).forEach(function (entry) {
        var message = {
          client_id: entry.id, text: entry.text, created_at: entry.at,
          sender_side: "user", failed: entry.failed,
        };
        fragment.append(itemElement(message, previous, { state: entry.failed ? "failed" : "sending" }));
        previous = message;
      });
      var stick = nearBottom();
      pendingBox.replaceChildren(fragment);
      if (stick) scrollToBottom();
      updateEmpty();
    }

    // Drop rendered messages from the top until the window holds at most WINDOW.
    function trimTop() {
      while (winEnd - winStart > WINDOW && list.firstElementChild) {
        list.firstElementChild.remove();
        winStart++;
      }
    }

    function visibleAnchor() {
      var top = log.scrollTop;
      var children = list.children;
      for (var i = 0; i < children.length; i++) {
        var el = children[i];
        if (el.offsetTop + el.offsetHeight > top) return { id: el.dataset.id, offset: el.offsetTop - top };
      }
      return null;
    }

    function restoreAnchor(anchor) {
      if (!anchor) return;
      var el = list.querySelector('[data-id="' + anchor.id + '"]');
      if (el) log.scrollTop = el.offsetTop - anchor.offset;
    }

    function refreshReceipts() {
      list.querySelectorAll(".scw-own").forEach(function (item) {
        var message = byId.get(Number(item.dataset.id));
        var old = item.querySelector(".scw-status");
        if (!message || !old) return;
        var state = statusOf(message);
        if (!old.classList.contains("scw-status-" + state)) old.replaceWith(statusIcon(state));
      });
    }

    function updateEmpty() {
      empty.hidden = !historyLoaded || items.length > 0 || pendingBox.childElementCount > 0;
    }

    function updateNewBadge() {
      newBadge.hidden = !newCount;
      newBadge.replaceChildren(icon("arrow-down"), " " + newCount + " " + T.new_messages);
    }

    function nearBottom() {
      return log.scrollHeight - log.scrollTop - log.clientHeight < NEAR_BOTTOM;
    }

    function scrollToBottom() {
      log.scrollTop = log.scrollHeight;
    }

    function jumpToBottom() {
      if (winEnd !== items.length) {
        winEnd = items.length;
        winStart = Math.max(0, winEnd - WINDOW);
        render("bottom");
      } else {
        scrollToBottom();
      }
      newCount = 0;
      updateNewBadge();
      reportRead();
    }

    var scrollQueued = false;
    function onScroll() {
      if (scrollQueued) return;
      scrollQueued = true;
      requestAnimationFrame(function () {
        scrollQueued = false;
        if (!historyLoaded) return;
        if (log.scrollTop < EDGE) {
          if (winStart > 0) {
            winStart = Math.max(0, winStart - STEP);
            winEnd = Math.min(winEnd, winStart + WINDOW);
            render("keep");
          } else {
            loadOlder();
          }
        } else if (winEnd < items.length && log.scrollHeight - log.scrollTop - log.clientHeight < EDGE) {
          winEnd = Math.min(items.length, winEnd + STEP);
          winStart = Math.max(0, winEnd - WINDOW);
          render("keep");
        }
        if (winEnd === items.length && nearBottom()) {
          newCount = 0;
          updateNewBadge();
          reportRead();
        }
      });
    }

    function announce(text) {
      announcer.append(h("p", { text: text.slice(0, 300) }));
      while (announcer.childElementCount > 3) announcer.firstElementChild.remove();
    }

    // -- presence, typing, badge ---------------------------------------------------------

    function setOnline(online) {
      dot.className = "scw-dot badge rounded-pill " + (online ? "bg-success" : "bg-secondary");
      dot.title = online ? T.online : T.away;
      dot.replaceChildren(srOnly(online ? T.online : T.away));
    }

    function showTyping() {
      var stick = nearBottom();
      typingRow.dataset.on = "1";
      typingRow.hidden = winEnd !== items.length;
      if (stick) scrollToBottom();
      clearTimeout(typingHideTimer);
      // The server sends typing:stop, but never let a lost frame leave the dots on.
      typingHideTimer = setTimeout(hideTyping, (limits.typing + 1) * 1000);
    }

    function hideTyping() {
      clearTimeout(typingHideTimer);
      typingRow.dataset.on = "";
      typingRow.hidden = true;
    }

    function stopTyping() {
      clearTimeout(typingStopTimer);
      if (typingSentAt) {
        typingSentAt = 0;
        send("typing:stop");
      }
    }

    // -- receipts ----------------------------------------------------------------------

    function reportDelivered() {
      if (live() && maxSupportId > sentDelivered) {
        sentDelivered = maxSupportId;
        send("message:delivered", { up_to_id: maxSupportId });
      }
    }

    // Read means seen: the panel is open, the tab visible and the newest message in view.
    function reportRead() {
      if (!isOpen || document.hidden || !historyLoaded || winEnd !== items.length || !nearBottom()) return;
      var target = Math.max(maxSupportId, lastId());
      if (target <= sentRead || maxSupportId <= sentRead) return;
      sentRead = target;
      if (live()) {
        send("message:read", { up_to_id: target });
      } else {
        api(apiBase + convId + "/read", { up_to_id: target }).then(function (conversation) {
          setBadge(conversation.unread_user_count);
        }, function () { sentRead = 0; });
      }
    }

    function applyConversation(conversation) {
      if (!conversation || conversation.id !== convId) return;
      staffDelivered = Math.max(staffDelivered, conversation.staff_delivered_id || 0);
      staffRead = Math.max(staffRead, conversation.staff_read_id || 0);
      sentRead = Math.max(sentRead, conversation.user_read_id || 0);
      sentDelivered = Math.max(sentDelivered, conversation.user_delivered_id || 0);
      setBadge(conversation.unread_user_count);
      refreshReceipts();
    }

    // -- sending -------------------------------------------------------------------------

    function onSubmit(event) {
      event.preventDefault();
      var text = textarea.value.trim();
      if (!text) return;
      var entry = { id: window.SupportChatSocket.uuid(), conv: convId, text: text, at: new Date().toISOString(), failed: false };
      queueSave(queueAll().concat([entry]));
      textarea.value = "";
      session({ draft: "" });
      autosize();
      clearTimeout(typingStopTimer);
      typingSentAt = 0; // the server ends our typing indicator when the message arrives
      if (winEnd !== items.length) jumpToBottom();
      renderPending();
      scrollToBottom();
      flush();
    }

    // Send this conversation's queued messages not yet on their way: over the socket, or
    // over REST when it keeps failing but the network works (a proxy blocking WebSockets).
    function flush() {
      if (!convId || stopped()) return;
      var entries = queueAll().filter(function (entry) {
        return mine(entry) && !entry.failed && !inflight.has(entry.id);
      });
      if (live()) {
        entries.forEach(sendOverSocket);
      } else if (navigator.onLine && rt && rt.failures >= 2) {
        // One at a time, to keep their order.
        entries.reduce(function (chain, entry) {
          return chain.then(function () { return postMessage(entry); });
        }, Promise.resolve());
      }
    }

    function sendOverSocket(entry) {
      var token = {};
      inflight.set(entry.id, token);
      rt.request("message:send", { text: entry.text, client_id: entry.id }).then(function (frame) {
        receive([frame.data.message], false);
      }, function (error) {
        if (inflight.get(entry.id) !== token) return; // settled, or the socket went (resent after hello)
        if (error.code === "timeout") fail(entry.id, "");
        else if (error.code === "disconnected" || error.code === "not_connected") inflight.delete(entry.id);
        else onSendError(entry.id, error);
      });
    }

    function postMessage(entry) {
      inflight.set(entry.id, Date.now());
      return api(apiBase + convId + "/messages/", { text: entry.text, client_id: entry.id })
        .then(function (message) {
          inflight.delete(entry.id);
          receive([message], false);
        }, function (error) {
          inflight.delete(entry.id);
          var status = error.status || 0;
          if (status >= 400 && status < 500 && status !== 408 && status !== 429) fail(entry.id, error.message);
          else later(error); // Network errors, 429 and 5xx: stay queued
        });
    }

    function settle(clientId) {
      if (!clientId) return;
      inflight.delete(clientId);
      var entries = queueAll();
      var left = entries.filter(function (entry) { return entry.id !== clientId; });
      if (left.length !== entries.length) {
        queueSave(left);
        renderPending();
      }
    }

    function fail(clientId, message) {
      inflight.delete(clientId);
      queueUpdate(clientId, { failed: true, error: message || "" });
      renderPending();
      announce(T.failed + (message ? ": " + message : ""));
    }

    function retry(clientId) {
      queueUpdate(clientId, { failed: false, error: "" });
      renderPending();
      flush();
    }

    function onSendError(clientId, data) {
      inflight.delete(clientId);
      if (!later(data)) fail(clientId, data.message);
    }

    function later(error) {
      var wait = window.SupportChatSocket.retryDelay(error);
      if (wait) {
        clearTimeout(againTimer);
        againTimer = setTimeout(flush, wait);
      }
      return wait;
    }

    // -- WebSocket (the shared client) --------------------------------------------------

    function live() {
      return !!rt && rt.live;
    }

    function stopped() {
      return !!rt && rt.stopped;
    }

    function send(type, data) {
      return !!rt && rt.send(type, data);
    }

    function connect() {
      if (rt) {
        rt.reconnect();
        return;
      }
      if (!convId) return;
      rt = new window.SupportChatSocket({
        path: cfg.ws + "user/" + convId + "/",
        conversation: convId,
        heartbeat: limits.heartbeat,
        timeout: SEND_TIMEOUT,
        on: handlers,
        onState: updateBanner,
        onResend: flush, // after every hello: what is queued goes (again, same client_id)
      });
    }

    var handlers = {
      hello: function (data) {
        limits.heartbeat = data.heartbeat_interval || limits.heartbeat;
        limits.typing = data.typing_timeout || limits.typing;
        limits.maxLength = data.max_message_length || limits.maxLength;
        textarea.maxLength = limits.maxLength;
        applyConversation(data.conversation);
        if (data.presence) setOnline(data.presence.support_online);
        updateBanner();
        if (isOpen && !historyLoaded) ensureHistory(); // it failed while we were cut off
        reportDelivered();
        reportRead();
      },
      close: function (data) {
        inflight.clear(); // unanswered sends go again after the next hello (idempotent)
        hideTyping();
        if (data.fatal) setOnline(false);
        else flush(); // over REST if the socket keeps failing
        updateBanner(); // after two lost sockets in a row
      },
      sync: function (data) {
        applyConversation(data.conversation);
        receive(data.messages || [], false);
      },
      "message:new": function (data) {
        if (data.conversation_id !== convId) return;
        receive([data.message], true);
        // A new message carries the counters: no separate unread:update follows it.
        if ("unread_user_count" in data) setBadge(data.unread_user_count);
      },
      "message:sent": function (data) {
        receive([data.message], false);
      },
      "message:delivered": receipt,
      "message:read": receipt,
      "typing:start": function (data) {
        if (data.side === "staff" && data.conversation_id === convId) showTyping();
      },
      "typing:stop": function (data) {
        if (data.side === "staff" && data.conversation_id === convId) hideTyping();
      },
      "presence:update": function (data) {
        if ("support_online" in data) setOnline(data.support_online);
      },
      "unread:update": function (data) {
        if (data.conversation_id === convId) setBadge(data.unread_user_count);
      },
      "conversation:updated": function (data) {
        applyConversation(data.conversation);
      },
    };

    function receipt(data, frame) {
      if (data.side === "staff" && data.conversation_id === convId) {
        staffDelivered = Math.max(staffDelivered, data.up_to_id);
        if (frame.type === "message:read") staffRead = Math.max(staffRead, data.up_to_id);
        refreshReceipts();
      }
    }

    // Shows the offline banner; also exposes the connection state on the root element
    // (data-connection="open|closed|stopped") for host CSS and tests.
    function updateBanner() {
      banner.hidden = navigator.onLine && (live() || !rt || rt.failures < 2);
      root.dataset.connection = live() ? "open" : stopped() ? "stopped" : "closed";
    }

    // -- composer ------------------------------------------------------------------------

    // 1 to 4 rows: grow with the text, then scroll inside.
    function autosize() {
      var style = getComputedStyle(textarea);
      var extra = parseFloat(style.paddingTop) + parseFloat(style.paddingBottom) +
        parseFloat(style.borderTopWidth) + parseFloat(style.borderBottomWidth);
      var max = parseFloat(style.lineHeight) * 4 + extra;
      textarea.style.height = "auto";
      var wanted = textarea.scrollHeight + parseFloat(style.borderTopWidth) + parseFloat(style.borderBottomWidth);
      textarea.style.height = Math.min(wanted, max) + "px";
      textarea.style.overflowY = wanted > max ? "auto" : "hidden";
    }

    function onInput() {
      autosize();
      session({ draft: textarea.value });
      clearTimeout(typingStopTimer);
      if (!textarea.value.trim()) {
        stopTyping();
        return;
      }
      // Refresh about every 2 s while typing; stop after 3 s without a keystroke.
      if (Date.now() - typingSentAt > 2000 && send("typing:start")) typingSentAt = Date.now();
      typingStopTimer = setTimeout(stopTyping, 3000);
    }

    function onKeyDown(event) {
      // Enter sends, Shift+Enter adds a line; never while an IME is composing.
      if (event.key === "Enter" && !event.shiftKey && !event.altKey && !event.ctrlKey && !event.metaKey && !event.isComposing) {
        event.preventDefault();
        form.requestSubmit ? form.requestSubmit() : onSubmit(event);
      }
    }

    // -- toast ---------------------------------------------------------------------------

    // Only staff replies in this conversation that the user does not see in the panel.
    function showToast(message) {
      if (isOpen || !message || isOwn(message) || message.conversation !== convId || message.id === toastId) return;
      toastId = message.id;
      var chars = Array.from(message.text.replace(/\s+/g, " ").trim()); // code points, not halves
      var name = (message.sender && message.sender.name) || T.title;
      toastBox.hidden = false;
      root.classList.add("scw-toasting");
      toastName.textContent = T.new_reply_from.replace("{name}", name);
      toastText.textContent = chars.length > SNIPPET ? chars.slice(0, SNIPPET - 1).join("") + "…" : chars.join("");
      announce(toastName.textContent + ": " + toastText.textContent);
      releaseToast();
    }

    function hideToast() {
      clearTimeout(toastTimer);
      if (toastBox.hidden) return;
      var focused = toastBox.contains(document.activeElement);
      toastBox.hidden = true;
      root.classList.remove("scw-toasting");
      if (focused) button.focus(); // not lost to <body>
    }

    function holdToast() {
      clearTimeout(toastTimer);
    }

    // (Re)start the auto-hide, unless the pointer or the focus is still on the toast.
    function releaseToast(event) {
      var type = event && event.type;
      var focus = type === "focusout" ? event.relatedTarget : document.activeElement;
      if ((type !== "pointerleave" && toastBox.matches(":hover")) || toastBox.contains(focus)) return;
      clearTimeout(toastTimer);
      toastTimer = setTimeout(hideToast, TOAST_TIME);
    }

    // -- open / close ----------------------------------------------------------------------

    var hideTimer = null;
    function open(focus, instant) {
      hideToast();
      if (!isOpen) {
        isOpen = true;
        session({ s: "open" });
        clearTimeout(hideTimer);
        panel.hidden = false;
        root.classList.add("scw-open");
        button.setAttribute("aria-expanded", "true");
        if (instant) panel.classList.add("scw-in");
        else {
          void panel.offsetWidth; // start the transition from the hidden state
          panel.classList.add("scw-in");
        }
        autosize();
        if (historyLoaded && winEnd === items.length) {
          // Messages may have arrived while the panel was hidden (and could not scroll).
          scrollToBottom();
          newCount = 0;
          updateNewBadge();
        }
        ensureHistory().then(reportRead);
      }
      if (focus) textarea.focus();
    }

    function hide(state) {
      session({ s: state });
      if (!isOpen) return;
      isOpen = false;
      stopTyping();
      panel.classList.remove("scw-in");
      root.classList.remove("scw-open");
      button.setAttribute("aria-expanded", "false");
      hideTimer = setTimeout(function () { panel.hidden = true; }, 200); // after the fade-out
      button.focus();
    }

    // -- start -----------------------------------------------------------------------------

    // The client itself drops its socket when the browser goes offline and reconnects when
    // it is back or the tab visible again.
    window.addEventListener("offline", updateBanner);
    window.addEventListener("online", function () {
      updateBanner();
      if (isOpen) ensureHistory();
      start();
      flush();
    });
    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) reportRead();
    });
    window.addEventListener("storage", function (event) {
      if (event.key === QUEUE_KEY) renderPending(); // another tab queued or settled a message
    });
    window.addEventListener("pagehide", stopTyping);

    // Connect in the background (queued messages to send, a live badge), creating the
    // conversation only if there is something queued for it.
    function start() {
      if (convId) connect();
      else if (queueAll().length) ensureConversation().then(connect, function () {});
    }

    var state = session();
    var arrived = root.scNew; // the reply that made the loader load us (its socket, not ours)
    root.scNew = null;
    textarea.value = state.draft || "";
    setOnline(false);
    updateNewBadge();
    renderPending();
    if (state.s === "open") open(false, true); // restore across pages, without stealing focus
    else start();
    // A moment later: the live region must be in the accessibility tree before it changes.
    if (arrived) setTimeout(showToast, 100, arrived);

    return {
      open: function () { open(true); },
      close: function () { hide("closed"); },
      toggle: function () {
        if (isOpen) hide("min");
        else open(true);
      },
    };
  };
})();
