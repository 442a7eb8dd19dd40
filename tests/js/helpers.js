// Test doubles for realtime.js: a clock whose timers run only when told, and a WebSocket
// that records what the client sends and lets the test play the server.
"use strict";

const path = require("node:path");

const SupportChatSocket = require(path.join(
  __dirname, "../../src/django_support_chat/static/support_chat/realtime.js",
));

class FakeClock {
  constructor() {
    this.time = 1_000_000;
    this.timers = new Map();
    this.next = 1;
  }

  now = () => this.time;

  setTimeout = (fn, ms) => this.add(fn, ms, null);
  setInterval = (fn, ms) => this.add(fn, ms, ms);
  clearTimeout = (id) => this.timers.delete(id);
  clearInterval = (id) => this.timers.delete(id);

  add(fn, ms, every) {
    const id = this.next++;
    this.timers.set(id, { fn, at: this.time + Math.max(0, ms || 0), every });
    return id;
  }

  // Move time forward by `ms`, running every timer that falls due, in order.
  tick(ms) {
    const end = this.time + ms;
    for (;;) {
      let due = null;
      for (const [id, timer] of this.timers) {
        if (timer.at <= end && (!due || timer.at < due[1].at || (timer.at === due[1].at && id < due[0]))) {
          due = [id, timer];
        }
      }
      if (!due) break;
      const [id, timer] = due;
      this.time = Math.max(this.time, timer.at);
      if (timer.every) timer.at += timer.every;
      else this.timers.delete(id);
      timer.fn();
    }
    this.time = end;
  }

  pendingDelays() {
    return [...this.timers.values()].filter((t) => !t.every).map((t) => t.at - this.time);
  }
}

class FakeWebSocket {
  static instances = [];

  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    this.closedWith = null;
    FakeWebSocket.instances.push(this);
  }

  static get last() {
    return FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
  }

  static reset() {
    FakeWebSocket.instances = [];
  }

  send(text) {
    if (this.readyState !== 1) throw new Error("not open");
    this.sent.push(JSON.parse(text));
  }

  close(code) {
    this.closedWith = code;
    this.readyState = 3;
  }

  // -- the server's side --
  open() {
    this.readyState = 1;
    if (this.onopen) this.onopen({});
  }

  frame(type, data = {}, ref) {
    const frame = { v: 1, type, data };
    if (ref !== undefined) frame.ref = ref;
    this.onmessage({ data: JSON.stringify(frame) });
  }

  hello(data = {}) {
    this.open();
    this.frame("hello", { user_id: 5, side: "user", heartbeat_interval: 10, typing_timeout: 5, ...data });
  }

  serverClose(code) {
    this.readyState = 3;
    if (this.onclose) this.onclose({ code });
  }

  sentOf(type) {
    return this.sent.filter((frame) => frame.type === type);
  }
}

// A client on fake sockets and a fake clock; `events` records state changes and frames.
function makeClient(options = {}) {
  FakeWebSocket.reset();
  const clock = new FakeClock();
  const events = { states: [], frames: [], resends: 0 };
  const client = new SupportChatSocket({
    url: "ws://test/ws/chat/user/4/",
    WebSocket: FakeWebSocket,
    timers: clock,
    window: null,
    random: () => 0.5,
    onState: (state, code) => events.states.push(code === undefined ? state : `${state}:${code}`),
    onFrame: (frame) => events.frames.push(frame),
    onResend: () => events.resends++,
    ...options,
  });
  return { client, clock, events, socket: () => FakeWebSocket.last };
}

function message(seq, extra = {}) {
  return { id: 100 + seq, seq, conversation: 4, sender_side: "staff", text: `m${seq}`, ...extra };
}

module.exports = { SupportChatSocket, FakeClock, FakeWebSocket, makeClient, message };
