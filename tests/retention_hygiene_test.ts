// Nothing grows forever: cleanup-logs on the real local Postgres purges resolved alerts, settled notifications
// (sent, failed, dead) and folds old cross-tenant attempts into one row per tenant, claimed instance and hour.
import assert from "node:assert/strict";
import { cleanupLogs } from "../shared/jobs/cleanup_logs.ts";
import { runJob } from "../shared/jobs/runner.ts";
import { testDeps, testSql, uniqueSlug } from "./_helpers.ts";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

async function cleanup(now: Date, dryRun = false) {
  const deps = testDeps({ now: () => now });
  const r = await runJob(deps, cleanupLogs, { input: cleanupLogs.input.parse({ dryRun }), trigger: "test" });
  assert.equal(r.status, "ok", JSON.stringify(r.report));
  return r.report as Record<string, unknown>;
}

Deno.test("cleanup-logs purges alerts resolved past their retention and never a firing one", async () => {
  const sql = testSql();
  const tag = uniqueSlug("rh-al");
  const now = new Date();
  const at = (days: number) => new Date(now.getTime() - days * DAY);
  const rows = [
    { fp: `${tag}:old-resolved`, status: "resolved", started: at(120), resolved: at(100) },
    { fp: `${tag}:recent-resolved`, status: "resolved", started: at(20), resolved: at(10) },
    { fp: `${tag}:old-firing`, status: "firing", started: at(200), resolved: null },
  ];
  for (const r of rows) {
    await sql`insert into maintenance.alerts (fingerprint, kind, scope, status, severity, summary, started_at,
        last_seen_at, resolved_at)
      values (${r.fp}, 'test', 'platform', ${r.status}, 'warning', 'x', ${r.started}, ${r.started}, ${r.resolved})`;
  }
  const [{ id: oldId }] = await sql<{ id: number }[]>`
    select id from maintenance.alerts where fingerprint = ${`${tag}:old-resolved`}`;
  await sql`select maintenance.enqueue_notification(${`${tag}:n`}, '{"title":"x"}', array['log'], ${oldId}, 'resolved')`;
  try {
    const dry = await cleanup(now, true);
    assert.ok((dry.wouldDelete as Record<string, number>)["maintenance.alerts"] >= 1);
    assert.equal((await sql`select 1 from maintenance.alerts where fingerprint like ${tag + "%"}`).length, 3);
    await cleanup(now);
    const left = await sql<{ fingerprint: string }[]>`
      select fingerprint from maintenance.alerts where fingerprint like ${tag + "%"} order by 1`;
    assert.deepEqual(left.map((r) => r.fingerprint), [`${tag}:old-firing`, `${tag}:recent-resolved`]);
    assert.equal(
      (await sql`select 1 from maintenance.notification_outbox where dedupe_key = ${`${tag}:n`}`).length,
      0,
      "its notifications went with it",
    );
  } finally {
    await sql`delete from maintenance.alerts where fingerprint like ${tag + "%"}`;
  }
});

Deno.test("cleanup-logs purges notifications settled past their retention: sent, failed, and dead ones", async () => {
  const sql = testSql();
  const tag = uniqueSlug("rh-ob");
  const now = new Date();
  const ago = (days: number) => new Date(now.getTime() - days * DAY);
  const insert = async (key: string, status: string, created: Date, sent: Date | null) => {
    await sql`insert into maintenance.notification_outbox (dedupe_key, channel, kind, payload, status, created_at,
        sent_at, next_attempt_at)
      values (${`${tag}:${key}`}, 'log', 'message', '{}', ${status}, ${created}, ${sent}, ${created})`;
  };
  await insert("sent-old", "sent", ago(40), ago(40));
  await insert("sent-recent", "sent", ago(5), ago(5));
  await insert("pending-recent", "pending", ago(1), null);
  await insert("pending-dead", "pending", ago(45), null);
  await insert("failed", "failed", ago(3), null);
  // a row that failed long ago: its settled date is the failure's
  await sql`update maintenance.notification_outbox set settled_at = ${ago(35)} where dedupe_key = ${`${tag}:failed`}`;
  const state = async () =>
    Object.fromEntries(
      (await sql<{ k: string; status: string }[]>`
        select substr(dedupe_key, length(${tag}) + 2) as k, status from maintenance.notification_outbox
        where dedupe_key like ${tag + ":%"}`).map((r) => [r.k, r.status]),
    );
  try {
    const [{ settled }] = await sql<{ settled: Date | null }[]>`
      select settled_at as settled from maintenance.notification_outbox where dedupe_key = ${`${tag}:sent-recent`}`;
    assert.equal(new Date(settled!).getTime(), ago(5).getTime(), "a sent row is settled when it was sent");
    const dry = await cleanup(now, true);
    assert.ok((dry.deadNotificationsToExpire as number) >= 1);
    assert.equal(Object.keys(await state()).length, 5, "a dry run changes nothing");
    assert.equal((await state())["pending-dead"], "pending");

    const run = await cleanup(now);
    assert.ok((run.deadNotificationsExpired as number) >= 1);
    assert.deepEqual(await state(), {
      "sent-recent": "sent",
      "pending-recent": "pending",
      "pending-dead": "failed",
    });
    const [dead] = await sql<{ last_error: string; settled_at: Date }[]>`
      select last_error, settled_at from maintenance.notification_outbox where dedupe_key = ${`${tag}:pending-dead`}`;
    assert.match(dead.last_error, /never delivered within 30 days/);
    assert.ok(dead.settled_at, "a dead row is settled: the policy takes it 30 days later");
    // 31 days on (only the outbox's own steps: a whole cleanup run then would purge every other test's rows)
    const later = new Date(now.getTime() + 31 * DAY);
    await sql`select maintenance.expire_dead_notifications(${later})`;
    await sql`select maintenance.purge_policy_batch('maintenance.notification_outbox', ${later}, 100000)`;
    assert.deepEqual(
      await state(),
      { "pending-recent": "failed" },
      "31 days on, only the row still pending is left, now dead",
    );
  } finally {
    await sql`delete from maintenance.notification_outbox where dedupe_key like ${tag + ":%"}`;
  }
});

