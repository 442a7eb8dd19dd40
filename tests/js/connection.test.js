"use strict";

const { test } = require("node:test");
const assert = require("node:assert/strict");
const { SupportChatSocket, FakeWebSocket, makeClient, message } = require("./helpers.js");

test("backoff doubles from 0.5 s to a 30 s cap, jittered within 50-100% by default", () => {
  const { backoff } = SupportChatSocket;
  const steps = [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000];
  steps.forEach((step, attempt) => {
    assert.equal(backoff(attempt, {}, () => 0), step); // no jitter drawn
    assert.equal(backoff(attempt, {}, () => 0.999999), step * (1 - 0.999999 * 0.5));
    for (let i = 0; i < 200; i++) {
      const delay = backoff(attempt);
      assert.ok(delay > step / 2 - 1e-9 && delay <= step, `${attempt}: ${delay}`);
    }
  });
  // Ranges never overlap: every wait is longer than the one before.
  assert.ok(backoff(1, {}, () => 0.999999) > backoff(0, {}, () => 0));
  // Full jitter on request; huge attempt counts stay capped.
  assert.equal(backoff(3, { jitter: 1 }, () => 0.25), 3000);
  assert.equal(backoff(5000, {}, () => 0), 30000);
  assert.equal(backoff(2, { base: 1000, max: 3000 }, () => 0), 3000);
});

test("reconnects with growing delays after non-fatal closes, resets after hello", () => {
  const { client, clock, events, socket } = makeClient({ random: () => 0 });
  assert.equal(FakeWebSocket.instances.length, 1);
  assert.equal(socket().url, "ws://test/ws/chat/user/4/");
  assert.deepEqual(events.states, ["connecting"]);
  socket().hello();
  assert.equal(client.state, "live");
  for (const [code, delay] of [[1006, 500], [1013, 1000], [1011, 2000], [1000, 4000]]) {
    socket().serverClose(code);
    assert.equal(client.state, "reconnecting");
    assert.deepEqual(clock.pendingDelays(), [delay], `after ${code}`);
    const before = FakeWebSocket.instances.length;
    clock.tick(delay - 1);
    assert.equal(FakeWebSocket.instances.length, before, "not before the delay");
    clock.tick(1);
    assert.equal(FakeWebSocket.instances.length, before + 1);
  }
  assert.equal(client.failures, 4);
  socket().hello();
  assert.equal(client.attempts, 0);
  assert.equal(client.failures, 0);
  socket().serverClose(1006); // a lost socket after a hello: back to the first step
  assert.deepEqual(clock.pendingDelays(), [500]);
});

for (const code of [1012, 1001]) {
  test(`a restarting server (${code}): back within a random 0-2 s, not fatal, then catches up`, () => {
    let draw = 0.75;
    const { client, clock, events, socket } = makeClient({ conversation: 4, random: () => draw });
    client.hold([message(1), message(2)]);
    socket().hello();
    events.states.length = 0;
    socket().serverClose(code);
    assert.equal(client.stopped, false);
    assert.deepEqual(events.states, [`reconnecting:${code}`]);
    assert.deepEqual(clock.pendingDelays(), [1500]); // 2000 * random()
    clock.tick(1499);
    assert.equal(FakeWebSocket.instances.length, 1, "not before its delay");
    clock.tick(1);
    assert.equal(FakeWebSocket.instances.length, 2);
    // On the new socket: hello, then one sync from what is held.
    socket().hello();
    assert.equal(client.state, "live");
    assert.deepEqual(socket().sentOf("sync").map((f) => f.data), [{ after_seq: 2 }]);
    // The spread: every draw in [0, 1) gives a delay in [0, 2000), whatever came before;
    // the exponential backoff is not advanced by restarts.
    for (const [value, delay] of [[0, 0], [0.5, 1000], [0.999, 1998]]) {
      draw = value;
      socket().serverClose(code);
      assert.deepEqual(clock.pendingDelays(), [delay]);
      clock.tick(delay);
      socket().hello();
    }
    assert.equal(client.attempts, 0);
    // A worker that is gone for good: the next attempts fail (1006) and back off as usual.
    draw = 0;
    socket().serverClose(code);
    clock.tick(0);
    socket().serverClose(1006);
    assert.deepEqual(clock.pendingDelays(), [500]);
  });
}

test("a flooding close (4429) waits at least 10 s", () => {
  const { clock, socket } = makeClient({ random: () => 0 });
  socket().hello();
  socket().serverClose(4429);
  assert.deepEqual(clock.pendingDelays(), [10000]);
});

for (const code of [4001, 4401, 4403, 4404]) {
  test(`fatal close ${code}: stopped, never reconnects`, () => {
    const { client, clock, events, socket } = makeClient();
    socket().hello();
    socket().serverClose(code);
    assert.equal(client.state, "stopped");
    assert.equal(events.states.at(-1), `stopped:${code}`);
    clock.tick(10 * 60 * 1000);
    client.reconnect(); // the online event, a visible tab: still nothing
    assert.equal(FakeWebSocket.instances.length, 1);
  });
}

test("a fatal code before hello (a refusal) also stops", () => {
  const { client, clock, socket } = makeClient();
  socket().open();
  socket().serverClose(4403);
  clock.tick(60000);
  assert.equal(client.state, "stopped");
  assert.equal(FakeWebSocket.instances.length, 1);
});

