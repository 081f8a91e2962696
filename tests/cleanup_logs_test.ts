// cleanup-logs on the real local Postgres: exact retention boundary, batches under a time budget, dry run, the
// retention policies (sessions, pg_cron history, pg_net responses, late-bound tables), and the HTTP path.
import assert from "node:assert/strict";
import { cleanupLogs } from "../shared/jobs/cleanup_logs.ts";
import { runJob } from "../shared/jobs/runner.ts";
import { isolationAudit, type Violation } from "../shared/jobs/isolation_audit.ts";
import { WEBHOOK_TOKEN_HEADER, webhookToken } from "../shared/naming.ts";
import { createWebhookApp } from "../shared/webhook/app.ts";
import { adminSql, callFunction, createTenant, testDeps, testSql, uniqueSlug } from "./_helpers.ts";
import { opsFixture } from "./ops_fixture.ts";

const DAY = 86_400_000;

/** Inserts api_logs rows for one slug at the given instants; returns how many. */
async function insertLogs(slug: string, instants: Date[]) {
  const sql = testSql();
  const rows = instants.map((at, i) => ({
    tenant_slug: slug,
    service: "whatsapp",
    event: "connection_state",
    status: "success",
    response_time: i,
    created_at: at,
  }));
  for (let i = 0; i < rows.length; i += 5000) {
    const chunk = rows.slice(i, i + 5000);
    await sql`insert into public.api_logs ${
      sql(chunk, "tenant_slug", "service", "event", "status", "response_time", "created_at")
    }`;
  }
}

async function logsOf(slug: string): Promise<Date[]> {
  const rows = await testSql()<{ created_at: Date }[]>`
    select created_at from public.api_logs where tenant_slug = ${slug} order by created_at`;
  return rows.map((r) => new Date(r.created_at));
}

Deno.test("cleanupLogs() removes exactly the api_logs rows older than the retention, the boundary kept", async () => {
  const slug = uniqueSlug("cl");
  const now = new Date(Math.floor(Date.now() / 1000) * 1000);
  const cutoff = new Date(now.getTime() - 30 * DAY);
  const expired = [
    new Date(cutoff.getTime() - 400 * DAY),
    new Date(cutoff.getTime() - DAY),
    new Date(cutoff.getTime() - 1),
  ];
  const kept = [cutoff, new Date(cutoff.getTime() + 1), new Date(now.getTime() - DAY), now];
  await insertLogs(slug, [...expired, ...kept]);

  const deps = testDeps({ now: () => now, env: { LOG_RETENTION_DAYS: "30" } });
  const dry = await runJob(deps, cleanupLogs, { input: cleanupLogs.input.parse({ dryRun: true }), trigger: "test" });
  assert.equal(dry.status, "ok", JSON.stringify(dry.report));
  assert.equal(dry.dryRun, true);
  const wouldDelete = (dry.report.wouldDelete as Record<string, number>)["public.api_logs"];
  assert.ok(wouldDelete >= expired.length, `the dry run counts at least our ${expired.length} expired rows`);
  assert.equal((await logsOf(slug)).length, expired.length + kept.length, "a dry run deletes nothing");

  const run = await runJob(deps, cleanupLogs, { input: cleanupLogs.input.parse({}), trigger: "test" });
  assert.equal(run.status, "ok", JSON.stringify(run.report));
  assert.equal(run.report.remaining, false);
  assert.deepEqual(
    (await logsOf(slug)).map((d) => d.toISOString()),
    kept.map((d) => d.toISOString()),
    "only the rows at or after the cut-off remain",
  );
  const apiLogs = (run.report.tables as { table: string; deleted: number; cutoff: string }[])
    .find((t) => t.table === "public.api_logs")!;
  assert.equal(apiLogs.cutoff, cutoff.toISOString());
  assert.ok(apiLogs.deleted >= expired.length);
  const [stored] = await testSql()`select status, report from maintenance.job_runs where id = ${run.runId}`;
  assert.equal(stored.status, "ok");
  assert.equal(stored.report.totalDeleted, run.report.totalDeleted, "the report is stored in job_runs");
});

