/* django-support-chat: the one WebSocket client, shared by the widget loader, the chat
 * panel and the staff inbox (docs/protocol.md#clients). A plain script: it defines
 * window.SupportChatSocket; under Node (the unit tests, tests/js/) it is module.exports.
 *
 * It owns the connection, so that the three UIs behave the same:
 *
 * - connect, and reconnect with exponential backoff and jitter (0.5 s, 1 s, 2 s ... 30 s,
 *   each randomised down by up to `jitter`; 0-2 s after 1012/1001), never after a fatal
 *   close code;
 * - heartbeats twice per heartbeat interval; a heartbeat unanswered when the next one is
 *   due makes the socket "stale" (at most one interval after it died), two intervals of
 *   silence make it dead: closed and replaced;
 * - `ref`-based request/response (request() returns a Promise);
 * - per-conversation `seq` tracking: duplicates are dropped, holes are filled with `sync`
 *   (by `after_seq`; by `after_id` while the messages carry no seq), `resync` frames and
 *   every reconnect catch up;
 * - the resend hook: onResend runs after every hello, for the caller's offline queue.
 *
 * Callers see frames through `on` handlers (type -> function(data, frame)) and `onFrame`,
 * and the connection through onState(state, code): "connecting", "live", "stale",
 * "reconnecting", "offline" (the browser is offline) and "stopped" (fatal close or close()).
 */
