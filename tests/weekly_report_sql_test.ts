// The weekly report in SQL on fixtures with hand-computed answers: performance (counts, success rate, average and
// percentiles, errors by type, slowest tenants, per tenant), uptime from connection.update events, the report being
// the same before and after a purge of unrelated old rows, and the job storing and sending it.
import assert from "node:assert/strict";
import type { Notification } from "../shared/alerts/notify.ts";
import { runJob } from "../shared/jobs/runner.ts";
import { weeklyReport } from "../shared/jobs/weekly_report.ts";
import { callFunction, createTenant, testDeps, testSql } from "./_helpers.ts";

interface Row {
  slug: string;
  at: string;
  status?: string;
  rt?: number | null;
  errorType?: string | null;
  event?: string;
  state?: string;
}

async function insert(rows: Row[]) {
  const sql = testSql();
  for (const r of rows) {
    await sql`insert into public.api_logs (tenant_slug, service, event, status, error_type, response_time, data,
      created_at)
      values (${r.slug}, 'whatsapp', ${r.event ?? (r.state ? "connection.update" : "connect")}, ${
      r.status ?? "success"
    }, ${r.errorType ?? null}, ${r.rt ?? null}, ${r.state ? sql.json({ state: r.state }) : null}, ${r.at})`;
  }
}

/** Clears a window reserved for one test, so a rerun on the same stack starts from the same data. */
async function clearWindow(from: string, to: string) {
  await testSql()`delete from public.api_logs where created_at >= ${from} and created_at < ${to}`;
}

Deno.test("performance_metrics() matches hand-computed figures overall and per tenant", async () => {
  const sql = testSql();
  await clearWindow("2001-12-31", "2002-01-09");
  const a = "wr-perf-a", b = "wr-perf-b";
  await insert([
    { slug: a, at: "2002-01-01T00:00:00Z", rt: 100 },
    { slug: a, at: "2002-01-02T00:00:00Z", rt: 200 },
    { slug: a, at: "2002-01-03T00:00:00Z", rt: 300, status: "error", errorType: "timeout" },
    { slug: a, at: "2002-01-04T00:00:00Z", rt: 400 },
    { slug: a, at: "2002-01-05T00:00:00Z", rt: null, event: "messages.upsert" },
    { slug: b, at: "2002-01-06T00:00:00Z", rt: 1000 },
    { slug: b, at: "2002-01-07T23:59:59.999Z", rt: 3000, status: "error" },
    // outside [since, until): just before and exactly at the end
    { slug: a, at: "2001-12-31T23:59:59.999Z", rt: 99999, status: "error" },
    { slug: a, at: "2002-01-08T00:00:00Z", rt: 99999, status: "error" },
  ]);
  const [{ m }] = await sql`
    select maintenance.performance_metrics('2002-01-01T00:00:00Z', '2002-01-08T00:00:00Z') as m`;
  assert.equal(m.totalRequests, 7);
  assert.equal(m.successCount, 5);
  assert.equal(m.errorCount, 2);
  assert.equal(m.successRate, 71.43);
  // samples 100, 200, 300, 400, 1000, 3000: mean 833.33; percentile_cont at p*(n-1) = 2.5, 4.75, 4.95
  assert.deepEqual(m.responseTime, { samples: 6, avg: 833.33, p50: 350, p95: 2500, p99: 2900 });
  assert.deepEqual(m.errorsByType, { timeout: 1, unknown: 1 });
  assert.equal(m.diagnosis, "high_error_rate");
  assert.deepEqual(m.slowestTenants, [
    { tenant: b, requests: 2, avg: 2000, p95: 2900 },
    { tenant: a, requests: 5, avg: 250, p95: 385 },
  ]);
  const byTenant = Object.fromEntries(
    (m.tenants as { tenant: string; [k: string]: unknown }[]).map((t) => [t.tenant, t]),
  );
  assert.deepEqual(Object.keys(byTenant).sort(), [a, b]);
  assert.deepEqual(byTenant[a], {
    tenant: a,
    totalRequests: 5,
    successCount: 4,
    errorCount: 1,
    successRate: 80,
    responseTime: { samples: 4, avg: 250, p50: 250, p95: 385, p99: 397 },
    errorsByType: { timeout: 1 },
    diagnosis: "high_error_rate",
  });
  assert.deepEqual(byTenant[b].responseTime, { samples: 2, avg: 2000, p50: 2000, p95: 2900, p99: 2980 });
  assert.equal(byTenant[b].successRate, 50);

  // the same figures straight from percentile_cont over the rows
  const [direct] = await sql`
    select percentile_cont(array[0.5, 0.95, 0.99]) within group (order by response_time) as p from public.api_logs
    where service = 'whatsapp' and created_at >= '2002-01-01T00:00:00Z' and created_at < '2002-01-08T00:00:00Z'`;
  assert.deepEqual(direct.p.map((v: number) => Math.round(v * 100) / 100), [
    m.responseTime.p50,
    m.responseTime.p95,
    m.responseTime.p99,
  ]);

  const [{ empty }] = await sql`
    select maintenance.performance_metrics('1990-01-01T00:00:00Z', '1990-01-02T00:00:00Z') as empty`;
  assert.equal(empty.totalRequests, 0);
  assert.equal(empty.successRate, null);
  assert.equal(empty.diagnosis, "normal", "no traffic is not a failure");
  await assert.rejects(
    sql`select maintenance.performance_metrics('2002-01-08T00:00:00Z', '2002-01-01T00:00:00Z')`,
    (e: { code?: string }) => e.code === "22023",
  );
});