Deno.test("cleanupLogs() keeps a tenant's latest connection.update however old, and only that one", async () => {
  const sql = testSql();
  const slug = uniqueSlug("cl");
  const old = (days: number) => new Date(Date.now() - days * DAY);
  for (const [days, state] of [[300, "close"], [200, "open"]] as const) {
    await sql`insert into public.api_logs (tenant_slug, service, event, status, data, created_at)
      values (${slug}, 'whatsapp', 'connection.update', 'success', ${sql.json({ state })}, ${old(days)})`;
  }
  await insertLogs(slug, [old(250)]);
  const run = await runJob(testDeps(), cleanupLogs, { input: cleanupLogs.input.parse({}), trigger: "test" });
  assert.equal(run.status, "ok", JSON.stringify(run.report));
  assert.equal(run.report.remaining, false, "the kept row does not count as work left");
  const left = await sql`select event, data ->> 'state' as state from public.api_logs where tenant_slug = ${slug}`;
  assert.deepEqual(left.map((r) => ({ ...r })), [{ event: "connection.update", state: "open" }]);
});

Deno.test("cleanupLogs() after a cross-tenant connection.update attempt keeps the tenant's last real state and uptime; the audit still reports it", async () => {
  const sql = testSql();
  const f = await opsFixture();
  try {
    const a = await createTenant({ prefix: "cl-x" });
    const b = await createTenant({ prefix: "cl-x" });
    const old = (days: number) => new Date(Date.now() - days * DAY);
    // A connected 200 days ago and stayed connected: that open is its current state, long past the retention
    for (const [days, state] of [[300, "close"], [200, "open"]] as const) {
      await sql`insert into public.api_logs (tenant_slug, service, event, status, data, created_at)
        values (${a.slug}, 'whatsapp', 'connection.update', 'success', ${sql.json({ state })}, ${old(days)})`;
    }
    const asOf = new Date();
    const uptimeOf = async () => {
      const [row] = await sql`select state_at_start, uptime_pct::float8 as uptime from maintenance.tenant_uptime(
        ${new Date(asOf.getTime() - DAY)}, ${asOf}) where tenant_slug = ${a.slug}`;
      return { ...row };
    };
    const boardOf = async () => ({
      dashboard: (await sql`select state, last_webhook_state from maintenance.dashboard_tenants
        where tenant_slug = ${a.slug}`).map((r) => ({ ...r })),
      statusPage: (await sql`select state, availability_24h, availability_7d
        from maintenance.status_page_tenants(${asOf}, 10, ${a.slug})`).map((r) => ({ ...r })),
    });
    const before = { uptime: await uptimeOf(), board: await boardOf() };
    assert.deepEqual(before.uptime, { state_at_start: "open", uptime: 100 });

    // B's instance posts a connection.update to A's webhook URL (with A's token): rejected and logged against A
    const secret = testDeps().config.webhookSecret;
    const res = await createWebhookApp(testDeps()).request(`/whatsapp-webhook/api/whatsapp/webhook/${a.slug}`, {
      method: "POST",
      headers: { "content-type": "application/json", [WEBHOOK_TOKEN_HEADER]: await webhookToken(a.slug, secret) },
      body: JSON.stringify({
        event: "connection.update",
        instance: `revalya-${b.slug}`,
        data: { instance: `revalya-${b.slug}`, state: "close", statusReason: 401 },
        date_time: new Date().toISOString(),
      }),
    });
    assert.equal(res.status, 403);
    await res.body?.cancel();

    const run = await runJob(testDeps(), cleanupLogs, { input: cleanupLogs.input.parse({}), trigger: "test" });
    assert.equal(run.status, "ok", JSON.stringify(run.report));
    const left = await sql`select event, status, data ->> 'state' as state from public.api_logs
      where tenant_slug = ${a.slug} order by id`;
    assert.deepEqual(left.map((r) => ({ ...r })), [
      { event: "connection.update", status: "success", state: "open" },
      { event: "cross_tenant_attempt", status: "error", state: null },
    ], "the tenant's last real state stays; the rejected event is no state of it");
    assert.deepEqual(await uptimeOf(), before.uptime, "the uptime report still starts the day open: 100 %");
    assert.deepEqual(await boardOf(), before.board, "the dashboard and the status page are unchanged");

    const audit = await runJob(f.deps, isolationAudit, {
      input: isolationAudit.input.parse({ apply: false, tenants: [a.slug] }),
      trigger: "test",
    });
    const cross = (audit.report.violations as Violation[]).find((v) => v.kind === "cross_tenant_attempts");
    assert.equal(cross?.tenant, a.slug, JSON.stringify(audit.report.violations));
    assert.deepEqual(cross?.current, { attempts: 1 });
    const sample = cross?.evidence?.sample as { event: string; data: { claimedInstance: string } };
    assert.deepEqual([sample.event, sample.data.claimedInstance], ["connection.update", `revalya-${b.slug}`]);
  } finally {
    await f.close();
  }
});

