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
  let loading, panel, socket, beat, tries = 0;

  const stored = (storage, key) => {
    try { return JSON.parse(window[storage].getItem(key)); } catch (e) { return null; }
  };

  const setBadge = (n) => {
    badge.hidden = !n;
    badge.firstChild.nodeValue = n > 99 ? "99+" : n;
  };

  const load = () => (loading = loading || new Promise((resolve, reject) => {
    let left = 2; // never show the panel unstyled
    [["link", { rel: "stylesheet", href: cfg.assets.css }], ["script", { src: cfg.assets.js }]]
      .forEach(([tag, props]) => {
        const el = Object.assign(document.createElement(tag), props);
        el.onload = () => --left || resolve();
        el.onerror = reject;
        document.head.append(el);
      });
  }).then(() => {
    unwatch();
    return (panel = window.SupportChatPanel(root, cfg, setBadge));
  }, (error) => {
    loading = null;
    throw error;
  }));

  // Keeps the badge live until the panel loads (if there is a conversation).
  const watch = () => {
    if (panel || socket || !cfg.conversation || !window.WebSocket) return;
    const ws = socket = new WebSocket((location.protocol == "https:" ? "wss://" : "ws://") +
      location.host + cfg.ws + "user/" + cfg.conversation + "/");
    ws.onmessage = (event) => {
      const { type, data } = JSON.parse(event.data);
      if (type == "hello") {
        tries = 0;
        beat = setInterval(() => ws.send('{"type":"heartbeat"}'), data.heartbeat_interval * 1e3);
      } else if ("unread_user_count" in data && data.conversation_id == cfg.conversation) {
        setBadge(data.unread_user_count);
        if (data.unread_user_count) load().catch(noop);
      }
    };
    ws.onclose = ({ code }) => {
      clearInterval(beat);
      if (socket != ws) return;
      socket = null;
      // Not after logout/refusal (4001, 4401-4404); else backoff with jitter.
      if (code != 4001 && (code < 4401 || code > 4404)) {
        setTimeout(watch, Math.min(3e4, 1e3 * 2 ** tries++) * (0.5 + Math.random() / 2));
      }
    };
  };

  const unwatch = () => {
    const ws = socket;
    socket = null;
    clearInterval(beat);
    if (ws) ws.close(1000);
  };

  button.addEventListener("click", () => load().then((chat) => chat.toggle(), noop));
  // Prefetch on intent, so the click opens at once.
  for (const type of ["pointerenter", "focus", "touchstart"]) {
    button.addEventListener(type, () => load().catch(noop), { once: true, passive: true });
  }
  addEventListener("online", () => { tries = 0; watch(); });

  const state = stored("sessionStorage", "support-chat:" + cfg.user) || {};
  const queued = stored("localStorage", "support-chat:queue:" + cfg.user) || [];
  if (state.s == "open" || state.s == "min" || cfg.unread > 0 || queued.length) load().catch(noop);
  else watch();
})();
