// The application webhook channel (issue 19): deliveries signed per Standard Webhooks and checked with the
// `standardwebhooks` library's own verifier, through the outbox (one row per event and endpoint, the row's dedupe
// key as `webhook-id`), against the local receiver of dev/receivers.ts on the real test database.
import assert from "node:assert/strict";
import { Webhook } from "standardwebhooks";
import { newWebhookSecret, type Received, type Receivers, startReceivers } from "../dev/receivers.ts";
import { channelsFor, webhookBody, webhookChannel, webhookChannelName } from "../shared/alerts/channels.ts";
import { createNotifier } from "../shared/alerts/notify.ts";
import { drainOutbox } from "../shared/alerts/outbox.ts";
import { cleanupLogs } from "../shared/jobs/cleanup_logs.ts";
import { runJob } from "../shared/jobs/runner.ts";
import { runHealthCheck } from "../shared/jobs/health_check.ts";
import { healthFixture } from "./health_fixture.ts";
import { testConfig, testDeps, testSql, waitFor } from "./_helpers.ts";
// the secret every test here signs with: fixed, so the secrets scan (run last) looks for it in every row and log
import { APP_WEBHOOK_TEST_SECRET } from "./reliability/_matrix.ts";

function envFor(urls: string[], secret = APP_WEBHOOK_TEST_SECRET) {
  return { APP_WEBHOOK_URLS: urls.join(","), APP_WEBHOOK_SECRET: secret, ALERT_LOG: "false" };
}

function notifierFor(urls: string[], secret = APP_WEBHOOK_TEST_SECRET) {
  return createNotifier(testConfig(envFor(urls, secret)), { sql: testSql() });
}

function mine(r: Receivers, marker: string): Received[] {
  return r.control.attempts("webhook").filter((x) => (x.raw ?? JSON.stringify(x.body)).includes(marker));
}

async function rowsOf(dedupeKey: string) {
  return await testSql()<{ id: string; channel: string; status: string; attempts: number; last_error: string }[]>`
    select id, channel, status, attempts, last_error from maintenance.notification_outbox
    where dedupe_key = ${dedupeKey} order by id`;
}

async function makeDue(dedupeKey: string) {
  await testSql()`update maintenance.notification_outbox set next_attempt_at = now()
    where dedupe_key = ${dedupeKey} and status = 'pending'`;
}

Deno.test("webhook channel: every delivery verifies with standardwebhooks' Webhook.verify, and its webhook-id is the outbox row's dedupe key", async () => {
  const r = await startReceivers({ appWebhookSecret: APP_WEBHOOK_TEST_SECRET });
  try {
    const notify = notifierFor([r.appWebhookUrl]);
    const marker = crypto.randomUUID().slice(0, 8);
    await notify.send({ severity: "warning", title: `t ${marker}`, text: "body", dedupeKey: marker });
    const [got] = mine(r, marker);
    assert.equal(got.status, 200, `the receiver verified it: ${got.verifyError ?? ""}`);
    assert.equal(got.headers["webhook-id"], `message:${marker}`);
    assert.match(got.headers["webhook-signature"], /^v1,[A-Za-z0-9+/]+=*$/);
    assert.match(got.headers["webhook-timestamp"], /^\d{10}$/);
    assert.equal(got.headers["content-type"], "application/json");
    // the library's verifier, here too, on the bytes as they came
    const verified = new Webhook(APP_WEBHOOK_TEST_SECRET).verify(got.raw!, got.headers) as Record<string, unknown>;
    assert.equal(verified.type, "notification");
    assert.deepEqual((verified.data as Record<string, unknown>).title, `t ${marker}`);
    const rows = await rowsOf(`message:${marker}`);
    assert.deepEqual(rows.map((x) => [x.channel, x.status]), [[webhookChannelName(r.appWebhookUrl), "sent"]]);
  } finally {
    await r.close();
  }
});