Deno.test("cleanupLogs() purges in batches and leaves the rest to the next run when its time budget is spent", async () => {
  const slug = uniqueSlug("cl");
  const base = Date.now() - 200 * DAY;
  await insertLogs(slug, Array.from({ length: 1000 }, (_, i) => new Date(base + i * 1000)));
  await insertLogs(slug, [new Date()]);

  // A clock that moves 40 s on every reading: the 60 s budget runs out after a batch or two.
  let tick = 0;
  const t0 = Date.now();
  const slow = testDeps({ now: () => new Date(t0 + 40_000 * tick++) });
  const first = await runJob(slow, cleanupLogs, {
    input: cleanupLogs.input.parse({ batchSize: 100, maxSeconds: 60 }),
    trigger: "test",
  });
  assert.equal(first.status, "ok", JSON.stringify(first.report));
  assert.equal(first.report.remaining, true, "the run says work is left");
  const left = (await logsOf(slug)).length;
  assert.ok(left > 1 && left < 1001, `some but not all of the expired rows went (left ${left})`);
  const apiLogs = (first.report.tables as { table: string; deleted: number; batches: number; remaining: boolean }[])
    .find((t) => t.table === "public.api_logs")!;
  assert.equal(apiLogs.remaining, true);
  assert.ok(apiLogs.batches >= 1);
  assert.equal(apiLogs.deleted % 100, 0, "whole batches of 100 were deleted");

  const second = await runJob(testDeps(), cleanupLogs, {
    input: cleanupLogs.input.parse({ batchSize: 100 }),
    trigger: "test",
  });
  assert.equal(second.status, "ok", JSON.stringify(second.report));
  assert.equal(second.report.remaining, false, "the next run finishes the work");
  assert.equal((await logsOf(slug)).length, 1, "only the recent row is left");
});

Deno.test("cleanupLogs() applies the retention policies: sessions, pg_cron history, scheduled calls, job runs", async () => {
  const sql = testSql();
  const { tenantId } = await createTenant({ prefix: "cl" });
  const now = new Date();
  const ago = (ms: number) => new Date(now.getTime() - ms);
  const sessions = await sql<{ id: string; expires_at: Date | null }[]>`
    insert into public.tenant_sessions_audit (tenant_id, expires_at)
    values (${tenantId}, ${ago(1000)}), (${tenantId}, ${ago(-DAY)}), (${tenantId}, null)
    returning id, expires_at`;
  // pg_cron writes its history itself (as the superuser); postgres may only read and delete it, as on Supabase
  const [oldCron, newCron] = await adminSql()<{ runid: string }[]>`
    insert into cron.job_run_details (jobid, job_pid, database, username, command, status, return_message,
      start_time, end_time)
    values (0, 0, 'postgres', 'postgres', 'select 1', 'succeeded', '1 row', ${ago(8 * DAY)}, ${ago(8 * DAY)}),
           (0, 0, 'postgres', 'postgres', 'select 1', 'succeeded', '1 row', ${ago(6 * DAY)}, ${ago(6 * DAY)})
    returning runid`;
  const callIds = [-Math.floor(Math.random() * 1e12) - 1, -Math.floor(Math.random() * 1e12) - 1];
  await sql`insert into maintenance.scheduled_calls (request_id, job, requested_at, settled_at)
    values (${callIds[0]}, 'health-check', ${ago(31 * DAY)}, ${ago(31 * DAY)}),
           (${callIds[1]}, 'health-check', ${ago(29 * DAY)}, ${ago(29 * DAY)})`;
  const [oldRun, newRun] = await sql<{ id: string }[]>`
    insert into maintenance.job_runs (job, status, started_at, trigger)
    values ('health-check', 'ok', ${ago(91 * DAY)}, 'test'), ('health-check', 'ok', ${ago(89 * DAY)}, 'test')
    returning id`;

  const run = await runJob(testDeps({ now: () => now }), cleanupLogs, {
    input: cleanupLogs.input.parse({}),
    trigger: "test",
  });
  assert.equal(run.status, "ok", JSON.stringify(run.report));
  const left = await sql<{ id: string }[]>`select id from public.tenant_sessions_audit where tenant_id = ${tenantId}`;
  assert.deepEqual(
    left.map((r) => r.id).sort(),
    [sessions[1].id, sessions[2].id].sort(),
    "the expired session went; the future and the open-ended ones stay",
  );
  const cron = await sql`select runid from cron.job_run_details where runid in (${oldCron.runid}, ${newCron.runid})`;
  assert.deepEqual(cron.map((r) => String(r.runid)), [String(newCron.runid)], "pg_cron history older than 7 days went");
  const calls = await sql`
    select request_id from maintenance.scheduled_calls where request_id in (${callIds[0]}, ${callIds[1]})`;
  assert.deepEqual(calls.map((r) => Number(r.request_id)), [callIds[1]], "scheduled calls older than 30 days went");
  const runs = await sql`select id from maintenance.job_runs where id in (${oldRun.id}, ${newRun.id})`;
  assert.deepEqual(runs.map((r) => r.id), [newRun.id], "job runs older than 90 days went");
  const deleted = run.report.deleted as Record<string, number>;
  for (const table of ["public.tenant_sessions_audit", "cron.job_run_details", "maintenance.scheduled_calls"]) {
    assert.ok(deleted[table] >= 1, `${table} is counted in the report`);
  }
  assert.ok(
    (run.report.skipped as { table: string }[]).every((s) => !["cron.job_run_details"].includes(s.table)),
    "existing tables are not skipped",
  );
});

