/* django-support-chat loader: on every page, so tiny (docs/widget.md). Loads the panel
   on first interaction, or at once if there is something to show. */
(() => {
  "use strict";
  const root = document.getElementById("support-chat");
  const config = document.getElementById("support-chat-config");
  if (!root || !config || root.scLoaded) return;
  root.scLoaded = 1;
  const cfg = JSON.parse(config.textContent);
  const button = root.querySelector(".support-chat-launcher");
  const badge = root.querySelector(".support-chat-badge");
  const noop = () => {};
  let loading, panel, socket, rt;

  const stored = (storage, key) => {
    try { return JSON.parse(window[storage].getItem(key)); } catch (e) { return null; }
  };

  const setBadge = (n) => {
    badge.hidden = !n;
    badge.firstChild.nodeValue = n > 99 ? "99+" : n;
  };

  const add = (tag, props) => new Promise((onload, onerror) =>
    document.head.append(Object.assign(document.createElement(tag), props, { onload, onerror })));

  // The shared WebSocket client (realtime.js), fetched once, by the panel or the badge.
  const client = () => (rt = rt || add("script", { src: cfg.assets.rt }).catch((e) => {
    rt = null;
    throw e;
  }));

  // CSS and scripts together: never show the panel unstyled.
  const load = () => (loading = loading || Promise.all([
    add("link", { rel: "stylesheet", href: cfg.assets.css }), add("script", { src: cfg.assets.js }), client(),
  ]).then(() => {
    unwatch();
    return (panel = window.SupportChatPanel(root, cfg, setBadge));
  }, (error) => {
    loading = null;
    throw error;
  }));

  // Keeps the badge live until the panel loads (if there is a conversation).
  const watch = () => {
    if (panel || socket || !cfg.conversation || !window.WebSocket) return;
    socket = 1;
    client().then(() => {
      if (socket != 1) return; // the panel came first
      socket = new SupportChatSocket({
        path: cfg.ws + "user/" + cfg.conversation + "/",
        heartbeat: cfg.heartbeat_interval,
        onFrame: ({ data }) => {
          if ("unread_user_count" in data && data.conversation_id == cfg.conversation) {
            setBadge(data.unread_user_count);
            if (data.unread_user_count) {
              root.scNew = data.message; // the panel toasts it: its own socket misses it
              load().catch(noop);
            }
          }
        },
      });
    }, () => { socket = null; });
  };

  const unwatch = () => {
    if (socket && socket.close) socket.close();
    socket = null;
  };

  button.addEventListener("click", () => load().then((chat) => chat.toggle(), noop));
  // Prefetch on intent, so the click opens at once.
  for (const type of ["pointerenter", "focus", "touchstart"]) {
    button.addEventListener(type, () => load().catch(noop), { once: true, passive: true });
  }
  addEventListener("online", watch); // realtime.js could not be fetched while offline

  const state = stored("sessionStorage", "support-chat:" + cfg.user) || {};
  const queued = stored("localStorage", "support-chat:queue:" + cfg.user) || [];
  // Email links end in #support-chat: open, and drop it so a reload does not.
  if (location.hash == "#support-chat") {
    history.replaceState(history.state, "", location.pathname + location.search);
    load().then((chat) => chat.open(), noop);
  } else if (state.s == "open" || state.s == "min" || cfg.unread > 0 || queued.length) load().catch(noop);
  else watch();
})();
