// The outbox under a slow channel (issue 15, "Outbox and state safety"), on the real test database with the local
// Slack receiver told to answer slowly.
//
// The time scale: Slack answering in 9 s, its timeout 15 s, a drainer running again every 10 s, all multiplied by
// OUTBOX_SLOW_SCALE (default 0.1, so 0.9 s per notification and 8 s for the test; OUTBOX_SLOW_SCALE=1 runs the real
// 9 s, about 90 s).
//
// How it failed before 20261202003000_outbox_lease: `drainOutbox` claimed every due row at once (up to 200) under a
// fixed 2-minute lease and sent them one by one. 16 notifications × 9 s = 144 s > 120 s, so the second drainer's
// next run after the lease ran out re-claimed the rows the first had not sent yet, and both sent them. Run against
// that code at OUTBOX_SLOW_SCALE=1 (9 s a message, the real 2-minute lease), the first test below failed with 3 of
// the 16 received twice (n14, n15, n16: 19 deliveries); at the default 0.1 with that lease scaled to 12 s, the same
// 3. Now a claim is one row, leased for twice the channel's worst delivery time (2 × (2 × 1.5 s + 0.25 s) = 6.5 s
// here), so the ratio that broke it still holds (one drainer's run sends 8 × 0.9 s = 7.2 s, more than its lease)
// and nothing is sent twice.
import assert from "node:assert/strict";
import { testSql } from "./_helpers.ts";
import { startReceivers } from "../dev/receivers.ts";
import { slackChannel } from "../shared/alerts/channels.ts";
import { drainOutbox, enqueue } from "../shared/alerts/outbox.ts";

const SCALE = Number(Deno.env.get("OUTBOX_SLOW_SCALE") ?? "0.1");
const SEND_MS = 9_000 * SCALE;
const TIMEOUT_MS = 15_000 * SCALE;
const RERUN_MS = 10_000 * SCALE;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function titlesOf(bodies: Array<{ body: Record<string, unknown> }>, marker: string): string[] {
  return bodies.map((r) => String(r.body.text ?? "")).filter((t) => t.includes(marker));
}

async function queue(marker: string, n: number): Promise<number[]> {
  const ids: number[] = [];
  for (let i = 1; i <= n; i++) {
    ids.push(
      ...await enqueue(testSql(), { severity: "info", title: `n${i} ${marker}`, text: "x" }, {
        channels: ["slack"],
        dedupeKey: `${marker}-${i}`,
      }),
    );
  }
  return ids;
}

Deno.test("drainOutbox() by two drainers on one slow Slack (9 s a message) delivers each of 16 notifications once", async () => {
  const r = await startReceivers();
  const marker = crypto.randomUUID().slice(0, 8);
  try {
    r.control.delay("slack", SEND_MS);
    const channels = [slackChannel(r.slackUrl, { timeoutMs: TIMEOUT_MS })];
    const ids = await queue(marker, 16);
    const allSent = async () => {
      const [{ n }] = await testSql()<{ n: number }[]>`
        select count(*)::int as n from maintenance.notification_outbox where id = any (${ids}) and status <> 'sent'`;
      return n === 0;
    };
    // a drainer is a run that drains, and runs again RERUN_MS later while something is left (the next health-check,
    // a scoped run, the weekly report's send)
    const until = Date.now() + 40 * SEND_MS;
    const drainer = async (startAfterMs: number) => {
      await sleep(startAfterMs);
      let sent = 0;
      while (Date.now() < until) {
        sent += (await drainOutbox(testSql(), channels, { ids })).sent;
        if (await allSent()) break;
        await sleep(RERUN_MS);
      }
      return sent;
    };
    const [a, b] = await Promise.all([drainer(0), drainer(RERUN_MS / 2)]);

    const got = titlesOf(r.control.received("slack"), marker);
    const counts: Record<string, number> = {};
    for (const t of got) counts[t.replace(/^\S+ /, "")] = (counts[t.replace(/^\S+ /, "")] ?? 0) + 1;
    const once = Object.fromEntries(ids.map((_, i) => [`n${i + 1} ${marker}`, 1]));
    assert.deepEqual(counts, once, "every notification received exactly once");
    assert.equal(a + b, 16, `the drainers sent ${a} + ${b}`);
    assert.equal(titlesOf(r.control.attempts("slack"), marker).length, 16, "one request per notification");
    const rows = await testSql()<{ status: string; attempts: number }[]>`
      select status, attempts from maintenance.notification_outbox where id = any (${ids}) order by id`;
    assert.deepEqual([...rows], ids.map(() => ({ status: "sent", attempts: 1 })), "no row was claimed twice");
  } finally {
    await r.close();
    await testSql()`delete from maintenance.notification_outbox where dedupe_key like ${`message:${marker}-%`}
      or dedupe_key like ${`${marker}-%`}`;
  }
});