test("heartbeats go out twice per interval, using hello's interval", () => {
  const { clock, socket } = makeClient();
  socket().hello({ heartbeat_interval: 4 });
  const ws = socket();
  for (let i = 1; i <= 4; i++) {
    clock.tick(2000);
    assert.equal(ws.sentOf("heartbeat").length, i);
    ws.frame("heartbeat", {}, "x"); // the server answers
  }
  assert.deepEqual(ws.sentOf("heartbeat")[0], { v: 1, type: "heartbeat", data: {} });
});

test("a silent socket is stale within one interval and replaced after two", () => {
  const { client, clock, events, socket } = makeClient({ random: () => 0 });
  socket().hello({ heartbeat_interval: 10 });
  const ws = socket();
  clock.tick(5000); // heartbeat 1, answered
  ws.frame("heartbeat");
  clock.tick(2000); // ... then the network silently dies at t = 7 s
  clock.tick(3000); // t = 10 s: heartbeat 2, no answer
  assert.equal(client.state, "live");
  clock.tick(5000); // t = 15 s: heartbeat 3 due, 2 still unanswered
  assert.equal(client.state, "stale", "within one interval of the last frame + probe");
  assert.deepEqual(events.states.slice(-2), ["live", "stale"]);
  clock.tick(5000); // t = 20 s: 15 s of silence
  assert.equal(FakeWebSocket.instances.length, 1);
  clock.tick(5000); // t = 25 s: 20 s (two intervals) of silence: dead
  assert.equal(ws.closedWith, 4000);
  assert.equal(client.state, "reconnecting");
  clock.tick(500);
  assert.equal(FakeWebSocket.instances.length, 2);
  assert.notEqual(socket(), ws);
});

test("stale turns live again when the server speaks", () => {
  const { client, clock, socket } = makeClient();
  socket().hello({ heartbeat_interval: 2 });
  clock.tick(1000);
  clock.tick(1000);
  assert.equal(client.state, "stale");
  socket().frame("heartbeat");
  assert.equal(client.state, "live");
  assert.equal(FakeWebSocket.instances.length, 1);
});

test("a handshake that never completes counts as a lost socket", () => {
  const { client, clock, socket } = makeClient({ heartbeat: 3, random: () => 0 });
  const ws = socket();
  ws.open(); // TCP up, but no hello ever comes
  clock.tick(6000);
  assert.equal(ws.closedWith, 4000);
  assert.equal(client.state, "reconnecting");
  clock.tick(500);
  assert.equal(FakeWebSocket.instances.length, 2);
});

test("offline: no attempts until reconnect(); the offline event drops the socket", () => {
  let online = true;
  const { client, clock, events, socket } = makeClient({ online: () => online, random: () => 0 });
  socket().hello();
  online = false;
  client.drop(); // what the window's "offline" event does
  assert.equal(client.state, "offline");
  clock.tick(120000);
  assert.equal(FakeWebSocket.instances.length, 1);
  online = true;
  client.reconnect(); // the "online" event
  assert.equal(FakeWebSocket.instances.length, 2);
  assert.ok(events.states.includes("offline:1006"));
});

test("browser events: online reconnects at once, offline drops, a visible tab reconnects", () => {
  const listeners = {};
  const win = {
    location: { protocol: "https:", host: "example.com" },
    navigator: { onLine: true },
    document: { hidden: false },
    addEventListener: (type, fn) => (listeners[type] = fn),
    removeEventListener: (type) => delete listeners[type],
  };
  const { client, clock } = makeClient({ url: undefined, path: "/ws/chat/admin/", window: win });
  assert.equal(FakeWebSocket.last.url, "wss://example.com/ws/chat/admin/");
  FakeWebSocket.last.hello();
  win.navigator.onLine = false;
  listeners.offline();
  assert.equal(client.state, "offline");
  win.navigator.onLine = true;
  listeners.online();
  assert.equal(FakeWebSocket.instances.length, 2);
  FakeWebSocket.last.serverClose(1006);
  listeners.visibilitychange();
  assert.equal(FakeWebSocket.instances.length, 3, "no wait for the backoff");
  client.close();
  assert.deepEqual(Object.keys(listeners), []);
  clock.tick(60000);
  assert.equal(FakeWebSocket.instances.length, 3);
});

test("close() is for good and closes with 1000", () => {
  const { client, clock, socket } = makeClient();
  socket().hello();
  const ws = socket();
  client.close();
  assert.equal(ws.closedWith, 1000);
  assert.equal(client.state, "stopped");
  clock.tick(60000);
  assert.equal(FakeWebSocket.instances.length, 1);
  assert.equal(client.send("heartbeat"), false);
});

test("a WebSocket constructor that throws (CSP) is retried with backoff", () => {
  let calls = 0;
  class Refused {
    constructor() {
      calls++;
      throw new Error("CSP");
    }
  }
  const { client, clock } = makeClient({ WebSocket: Refused, random: () => 0 });
  assert.equal(calls, 1);
  assert.equal(client.state, "reconnecting");
  clock.tick(500);
  assert.equal(calls, 2);
  assert.equal(client.failures, 2);
});

test("uuid() gives RFC 4122 version 4 ids", () => {
  const ids = new Set();
  for (let i = 0; i < 100; i++) {
    const id = SupportChatSocket.uuid();
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    ids.add(id);
  }
  assert.equal(ids.size, 100);
});