Deno.test("webhook channel: a tampered body, an old timestamp and another secret are refused by the verifier", async (t) => {
  const r = await startReceivers({ appWebhookSecret: APP_WEBHOOK_TEST_SECRET });
  try {
    const marker = crypto.randomUUID().slice(0, 8);
    await notifierFor([r.appWebhookUrl]).send({ severity: "info", title: marker, text: "x", dedupeKey: marker });
    const [got] = mine(r, marker);
    const wh = new Webhook(APP_WEBHOOK_TEST_SECRET);
    await t.step("a tampered body", () => {
      assert.throws(() => wh.verify(got.raw!.replace(marker, "tampered"), got.headers), /signature/i);
    });
    await t.step("an old timestamp (signed 10 minutes ago: outside the 5-minute tolerance)", () => {
      const old = new Date(Date.now() - 10 * 60_000);
      const id = got.headers["webhook-id"];
      const headers = {
        "webhook-id": id,
        "webhook-timestamp": String(Math.floor(old.getTime() / 1000)),
        "webhook-signature": wh.sign(id, old, got.raw!),
      };
      assert.throws(() => wh.verify(got.raw!, headers), /timestamp/i);
    });
    await t.step("the signature of a delivery, its timestamp changed", () => {
      const headers = { ...got.headers, "webhook-timestamp": String(Number(got.headers["webhook-timestamp"]) - 1) };
      assert.throws(() => wh.verify(got.raw!, headers), /signature/i);
    });
    await t.step(
      "a sender with another secret: the receiver answers 401, a permanent failure, never retried",
      async () => {
        const other = crypto.randomUUID().slice(0, 8);
        const notify = notifierFor([r.appWebhookUrl], newWebhookSecret());
        await notify.send({ severity: "info", title: other, text: "x", dedupeKey: other });
        const attempts = mine(r, other);
        assert.equal(attempts.length, 1, "a 4xx is not retried in process either");
        assert.equal(attempts[0].status, 401);
        assert.match(attempts[0].verifyError ?? "", /signature/i);
        const [row] = await rowsOf(`message:${other}`);
        assert.deepEqual([row.status, row.attempts], ["failed", 1]);
        assert.match(row.last_error, /HTTP 401/);
        await makeDue(`message:${other}`);
        await notify.drain!();
        assert.equal(mine(r, other).length, 1, "a failed row is not sent again");
      },
    );
  } finally {
    await r.close();
  }
});

Deno.test("webhook channel: a 5xx is retried by the outbox's backoff and delivered once; a 4xx fails at once", async (t) => {
  const r = await startReceivers({ appWebhookSecret: APP_WEBHOOK_TEST_SECRET });
  try {
    const notify = notifierFor([r.appWebhookUrl]);
    await t.step("5xx twice (first try and the in-process retry), then delivered by a later drain", async () => {
      const marker = crypto.randomUUID().slice(0, 8);
      r.control.failNext("webhook", 2, { status: 503 });
      await notify.send({ severity: "warning", title: marker, text: "x", dedupeKey: marker });
      let [row] = await rowsOf(`message:${marker}`);
      assert.equal(row.status, "pending");
      assert.match(row.last_error, /HTTP 503/);
      await makeDue(`message:${marker}`);
      await notify.drain!();
      await notify.drain!();
      [row] = await rowsOf(`message:${marker}`);
      assert.equal(row.status, "sent");
      const delivered = mine(r, marker).filter((x) => x.status === 200);
      assert.equal(delivered.length, 1);
      assert.equal(delivered[0].headers["webhook-id"], `message:${marker}`);
    });
    await t.step("400: failed after one attempt, as the outbox treats every permanent 4xx", async () => {
      const marker = crypto.randomUUID().slice(0, 8);
      r.control.failNext("webhook", 1, { status: 400 });
      await notify.send({ severity: "warning", title: marker, text: "x", dedupeKey: marker });
      const [row] = await rowsOf(`message:${marker}`);
      assert.deepEqual([row.status, row.attempts], ["failed", 1]);
    });
  } finally {
    await r.close();
  }
});

Deno.test("webhook channel: a receiver down then up gets the event once, with the same webhook-id; a redelivery after a crash carries that id and the same bytes", async () => {
  const first = await startReceivers({ appWebhookSecret: APP_WEBHOOK_TEST_SECRET });
  const url = first.appWebhookUrl;
  const port = Number(new URL(url).port);
  await first.close(); // down: nothing listens on the port
  const notify = notifierFor([url]);
  const marker = crypto.randomUUID().slice(0, 8);
  const key = `message:${marker}`;
  await notify.send({ severity: "critical", title: marker, text: "while down", dedupeKey: marker });
  let [row] = await rowsOf(key);
  assert.equal(row.status, "pending");
  assert.match(row.last_error, /unreachable/);
  assert.ok(!row.last_error.includes(url), "the URL is not in the stored error");
  const r = await startReceivers({ port, appWebhookSecret: APP_WEBHOOK_TEST_SECRET }); // up again
  try {
    await makeDue(key);
    await notify.drain!();
    await notify.drain!();
    [row] = await rowsOf(key);
    assert.equal(row.status, "sent");
    const got = mine(r, marker);
    assert.equal(got.length, 1, "delivered once");
    assert.equal(got[0].status, 200);
    assert.equal(got[0].headers["webhook-id"], key);

    // a drainer that died after the receiver accepted: the row is claimed again and sent again, same id and body
    await testSql()`update maintenance.notification_outbox set status = 'pending', next_attempt_at = now(),
      sent_at = null, settled_at = null where id = ${row.id}`;
    await drainOutbox(testSql(), notify.channels!, { ids: [Number(row.id)] });
    const again = mine(r, marker);
    assert.equal(again.length, 2);
    assert.equal(again[1].headers["webhook-id"], key, "the receiver can dedupe on webhook-id");
    assert.equal(again[1].raw, again[0].raw, "the same body");
    assert.equal(again[1].duplicate, true, "the receiver saw the id before");
    new Webhook(APP_WEBHOOK_TEST_SECRET).verify(again[1].raw!, again[1].headers);
  } finally {
    await r.close();
  }
});

