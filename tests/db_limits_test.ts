// One isolate never holds more than two database connections (the platform counts every isolate's connections
// against the project's limit): the health check over 150 tenants with its probe concurrency, a cleanup dry run and
// status-page reads, all at once on one isolate's SQL client, never show more than two backends in pg_stat_activity.
// The tenants live on an Evolution simulator of this test's own, connected, so nothing of theirs reaches the others.
import assert from "node:assert/strict";
import { createSql, MAX_CONNECTIONS_PER_ISOLATE } from "../shared/db.ts";
import { buildDeps } from "../shared/deps.ts";
import { runJob } from "../shared/jobs/runner.ts";
import { healthCheck } from "../shared/jobs/health_check.ts";
import { cleanupLogs } from "../shared/jobs/cleanup_logs.ts";
import { startSimulator } from "../dev/evolution_sim/app.ts";
import { loadStatus } from "../shared/status_page/data.ts";
import { testConfig, testSql, uniqueSlug } from "./_helpers.ts";

Deno.test("one isolate's SQL client opens at most two connections, however much runs at once", async () => {
  assert.equal(MAX_CONNECTIONS_PER_ISOLATE, 2);
  const sql = testSql();
  const prefix = uniqueSlug("lim");
  const slugs = Array.from({ length: 150 }, (_, i) => `${prefix}-${i}`);
  await sql`
    with t as (
      insert into public.tenants (slug, name) select s, 'Tenant ' || s from unnest(${slugs}::text[]) s returning id, slug)
    insert into public.tenant_integrations (tenant_id, integration_type, config)
    select t.id, 'whatsapp', jsonb_build_object('instance_name', 'revalya-' || t.slug, 'environment', 'test') from t`;
  const sim = await startSimulator({ webhookRetryDelaysMs: [] });
  sim.control.seedInstances(slugs.map((s) => [`revalya-${s}`, { state: "open" }]));
  const config = testConfig({ EVOLUTION_API_URL: sim.url, EVOLUTION_API_KEY: sim.apiKey });
  const application = `limits-${crypto.randomUUID().slice(0, 8)}`;
  // asking for more is capped: an isolate's client never gets a bigger pool
  const isolateSql = createSql(config.dbUrl, { application, max: 10 });
  const deps = buildDeps(config, { sql: isolateSql });
  const [{ value: concurrency }] =
    await sql`select value from maintenance.settings where key = 'health_check_concurrency'`;
  let peak = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const [{ n }] = await sql<{ n: number }[]>`
        select count(*)::int as n from pg_stat_activity where application_name = ${application}`;
      peak = Math.max(peak, n);
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  try {
    await sql`update maintenance.settings set value = '16' where key = 'health_check_concurrency'`;
    const [health, cleanup] = await Promise.all([
      runJob(deps, healthCheck, { input: { tenants: slugs }, trigger: "test" }),
      runJob(deps, cleanupLogs, { input: cleanupLogs.input.parse({ dryRun: true }), trigger: "test" }),
      ...Array.from({ length: 5 }, () => loadStatus(isolateSql, { asOf: new Date(), limit: 50, search: prefix })),
    ]);
    assert.notEqual(health.status, "error", JSON.stringify(health.report).slice(0, 300));
    assert.deepEqual(
      (({ checked, healthy }) => ({ checked, healthy }))(health.report.tenants as { checked: number; healthy: number }),
      { checked: 150, healthy: 150 },
    );
    assert.equal(cleanup.status, "ok", JSON.stringify(cleanup.report).slice(0, 300));
  } finally {
    sampling = false;
    await sampler;
    await sql`update maintenance.settings set value = ${sql.json(concurrency)} where key = 'health_check_concurrency'`;
    await sql`delete from public.tenants where slug = any(${slugs})`;
    await isolateSql.end();
    await sim.close();
  }
  assert.ok(peak >= 1, "the sampler saw the isolate's connections");
  assert.ok(peak <= 2, `the isolate held ${peak} connections at once`);
});