Deno.test("drainOutbox() after a drainer died mid-send: the row waits out the dead one's lease, then is sent once", async () => {
  const r = await startReceivers();
  const marker = crypto.randomUUID().slice(0, 8);
  try {
    const ids = await queue(marker, 1);
    const crashTimeoutMs = 500; // the dead drainer's channel: lease 2 × (2 × 500 + 250) = 2.5 s
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--no-check",
        "tests/_outbox_crashing_drainer.ts",
        String(crashTimeoutMs),
        JSON.stringify(ids),
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.signal, "SIGKILL", `the drainer died mid-send: ${new TextDecoder().decode(out.stderr)}`);
    const [left] = await testSql()<
      { status: string; attempts: number; claim_token: string | null; lease_left: number }[]
    >`select status, attempts, claim_token, extract(epoch from next_attempt_at - now())::float8 as lease_left
      from maintenance.notification_outbox where id = ${ids[0]}`;
    assert.equal(left.status, "pending");
    assert.equal(left.attempts, 1, "the dead drainer's claim counted an attempt");
    assert.ok(left.claim_token, "and left its claim on the row");

    const channels = [slackChannel(r.slackUrl, { timeoutMs: 1_000 })];
    if (left.lease_left > 0.3) {
      const early = await drainOutbox(testSql(), channels, { ids });
      assert.equal(early.claimed, 0, "not taken over while the dead drainer's lease holds");
    }
    await sleep(Math.max(0, left.lease_left * 1000) + 50);
    const later = await drainOutbox(testSql(), channels, { ids });
    assert.deepEqual([later.claimed, later.sent], [1, 1], "taken over and sent once the lease ran out");
    assert.equal((await drainOutbox(testSql(), channels, { ids })).claimed, 0, "and not again");
    assert.deepEqual(titlesOf(r.control.received("slack"), marker), [`🟢 n1 ${marker}`]);

    // the dead drainer's token is worthless now: had it only stalled, its late completion changes nothing
    const stale = await testSql()<{ ok: string; failed: string }[]>`
      select maintenance.finish_notification(${ids[0]}, ${left.claim_token}::uuid, true) as ok,
             maintenance.finish_notification(${ids[0]}, ${left.claim_token}::uuid, false, 'late') as failed`;
    assert.deepEqual([...stale], [{ ok: "lost", failed: "lost" }]);
    const [row] = await testSql()`
      select status, attempts, claim_token, last_error from maintenance.notification_outbox where id = ${ids[0]}`;
    assert.deepEqual({ ...row }, { status: "sent", attempts: 2, claim_token: null, last_error: null });
  } finally {
    await r.close();
    await testSql()`delete from maintenance.notification_outbox where dedupe_key like ${`${marker}-%`}`;
  }
});

Deno.test("drainOutbox() claims a row only while its worst delivery time fits the time budget", async () => {
  const r = await startReceivers();
  const marker = crypto.randomUUID().slice(0, 8);
  try {
    r.control.delay("slack", 300);
    // worst delivery 2 × 500 + 250 = 1.25 s: with 2.5 s, a row is claimed only in the first 1.25 s
    const channels = [slackChannel(r.slackUrl, { timeoutMs: 500 })];
    const ids = await queue(marker, 10);
    const t0 = Date.now();
    const result = await drainOutbox(testSql(), channels, { ids, budgetMs: 2_500 });
    const took = Date.now() - t0;
    assert.ok(took < 2_500, `the drain ended within its budget (${took} ms)`);
    assert.equal(result.remaining, true, "and says rows may be left");
    assert.ok(result.sent >= 2 && result.sent <= 5, `sent ${result.sent}`);
    const rows = await testSql()<{ status: string; attempts: number }[]>`
      select status, attempts from maintenance.notification_outbox where id = any (${ids}) order by id`;
    assert.deepEqual(
      [...rows],
      ids.map((_, i) => i < result.sent ? { status: "sent", attempts: 1 } : { status: "pending", attempts: 0 }),
      "the rows it did not reach are untouched, in id order",
    );
  } finally {
    await r.close();
    await testSql()`delete from maintenance.notification_outbox where dedupe_key like ${`${marker}-%`}`;
  }
});

Deno.test("drainOutbox() after a retryable failure defers the channel's other due rows, and sends nothing twice", async () => {
  const r = await startReceivers();
  const marker = crypto.randomUUID().slice(0, 8);
  try {
    const channels = [slackChannel(r.slackUrl, { timeoutMs: 1_000 })];
    const ids = await queue(marker, 3);
    r.control.failNext("slack", 2); // the first row's attempt and its in-process retry
    const result = await drainOutbox(testSql(), channels, { ids });
    assert.deepEqual([result.claimed, result.sent, result.retrying, result.failed], [1, 0, 3, 0]);
    assert.equal(titlesOf(r.control.attempts("slack"), marker).length, 2, "only the first row was tried");
    const rows = await testSql()<{ status: string; attempts: number; due: boolean; last_error: string }[]>`
      select status, attempts, next_attempt_at <= now() as due, last_error
      from maintenance.notification_outbox where id = any (${ids}) order by id`;
    for (const row of rows) {
      assert.deepEqual([row.status, row.attempts, row.due], ["pending", 1, false]);
      assert.match(row.last_error, /HTTP 500: rollup_error/);
    }
    await testSql()`update maintenance.notification_outbox set next_attempt_at = now() where id = any (${ids})`;
    assert.equal((await drainOutbox(testSql(), channels, { ids })).sent, 3, "the backoff elapsed, all three go");
    assert.equal(titlesOf(r.control.received("slack"), marker).length, 3);
  } finally {
    await r.close();
    await testSql()`delete from maintenance.notification_outbox where dedupe_key like ${`${marker}-%`}`;
  }
});