(function (global) {
  "use strict";

  var FATAL = [4001, 4401, 4403, 4404]; // logged out / refused: never reconnect
  var FLOODED = 4429; // "reconnect after a pause"
  var PAUSE = 10000;
  var RESTART = [1001, 1012]; // a deploy: back within 0-2 s, spread out

  function has(list, value) {
    return list.indexOf(value) !== -1;
  }

  function isSeq(value) {
    return typeof value === "number" && value >= 0;
  }

  // RFC 4122 v4 from getRandomValues (crypto.randomUUID needs a secure context).
  function uuid() {
    var b = new Uint8Array(16);
    global.crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(b, function (x) {
      return (x + 0x100).toString(16).slice(1);
    }).join("");
    return hex.replace(/^(.{8})(.{4})(.{4})(.{4})/, "$1-$2-$3-$4-");
  }

  // Delay before reconnect attempt `attempt` (0, 1 ...): base * 2^attempt capped at max,
  // minus a random share of up to `jitter` (0.5: 50-100% of the step; 1: 0-100%).
  function backoff(attempt, options, random) {
    var o = options || {};
    var base = o.base == null ? 500 : o.base;
    var max = o.max == null ? 30000 : o.max;
    var jitter = o.jitter == null ? 0.5 : o.jitter;
    var step = Math.min(max, base * Math.pow(2, Math.min(attempt, 30)));
    return step * (1 - jitter * (random || Math.random)());
  }

  // ms to wait after an error with retry_after (s), plus 0-0.5 s jitter; else 0
  function retryDelay(error, random) {
    var s = error && error.retry_after;
    return s == null ? 0 : (+s || 1) * 1000 + 500 * (random || Math.random)();
  }

  function SupportChatSocket(options) {
    var o = (this.options = options || {});
    var win = (this.window = o.window !== undefined ? o.window : global.window || null);
    this.WebSocket = o.WebSocket || global.WebSocket;
    this.timers = o.timers || {
      setTimeout: setTimeout.bind(global),
      clearTimeout: clearTimeout.bind(global),
      setInterval: setInterval.bind(global),
      clearInterval: clearInterval.bind(global),
      now: Date.now,
    };
    this.random = o.random || Math.random;
    this.fatal = o.fatal || FATAL;
    this.handlers = o.on || {};
    this.conversation = o.conversation == null ? null : o.conversation; // the route's, if any
    this.interval = (o.heartbeat || 10) * 1000; // until hello says otherwise
    this.timeout = o.timeout || 15000; // request() without an answer
    this.url = o.url || (win ? (win.location.protocol === "https:" ? "wss://" : "ws://") + win.location.host + o.path : o.path);
    this.ws = null;
    this.state = null;
    this.live = false; // hello received on the current socket
    this.attempts = 0; // reconnect attempts since the last hello (backoff exponent)
    this.failures = 0; // sockets lost in a row without a hello
    this.hello = null;
    this.refs = 0;
    this.pending = {}; // ref -> {resolve, reject, at}
    this.seqs = {}; // conversation id -> highest seq held without a hole
    this.lastId = 0; // the route's conversation: highest message id seen
    this.tracking = false; // hold() was called: dedupe, gap filling, catch-up on hello
    this.want = 0; // a seq we know exists and do not hold yet
    this.syncRef = null; // the sync request in flight
    this.asked = 0;
    this.stopped = false;
    var self = this;
    if (win && win.addEventListener) {
      this.listeners = {
        online: function () {
          self.attempts = 0;
          self.reconnect();
        },
        offline: function () {
          self.drop();
        },
        visibilitychange: function () {
          // Timers are throttled in background tabs: reconnect as soon as it is seen again.
          if (!win.document.hidden && !self.ws) self.reconnect();
        },
      };
      for (var name in this.listeners) win.addEventListener(name, this.listeners[name]);
    }
    if (o.connect !== false) this.connect();
  }

  var P = SupportChatSocket.prototype;

  P.online = function () {
    if (this.options.online) return this.options.online();
    var nav = this.window && this.window.navigator;
    return !nav || nav.onLine !== false;
  };

  P.setState = function (state, code) {
    if (state === this.state) return;
    this.state = state;
    if (this.options.onState) this.options.onState(state, code);
  };

  P.emit = function (type, data, frame) {
    var handler = this.handlers[type];
    try {
      if (handler) handler(data, frame);
    } catch (error) {
      if (global.console) global.console.error("support chat:", error);
    }
  };

  // -- connection ---------------------------------------------------------------------

  P.connect = function () {
    var self = this;
    var t = self.timers;
    t.clearTimeout(self.retryTimer);
    if (self.ws || self.stopped) return;
    if (!self.online()) {
      self.setState("offline");
      return; // the "online" event (or reconnect()) tries again
    }
    self.setState(self.failures || self.hello ? "reconnecting" : "connecting");
    var ws;
    try {
      ws = self.ws = new self.WebSocket(self.url);
    } catch (e) {
      // A Content-Security-Policy without this origin in connect-src, for one.
      self.ws = null;
      self.failures++;
      self.schedule(1006);
      return;
    }
    ws.onmessage = function (event) {
      if (self.ws === ws) self.receive(event.data);
    };
    ws.onclose = function (event) {
      self.closed(ws, event.code);
    };
    // A handshake that never completes (a server that hangs) counts as a lost socket.
    self.openTimer = t.setTimeout(function () {
      if (self.ws === ws && !self.live) self.drop();
    }, 2 * self.interval);
  };

  P.schedule = function (code) {
    var self = this;
    if (self.stopped) return;
    if (!self.online()) {
      self.setState("offline", code);
      return;
    }
    self.setState("reconnecting", code);
    var delay = has(RESTART, code) ? 2000 * self.random() : backoff(self.attempts++, self.options.backoff, self.random);
    if (code === FLOODED) delay = Math.max(delay, PAUSE);
    self.retryTimer = self.timers.setTimeout(function () {
      self.connect();
    }, delay);
  };

  // The socket is gone (closed by either side, or given up on).
  P.closed = function (ws, code) {
    if (this.ws !== ws) return;
    var self = this;
    var t = self.timers;
    self.ws = null;
    self.live = false;
    self.syncRef = null;
    t.clearInterval(self.beatTimer);
    t.clearTimeout(self.openTimer);
    Object.keys(self.pending).forEach(function (ref) {
      self.settle(ref, null, { code: "disconnected", message: "" });
    });
    if (has(self.fatal, code)) {
      self.stopped = true;
      self.setState("stopped", code);
      self.emit("close", { code: code, fatal: true });
      return;
    }
    self.failures++;
    self.emit("close", { code: code, fatal: false });
    self.schedule(code);
  };

  // Treat the current socket as dead (1000: done): close it without the close handshake.
  P.drop = function (code) {
    var ws = this.ws;
    if (!ws) return;
    ws.onclose = ws.onmessage = null;
    this.closed(ws, code || 1006);
    try {
      ws.close(code || 4000);
    } catch (e) { /* already closing */ }
  };

  // Connect now (network back, tab visible again), skipping the backoff wait.
  P.reconnect = function () {
    if (this.stopped || this.ws) return;
    this.connect();
  };

  // For good: no reconnects.
  P.close = function () {
    var win = this.window;
    this.stopped = true;
    this.timers.clearTimeout(this.retryTimer);
    this.drop(1000);
    this.setState("stopped", 1000);
    if (this.listeners && win) {
      for (var name in this.listeners) win.removeEventListener(name, this.listeners[name]);
      this.listeners = null;
    }
  };

  // -- heartbeats -----------------------------------------------------------------------

  P.startBeat = function () {
    var self = this;
    self.timers.clearInterval(self.beatTimer);
    self.probeAt = 0;
    self.beatTimer = self.timers.setInterval(function () {
      self.beat();
    }, self.interval / 2);
  };

  P.beat = function () {
    var now = this.timers.now();
    if (now - this.frameAt >= 2 * this.interval) {
      this.drop(); // two intervals of silence: dead
      return;
    }
    if (this.probeAt && this.frameAt < this.probeAt) this.setState("stale");
    this.probeAt = now;
    this.send("heartbeat");
    var self = this;
    Object.keys(this.pending).forEach(function (ref) {
      if (now - self.pending[ref].at > self.timeout) self.settle(ref, null, { code: "timeout", message: "" });
    });
  };

  // -- frames -----------------------------------------------------------------------------

  P.send = function (type, data, ref) {
    var ws = this.ws;
    if (!ws || ws.readyState !== 1) return false;
    var frame = { v: 1, type: type, data: data || {} };
    if (ref !== undefined && ref !== null) frame.ref = ref;
    ws.send(JSON.stringify(frame));
    return true;
  };

  // Send and wait for the answer with the same ref: resolves with the reply frame, rejects
  // with the error frame's data ({code, message, ...}), {code: "disconnected"} when the
  // socket goes first, {code: "timeout"} after `timeout` ms, {code: "not_connected"}.
  P.request = function (type, data) {
    var self = this;
    var ref = "r" + ++self.refs;
    return new Promise(function (resolve, reject) {
      if (!self.send(type, data, ref)) {
        reject({ code: "not_connected", message: "" });
        return;
      }
      self.pending[ref] = { resolve: resolve, reject: reject, at: self.timers.now() };
    });
  };

  P.settle = function (ref, frame, error) {
    var waiter = this.pending[ref];
    if (!waiter) return false;
    delete this.pending[ref];
    if (error) waiter.reject(error);
    else waiter.resolve(frame);
    return true;
  };

  P.receive = function (raw) {
    var frame;
    try {
      frame = JSON.parse(raw);
    } catch (e) {
      return;
    }
    if (!frame || typeof frame.type !== "string") return;
    this.frameAt = this.timers.now();
    if (this.live && this.state === "stale") this.setState("live");
    var type = frame.type;
    var data = frame.data || {};
    if (data.conversation) this.checkLastSeq(data.conversation.id, data.conversation.last_seq);
    if (type === "hello") return this.onHello(data, frame);
    if (type === "heartbeat") return;
    if (type === "sync" && frame.ref === this.syncRef) return this.onSync(data, frame);
    if (type === "resync") {
      this.sync();
      this.emit(type, data, frame);
      return;
    }
    if (type === "message:new" || type === "message:sent") {
      var fresh = this.note(data.conversation_id || (data.message && data.message.conversation), data.message);
      if (!fresh && type === "message:new") return; // a duplicate: already held
    }
    if (frame.ref != null && this.pending[frame.ref]) {
      if (type === "error") this.settle(frame.ref, null, data);
      else this.settle(frame.ref, frame);
      return;
    }
    if (type === "error" && frame.ref != null && frame.ref === this.syncRef) this.syncRef = null;
    if (this.options.onFrame) this.options.onFrame(frame);
    this.emit(type, data, frame);
  };

  P.onHello = function (data, frame) {
    this.timers.clearTimeout(this.openTimer);
    this.hello = data;
    this.live = true;
    this.attempts = 0;
    this.failures = 0;
    if (data.heartbeat_interval) this.interval = data.heartbeat_interval * 1000;
    this.startBeat();
    this.setState("live");
    if (this.options.onFrame) this.options.onFrame(frame);
    this.emit("hello", data, frame);
    // Catch up (one cheap request even when nothing is missing: its answer says we are).
    if (this.tracking) this.sync();
    if (this.options.onResend) this.options.onResend(this);
  };

  // -- seq tracking and gap filling --------------------------------------------------------

  // The highest seq held without a hole, for `conversation` (the route's by default);
  // undefined when unknown.
  P.seq = function (conversation) {
    return this.seqs[conversation == null ? this.conversation : conversation];
  };

  // The caller holds these messages of the route's conversation, a contiguous run up to
  // the newest (the REST API's newest page, say): start tracking from there.
  P.hold = function (messages) {
    var self = this;
    var lastId = 0;
    var seq = 0;
    var withSeq = true;
    (messages || []).forEach(function (m) {
      lastId = Math.max(lastId, m.id || 0);
      if (isSeq(m.seq)) seq = Math.max(seq, m.seq);
      else withSeq = false;
    });
    self.tracking = true;
    self.lastId = lastId;
    // Empty, or messages without seq (an older server): sync by id until a seq shows.
    if (withSeq && seq) self.seqs[self.conversation] = seq;
    else delete self.seqs[self.conversation];
    if (self.want > seq) self.sync();
  };

  // A message seen live: false if it is one we already hold (seq at or below ours).
  P.note = function (conversation, message) {
    if (!message) return true;
    var route = conversation === this.conversation;
    var self = this;
    function seen() {
      if (route) self.lastId = Math.max(self.lastId, message.id || 0);
    }
    var seq = message.seq;
    var held = this.seqs[conversation];
    // Holding an empty conversation: the first message is seq 1.
    if (held === undefined && route && this.tracking && !this.lastId) held = 0;
    if (!isSeq(seq) || (route && !this.tracking) || held === undefined) {
      // No seq (an older server), not tracking yet, or the first sighting (the lobby:
      // from here on we can tell holes).
      if (!route && isSeq(seq)) this.seqs[conversation] = seq;
      seen();
      return true;
    }
    if (seq <= held) return false;
    if (seq === held + 1) {
      this.seqs[conversation] = seq;
      seen();
    } else {
      this.gap(conversation, seq); // past a hole: lastId stays before it
    }
    return true;
  };

  P.checkLastSeq = function (conversation, lastSeq) {
    if (!isSeq(lastSeq) || conversation == null) return;
    var held = this.seqs[conversation];
    if (held === undefined || lastSeq <= held) return;
    if (conversation === this.conversation && !this.tracking) return;
    this.gap(conversation, lastSeq);
  };

  // Messages up to `seq` exist that we do not hold.
  P.gap = function (conversation, seq) {
    if (conversation === this.conversation) {
      this.want = Math.max(this.want, seq);
      this.sync();
    } else {
      // No sync on the lobby: the caller reloads what it shows.
      this.seqs[conversation] = Math.max(this.seqs[conversation], seq);
      this.emit("gap", { conversation_id: conversation, seq: seq });
    }
  };

  // Ask for everything after what we hold (one page; onSync asks for the next).
  P.sync = function () {
    if (!this.tracking || !this.live || this.syncRef || this.conversation == null) return false;
    var held = this.seq();
    var ref = "sync-" + ++this.refs;
    var data = isSeq(held) ? { after_seq: held } : { after_id: this.lastId };
    if (!this.send("sync", data, ref)) return false;
    this.syncRef = ref;
    this.asked = this.want; // what we knew of when asking
    return true;
  };

  P.onSync = function (data, frame) {
    var self = this;
    self.syncRef = null;
    var messages = data.messages || [];
    var held = self.seq();
    messages.forEach(function (m) {
      self.lastId = Math.max(self.lastId, m.id || 0);
      // A sync page is contiguous from what we held: its last seq is ours now.
      if (isSeq(m.seq)) held = Math.max(held || 0, m.seq);
    });
    if (held !== undefined) self.seqs[self.conversation] = held;
    if (self.options.onFrame) self.options.onFrame(frame);
    self.emit("sync", data, frame);
    var conversation = data.conversation;
    if (conversation && isSeq(conversation.last_seq)) self.want = Math.max(self.want, conversation.last_seq);
    // Still behind: ask again if this page brought something, or we learnt of newer
    // messages while it was on its way; otherwise give up until the next sign of a hole.
    var behind = self.want > (self.seq() || 0);
    if (data.has_more || (behind && (messages.length || self.want > self.asked))) self.sync();
    else if (!behind) self.want = 0;
  };

  SupportChatSocket.FATAL = FATAL;
  SupportChatSocket.backoff = backoff;
  SupportChatSocket.uuid = uuid;
  SupportChatSocket.retryDelay = retryDelay;

  if (typeof module !== "undefined" && module.exports) module.exports = SupportChatSocket;
  else global.SupportChatSocket = SupportChatSocket;
})(typeof window !== "undefined" ? window : globalThis);