Deno.test("diagnose_performance() follows the seed: slow_api above 5,000 ms, high_error_rate below 95 %", async () => {
  const sql = testSql();
  const rows =
    await sql`select maintenance.diagnose_performance(5001, 99) as a, maintenance.diagnose_performance(5000, 95) as b,
    maintenance.diagnose_performance(100, 94.99) as c, maintenance.diagnose_performance(6000, 10) as d`;
  assert.deepEqual({ ...rows[0] }, { a: "slow_api", b: "normal", c: "high_error_rate", d: "slow_api" });
});

Deno.test("usage_report() computes connections, per-tenant uptime and its average from state changes", async () => {
  const sql = testSql();
  await clearWindow("2002-12-01", "2003-01-09");
  const u1 = await createTenant({ prefix: "wr-up" });
  const u2 = await createTenant({ prefix: "wr-up" });
  const u3 = await createTenant({ prefix: "wr-up" });
  await insert([
    { slug: u1.slug, at: "2002-12-31T00:00:00Z", state: "open" }, // state at the start: open
    { slug: u1.slug, at: "2003-01-02T00:00:00Z", state: "close" },
    { slug: u1.slug, at: "2003-01-02T12:00:00Z", state: "connecting" },
    { slug: u1.slug, at: "2003-01-03T00:00:00Z", state: "open" },
    // no state before the period: the first 3 days are unknown
    { slug: u2.slug, at: "2003-01-04T00:00:00Z", state: "open" },
    { slug: u2.slug, at: "2003-01-07T00:00:00Z", state: "close" },
    { slug: u2.slug, at: "2003-01-08T00:00:00Z", state: "open" }, // at the end: outside
  ]);
  const [{ r }] = await sql`select maintenance.usage_report(7, '2003-01-08T00:00:00Z') as r`;
  assert.deepEqual(r.period, { days: 7, since: "2003-01-01T00:00:00+00:00", until: "2003-01-08T00:00:00+00:00" });
  assert.equal(r.totalConnections, 2);
  assert.equal(r.totalDisconnections, 2);
  const up = Object.fromEntries((r.uptime as { tenant: string; [k: string]: unknown }[]).map((u) => [u.tenant, u]));
  assert.deepEqual(up[u1.slug], {
    tenant: u1.slug,
    uptime: 85.71, // down 1 day of 7
    upSeconds: 518400,
    knownSeconds: 604800,
    unknownSeconds: 0,
    stateAtStart: "open",
    stateChanges: 3,
  });
  assert.deepEqual(up[u2.slug], {
    tenant: u2.slug,
    uptime: 75, // up 3 days of the 4 known
    upSeconds: 259200,
    knownSeconds: 345600,
    unknownSeconds: 259200,
    stateAtStart: null,
    stateChanges: 2,
  });
  assert.equal(up[u3.slug].uptime, null, "no event at all: unknown, not 0 %");
  assert.equal(up[u3.slug].unknownSeconds, 604800);
  assert.equal(r.averageUptime, 80.36, "average over the tenants whose uptime is known");
  assert.equal(r.uptimeKnownTenants, 2);
  assert.deepEqual(r.topActiveTenants, [{ tenant: u1.slug, activity: 3 }, { tenant: u2.slug, activity: 2 }]);
  const [counts] = await sql`select (select count(*)::int from public.tenants where is_active) as t,
    (select count(*)::int from public.tenant_integrations where integration_type = 'whatsapp' and is_active) as i`;
  assert.equal(r.totalTenants, counts.t);
  assert.equal(r.activeIntegrations, counts.i);
  await assert.rejects(sql`select maintenance.usage_report(0)`, (e: { code?: string }) => e.code === "22023");
});

