/**
 * Benchmark of health-check against the seed's method, on a real Postgres and the in-process Evolution simulator.
 *
 *   ours: ONE fetchInstances for every tenant, ONE SQL statement for the per-tenant bookkeeping (5,000 tenants)
 *   seed: per tenant, two queries (tenant id, integration) and one Evolution call (`checkTenantHealth`)
 *
 * Standalone: `deno run -A bench/health_check_bench.ts [--json] [--quick]` starts a throwaway stack (port base
 * CANAIS_PORT_BASE, default 56900) and removes it afterwards. `bench/main.ts` may import `benchHealthCheck`.
 */
import postgres from "postgres";
import { startSimulator } from "../dev/evolution_sim/app.ts";
import { destroy, profileFromEnv, type StackInfo, start } from "../dev/stack.ts";
import { loadConfig } from "../shared/config.ts";
import { buildDeps } from "../shared/deps.ts";
import { createNotifier } from "../shared/alerts/notify.ts";
import { runHealthCheck } from "../shared/jobs/health_check.ts";

/** Figures of one benchmark run. */
export interface HealthBenchResult {
  tenants: number;
  recordFirstMs: number;
  recordSteadyMs: number;
  fullRunMs: number;
  evolutionCalls: Record<string, number>;
  seedTenants: number;
  seedMs: number;
  seedEvolutionCalls: number;
  seedPerTenantMs: number;
  oursPerTenantMs: number;
}

const ms = (t0: number) => Math.round((performance.now() - t0) * 10) / 10;

/** Runs the benchmark against a stack's database. */
export async function benchHealthCheck(
  info: StackInfo,
  options: { tenants?: number; seedTenants?: number } = {},
): Promise<HealthBenchResult> {
  const n = options.tenants ?? 5000;
  const seedN = options.seedTenants ?? 500;
  const sql = postgres(info.dbUrl, { max: 4, prepare: false, onnotice: () => {} });
  const sim = await startSimulator({ port: 0 });
  const prefix = `bench-${crypto.randomUUID().slice(0, 6)}`;
  const slugs = Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
  try {
    const tenants = await sql<{ id: string; slug: string }[]>`
      with t as (insert into public.tenants (slug) select unnest(${slugs}::text[]) returning id, slug),
      i as (insert into public.tenant_integrations (tenant_id, integration_type, config)
            select id, 'whatsapp', jsonb_build_object('instance_name', 'revalya-' || slug) from t)
      select id, slug from t`;
    // 2 % closed, 1 % connecting (asked again), the rest open
    sim.control.seedInstances(slugs.map((s, i) => [
      `revalya-${s}`,
      { state: i % 50 === 0 ? "close" : i % 100 === 1 ? "connecting" : "open" },
    ]));
    const results = tenants.map((t, i) => ({
      tenant_id: t.id,
      slug: t.slug,
      state: i % 50 === 0 ? "degraded" : "healthy",
      issue_code: i % 50 === 0 ? "instance_disconnected" : null,
      evolution_state: i % 50 === 0 ? "close" : "open",
    }));
    // the set-wise bookkeeping alone: first sight (inserts) and a steady run (updates)
    let t0 = performance.now();
    await sql`select maintenance.record_tenant_health(${crypto.randomUUID()}, now(), ${sql.json(results)})`;
    const recordFirstMs = ms(t0);
    t0 = performance.now();
    await sql`select maintenance.record_tenant_health(${crypto.randomUUID()}, now(), ${sql.json(results)})`;
    const recordSteadyMs = ms(t0);

    // a whole run (Evolution listing, connectionState where needed, bookkeeping, alerts, dead-man, outbox)
    const config = loadConfig({
      SUPABASE_DB_URL: info.dbUrl,
      SUPABASE_SECRET_KEY: info.secretKey,
      EVOLUTION_API_URL: sim.url,
      EVOLUTION_API_KEY: sim.apiKey,
      WEBHOOK_BASE_URL: info.webhookBaseUrl,
      WEBHOOK_SECRET: info.webhookSecret,
    });
    const deps = buildDeps(config, { sql, notify: createNotifier(config, { sql, channels: [] }) });
    sim.control.resetStats();
    t0 = performance.now();
    await runHealthCheck(deps, { runId: crypto.randomUUID(), input: { tenants: slugs } });
    const fullRunMs = ms(t0);
    const evolutionCalls = sim.control.stats().calls;

    // the seed's method on a sample: per tenant two queries and one Evolution call, in sequence
    sim.control.resetStats();
    t0 = performance.now();
    for (const slug of slugs.slice(0, seedN)) {
      const [t] = await sql`select id from public.tenants where slug = ${slug}`;
      await sql`select config, is_active from public.tenant_integrations
        where tenant_id = ${t.id} and integration_type = 'whatsapp'`;
      const res = await fetch(`${sim.url}/instance/connectionState/revalya-${slug}`, {
        headers: { apikey: sim.apiKey },
      });
      await res.body?.cancel();
    }
    const seedMs = ms(t0);
    return {
      tenants: n,
      recordFirstMs,
      recordSteadyMs,
      fullRunMs,
      evolutionCalls,
      seedTenants: seedN,
      seedMs,
      seedEvolutionCalls: sim.control.stats().total,
      seedPerTenantMs: Math.round((seedMs / seedN) * 100) / 100,
      oursPerTenantMs: Math.round((fullRunMs / n) * 1000) / 1000,
    };
  } finally {
    await sql`delete from public.tenants where slug like ${prefix + "-%"}`;
    await sql.end();
    await sim.close();
  }
}

if (import.meta.main) {
  const json = Deno.args.includes("--json");
  const quick = Deno.args.includes("--quick");
  const env = Deno.env.toObject();
  const profile = profileFromEnv({
    ...env,
    CANAIS_PROFILE: "bench",
    CANAIS_PORT_BASE: env.CANAIS_PORT_BASE ?? "56900",
  });
  const info = await start(profile, { fresh: true, log: json ? () => {} : undefined });
  try {
    const r = await benchHealthCheck(info, quick ? { tenants: 1000, seedTenants: 100 } : {});
    if (json) console.log(JSON.stringify({ healthCheck: r }));
    else {
      console.log(`health-check, ${r.tenants} tenants:`);
      console.log(`  record_tenant_health (one statement): first ${r.recordFirstMs} ms, steady ${r.recordSteadyMs} ms`);
      console.log(
        `  whole run: ${r.fullRunMs} ms (${r.oursPerTenantMs} ms/tenant), Evolution calls ${
          JSON.stringify(r.evolutionCalls)
        }`,
      );
      console.log(
        `  seed method on ${r.seedTenants} tenants: ${r.seedMs} ms (${r.seedPerTenantMs} ms/tenant, ${r.seedEvolutionCalls} Evolution calls)`,
      );
    }
  } finally {
    await destroy(profile);
  }
}
