"use strict";

const { test } = require("node:test");
const assert = require("node:assert/strict");
const { makeClient, message } = require("./helpers.js");

test("request() resolves with the reply carrying its ref; other frames still reach handlers", async () => {
  const { client, socket, events } = makeClient({ conversation: 4 });
  socket().hello();
  const answer = client.request("message:send", { text: "Hi", client_id: "c1" });
  const [sent] = socket().sentOf("message:send");
  assert.deepEqual(sent.data, { text: "Hi", client_id: "c1" });
  assert.equal(sent.v, 1);
  const before = events.frames.length;
  socket().frame("message:new", { conversation_id: 4, message: message(1, { client_id: "c1" }) });
  socket().frame("message:sent", { message: message(1, { client_id: "c1" }), created: true }, sent.ref);
  const frame = await answer;
  assert.equal(frame.type, "message:sent");
  assert.equal(frame.data.created, true);
  assert.equal(events.frames.length, before + 1, "the reply went to the promise only");
});

test("request() rejects with the error frame's data", async () => {
  const { client, socket } = makeClient();
  socket().hello();
  const answer = client.request("message:send", { text: "", client_id: "c2" });
  const [sent] = socket().sentOf("message:send");
  socket().frame("error", { code: "throttled", message: "Slow down", retry_after: 3 }, sent.ref);
  await assert.rejects(answer, { code: "throttled", retry_after: 3 });
});

test("request() rejects when the socket goes, after the timeout, and when not connected", async () => {
  const { client, clock, socket } = makeClient({ timeout: 15000 });
  await assert.rejects(client.request("presence:query", { user_ids: [1] }), { code: "not_connected" });
  socket().hello({ heartbeat_interval: 10 });
  const lost = client.request("message:send", { text: "a", client_id: "c3" });
  socket().serverClose(1006);
  await assert.rejects(lost, { code: "disconnected" });
  clock.tick(1000);
  socket().hello({ heartbeat_interval: 10 });
  const slow = client.request("message:send", { text: "b", client_id: "c4" });
  for (let i = 0; i < 3; i++) {
    clock.tick(5000);
    socket().frame("heartbeat");
  }
  clock.tick(5000);
  await assert.rejects(slow, { code: "timeout" });
});

test("refs are unique per request", () => {
  const { client, socket } = makeClient();
  socket().hello();
  client.request("presence:query", { user_ids: [1] }).catch(() => {});
  client.request("presence:query", { user_ids: [2] }).catch(() => {});
  const refs = socket().sentOf("presence:query").map((f) => f.ref);
  assert.equal(new Set(refs).size, 2);
});

test("the resend hook runs after every hello: the offline queue goes again", () => {
  const queue = [{ id: "q1", text: "queued while offline" }];
  const { client, clock, socket } = makeClient({
    random: () => 0,
    onResend: (c) => queue.forEach((entry) => c.send("message:send", { text: entry.text, client_id: entry.id }, entry.id)),
  });
  assert.equal(client.send("message:send", { text: "x", client_id: "q1" }), false, "not connected yet");
  socket().hello();
  assert.deepEqual(socket().sentOf("message:send").map((f) => f.data.client_id), ["q1"]);
  socket().serverClose(1006);
  clock.tick(500);
  const second = socket();
  assert.equal(second.sentOf("message:send").length, 0, "nothing before hello");
  second.hello();
  assert.deepEqual(second.sentOf("message:send").map((f) => f.data.client_id), ["q1"], "the same client_id again");
});

test("the resend hook runs after the catch-up sync is asked for", () => {
  const order = [];
  const { client, socket } = makeClient({ conversation: 4, onResend: () => order.push("resend") });
  client.handlers = { hello: () => order.push("hello") };
  client.hold([message(1)]);
  const ws = socket();
  const send = ws.send.bind(ws);
  ws.send = (text) => {
    order.push(JSON.parse(text).type);
    send(text);
  };
  ws.hello({ conversation: { id: 4, last_seq: 2 } });
  assert.deepEqual(order, ["hello", "sync", "resend"]);
});

test("a handler that throws does not break the client", () => {
  const { client, socket } = makeClient();
  const logged = [];
  const original = console.error;
  console.error = (...args) => logged.push(args);
  try {
    client.handlers = { "typing:start": () => { throw new Error("boom"); } };
    socket().hello();
    socket().frame("typing:start", {});
    socket().frame("heartbeat");
    assert.equal(client.state, "live");
    assert.equal(logged.length, 1);
  } finally {
    console.error = original;
  }
});

test("frames that are not JSON objects with a type are ignored", () => {
  const { client, socket, events } = makeClient();
  socket().hello();
  const before = events.frames.length;
  socket().onmessage({ data: "not json" });
  socket().onmessage({ data: "[1, 2]" });
  socket().onmessage({ data: "null" });
  assert.equal(events.frames.length, before);
  assert.equal(client.state, "live");
});
