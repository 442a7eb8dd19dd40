/* django-support-chat: the staff inbox in the browser.
 *
 * The pages are rendered by the server and htmx (from django-htmx) swaps the list and the
 * conversation pane. This script adds what htmx does not do:
 *
 * - the staff lobby socket (ws/chat/admin/): new conversations, last messages, unread counts,
 *   assignment and status changes by anyone, customer presence;
 * - the conversation socket (ws/chat/admin/<id>/): messages, typing, delivered/read receipts;
 *   both are the shared client (../realtime.js, window.SupportChatSocket): reconnects, dead
 *   sockets (the Live badge goes off within one heartbeat interval), duplicates and holes;
 * - the composer (Enter sends, Shift+Enter adds a line), bulk selection, keyboard shortcuts.
 *
 * Message text from a socket is only ever inserted from the server's `html` field (escaped,
 * URLs linked) or as textContent: the raw `text` is never parsed as HTML.
 */
(function () {
  "use strict";

  var htmx = window.htmx;
  if (htmx) {
    // Never keep copies of customer conversations in localStorage: back/forward re-fetches
    // the page from the server (HX-History-Restore-Request), which is also never stale.
    htmx.config.historyCacheSize = 0;
    // 409/422 carry an error message that the server retargets into the alert area.
    htmx.config.responseHandling = [
      { code: "204", swap: false },
      { code: "409|422", swap: true, error: false },
      { code: "[23]..", swap: true },
      { code: "[45]..", swap: false, error: true },
    ];
  }

  var RECEIPT_RANK = { sent: 0, delivered: 1, read: 2 };
  var RECEIPT_ICON = { sent: "check", delivered: "check-double", read: "check-double" };

  var root = null; // #sc-inbox
  var lobby = null; // Socket on ws/chat/admin/
  var chat = null; // Socket on ws/chat/admin/<id>/
  var chatId = null;
  var readSent = 0; // highest customer message id we reported read
  var deliveredSent = 0;
  var typingSentAt = 0;
  var typingTimer = null;
  var typingTimeout = 5;
  var rowSeq = {};
  var listRequests = 0; // htmx requests sent for #sc-list (filters, search), see refreshList
  var texts = {};

  function $(selector, context) {
    return (context || document).querySelector(selector);
  }
  function $all(selector, context) {
    return Array.prototype.slice.call((context || document).querySelectorAll(selector));
  }
  function t(key, fallback) {
    return texts[key] || fallback;
  }
  // The page renders the icons this script uses into <template id="sc-icons"> (inline SVG
  // from icons.py, or Font Awesome): clone one, never build markup here.
  function icon(name) {
    var icons = document.getElementById("sc-icons");
    var found = icons && icons.content.querySelector('[data-sc-icon="' + name + '"]');
    return found ? found.cloneNode(true) : document.createTextNode("");
  }

  // The shared client's states, as the badges show them: on, reconnecting or off.
  function liveOf(state) {
    if (state === "live") return "on";
    return state === "stopped" || state === "offline" ? "off" : "reconnecting";
  }

  // -- helpers -----------------------------------------------------------------------------

  function list() {
    return $("#sc-list", root);
  }
  function rowEl(id) {
    return document.getElementById("sc-row-" + id);
  }
  function pane() {
    return $(".sc-conversation", root);
  }
  function openId() {
    var p = pane();
    return p ? Number(p.dataset.conversationId) : null;
  }
  function history() {
    return $("#sc-history", root);
  }

  function stateQuery(extra) {
    var state = $("#sc-state", root);
    var params = new URLSearchParams();
    if (state) {
      if (state.dataset.filter && state.dataset.filter !== "all") params.set("filter", state.dataset.filter);
      if (state.dataset.q) params.set("q", state.dataset.q);
    }
    var open = openId();
    if (open) params.set("c", String(open));
    Object.keys(extra || {}).forEach(function (key) {
      params.set(key, extra[key]);
    });
    var query = params.toString();
    return query ? "?" + query : "";
  }

  function fromHTML(html) {
    var template = document.createElement("template");
    template.innerHTML = html.trim();
    return template.content;
  }

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }
  function dayKey(date) {
    return date.getFullYear() + "-" + pad(date.getMonth() + 1) + "-" + pad(date.getDate());
  }
  function clock(date) {
    return date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }
  function shortTime(date) {
    return dayKey(date) === dayKey(new Date())
      ? clock(date)
      : date.toLocaleDateString([], { month: "short", day: "numeric" });
  }
  function dayLabel(date) {
    var today = new Date();
    var yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
    if (dayKey(date) === dayKey(today)) return t("today", "Today");
    if (dayKey(date) === dayKey(yesterday)) return t("yesterday", "Yesterday");
    return date.toLocaleDateString([], { weekday: "long", month: "short", day: "numeric" });
  }

  /* Show times in the browser's time zone and locale (the server renders its own). */
  function localizeTimes(context) {
    $all("time[datetime][data-format]", context || root).forEach(function (el) {
      var date = new Date(el.getAttribute("datetime"));
      if (isNaN(date.getTime())) return;
      el.textContent = el.dataset.format === "short" ? shortTime(date) : clock(date);
      el.title = date.toLocaleString();
    });
  }

  function snippetOf(text) {
    var flat = String(text || "").replace(/\s+/g, " ").trim();
    return flat.length > 120 ? flat.slice(0, 119) + "\u2026" : flat;
  }

  function showAlert(message, level) {
    var box = $("#sc-alerts", root);
    if (!box) return;
    var alert = document.createElement("div");
    alert.className = "alert alert-" + (level || "danger") + " alert-dismissible sc-alert";
    alert.setAttribute("role", "alert");
    alert.textContent = message;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "btn-close";
    close.setAttribute("data-sc-dismiss", "");
    close.setAttribute("aria-label", t("dismiss", "Dismiss"));
    alert.appendChild(close);
    box.replaceChildren(alert);
  }

  function setLive(live) {
    var badge = $("#sc-live", root);
    if (!badge) return;
    badge.dataset.live = live;
    $(".sc-live-text", badge).textContent =
      live === "on" ? t("live", "Live") : live === "reconnecting" ? t("reconnecting", "Reconnecting…") : t("offline", "Offline");
  }

  // -- the list ------------------------------------------------------------------------------

  function updateEmpty() {
    var empty = $("#sc-empty", root);
    if (empty) empty.hidden = !!$(".sc-row", list());
  }

  function rowTime(row) {
    var time = $(".sc-row-time", row);
    return time ? new Date(time.getAttribute("datetime")).getTime() || 0 : 0;
  }

  /* Put a row where the newest-activity-first order wants it. A new row older than everything
     loaded stays out while there are more pages: "Load more" brings it. */
  function placeRow(row, wasListed) {
    var container = list();
    var when = rowTime(row);
    var id = Number(row.dataset.conversationId);
    var before = null;
    $all(".sc-row", container).some(function (other) {
      if (other === row) return false;
      var otherWhen = rowTime(other);
      if (otherWhen < when || (otherWhen === when && Number(other.dataset.conversationId) < id)) {
        before = other;
        return true;
      }
      return false;
    });
    var more = $(".sc-more", container);
    if (!before && more && !wasListed) {
      if (row.parentNode) row.remove();
      return false;
    }
    if (row.nextElementSibling !== before || row.parentNode !== container) {
      container.insertBefore(row, before || more || null);
    }
    return true;
  }

  function markActive() {
    var id = openId();
    $all(".sc-row", list()).forEach(function (row) {
      row.classList.toggle("sc-row-active", Number(row.dataset.conversationId) === id);
    });
  }

  function setUnread(id, count) {
    var row = rowEl(id);
    if (!row) return;
    var badge = $(".sc-unread-badge", row);
    $(".sc-unread-count", badge).textContent = String(count);
    badge.hidden = !count;
    row.classList.toggle("sc-unread", !!count);
  }

  /* Fetch one row from the server (which applies the list's filter and search) and put it in
     its place in the order. 204: it does not match (any more); it leaves the list unless it
     is the open conversation. */
  function refreshRow(id) {
    if (!root || !id) return;
    var seq = (rowSeq[id] = (rowSeq[id] || 0) + 1);
    var url = root.dataset.rowUrl.replace(/0\/$/, id + "/") + stateQuery();
    fetch(url, { headers: { "HX-Request": "true" }, credentials: "same-origin" })
      .then(function (response) {
        if (seq !== rowSeq[id]) return null;
        var redirect = response.headers.get("HX-Redirect");
        if (redirect) {
          location.href = redirect;
          return null;
        }
        if (response.status === 204) {
          var stale = rowEl(id);
          if (stale && id !== openId()) stale.remove();
          updateEmpty();
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (!html || seq !== rowSeq[id]) return;
        var fresh = fromHTML(html).firstElementChild;
        if (!fresh) return;
        var old = rowEl(id);
        var focused = false;
        if (old) {
          $(".sc-row-check", fresh).checked = $(".sc-row-check", old).checked;
          focused = old.contains(document.activeElement);
          old.replaceWith(fresh);
        }
        if (!placeRow(fresh, !!old)) return;
        if (focused) $(".sc-row-link", fresh).focus();
        if (htmx) htmx.process(fresh);
        localizeTimes(fresh);
        updateEmpty();
        markActive();
        updateBulk();
        queryPresence([Number(fresh.dataset.customerId)]);
      })
      .catch(function () {});
  }

  /* Reload the first page of the list (after a reconnect: events may have been missed). */
  function refreshList() {
    var url = root.dataset.rowsUrl + stateQuery();
    var issued = listRequests;
    fetch(url, { headers: { "HX-Request": "true" }, credentials: "same-origin" })
      .then(function (response) {
        return response.ok && !response.headers.get("HX-Redirect") ? response.text() : null;
      })
      .then(function (html) {
        // A filter or search sent meanwhile renders the list afresh, for the state the
        // page now has: this older answer (maybe for another filter) must not replace it.
        if (html === null || issued !== listRequests) return;
        var container = list();
        // Read the selection and focus now, not when the request left: rows checked while
        // it was in flight (right after the page loaded, say) stay checked.
        var checked = $all(".sc-row-check:checked", container).map(function (box) {
          return box.value;
        });
        var focused = currentRowId();
        container.replaceChildren(fromHTML(html));
        checked.forEach(function (value) {
          var box = $('.sc-row-check[value="' + value + '"]', container);
          if (box) box.checked = true;
        });
        if (focused && rowEl(focused)) focusRow(rowEl(focused));
        if (htmx) htmx.process(container);
        afterChange(container);
        queryPresence();
      })
      .catch(function () {});
  }

  function onLobbyMessage(data) {
    var message = data.message;
    if (typeof data.unread_staff_count === "number") setUnread(data.conversation_id, data.unread_staff_count);
    setCount(data.conversation_id, data.unread_staff_count);
    alertMessage(data);
    var row = rowEl(data.conversation_id);
    if (!row || !message) {
      refreshRow(data.conversation_id);
      return;
    }
    $(".sc-row-text", row).textContent = snippetOf(message.text); // text, never HTML
    $(".sc-row-from", row).hidden = message.sender_side !== "staff";
    var time = $(".sc-row-time", row);
    time.setAttribute("datetime", message.created_at);
    localizeTimes(row);
    placeRow(row, true);
  }

  // -- presence -------------------------------------------------------------------------------

  function setPresence(userId, online) {
    $all('[data-presence-for="' + userId + '"]', root).forEach(function (el) {
      el.dataset.online = online ? "true" : "false";
      if (el.classList.contains("sc-presence-label")) {
        el.textContent = online ? t("online", "Online") : t("offline_user", "Offline");
      }
    });
  }

  function queryPresence(ids) {
    if (!lobby) return;
    if (!ids) {
      ids = $all("[data-presence-for]", root).map(function (el) {
        return Number(el.dataset.presenceFor);
      });
    }
    ids = ids.filter(function (id, index) {
      return id && ids.indexOf(id) === index;
    });
    if (ids.length) lobby.send("presence:query", { user_ids: ids.slice(0, 500) });
  }

  // -- the open conversation --------------------------------------------------------------

  function lastMessageId(side) {
    var ids = $all(side ? '.sc-msg[data-side="' + side + '"]' : ".sc-msg", history()).map(function (el) {
      return Number(el.dataset.messageId);
    });
    return ids.length ? Math.max.apply(null, ids) : 0;
  }

  function nearBottom(box) {
    return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  }
  function scrollToBottom() {
    var box = history();
    if (box) box.scrollTop = box.scrollHeight;
  }

  function buildMessage(message) {
    var staff = message.sender_side === "staff";
    var el = document.createElement("div");
    el.id = "sc-msg-" + message.id;
    el.className = "sc-msg " + (staff ? "sc-msg-staff" : "sc-msg-user");
    el.dataset.messageId = String(message.id);
    el.dataset.side = message.sender_side;
    var bubble = document.createElement("div");
    bubble.className = "sc-bubble";
    bubble.innerHTML = message.html; // escaped and linkified by the server; never message.text
    var meta = document.createElement("div");
    meta.className = "sc-meta";
    var sender = document.createElement("span");
    sender.className = "sc-sender";
    sender.textContent = (message.sender && message.sender.name) || "";
    var time = document.createElement("time");
    time.setAttribute("datetime", message.created_at);
    time.dataset.format = "clock";
    meta.append(sender, " \u00b7 ", time);
    if (staff) {
      var receipt = document.createElement("span");
      receipt.className = "sc-receipt";
      meta.append(" ", receipt);
      setReceipt(receipt, message.status || "sent");
    }
    el.append(bubble, meta);
    return el;
  }

  function setReceipt(receipt, status) {
    receipt.dataset.status = status;
    var label = status === "read" ? t("read", "Read") : status === "delivered" ? t("delivered", "Delivered") : t("sent", "Sent");
    receipt.title = label;
    receipt.replaceChildren(icon(RECEIPT_ICON[status] || RECEIPT_ICON.sent));
    var text = document.createElement("span");
    text.className = "sc-receipt-text visually-hidden";
    text.textContent = label;
    receipt.appendChild(text);
  }

  function updateReceipts(upTo, status) {
    $all(".sc-msg-staff", history()).forEach(function (el) {
      if (Number(el.dataset.messageId) > upTo) return;
      var receipt = $(".sc-receipt", el);
      if (receipt && RECEIPT_RANK[status] > RECEIPT_RANK[receipt.dataset.status || "sent"]) {
        setReceipt(receipt, status);
      }
    });
  }

  function appendMessage(message) {
    // A side that sent message X has read everything before it (the server moves that
    // side's watermark too, without a message:read): the ticks follow at once.
    if (message.sender_side === "user") updateReceipts(message.id, "read");
    var box = history();
    if (!box || document.getElementById("sc-msg-" + message.id)) return false;
    var stick = nearBottom(box) || message.sender_side === "staff";
    var el = buildMessage(message);
    // Keep id order even if an older message arrives late (sync after reconnect).
    var later = $all(".sc-msg", box).filter(function (other) {
      return Number(other.dataset.messageId) > message.id;
    })[0];
    box.insertBefore(el, later || $(".sc-history-empty", box));
    tidyHistory();
    if (stick) scrollToBottom();
    return true;
  }

  /* One element per message id, and day dividers in the browser's time zone. */
  function tidyHistory() {
    var box = history();
    if (!box) return;
    var seen = {};
    $all(".sc-msg", box).forEach(function (el) {
      if (seen[el.dataset.messageId]) el.remove();
      seen[el.dataset.messageId] = true;
    });
    // In id order, with "No messages yet." last: the reply form appends its answer after
    // that note, and when no live copy came first (the layer was down) it must not stay
    // there, below messages that arrive later.
    var note = $(".sc-history-empty", box);
    if (note) box.appendChild(note);
    var shown = $all(".sc-msg", box);
    var sorted = shown.slice().sort(function (a, b) {
      return Number(a.dataset.messageId) - Number(b.dataset.messageId);
    });
    if (sorted.some(function (el, i) { return el !== shown[i]; })) {
      sorted.forEach(function (el) {
        box.insertBefore(el, note);
      });
    }
    $all(".sc-day", box).forEach(function (el) {
      el.remove();
    });
    var previous = null;
    $all(".sc-msg", box).forEach(function (el) {
      var time = $("time[datetime]", el);
      var date = time ? new Date(time.getAttribute("datetime")) : null;
      if (!date || isNaN(date.getTime())) return;
      var key = dayKey(date);
      if (key !== previous) {
        var divider = document.createElement("div");
        divider.className = "sc-day";
        divider.dataset.day = key;
        var label = document.createElement("span");
        label.textContent = dayLabel(date);
        divider.appendChild(label);
        box.insertBefore(divider, el);
        previous = key;
      }
    });
    var empty = $(".sc-history-empty", box);
    if (empty) empty.hidden = !!$(".sc-msg", box);
    localizeTimes(box);
  }

  /* Tell the server what this staff member has seen: read when the page is visible. */
  function markSeen() {
    if (!chat) return;
    var last = lastMessageId("user");
    if (!last) return;
    if (document.visibilityState === "visible") {
      if (last > readSent && chat.send("message:read", { up_to_id: last })) readSent = last;
    } else if (last > deliveredSent && last > readSent) {
      if (chat.send("message:delivered", { up_to_id: last })) deliveredSent = last;
    }
  }

  function showTyping(name) {
    var box = $("#sc-typing", root);
    if (!box) return;
    $(".sc-typing-text", box).textContent = t("typing", "%s is typing…").replace("%s", name);
    box.hidden = false;
    clearTimeout(typingTimer);
    typingTimer = setTimeout(hideTyping, (typingTimeout + 1) * 1000);
  }
  function hideTyping() {
    var box = $("#sc-typing", root);
    if (box) box.hidden = true;
    clearTimeout(typingTimer);
  }

  // What the pane shows, for the client's seq tracking (a contiguous run up to the newest).
  function heldMessages() {
    return $all(".sc-msg", history()).map(function (el) {
      var seq = parseInt(el.dataset.seq, 10);
      return { id: Number(el.dataset.messageId), seq: isNaN(seq) ? undefined : seq };
    });
  }

  function chatHandlers(id) {
    return {
      hello: function (data) {
        typingTimeout = data.typing_timeout || typingTimeout;
        if (data.presence) setPresence(data.presence.user_id, data.presence.online);
        // The client catches up by itself (sync after every hello, by seq).
      },
      sync: function (data) {
        (data.messages || []).forEach(appendMessage);
        if (!data.has_more) markSeen();
      },
      "message:new": function (data) {
        if (data.conversation_id !== id || !data.message) return;
        appendMessage(data.message);
        if (data.message.sender_side === "user") {
          hideTyping();
          markSeen();
        }
      },
      "typing:start": function (data) {
        if (data.user_id === Number(root.dataset.userId)) return;
        var p = pane();
        if (data.side === "user") showTyping((p && p.dataset.customerName) || t("customer", "The customer"));
        else showTyping(t("colleague", "A colleague"));
      },
      "typing:stop": hideTyping,
      "message:delivered": function (data) {
        if (data.side === "user") updateReceipts(data.up_to_id, "delivered");
      },
      "message:read": function (data) {
        if (data.side === "user") updateReceipts(data.up_to_id, "read");
      },
      "presence:update": function (data) {
        if (data.side === "user") setPresence(data.user_id, data.online);
      },
      error: function (data) {
        if (data.message) showAlert(data.message);
      },
    };
  }

  function openChat() {
    var id = openId();
    if (id === chatId && (chat || !id)) return;
    if (chat) chat.close();
    chat = null;
    chatId = id;
    hideTyping();
    if (!id) return;
    // Whatever the page shows was read when it opened (the pane posts read/ on load).
    readSent = lastMessageId("user");
    deliveredSent = readSent;
    chat = new window.SupportChatSocket({
      path: root.dataset.wsConversation.replace(/0\/$/, id + "/"),
      conversation: id,
      on: chatHandlers(id),
      onState: function (state) {
        var p = pane();
        if (p && Number(p.dataset.conversationId) === id) p.dataset.live = liveOf(state);
      },
    });
    // Sync (after hello) from what the server rendered; holes are filled by seq.
    chat.hold(heldMessages());
  }

  // -- composer --------------------------------------------------------------------------------

  /* 503 (the server's pushback, or no database connection): nothing was stored. Keep the
     text and its client_id, say so, and send it again after Retry-After (plus jitter) with
     the same client_id, unless the text changed or another conversation is open by then. */
  function retryReply(form, sent, xhr) {
    var wait = window.SupportChatSocket.retryDelay({ retry_after: xhr.getResponseHeader("Retry-After") });
    if (!wait) return; // not the chat's answer (a proxy's 503): the text stays for a manual retry
    form.dataset.busy = "1";
    showAlert(t("busy", "The server is busy. Your reply will be sent again shortly."), "warning");
    var shown = $("#sc-alerts .sc-alert", root);
    if (shown) shown.classList.add("sc-busy");
    setTimeout(function () {
      var area = $("#sc-reply", form);
      var id = $('input[name="client_id"]', form);
      if (composer() !== form || !area || area.value !== sent.text || id.value !== sent.id) return;
      form.requestSubmit();
    }, wait);
  }

  function composer() {
    return $("#sc-composer", root);
  }

  function syncComposer() {
    var header = $("#sc-pane-header", root);
    var form = composer();
    if (!header || !form) return;
    var closed = header.dataset.status === "closed";
    $("#sc-reply", form).disabled = closed;
    $('button[type="submit"]', form).disabled = closed;
    $(".sc-closed-note", form).hidden = !closed;
  }

  /* One line to start, growing with the text up to the CSS max-height (four lines). */
  function autoGrow(area) {
    var limit = parseFloat(getComputedStyle(area).maxHeight) || 160;
    area.style.height = "auto";
    area.style.height = Math.min(area.scrollHeight + 2, limit) + "px";
  }

  function sendTyping(area) {
    if (!chat) return;
    var now = Date.now();
    if (area.value.trim()) {
      if (now - typingSentAt > 2000) {
        typingSentAt = now;
        chat.send("typing:start", {});
      }
    } else if (typingSentAt) {
      typingSentAt = 0;
      chat.send("typing:stop", {});
    }
  }

  function stopTyping() {
    if (chat && typingSentAt) chat.send("typing:stop", {});
    typingSentAt = 0;
  }

  // -- bulk selection ------------------------------------------------------------------------

  function updateBulk() {
    if (!root) return;
    var boxes = $all(".sc-row-check", list());
    var checked = boxes.filter(function (box) {
      return box.checked;
    });
    var actions = $("#sc-bulk-actions", root);
    var label = $("#sc-selected", root);
    var all = $("#sc-select-all", root);
    if (actions) actions.hidden = !checked.length;
    if (label) {
      label.textContent = checked.length
        ? t("selected", "%d selected").replace("%d", String(checked.length))
        : t("select_hint", "Select to act on several");
    }
    if (all) {
      all.checked = !!boxes.length && checked.length === boxes.length;
      all.indeterminate = !!checked.length && checked.length < boxes.length;
    }
  }

  // -- keyboard ------------------------------------------------------------------------------

  function rows() {
    return $all(".sc-row", list());
  }

  function currentRowId() {
    var row = currentRow();
    return row && row.contains(document.activeElement) ? row.dataset.conversationId : null;
  }

  function currentRow() {
    var active = document.activeElement;
    var row = active && active.closest ? active.closest(".sc-row") : null;
    return row || $(".sc-row-focus", list()) || $(".sc-row-active", list());
  }

  function focusRow(row) {
    if (!row) return;
    $all(".sc-row-focus", list()).forEach(function (el) {
      el.classList.remove("sc-row-focus");
    });
    row.classList.add("sc-row-focus");
    $(".sc-row-link", row).focus();
    row.scrollIntoView({ block: "nearest" });
  }

  function moveInList(delta) {
    var all = rows();
    if (!all.length) return;
    var index = all.indexOf(currentRow());
    var next = index === -1 ? (delta > 0 ? 0 : all.length - 1) : Math.max(0, Math.min(all.length - 1, index + delta));
    focusRow(all[next]);
  }

  function onKeydown(event) {
    if (!root || !document.body.contains(root)) return;
    var target = event.target;
    var help = $("#sc-help", root);
    if (help && help.open) return; // the dialog handles its own keys (Esc closes it)
    var typing =
      target &&
      (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName)) &&
      !(target.type === "checkbox");
    if (event.key === "Escape") {
      if ($(".dropdown-menu.show", root)) return;
      if (typing) {
        target.blur();
        if (target.id === "sc-reply") stopTyping();
        event.preventDefault();
        return;
      }
      var close = $("#sc-close-pane", root);
      if (close) {
        var id = openId();
        event.preventDefault();
        close.click();
        var row = rowEl(id);
        if (row) focusRow(row);
      }
      return;
    }
    if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
    var inList = target && target.closest && target.closest(".sc-list-pane");
    switch (event.key) {
      case "j":
        moveInList(1);
        break;
      case "k":
        moveInList(-1);
        break;
      case "ArrowDown":
      case "ArrowUp":
        if (!inList) return;
        moveInList(event.key === "ArrowDown" ? 1 : -1);
        break;
      case "Enter": {
        if (target && target.classList && target.classList.contains("sc-row-link")) return; // native
        var row = currentRow();
        if (!row) return;
        $(".sc-row-link", row).click();
        break;
      }
      case "r": {
        var area = $("#sc-reply", root);
        if (!area || area.disabled) return;
        area.focus();
        break;
      }
      case "/":
        $("#sc-q", root).focus();
        break;
      case "x": {
        var selected = currentRow();
        if (!selected) return;
        var box = $(".sc-row-check", selected);
        box.checked = !box.checked;
        updateBulk();
        break;
      }
      case "?":
        if (help) help.showModal();
        break;
      default:
        return;
    }
    event.preventDefault();
  }

  // -- the pane's requests and the header ----------------------------------------------------
  // htmx resolves a response's out-of-band targets (#sc-filters) in the root node of the
  // element that sent the request. If a header re-render detaches that element while its
  // request is in flight (the close link, a header button), the OOB swap finds no target
  // (htmx:oobErrorNoTarget) and the filters and the list state stay stale. So nothing
  // replaces the header while a request from inside the pane, or into it, is in flight: a
  // refresh that was due waits (data-refresh="deferred") and runs once they are all done,
  // against the newest conversation:updated seen; one of our own refreshes in flight when
  // such a request starts is abandoned (and redone afterwards if still needed).

  var paneRequests = []; // the XMLHttpRequest of each pane request in flight
  var headerFetch = null; // AbortController of our own header refresh in flight
  var headerSkipped = false; // a header response was not swapped in: fetch it again
  var lastUpdate = null; // the newest conversation:updated payload of the open conversation

  function isPaneRequest(detail) {
    var box = $("#sc-pane", root);
    if (!box) return false;
    var elt = detail.elt;
    var target = detail.target;
    return !!((elt && box.contains(elt)) || (target && box.contains(target)));
  }

  function onBeforeSend(event) {
    var detail = event.detail || {};
    var xhr = detail.xhr;
    if (detail.target && detail.target.id === "sc-list") listRequests++;
    if (!root || !xhr || !isPaneRequest(detail)) return;
    paneRequests.push(xhr);
    if (headerFetch) {
      headerFetch.abort(); // redone afterwards if the header still differs (recheckHeader)
      headerFetch = null;
      headerSkipped = true;
    }
    // loadend follows htmx's load handler, which has done the swaps (and fires on
    // errors and aborts too); htmx:afterRequest would not bubble from a detached element.
    xhr.addEventListener("loadend", function () {
      paneRequests = paneRequests.filter(function (other) {
        return other !== xhr;
      });
      if (!paneRequests.length) setTimeout(recheckHeader, 0);
    });
  }

  /* A response that would replace the header (a header button's own answer) while another
     pane request is in flight: skip it and fetch the header once they are done. */
  function onBeforeSwap(event) {
    var detail = event.detail || {};
    var header = $("#sc-pane-header", root);
    if (!header || detail.target !== header || !detail.shouldSwap) return;
    var others = paneRequests.filter(function (xhr) {
      return xhr !== detail.xhr;
    });
    if (!others.length) return;
    detail.shouldSwap = false;
    headerSkipped = true;
    header.dataset.refresh = "deferred";
  }

  function headerMatches(header, conversation) {
    var assigned = conversation.assigned_to ? String(conversation.assigned_to.id) : "";
    return header.dataset.status === conversation.status && header.dataset.assignedId === assigned;
  }

  function recheckHeader() {
    if (!root || paneRequests.length || headerFetch) return;
    var header = $("#sc-pane-header", root);
    if (!header) {
      headerSkipped = false;
      return;
    }
    var behind = lastUpdate && lastUpdate.id === openId() && !headerMatches(header, lastUpdate);
    if (headerSkipped || behind) refreshHeader();
    else delete header.dataset.refresh;
  }

  /* Re-render the header from the server (someone else changed the conversation). */
  function refreshHeader() {
    var header = $("#sc-pane-header", root);
    if (!header) return;
    if (paneRequests.length) {
      header.dataset.refresh = "deferred"; // recheckHeader runs it when they are done
      return;
    }
    if (headerFetch) headerFetch.abort();
    headerSkipped = false;
    var id = openId();
    var controller = new AbortController();
    headerFetch = controller;
    header.dataset.refresh = "loading";
    fetch(header.dataset.url + stateQuery(), {
      headers: { "HX-Request": "true" },
      credentials: "same-origin",
      signal: controller.signal,
    })
      .then(function (response) {
        var redirect = response.headers.get("HX-Redirect");
        if (redirect) {
          location.href = redirect;
          return null;
        }
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (headerFetch !== controller) return; // abandoned
        headerFetch = null;
        var current = $("#sc-pane-header", root);
        if (!current || openId() !== id) return;
        if (!html) {
          delete current.dataset.refresh;
          return;
        }
        var fresh = fromHTML(html).firstElementChild;
        if (!fresh) return;
        current.replaceWith(fresh);
        if (htmx) htmx.process(fresh);
        afterChange();
        var p = pane();
        if (p) queryPresence([Number(p.dataset.customerId)]);
      })
      .catch(function () {
        if (headerFetch !== controller) return; // abandoned: recheckHeader redoes it
        headerFetch = null;
        var current = $("#sc-pane-header", root);
        if (current) delete current.dataset.refresh;
      });
  }

  function onConversationUpdated(data) {
    var conversation = data.conversation;
    if (!conversation) return;
    refreshRow(conversation.id);
    setCount(conversation.id, conversation.unread_staff_count);
    if (conversation.id !== openId()) return;
    lastUpdate = conversation;
    var header = $("#sc-pane-header", root);
    if (!header || headerMatches(header, conversation)) return;
    // Changed by someone else: re-render the header (assignee, switch, actions).
    refreshHeader();
  }

  // -- alerts: toasts, the tab title's count, sound, desktop notifications -----------------

  var MAX_TOASTS = 3;
  var TOAST_MS = 6000;
  var prefs = { sound: false, desktop: false };
  var soundUrl = "";
  var unread = {}; // conversation id -> unread_staff_count (only those above 0)
  var unreadReplay = null; // counts that arrived while the totals were being fetched
  var unreadLoad = 0;
  var audio = null;
  var interacted = false; // browsers play sound only after the user interacted with the page

  function readAlerts() {
    var node = document.getElementById("sc-alert-state");
    var state = {};
    try {
      state = (node && JSON.parse(node.textContent)) || {};
    } catch (e) {
      state = {};
    }
    prefs.sound = !!state.sound;
    prefs.desktop = !!state.desktop;
    soundUrl = state.sound_url || "";
    unread = {};
    Object.keys(state.unread || {}).forEach(function (key) {
      if (state.unread[key] > 0) unread[key] = state.unread[key];
    });
  }

  function visible() {
    return document.visibilityState === "visible" && !document.hidden;
  }

  function setCount(id, count) {
    if (typeof count !== "number" || !id) return;
    if (unreadReplay) unreadReplay.push([id, count]);
    if (count > 0) unread[String(id)] = count;
    else delete unread[String(id)];
    updateTitle();
  }

  function totalUnread() {
    return Object.keys(unread).reduce(function (sum, key) {
      return sum + unread[key];
    }, 0);
  }

  /* "(3) " before whatever title the host's layout gives the page; nothing at 0. */
  function updateTitle() {
    var current = document.title;
    var base = current.replace(/^\(\d+\)\s/, "");
    var total = totalUnread();
    var wanted = total ? "(" + total + ") " + base : base;
    if (wanted !== current) document.title = wanted;
  }

  /* After a (re)connect: events sent while the lobby was away are not replayed. Counts
     that arrive while this is in flight are applied again on top of the answer. */
  function refreshUnread() {
    if (!root.dataset.unreadUrl) return;
    var load = ++unreadLoad;
    var replay = (unreadReplay = []);
    fetch(root.dataset.unreadUrl, { headers: { "HX-Request": "true" }, credentials: "same-origin" })
      .then(function (response) {
        return response.ok && !response.headers.get("HX-Redirect") ? response.json() : null;
      })
      .then(function (data) {
        if (load !== unreadLoad) return;
        unreadReplay = null;
        if (!data || !data.unread) return;
        unread = {};
        Object.keys(data.unread).forEach(function (key) {
          if (data.unread[key] > 0) unread[key] = data.unread[key];
        });
        replay.forEach(function (pair) {
          setCount(pair[0], pair[1]);
        });
        updateTitle();
      })
      .catch(function () {
        if (load === unreadLoad) unreadReplay = null;
      });
  }

  function csrfToken() {
    try {
      return JSON.parse(root.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (e) {
      return "";
    }
  }

  function conversationUrl(id) {
    var params = new URLSearchParams();
    var state = $("#sc-state", root);
    if (state) {
      if (state.dataset.filter && state.dataset.filter !== "all") params.set("filter", state.dataset.filter);
      if (state.dataset.q) params.set("q", state.dataset.q);
    }
    var query = params.toString();
    return root.dataset.conversationUrl.replace(/0\/$/, id + "/") + (query ? "?" + query : "");
  }

  /* What clicking its row does: the pane from the server, the URL pushed. */
  function openConversation(id) {
    if (!root || !id) return;
    if (!htmx) {
      location.href = conversationUrl(id);
      return;
    }
    htmx.ajax("GET", conversationUrl(id), { target: "#sc-pane", swap: "innerHTML" });
  }

  function flat(text, limit) {
    var value = String(text || "").replace(/\s+/g, " ").trim();
    return value.length > limit ? value.slice(0, limit - 1) + "\u2026" : value;
  }

  function toastBox() {
    return $("#sc-toasts", root);
  }

  function removeToast(toast) {
    clearTimeout(toast._scTimer);
    toast.remove();
  }

  function armToast(toast) {
    clearTimeout(toast._scTimer);
    toast._scTimer = setTimeout(function () {
      if (toast.matches(":hover") || toast.contains(document.activeElement)) armToast(toast);
      else removeToast(toast);
    }, TOAST_MS);
  }

  function buildToast(id) {
    var toast = document.createElement("div");
    toast.className = "toast show sc-toast";
    toast.dataset.conversationId = String(id);
    toast.setAttribute("aria-atomic", "true");
    var head = document.createElement("div");
    head.className = "toast-header";
    var name = document.createElement("a");
    name.className = "sc-toast-name fw-semibold text-reset text-decoration-none";
    name.href = conversationUrl(id);
    var kind = document.createElement("small");
    kind.className = "sc-toast-kind";
    var close = document.createElement("button");
    close.type = "button";
    close.className = "btn-close sc-toast-close";
    close.setAttribute("aria-label", t("dismiss", "Dismiss"));
    // Bootstrap's CSS draws the ×; without it, a plain one.
    if (!getComputedStyle(document.documentElement).getPropertyValue("--bs-body-bg")) close.textContent = "\u00d7";
    head.append(name, kind, close);
    var body = document.createElement("div");
    body.className = "toast-body sc-toast-text";
    toast.append(head, body);
    return toast;
  }

  function overlaps(a, b) {
    return a.bottom > b.top && a.top < b.bottom && a.right > b.left && a.left < b.right;
  }

  /* Never over the reply box or its send button: toasts that would reach it move to the
     top of the viewport, and on a short screen the oldest ones go. */
  function fitToasts(box) {
    box.classList.remove("sc-toasts-top");
    var form = composer();
    if (!form || !form.offsetParent || !box.children.length) return;
    var limit = form.getBoundingClientRect();
    if (!overlaps(box.getBoundingClientRect(), limit)) return;
    box.classList.add("sc-toasts-top");
    while (box.children.length > 1 && overlaps(box.getBoundingClientRect(), limit)) {
      removeToast(box.lastElementChild);
    }
  }

  // The page can scroll or shrink under the fixed toasts (a host layout taller than the
  // viewport): check again, once a frame at most.
  var refitting = false;
  function refitToasts() {
    var box = toastBox();
    if (refitting || !box || !box.children.length) return;
    refitting = true;
    requestAnimationFrame(function () {
      refitting = false;
      fitToasts(box);
    });
  }

  /* One toast per conversation (the newest text replaces the older one), newest on top,
     at most MAX_TOASTS. Names and text only ever as textContent. */
  function showToast(id, name, kind, text) {
    var box = toastBox();
    if (!box) return;
    var toast = $('.sc-toast[data-conversation-id="' + id + '"]', box) || buildToast(id);
    $(".sc-toast-name", toast).textContent = name || t("customer", "The customer");
    $(".sc-toast-kind", toast).textContent = kind;
    $(".sc-toast-text", toast).textContent = text;
    box.insertBefore(toast, box.firstElementChild);
    while (box.children.length > MAX_TOASTS) removeToast(box.lastElementChild);
    armToast(toast);
    fitToasts(box);
  }

  function playSound() {
    if (!prefs.sound || !interacted || !soundUrl) return;
    if (!audio) audio = new Audio(soundUrl);
    try {
      audio.currentTime = 0;
      var playing = audio.play();
      if (playing && playing.catch) playing.catch(function () {});
    } catch (e) {
      // no audio output: the toast and the title still tell
    }
  }

  function desktopPermission() {
    return "Notification" in window ? window.Notification.permission : "unsupported";
  }

  function showDesktop(id, name, text) {
    if (!prefs.desktop || !document.hidden || desktopPermission() !== "granted") return;
    try {
      var note = new window.Notification(name || t("customer", "The customer"), {
        body: text,
        tag: "support-chat-" + id,
      });
      note.onclick = function () {
        window.focus();
        openConversation(id);
        note.close();
      };
    } catch (e) {
      // e.g. Chrome on Android allows them only from a service worker
    }
  }

  /* One piece of news about conversation ``id``: nothing for the one in view while the
     tab is visible (it is on screen); else a toast, the sound, and while the tab is
     hidden a desktop notification. */
  function alertAbout(id, name, kind, text, sound) {
    if (!id || (id === openId() && visible())) return;
    showToast(id, name, kind, text);
    if (sound) playSound();
    showDesktop(id, name, kind + ": " + text);
  }

  function onToastClick(event) {
    var toast = event.target.closest && event.target.closest(".sc-toast");
    if (!toast) return;
    // Ctrl/Cmd/Shift-click on the name: the browser opens the link elsewhere.
    if (event.target.closest("a[href]") && (event.ctrlKey || event.metaKey || event.shiftKey)) return;
    event.preventDefault();
    if (!event.target.closest(".sc-toast-close")) openConversation(Number(toast.dataset.conversationId));
    removeToast(toast);
  }

  function renderToggles() {
    var sound = $("#sc-sound-toggle", root);
    if (sound) {
      sound.setAttribute("aria-pressed", prefs.sound ? "true" : "false");
      sound.classList.toggle("active", prefs.sound);
      sound.title = prefs.sound ? t("sound_on", "Sound on") : t("sound_off", "Sound off");
    }
    var desktop = $("#sc-desktop-toggle", root);
    if (desktop) {
      var permission = desktopPermission();
      var blocked = permission === "denied" || permission === "unsupported";
      var on = prefs.desktop && permission === "granted";
      desktop.setAttribute("aria-pressed", on ? "true" : "false");
      desktop.classList.toggle("active", on);
      desktop.dataset.blocked = blocked ? "true" : "false";
      desktop.disabled = blocked; // the browser asks only once; its site settings undo it
      desktop.title = blocked
        ? permission === "denied"
          ? t("desktop_blocked", "Desktop alerts blocked by the browser")
          : t("desktop_unsupported", "Desktop alerts are not supported by this browser")
        : on
          ? t("desktop_on", "Desktop alerts on")
          : t("desktop_off", "Desktop alerts off");
      if (blocked) desktop.setAttribute("aria-label", desktop.title);
      else desktop.removeAttribute("aria-label");
    }
  }

  function savePreference(name, value) {
    var previous = prefs[name];
    prefs[name] = value;
    renderToggles();
    var body = new URLSearchParams();
    body.set(name, value ? "true" : "false");
    fetch(root.dataset.preferencesUrl, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), "HX-Request": "true" },
    })
      .then(function (response) {
        var redirect = response.headers.get("HX-Redirect");
        if (redirect) location.href = redirect; // signed out meanwhile
        if (!response.ok || redirect) throw new Error(String(response.status));
        return response.json();
      })
      .then(function (saved) {
        prefs.sound = !!saved.sound;
        prefs.desktop = !!saved.desktop;
        renderToggles();
      })
      .catch(function () {
        prefs[name] = previous;
        renderToggles();
        showAlert(t("save_failed", "Could not save your alert settings. Try again."));
      });
  }

  function onSoundToggle() {
    var on = !prefs.sound;
    savePreference("sound", on);
    if (on) {
      interacted = true;
      playSound(); // a sample, from the click: it also unlocks the audio in strict browsers
    }
  }

  function onDesktopToggle() {
    var permission = desktopPermission();
    if (prefs.desktop && permission === "granted") {
      savePreference("desktop", false);
      return;
    }
    if (permission === "granted") {
      savePreference("desktop", true);
      return;
    }
    if (permission !== "default") {
      renderToggles();
      return;
    }
    // Asked only from this click, never on page load.
    var answered = function (result) {
      if (result === "granted") savePreference("desktop", true);
      else renderToggles();
    };
    var asked = window.Notification.requestPermission(answered);
    if (asked && asked.then) asked.then(answered);
  }

  function onFirstInteraction() {
    interacted = true;
    if (prefs.sound && !audio && soundUrl) {
      audio = new Audio(soundUrl);
      audio.preload = "auto";
    }
  }

  function onLobbyNew(data) {
    var conversation = data.conversation;
    if (!conversation) return;
    refreshRow(conversation.id);
    setCount(conversation.id, conversation.unread_staff_count);
    var name = conversation.customer && conversation.customer.name;
    var last = conversation.last_message;
    var text = last && last.text ? flat(last.text, 80) : t("toast_started", "Started a conversation.");
    alertAbout(conversation.id, name, t("toast_new", "New conversation"), text, false);
  }

  function alertMessage(data) {
    var message = data.message;
    if (!message || message.sender_side !== "user") return; // never staff messages (ours or not)
    var name = message.sender && message.sender.name;
    if (!name) {
      var listed = rowEl(data.conversation_id);
      name = listed ? $(".sc-row-name", listed).textContent : "";
    }
    alertAbout(data.conversation_id, name, t("toast_message", "New message"), flat(message.text, 80), true);
  }

  function onNotification(data) {
    if (data.type !== "assignment" || !data.conversation_id) return;
    var conversation = data.conversation || {};
    var name = conversation.customer && conversation.customer.name;
    var last = conversation.last_message;
    var text = last && last.text ? flat(last.text, 80) : t("toast_assigned_text", "A conversation was assigned to you.");
    alertAbout(data.conversation_id, name, t("toast_assigned", "Assigned to you"), text, true);
  }

  // -- wiring ----------------------------------------------------------------------------------

  /* After any swap: reconnect the conversation socket if the pane changed, and tidy up. */
  function afterChange() {
    if (!root) return;
    var before = chatId;
    openChat();
    markActive();
    updateEmpty();
    updateBulk();
    syncComposer();
    tidyHistory();
    localizeTimes(root);
    if (chatId && chatId !== before) scrollToBottom();
  }

  function readTexts() {
    var node = document.getElementById("sc-texts");
    if (!node) return;
    try {
      texts = JSON.parse(node.textContent) || {};
    } catch (e) {
      texts = {};
    }
  }

  function init() {
    root = document.getElementById("sc-inbox");
    if (!root) return;
    readTexts();
    readAlerts();
    renderToggles();
    updateTitle();
    lobby = new window.SupportChatSocket({
      path: root.dataset.wsLobby,
      on: {
        hello: function () {
          // Events sent before this socket joined (page load, reconnect) are not replayed:
          // reload the first page of the list and the unread counts from the database.
          refreshList();
          refreshUnread();
        },
        "conversation:new": onLobbyNew,
        // The server lost events (its layer subscription was re-established): reload.
        resync: function () {
          lobby.seqs = {};
          refreshList();
          refreshUnread();
        },
        // A message of a listed conversation never reached us: fetch its row again.
        gap: function (data) {
          refreshRow(data.conversation_id);
        },
        "message:new": onLobbyMessage,
        "unread:update": function (data) {
          setUnread(data.conversation_id, data.unread_staff_count);
          setCount(data.conversation_id, data.unread_staff_count);
        },
        "conversation:updated": onConversationUpdated,
        // To this user's sockets: an assignment by someone else becomes a toast.
        "notification:new": onNotification,
        "presence:update": function (data) {
          if (data.side === "user") setPresence(data.user_id, data.online);
        },
        "presence:state": function (data) {
          var online = data.online || [];
          $all("[data-presence-for]", root).forEach(function (el) {
            var id = Number(el.dataset.presenceFor);
            if (online.indexOf(id) !== -1) setPresence(id, true);
          });
        },
      },
      onState: function (state, code) {
        setLive(liveOf(state));
        if (state === "stopped" && (code === 4401 || code === 4001)) location.reload(); // signed out
      },
    });

    document.body.addEventListener("htmx:beforeSend", onBeforeSend);
    document.body.addEventListener("htmx:beforeSwap", onBeforeSwap);
    document.body.addEventListener("htmx:afterSwap", afterChange);
    document.body.addEventListener("htmx:oobAfterSwap", afterChange);
    document.body.addEventListener("htmx:historyRestore", afterChange);
    document.body.addEventListener("sc:changed", function (event) {
      var detail = event.detail || {};
      (detail.ids || []).forEach(refreshRow);
    });
    // A reply gets a new client_id as soon as it leaves: one sent before the previous
    // one's answer is another message, not a resend of it. A failed reply gets its id
    // back if its text is still in the box, so sending it again stays idempotent.
    document.body.addEventListener("htmx:configRequest", function (event) {
      var elt = event.detail.elt;
      if (!elt || elt.id !== "sc-composer") return;
      var idInput = $('input[name="client_id"]', elt);
      event.detail.scSent = { text: $("#sc-reply", elt).value, id: idInput.value };
      idInput.value = window.SupportChatSocket.uuid();
    });
    document.body.addEventListener("htmx:afterRequest", function (event) {
      var elt = event.detail.elt;
      var status = event.detail.xhr ? event.detail.xhr.status : 0;
      if (elt && elt.id === "sc-composer") {
        var area = $("#sc-reply", elt);
        var sent = (event.detail.requestConfig || {}).scSent;
        // Only what was sent leaves the box: text typed since then stays.
        var unchanged = !!sent && area.value === sent.text;
        if (status >= 200 && status < 300) {
          if (unchanged) {
            area.value = "";
            autoGrow(area);
            stopTyping();
          }
          scrollToBottom();
          area.focus();
        } else if (unchanged) {
          $('input[name="client_id"]', elt).value = sent.id;
          if (status === 503) retryReply(elt, sent, event.detail.xhr);
        }
        if (status !== 503 && elt.dataset.busy) {
          // The retry went through (or failed otherwise): the "busy" warning is over.
          delete elt.dataset.busy;
          var busy = $("#sc-alerts .sc-busy", root);
          if (busy) busy.remove();
        }
      }
      if (elt && elt.id === "sc-bulk" && status >= 200 && status < 300) {
        $all(".sc-row-check:checked", list()).forEach(function (box) {
          box.checked = false;
        });
        updateBulk();
      }
    });
    document.body.addEventListener("htmx:sendError", function () {
      showAlert(t("network", "Could not reach the server. Check your connection and try again."));
    });

    root.addEventListener("keydown", function (event) {
      var target = event.target;
      if (target.id !== "sc-reply") return;
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        if (target.value.trim() && !target.disabled) {
          stopTyping();
          composer().requestSubmit();
        }
      }
    });
    root.addEventListener("input", function (event) {
      if (event.target.id === "sc-reply") {
        autoGrow(event.target);
        sendTyping(event.target);
      }
    });
    root.addEventListener("focusout", function (event) {
      if (event.target.id === "sc-reply") stopTyping();
    });
    root.addEventListener("change", function (event) {
      var target = event.target;
      if (target.id === "sc-select-all") {
        $all(".sc-row-check", list()).forEach(function (box) {
          box.checked = target.checked;
        });
      }
      if (target.id === "sc-select-all" || target.classList.contains("sc-row-check")) updateBulk();
    });
    root.addEventListener("click", function (event) {
      var target = event.target;
      var dismiss = target.closest && target.closest("[data-sc-dismiss]");
      if (dismiss) {
        dismiss.closest(".alert").remove();
        return;
      }
      if (target.closest && target.closest("#sc-help-button")) {
        $("#sc-help", root).showModal();
        return;
      }
      if (target.closest && target.closest(".sc-toast")) {
        onToastClick(event);
        return;
      }
      if (target.closest && target.closest("#sc-sound-toggle")) {
        onSoundToggle();
        return;
      }
      if (target.closest && target.closest("#sc-desktop-toggle")) {
        onDesktopToggle();
        return;
      }
      // Dropdowns without Bootstrap's JavaScript: a minimal toggle.
      if (!window.bootstrap) {
        var toggle = target.closest && target.closest('[data-bs-toggle="dropdown"]');
        $all(".dropdown-menu.show", root).forEach(function (menu) {
          if (!toggle || menu.parentNode !== toggle.parentNode) menu.classList.remove("show");
        });
        if (toggle) {
          var menu = toggle.parentNode.querySelector(".dropdown-menu");
          var open = menu.classList.toggle("show");
          toggle.setAttribute("aria-expanded", open ? "true" : "false");
        }
      }
    });
    document.addEventListener("keydown", onKeydown);
    document.addEventListener("pointerdown", onFirstInteraction, { once: true, capture: true });
    window.addEventListener("scroll", refitToasts, { passive: true });
    window.addEventListener("resize", refitToasts);
    document.addEventListener("keydown", onFirstInteraction, { once: true, capture: true });
    document.addEventListener("visibilitychange", markSeen);
    window.addEventListener("focus", markSeen);

    afterChange();
    scrollToBottom();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