Deno.test("usage_report() counts drops as disconnections: transient drops included, a close never preceded by an open not", async () => {
  const sql = testSql();
  await clearWindow("2006-01-01", "2006-01-09");
  const t = await createTenant({ prefix: "wr-drop" });
  const u = await createTenant({ prefix: "wr-drop" });
  await insert([
    { slug: t.slug, at: "2006-01-01T00:00:00Z", state: "open" }, // before the period: the state at its start
    { slug: t.slug, at: "2006-01-03T00:00:00Z", state: "connecting" }, // a transient drop (no close follows)
    { slug: t.slug, at: "2006-01-03T00:01:00Z", state: "open" },
    { slug: t.slug, at: "2006-01-04T00:00:00Z", state: "connecting" }, // a drop that ends in a logout
    { slug: t.slug, at: "2006-01-04T00:01:00Z", state: "close" },
    { slug: u.slug, at: "2006-01-05T00:00:00Z", state: "connecting" }, // never open: a pairing, then
    { slug: u.slug, at: "2006-01-05T00:01:00Z", state: "close" }, //       a close that is no disconnection
    // a cross-tenant attempt stored the old way: an error row under the claimed event, never a state
    { slug: u.slug, at: "2006-01-06T00:00:00Z", state: "open", status: "error", errorType: "cross_tenant" },
    { slug: u.slug, at: "2006-01-06T00:01:00Z", state: "connecting" },
    { slug: t.slug, at: "2006-01-09T00:00:00Z", state: "connecting" }, // at the end of the period: outside
  ]);
  const [{ r }] = await sql`select maintenance.usage_report(7, '2006-01-09T00:00:00Z') as r`;
  assert.equal(r.totalDisconnections, 2, "t dropped twice; u was never open");
  assert.equal(r.totalCloses, 2, "both close events are terminal closes");
  assert.equal(r.totalConnections, 1, "the error row is not a connection");
  const up = (r.uptime as { tenant: string; uptime: number | null; stateChanges: number }[])
    .find((x) => x.tenant === u.slug);
  assert.deepEqual(
    [up?.uptime, up?.stateChanges],
    [0, 3],
    "u was down whenever its state was known: 0 % (not null), three real states",
  );
  assert.deepEqual(
    (r.topActiveTenants as { tenant: string; activity: number }[]).filter((a) => a.tenant === u.slug),
    [{ tenant: u.slug, activity: 3 }],
    "activity counts the tenant's own events only",
  );
  const [{ drops }] = await sql`
    select coalesce(sum(drops), 0)::int as drops from maintenance.connection_drops(${[t.slug, u.slug]},
      '2006-01-01T23:59:59.999999Z', '2006-01-08T23:59:59.999999Z')`;
  assert.equal(drops, r.totalDisconnections, "the report's figure is connection_drops over the same period");
});