Deno.test("cleanupLogs() purges a table registered later and skips a registered table that does not exist", async () => {
  const sql = testSql();
  const name = `receipts_${crypto.randomUUID().slice(0, 8)}`;
  const missing = `absent_${crypto.randomUUID().slice(0, 8)}`;
  // A table created after the retention migration, as another engineer's migration would.
  await sql.begin(async (tx) => {
    await tx`create table ${tx("maintenance." + name)} (id serial primary key, received_at timestamptz)`;
    await tx`insert into maintenance.retention_policies (relation, time_column, keep)
      values (${"maintenance." + name}, 'received_at', '7 days'), (${
      "maintenance." + missing
    }, 'received_at', '7 days')`;
  });
  try {
    await sql`insert into ${sql("maintenance." + name)} (received_at)
      values (now() - interval '8 days'), (now() - interval '6 days'), (null)`;
    const run = await runJob(testDeps(), cleanupLogs, { input: cleanupLogs.input.parse({}), trigger: "test" });
    assert.equal(run.status, "ok", JSON.stringify(run.report));
    assert.equal((run.report.deleted as Record<string, number>)["maintenance." + name], 1);
    const [{ n }] = await sql`select count(*)::int as n from ${sql("maintenance." + name)}`;
    assert.equal(n, 2, "the 8-day-old receipt went; the newer and the undated ones stay");
    assert.deepEqual(
      (run.report.skipped as { table: string; reason: string }[]).find((s) => s.table === "maintenance." + missing),
      { table: "maintenance." + missing, reason: "table does not exist" },
    );
  } finally {
    await sql`delete from maintenance.retention_policies where relation in (${"maintenance." + name}, ${
      "maintenance." + missing
    })`;
    await sql`drop table if exists ${sql("maintenance." + name)}`;
  }
});

Deno.test("cleanup-logs function answers a dry run over HTTP and rejects a bad maxSeconds naming the field", async () => {
  const res = await callFunction("cleanup-logs", { dryRun: true, trigger: "test" });
  assert.equal(res.status, 200, res.text);
  assert.equal(res.json.dryRun, true);
  assert.equal(res.json.status, "ok");
  assert.ok("wouldDelete" in (res.json.report as Record<string, unknown>));
  assert.ok("orphanIntegrations" in (res.json.report as Record<string, unknown>));
  const bad = await callFunction("cleanup-logs", { maxSeconds: 0 });
  assert.equal(bad.status, 400);
  assert.match(String((bad.json.error as { message: string }).message), /maxSeconds/);
  const big = await callFunction("cleanup-logs", { batchSize: 10_000_000 });
  assert.equal(big.status, 400);
  assert.match(String((big.json.error as { message: string }).message), /batchSize/);
});
