"use strict";

// The server's pushback (docs/protocol.md, "Slowing down"): "overloaded" and
// "unavailable" errors, like "throttled", carry retry_after; REST answers 429/503 with
// Retry-After. SupportChatSocket.retryDelay turns either into the wait before sending the
// same message (same client_id) again, with jitter, as the widget and the inbox do.

const { test } = require("node:test");
const assert = require("node:assert/strict");
const { SupportChatSocket, makeClient, message } = require("./helpers.js");

const { retryDelay } = SupportChatSocket;

test("retryDelay: retry_after seconds plus up to half a second of jitter", () => {
  for (const code of ["throttled", "overloaded", "unavailable"]) {
    assert.equal(retryDelay({ code, retry_after: 1 }, () => 0), 1000);
    assert.equal(retryDelay({ code, retry_after: 1 }, () => 0.999), 1499.5);
    assert.equal(retryDelay({ code, retry_after: 2.5 }, () => 0.5), 2750);
  }
  const spread = new Set();
  for (let i = 0; i < 50; i++) {
    const wait = retryDelay({ code: "overloaded", retry_after: 1 });
    assert.ok(wait >= 1000 && wait < 1500, wait);
    spread.add(Math.round(wait));
  }
  assert.ok(spread.size > 10, "the jitter spreads the retries");
});

test("retryDelay: a Retry-After header (string seconds); 0 for errors that are not retried", () => {
  assert.equal(retryDelay({ status: 503, retry_after: "3" }, () => 0), 3000);
  assert.equal(retryDelay({ status: 503, retry_after: "Wed, 21 Oct 2026 07:28:00 GMT" }, () => 0), 1000);
  assert.equal(retryDelay({ status: 500, retry_after: null }), 0); // no Retry-After header
  assert.equal(retryDelay({ code: "invalid", message: "blank" }), 0);
  assert.equal(retryDelay({ code: "conversation_closed" }), 0);
  assert.equal(retryDelay(undefined), 0);
});

// An outbox like the widget's: send; on an error with retry_after, wait and send the same
// entry again; drop it from the queue only on message:sent.
function outbox(client, clock) {
  const queue = new Map();
  const attempts = [];
  function send(entry) {
    attempts.push(entry.id);
    return client.request("message:send", { text: entry.text, client_id: entry.id }).then(
      () => queue.delete(entry.id),
      (error) => {
        const wait = retryDelay(error, () => 0.5);
        if (wait) clock.setTimeout(() => send(entry), wait);
        else entry.failed = error.code;
      },
    );
  }
  return {
    queue,
    attempts,
    add(entry) {
      queue.set(entry.id, entry);
      return send(entry);
    },
  };
}

test("an overloaded send goes again after retry_after with the same client_id, once", async () => {
  const { client, clock, socket } = makeClient({ conversation: 4 });
  socket().hello();
  const box = outbox(client, clock);
  const first = box.add({ id: "c-1", text: "Hello" });
  const [sent] = socket().sentOf("message:send");
  socket().frame(
    "error",
    { code: "overloaded", message: "The server is busy; try again shortly.", retry_after: 1.0 },
    sent.ref,
  );
  await first;
  assert.equal(box.queue.size, 1, "still queued");
  clock.tick(1200); // retry_after + jitter (0.5 * 500 ms) = 1250 ms: not yet
  assert.equal(socket().sentOf("message:send").length, 1);
  clock.tick(100);
  const again = socket().sentOf("message:send");
  assert.equal(again.length, 2);
  assert.deepEqual(again[1].data, { text: "Hello", client_id: "c-1" });
  assert.notEqual(again[1].ref, sent.ref);
  socket().frame("message:sent", { message: message(1, { client_id: "c-1" }), created: true }, again[1].ref);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(box.queue.size, 0);
  assert.deepEqual(box.attempts, ["c-1", "c-1"]);
  clock.tick(5000);
  assert.equal(socket().sentOf("message:send").length, 2, "no further sends");
});

test("unavailable (no database connection) is retried too; invalid is not", async () => {
  const { client, clock, socket } = makeClient({ conversation: 4 });
  socket().hello();
  const box = outbox(client, clock);
  const a = box.add({ id: "c-2", text: "a" });
  const b = box.add({ id: "c-3", text: "" });
  const [sentA, sentB] = socket().sentOf("message:send");
  socket().frame("error", { code: "unavailable", message: "down", retry_after: 2 }, sentA.ref);
  socket().frame("error", { code: "invalid", message: "blank", fields: { text: ["x"] } }, sentB.ref);
  await Promise.all([a, b]);
  assert.equal(box.queue.get("c-3").failed, "invalid");
  clock.tick(2250);
  const sends = socket().sentOf("message:send");
  assert.equal(sends.length, 3);
  assert.equal(sends[2].data.client_id, "c-2");
});