Deno.test("cleanup-logs folds cross-tenant attempts older than a day into one row per tenant, instance and hour", async () => {
  const sql = testSql();
  const slug = uniqueSlug("rh-ct");
  const now = new Date();
  const twoDays = Math.floor((now.getTime() - 2 * DAY) / HOUR) * HOUR + 60_000;
  const rows: Array<{ at: Date; claimed: string; event: string }> = [];
  for (let i = 0; i < 50; i++) {
    rows.push({ at: new Date(twoDays + i * 2 * 60_000), claimed: "revalya-victim", event: "connection.update" });
  }
  for (let i = 0; i < 3; i++) {
    rows.push({ at: new Date(twoDays + i * 1000), claimed: "revalya-other", event: "messages.upsert" });
  }
  rows.push({ at: new Date(now.getTime() - HOUR), claimed: "revalya-victim", event: "connection.update" });
  for (const r of rows) {
    await sql`insert into public.api_logs (created_at, tenant_slug, service, event, status, error_type, data)
      values (${r.at}, ${slug}, 'whatsapp', 'cross_tenant_attempt', 'error', 'cross_tenant',
        ${sql.json({ claimedInstance: r.claimed, expectedInstance: `revalya-${slug}`, event: r.event })})`;
  }
  try {
    const dry = await cleanup(now, true);
    assert.ok((dry.crossTenantCollapsed as { folded: number }).folded >= 53);
    assert.equal((await sql`select 1 from maintenance.cross_tenant_hourly where tenant_slug = ${slug}`).length, 0);

    const run = await cleanup(now);
    assert.ok((run.crossTenantCollapsed as { folded: number }).folded >= 53);
    const raw = await sql`select 1 from public.api_logs where tenant_slug = ${slug}`;
    assert.equal(raw.length, 1, "the attempt of the last day stays as it came");
    const hourly = await sql<{ claimed_instance: string; attempts: number; events: Record<string, number> }[]>`
      select claimed_instance, attempts::int, events from maintenance.cross_tenant_hourly
      where tenant_slug = ${slug} order by claimed_instance, hour`;
    assert.equal(hourly.reduce((s, h) => s + h.attempts, 0), 53, "every attempt is counted once");
    assert.ok(hourly.length <= 4, `one row per instance and hour (${hourly.length})`);
    assert.deepEqual(hourly.find((h) => h.claimed_instance === "revalya-other"), {
      claimed_instance: "revalya-other",
      attempts: 3,
      events: { "messages.upsert": 3 },
    });
    await cleanup(now);
    const again = await sql<{ n: number }[]>`
      select sum(attempts)::int as n from maintenance.cross_tenant_hourly where tenant_slug = ${slug}`;
    assert.equal(again[0].n, 53, "a second run folds nothing twice");
    const [seen] = await sql<{ attempts: number }[]>`
      select attempts::int from maintenance.cross_tenant_attempts('3 days', ${now}) where tenant_slug = ${slug}`;
    assert.equal(seen.attempts, 54, "the isolation audit's count reads the folded hours and the raw day alike");

    // a late attempt of an hour already folded adds to that hour's row
    await sql`insert into public.api_logs (created_at, tenant_slug, service, event, status, error_type, data)
      values (${new Date(twoDays + 60_000)}, ${slug}, 'whatsapp', 'cross_tenant_attempt', 'error', 'cross_tenant',
        ${sql.json({ claimedInstance: "revalya-other", event: "messages.upsert" })})`;
    await cleanup(now);
    const [other] = await sql<{ attempts: number; events: Record<string, number> }[]>`
      select attempts::int, events from maintenance.cross_tenant_hourly
      where tenant_slug = ${slug} and claimed_instance = 'revalya-other'`;
    assert.deepEqual(other, { attempts: 4, events: { "messages.upsert": 4 } });
  } finally {
    await sql`delete from public.api_logs where tenant_slug = ${slug}`;
    await sql`delete from maintenance.cross_tenant_hourly where tenant_slug = ${slug}`;
  }
});
