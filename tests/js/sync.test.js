"use strict";

const { test } = require("node:test");
const assert = require("node:assert/strict");
const { makeClient, message } = require("./helpers.js");

// A client on the conversation route 4 that holds messages seq 1..3, connected.
function held(options = {}) {
  const setup = makeClient({ conversation: 4, ...options });
  const got = (setup.got = []);
  setup.client.handlers = {
    "message:new": (data) => got.push(["new", data.message.seq]),
    sync: (data) => got.push(["sync", data.messages.map((m) => m.seq)]),
    resync: () => got.push(["resync"]),
    gap: (data) => got.push(["gap", data.conversation_id, data.seq]),
  };
  setup.client.hold([message(1), message(2), message(3)]);
  const ws = setup.socket();
  ws.hello({ conversation: { id: 4, last_seq: 3 } });
  // Answer the hello's catch-up sync (nothing new), then start the test from a clean slate.
  setup.helloSync = ws.sentOf("sync");
  ws.frame("sync", { messages: [], has_more: false, conversation: { id: 4, last_seq: 3 } }, setup.helloSync[0].ref);
  ws.sent.length = 0;
  got.length = 0;
  return setup;
}

function newMessage(ws, seq, conversation = 4) {
  ws.frame("message:new", { conversation_id: conversation, message: message(seq, { conversation }) });
}

test("every hello syncs from the seq held, also when hello says nothing is missing", () => {
  const { helloSync } = held();
  assert.deepEqual(helloSync.map((f) => f.data), [{ after_seq: 3 }]);
  const again = held();
  again.socket().serverClose(1006);
  again.clock.tick(1000);
  again.socket().hello({ conversation: { id: 4, last_seq: 5 } });
  const [sync] = again.socket().sentOf("sync");
  assert.deepEqual(sync.data, { after_seq: 3 });
  assert.match(sync.ref, /^sync-/);
});

test("in order: seq advances, no sync", () => {
  const { client, socket, got } = held();
  newMessage(socket(), 4);
  newMessage(socket(), 5);
  assert.equal(client.seq(), 5);
  assert.deepEqual(got, [["new", 4], ["new", 5]]);
  assert.equal(socket().sentOf("sync").length, 0);
});

test("duplicates (seq at or below what we hold) are dropped", () => {
  const { client, socket, got, events } = held();
  const frames = events.frames.length;
  newMessage(socket(), 2);
  newMessage(socket(), 3);
  assert.deepEqual(got, []);
  assert.equal(events.frames.length, frames);
  newMessage(socket(), 4);
  newMessage(socket(), 4);
  assert.deepEqual(got, [["new", 4]]);
  assert.equal(client.seq(), 4);
});

test("a hole (seq > held + 1) asks sync from what we hold, then follows has_more", () => {
  const { client, socket, got } = held();
  const ws = socket();
  newMessage(ws, 6); // 4 and 5 were lost by the channel layer
  assert.deepEqual(got, [["new", 6]], "shown at once; the hole is filled behind it");
  assert.equal(client.seq(), 3, "not past the hole");
  let syncs = ws.sentOf("sync");
  assert.equal(syncs.length, 1);
  assert.deepEqual(syncs[0].data, { after_seq: 3 });
  newMessage(ws, 7); // another while the sync is out: no second request
  assert.equal(ws.sentOf("sync").length, 1);
  ws.frame("sync", { messages: [message(4), message(5)], has_more: true, conversation: { id: 4, last_seq: 7 } }, syncs[0].ref);
  assert.equal(client.seq(), 5);
  syncs = ws.sentOf("sync");
  assert.equal(syncs.length, 2);
  assert.deepEqual(syncs[1].data, { after_seq: 5 });
  ws.frame("sync", { messages: [message(6), message(7)], has_more: false, conversation: { id: 4, last_seq: 7 } }, syncs[1].ref);
  assert.equal(client.seq(), 7);
  assert.equal(ws.sentOf("sync").length, 2, "caught up: no more syncs");
  assert.deepEqual(got.slice(-2), [["sync", [4, 5]], ["sync", [6, 7]]]);
  newMessage(ws, 7);
  newMessage(ws, 8);
  assert.deepEqual(got.slice(-1), [["new", 8]]);
});

test("a conversation frame whose last_seq is ahead of us is a hole too", () => {
  const { socket } = held();
  socket().frame("conversation:updated", { conversation: { id: 4, last_seq: 9, status: "open" }, change: "assigned" });
  assert.deepEqual(socket().sentOf("sync").map((f) => f.data), [{ after_seq: 3 }]);
});

