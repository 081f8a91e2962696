// The notifier and its outbox on the real test database, with the local Slack/email receivers.
import assert from "node:assert/strict";
import { testConfig, testSql } from "./_helpers.ts";
import { startReceivers } from "../dev/receivers.ts";
import { createNotifier } from "../shared/alerts/notify.ts";
import { slackMessage } from "../shared/alerts/channels.ts";
import { drainOutbox, enqueue } from "../shared/alerts/outbox.ts";
import { channelsFor } from "../shared/alerts/channels.ts";

function titlesOf(bodies: Array<{ body: Record<string, unknown> }>, marker: string): string[] {
  return bodies.map((r) => String(r.body.text ?? r.body.subject ?? "")).filter((t) => t.includes(marker));
}

async function makeDue(marker: string) {
  await testSql()`
    update maintenance.notification_outbox set next_attempt_at = now()
    where status = 'pending' and payload ->> 'title' like ${"%" + marker + "%"}`;
}

Deno.test("send() through the outbox: a Slack receiver that fails twice then recovers gets every notification exactly once", async () => {
  const r = await startReceivers();
  try {
    const config = testConfig({ SLACK_WEBHOOK_URL: r.slackUrl, ALERT_LOG: "false" });
    const notify = createNotifier(config, { sql: testSql() });
    const marker = crypto.randomUUID().slice(0, 8);
    r.control.failNext("slack", 2);
    for (const n of [1, 2, 3]) {
      await notify.send({ severity: "warning", title: `m${n} ${marker}`, text: "body", dedupeKey: `${marker}-${n}` });
    }
    // m1 met both failures (first try and the in-process retry) and waits for a later drain
    const [pending] = await testSql()`
      select status, attempts, last_error from maintenance.notification_outbox where dedupe_key = ${`message:${marker}-1`}`;
    assert.equal(pending.status, "pending");
    assert.match(pending.last_error, /HTTP 500: rollup_error/);
    assert.deepEqual(titlesOf(r.control.received("slack"), marker).sort(), [`🟠 m2 ${marker}`, `🟠 m3 ${marker}`]);

    await makeDue(marker); // as if the backoff had elapsed
    const drained = await notify.drain!();
    assert.ok(drained.sent >= 1);
    await notify.drain!(); // nothing left to send twice
    await notify.send({ severity: "warning", title: `m1 ${marker}`, text: "body", dedupeKey: `${marker}-1` }); // same key
    assert.deepEqual(titlesOf(r.control.received("slack"), marker).sort(), [
      `🟠 m1 ${marker}`,
      `🟠 m2 ${marker}`,
      `🟠 m3 ${marker}`,
    ]);
    assert.equal(titlesOf(r.control.attempts("slack"), marker).length, 5, "2 failed attempts + 3 deliveries");
    const rows = await testSql()`
      select status from maintenance.notification_outbox where dedupe_key like ${`message:${marker}-%`}`;
    assert.deepEqual(rows.map((x) => x.status), ["sent", "sent", "sent"]);
  } finally {
    await r.close();
  }
});

Deno.test("drainOutbox() run twice at once sends each row once", async () => {
  const r = await startReceivers();
  try {
    const config = testConfig({ SLACK_WEBHOOK_URL: r.slackUrl, ALERT_LOG: "false" });
    const channels = channelsFor(config);
    const marker = crypto.randomUUID().slice(0, 8);
    const ids: number[] = [];
    for (let i = 0; i < 6; i++) {
      ids.push(
        ...await enqueue(testSql(), { severity: "info", title: `c${i} ${marker}`, text: "x" }, {
          channels: ["slack"],
          dedupeKey: `${marker}-${i}`,
        }),
      );
    }
    const [a, b] = await Promise.all([
      drainOutbox(testSql(), channels, { ids }),
      drainOutbox(testSql(), channels, { ids }),
    ]);
    assert.equal(a.sent + b.sent, 6);
    assert.equal(titlesOf(r.control.received("slack"), marker).length, 6);
  } finally {
    await r.close();
  }
});

Deno.test("drainOutbox() marks a permanent Slack error failed at once, and retries a 429 after Retry-After", async () => {
  const r = await startReceivers();
  try {
    const channels = channelsFor(testConfig({ SLACK_WEBHOOK_URL: r.slackUrl, ALERT_LOG: "false" }));
    const marker = crypto.randomUUID().slice(0, 8);
    const [gone] = await enqueue(testSql(), { severity: "info", title: `gone ${marker}`, text: "x" }, {
      channels: ["slack"],
      dedupeKey: `${marker}-gone`,
    });
    r.control.failNext("slack", 1, { status: 404 });
    await drainOutbox(testSql(), channels, { ids: [gone] });
    const [g] =
      await testSql()`select status, attempts, last_error from maintenance.notification_outbox where id = ${gone}`;
    assert.equal(g.status, "failed");
    assert.equal(g.attempts, 1);
    assert.match(g.last_error, /404: no_service/);

    const [limited] = await enqueue(testSql(), { severity: "info", title: `rl ${marker}`, text: "x" }, {
      channels: ["slack"],
      dedupeKey: `${marker}-rl`,
    });
    r.control.failNext("slack", 1, { status: 429, retryAfterSeconds: 120 });
    await drainOutbox(testSql(), channels, { ids: [limited] });
    const [l] = await testSql()`
      select status, extract(epoch from next_attempt_at - now())::int as wait
      from maintenance.notification_outbox where id = ${limited}`;
    assert.equal(l.status, "pending");
    assert.ok(l.wait >= 100 && l.wait <= 125, `waits for Retry-After (${l.wait} s)`);
  } finally {
    await r.close();
  }
});

Deno.test("the email channel posts {from, to, subject, text} with the Bearer key", async () => {
  const r = await startReceivers();
  try {
    const config = testConfig({
      ALERT_EMAIL_TO: "ops@example.com",
      ALERT_EMAIL_FROM: "alerts@example.com",
      EMAIL_API_URL: r.emailUrl,
      EMAIL_API_KEY: r.emailApiKey,
      ALERT_LOG: "false",
    });
    const marker = crypto.randomUUID().slice(0, 8);
    await createNotifier(config, { sql: testSql() }).send({
      severity: "critical",
      title: `mail ${marker}`,
      text: "Evolution is down",
      fields: { tenant: "acme" },
    });
    const got = r.control.received("email").filter((x) => String(x.body.subject).includes(marker));
    assert.equal(got.length, 1);
    assert.deepEqual(got[0].body, {
      from: "alerts@example.com",
      to: "ops@example.com",
      subject: `[CRITICAL] mail ${marker}`,
      text: "Evolution is down\n\ntenant: acme",
    });
    assert.equal(got[0].headers.authorization, `Bearer ${r.emailApiKey}`);
  } finally {
    await r.close();
  }
});

Deno.test("slackMessage() renders Block Kit: header, text, fields as section fields", () => {
  const m = slackMessage({ severity: "critical", title: "T", text: "body", fields: { tenant: "acme", n: 3 } });
  const blocks = m.blocks as Array<Record<string, unknown>>;
  assert.equal(blocks[0].type, "header");
  assert.deepEqual(blocks[1], { type: "section", text: { type: "mrkdwn", text: "body", verbatim: true } });
  assert.deepEqual(blocks[2], {
    type: "section",
    fields: [{ type: "mrkdwn", text: "*tenant*\nacme", verbatim: true }, {
      type: "mrkdwn",
      text: "*n*\n3",
      verbatim: true,
    }],
  });
  assert.equal(m.text, "🔴 T");
});