Deno.test("webhook channel: each endpoint has its own row, so one that is down neither delays nor duplicates the other", async () => {
  const up = await startReceivers({ appWebhookSecret: APP_WEBHOOK_TEST_SECRET });
  const down = await startReceivers({ appWebhookSecret: APP_WEBHOOK_TEST_SECRET });
  try {
    const notify = notifierFor([up.appWebhookUrl, down.appWebhookUrl]);
    assert.deepEqual(
      notify.channels!.map((c) => c.name),
      [webhookChannelName(up.appWebhookUrl), webhookChannelName(down.appWebhookUrl)],
    );
    const marker = crypto.randomUUID().slice(0, 8);
    down.control.failNext("webhook", 3, { status: 500 });
    await notify.send({ severity: "warning", title: marker, text: "x", dedupeKey: marker });
    const rows = await rowsOf(`message:${marker}`);
    assert.deepEqual(rows.map((x) => x.status), ["sent", "pending"]);
    await makeDue(`message:${marker}`);
    await notify.drain!();
    assert.deepEqual((await rowsOf(`message:${marker}`)).map((x) => x.status), ["sent", "sent"]);
    assert.equal(mine(up, marker).length, 1, "the endpoint that was up got it once");
    assert.equal(mine(down, marker).filter((x) => x.status === 200).length, 1);
  } finally {
    await up.close();
    await down.close();
  }
});

Deno.test("runJob() tells the application webhooks each run's result (job.completed), and no other channel", async () => {
  const r = await startReceivers({ appWebhookSecret: APP_WEBHOOK_TEST_SECRET });
  try {
    const env = { ...envFor([r.appWebhookUrl]), SLACK_WEBHOOK_URL: r.slackUrl };
    const deps = testDeps({ env });
    const slackBefore = r.control.attempts("slack").length;
    const response = await runJob(deps, cleanupLogs, {
      input: cleanupLogs.input.parse(cleanupLogs.sampleInput),
      trigger: "test",
    });
    const got = r.control.received("webhook").filter((x) => x.headers["webhook-id"] === `job:${response.runId}`);
    assert.equal(got.length, 1);
    const body = new Webhook(APP_WEBHOOK_TEST_SECRET).verify(got[0].raw!, got[0].headers) as Record<string, unknown>;
    assert.equal(body.type, "job.completed");
    const data = body.data as Record<string, unknown>;
    assert.deepEqual(
      [data.job, data.runId, data.status, data.startedAt, data.finishedAt, data.trigger, data.dryRun],
      ["cleanup-logs", response.runId, response.status, response.startedAt, response.finishedAt, "test", true],
    );
    assert.equal(typeof data.summary, "string");
    assert.ok(!("report" in data), "the report stays in job_runs");
    assert.equal(r.control.attempts("slack").length, slackBefore, "Slack does not hear of every run");
    const rows = await testSql()`select channel, kind, status from maintenance.notification_outbox
      where dedupe_key = ${`job:${response.runId}`}`;
    assert.deepEqual(rows.map((x) => [x.channel, x.kind, x.status]), [[
      webhookChannelName(r.appWebhookUrl),
      "job",
      "sent",
    ]]);
  } finally {
    await r.close();
  }
});