test("an empty sync answer stops asking (no loop) until the next sign of a hole", () => {
  const { socket } = held();
  const ws = socket();
  newMessage(ws, 5);
  const [first] = ws.sentOf("sync");
  ws.frame("sync", { messages: [], has_more: false }, first.ref);
  assert.equal(ws.sentOf("sync").length, 1);
});

test("resync: sync from what we hold, and the caller hears of it", () => {
  const { socket, got } = held();
  socket().frame("resync", {});
  assert.deepEqual(socket().sentOf("sync").map((f) => f.data), [{ after_seq: 3 }]);
  assert.deepEqual(got, [["resync"]]);
});

test("every reconnect catches up (close 1012, server restart)", () => {
  const { client, clock, socket } = held({ random: () => 0 });
  newMessage(socket(), 4);
  socket().serverClose(1012);
  clock.tick(500);
  socket().hello({ conversation: { id: 4, last_seq: 6 } });
  const [sync] = socket().sentOf("sync");
  assert.deepEqual(sync.data, { after_seq: 4 });
  socket().frame("sync", { messages: [message(5), message(6)], has_more: false }, sync.ref);
  assert.equal(client.seq(), 6);
});

test("messages without seq (an older server): sync by after_id, every hello", () => {
  const { client, clock, socket, events } = makeClient({ conversation: 4, random: () => 0 });
  client.hold([{ id: 10, conversation: 4 }, { id: 12, conversation: 4 }]);
  socket().hello({ conversation: { id: 4 } });
  let [sync] = socket().sentOf("sync");
  assert.deepEqual(sync.data, { after_id: 12 });
  socket().frame("sync", { messages: [{ id: 13, conversation: 4 }], has_more: true }, sync.ref);
  sync = socket().sentOf("sync")[1];
  assert.deepEqual(sync.data, { after_id: 13 });
  socket().frame("sync", { messages: [], has_more: false }, sync.ref);
  socket().frame("message:new", { conversation_id: 4, message: { id: 14, conversation: 4 } });
  socket().frame("message:new", { conversation_id: 4, message: { id: 14, conversation: 4 } });
  assert.equal(events.frames.filter((f) => f.type === "message:new").length, 2, "the caller dedupes by id");
  socket().serverClose(1006);
  clock.tick(500);
  socket().hello({});
  assert.deepEqual(socket().sentOf("sync")[0].data, { after_id: 14 });
});

test("before hold() (history not loaded): no dedupe, no sync", () => {
  const { client, socket, events } = makeClient({ conversation: 4 });
  socket().hello({ conversation: { id: 4, last_seq: 9 } });
  socket().frame("message:new", { conversation_id: 4, message: message(9) });
  socket().frame("message:new", { conversation_id: 4, message: message(9) });
  assert.equal(socket().sentOf("sync").length, 0);
  assert.equal(events.frames.filter((f) => f.type === "message:new").length, 2);
  // Holding an empty conversation syncs from the start when it later learns of messages.
  client.hold([]);
  socket().frame("message:new", { conversation_id: 4, message: message(2) });
  assert.deepEqual(socket().sentOf("sync").map((f) => f.data), [{ after_id: 0 }]);
});

test("the lobby (no route conversation): holes are reported per conversation, not synced", () => {
  const setup = makeClient({});
  const gaps = [];
  const news = [];
  setup.client.handlers = {
    gap: (data) => gaps.push([data.conversation_id, data.seq]),
    "message:new": (data) => news.push([data.conversation_id, data.message.seq]),
  };
  const ws = setup.socket();
  ws.hello({ side: "staff" });
  newMessage(ws, 3, 7); // first sighting of 7: the baseline
  newMessage(ws, 4, 7);
  newMessage(ws, 1, 8);
  newMessage(ws, 6, 7); // 5 lost
  newMessage(ws, 4, 7); // a duplicate
  assert.deepEqual(gaps, [[7, 6]]);
  assert.deepEqual(news, [[7, 3], [7, 4], [8, 1], [7, 6]]);
  assert.equal(ws.sentOf("sync").length, 0);
  ws.frame("conversation:updated", { conversation: { id: 8, last_seq: 3 } });
  assert.deepEqual(gaps, [[7, 6], [8, 3]]);
});

test("holding an empty conversation: seq 1 is in order, a later seq is a hole from the start", () => {
  const { client, socket } = makeClient({ conversation: 4 });
  client.hold([]);
  socket().hello({ conversation: { id: 4, last_seq: 0 } });
  socket().frame("message:new", { conversation_id: 4, message: message(1) });
  assert.equal(client.seq(), 1);
  assert.equal(socket().sentOf("sync").length, 1, "only the hello catch-up (no seq held yet)");
  socket().frame("message:new", { conversation_id: 4, message: message(3) });
  assert.equal(socket().sentOf("sync").length, 1, "the first sync is still out");
});