Deno.test("weekly_report() is identical before and after a purge of unrelated old rows", async () => {
  const sql = testSql();
  await clearWindow("2003-06-01", "2004-01-09");
  const p = await createTenant({ prefix: "wr-id" });
  await insert([
    { slug: "wr-id-unrelated", at: "2003-06-01T00:00:00Z", rt: 5, status: "error" },
    { slug: "wr-id-unrelated", at: "2003-06-02T00:00:00Z", state: "open" },
    { slug: "wr-id-unrelated", at: "2003-06-03T00:00:00Z", rt: 7 },
    { slug: "wr-id-unrelated", at: "2003-06-04T00:00:00Z", state: "close" },
    { slug: p.slug, at: "2003-12-20T00:00:00Z", state: "open" },
    { slug: p.slug, at: "2004-01-02T00:00:00Z", state: "close", rt: 120 },
    { slug: p.slug, at: "2004-01-03T00:00:00Z", rt: 80 },
    { slug: p.slug, at: "2004-01-05T00:00:00Z", state: "open", rt: 60 },
  ]);
  const [{ before }] = await sql`select maintenance.weekly_report(7, '2004-01-08T00:00:00Z') as before`;
  let purged = 0;
  for (;;) {
    const [{ deleted }] = await sql`select deleted from maintenance.purge_api_logs_batch('2003-12-01T00:00:00Z', 1)`;
    purged += deleted;
    if (deleted < 1) break;
  }
  assert.ok(purged >= 3, "the unrelated old rows were purged");
  const unrelated = await sql`select created_at from public.api_logs where tenant_slug = 'wr-id-unrelated'`;
  assert.deepEqual(
    unrelated.map((r) => new Date(r.created_at).toISOString()),
    ["2003-06-04T00:00:00.000Z"],
    "all but that tenant's latest state went",
  );
  const [{ after }] = await sql`select maintenance.weekly_report(7, '2004-01-08T00:00:00Z') as after`;
  assert.deepEqual(after, before);
  assert.equal(before.performance.totalRequests, 3);
  const up = (before.usage.uptime as { tenant: string; uptime: number }[]).find((u) => u.tenant === p.slug);
  assert.equal(up?.uptime, 57.14, "down from Jan 2 to Jan 5: 3 of 7 days");
});

Deno.test("weeklyReport() stores the report in job_runs and sends the headline figures", async () => {
  await clearWindow("2005-01-01", "2005-01-09");
  await insert([
    { slug: "wr-job", at: "2005-01-02T00:00:00Z", rt: 100 },
    { slug: "wr-job", at: "2005-01-03T00:00:00Z", rt: 300, status: "error", errorType: "timeout" },
  ]);
  const sent: Notification[] = [];
  const deps = testDeps({
    now: () => new Date("2005-01-08T00:00:00Z"),
    notify: {
      send(n) {
        sent.push(n);
        return Promise.resolve();
      },
    },
  });
  const run = await runJob(deps, weeklyReport, { input: weeklyReport.input.parse({}), trigger: "test" });
  assert.equal(run.status, "ok", JSON.stringify(run.report));
  assert.equal(sent.length, 1);
  assert.equal(sent[0].severity, "info");
  assert.match(sent[0].title, /7 days.*high_error_rate/);
  assert.equal(sent[0].fields?.["Requests"], 2);
  assert.equal(sent[0].fields?.["Success rate"], "50%");
  assert.equal(sent[0].fields?.["Avg / p95 / p99"], "200 / 290 / 298 ms");
  const [row] = await testSql()`select status, report from maintenance.job_runs where id = ${run.runId}`;
  assert.equal(row.status, "ok");
  assert.equal(row.report.performance.totalRequests, 2);
  assert.equal(row.report.diagnosis, "high_error_rate");
  assert.equal(row.report.notified, true);
});

Deno.test("weekly-report function rejects days outside 1..90 naming the field", async () => {
  for (const days of [0, 91, 1.5]) {
    const res = await callFunction("weekly-report", { days });
    assert.equal(res.status, 400, res.text);
    assert.match(String((res.json.error as { message: string }).message), /days/);
  }
  const ok = await callFunction("weekly-report", { days: 1, trigger: "test" });
  assert.equal(ok.status, 200, ok.text);
  assert.equal(ok.json.status, "ok");
  assert.equal((ok.json.report as { period: { days: number } }).period.days, 1);
});