Deno.test("a logged-out tenant's alert reaches the application webhook: alert.firing with tenant, kind, severity, summary and fix command, then alert.resolved", async () => {
  const f = await healthFixture();
  const r = await startReceivers({ appWebhookSecret: APP_WEBHOOK_TEST_SECRET });
  try {
    const config = testConfig({
      ...envFor([r.appWebhookUrl]),
      EVOLUTION_API_URL: f.sim.url,
      EVOLUTION_API_KEY: f.sim.apiKey,
    });
    const deps = { ...f.deps, config, notify: createNotifier(config, { sql: testSql() }) };
    const run = (slug: string) => runHealthCheck(deps, { runId: crypto.randomUUID(), input: { tenants: [slug] } });
    const t = await f.tenant("wh-401");
    await run(t.slug);
    f.sim.control.setState(t.instance, "close"); // a logout: 401
    for (let i = 0; i < 3; i++) await run(t.slug);
    const fingerprint = `logged_out:${t.slug}`;
    const events = () =>
      r.control.received("webhook").map((x) => ({
        id: x.headers["webhook-id"],
        body: new Webhook(APP_WEBHOOK_TEST_SECRET).verify(x.raw!, x.headers) as {
          type: string;
          data: Record<string, unknown>;
        },
      })).filter((e) => e.body.data.fingerprint === fingerprint);
    await waitFor("the alert", () => Promise.resolve(events().length > 0 || null), 5000);
    const [firing] = events();
    assert.equal(firing.body.type, "alert.firing");
    assert.match(firing.id, /^alert:\d+:firing$/);
    const d = firing.body.data;
    assert.deepEqual(
      [d.kind, d.scope, (d.tenant as { slug: string }).slug, d.severity, d.status, d.fix],
      ["logged_out", "tenant", t.slug, "warning", "firing", `npm run ops -- reconnect ${t.slug}`],
    );
    assert.equal(typeof d.summary, "string");
    assert.ok(String(d.summary).length > 0);

    f.sim.control.setState(t.instance, "open"); // paired again
    for (let i = 0; i < 3; i++) await run(t.slug);
    await waitFor("the resolution", () => Promise.resolve(events().length > 1 || null), 5000);
    const resolved = events()[1];
    assert.equal(resolved.body.type, "alert.resolved");
    assert.equal(resolved.body.data.status, "resolved");
    assert.equal(resolved.body.data.fix, null, "nothing to fix once resolved");
    assert.equal(events().length, 2, "one FIRING, one RESOLVED");
  } finally {
    await r.close();
    await f.close();
  }
});

Deno.test("sendDirect() (the database is down) retries a 5xx with the same webhook-id and body", async () => {
  const r = await startReceivers({ appWebhookSecret: APP_WEBHOOK_TEST_SECRET });
  try {
    const notify = createNotifier(testConfig(envFor([r.appWebhookUrl])), {}); // no database
    const marker = crypto.randomUUID().slice(0, 8);
    r.control.failNext("webhook", 1, { status: 502 });
    const [result] = await notify.sendDirect!({ severity: "critical", title: marker, text: "database down" });
    assert.equal(result.ok, true);
    const got = mine(r, marker);
    assert.deepEqual(got.map((x) => x.status), [502, 200]);
    assert.equal(got[0].headers["webhook-id"], got[1].headers["webhook-id"]);
    assert.match(got[1].headers["webhook-id"], /^message:[0-9a-f-]{36}$/);
    assert.equal(got[0].body.timestamp, got[1].body.timestamp);
  } finally {
    await r.close();
  }
});

Deno.test("alert_fix_command() names the repair for the kinds that have one and quotes an odd slug for the shell", async () => {
  const rows = await testSql()<{ kind: string; cmd: string | null }[]>`
    select k as kind, maintenance.alert_fix_command(k, s) as cmd
    from (values ('socket_dead', 'acme'), ('logged_out', 'acme'), ('flapping', 'acme'), ('evolution_down', null),
                 ('socket_dead', $$a'b; rm -rf /$$)) v(k, s)`;
  assert.deepEqual(rows.map((x) => x.cmd), [
    "npm run ops -- fix acme",
    "npm run ops -- reconnect acme",
    null,
    null,
    `npm run ops -- fix 'a'\\''b; rm -rf /'`,
  ]);
});

Deno.test("webhookBody() of an alert row queued before 20261202008500 (no alert object) still names the alert", () => {
  const body = webhookBody({
    id: "alert:1:firing",
    kind: "firing",
    createdAt: new Date("2026-12-01T00:00:00Z"),
    payload: {
      severity: "critical",
      title: "[FIRING] Evolution API unreachable",
      text: "t",
      fields: { alert: "evolution_down", severity: "critical", fingerprint: "evolution_down" },
      alertId: 1,
    },
  });
  assert.equal(body.type, "alert.firing");
  assert.deepEqual([body.data.kind, body.data.summary, body.data.tenant], [
    "evolution_down",
    "Evolution API unreachable",
    null,
  ]);
});

Deno.test("channelsFor() adds one webhook channel per distinct URL, only with a secret; loadConfig refuses URLs without one", () => {
  const config = testConfig(envFor(["https://app.example.com/h", "https://app.example.com/h", "https://b.example/x"]));
  assert.deepEqual(channelsFor(config).map((c) => c.name), [
    webhookChannelName("https://app.example.com/h"),
    webhookChannelName("https://b.example/x"),
  ]);
  assert.match(webhookChannelName("https://app.example.com/h?token=abc"), /^webhook:[0-9a-f]{8}$/);
  assert.throws(() => testConfig({ APP_WEBHOOK_URLS: "https://app.example.com/h" }), /APP_WEBHOOK_SECRET/);
  assert.throws(() => testConfig(envFor(["https://app.example.com/h"], "not-a-secret")), /APP_WEBHOOK_SECRET/);
  assert.ok(webhookChannel("https://app.example.com/h", APP_WEBHOOK_TEST_SECRET).deliverEvent);
});
