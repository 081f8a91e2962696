/**
 * @module
 * Health-check fan-out, ours against the seed's, on the same tenants and the same simulator (latency per call).
 *
 *   seed: the seed's `fullHealthCheck` loop: for each active tenant, in sequence, one DB lookup (its integration)
 *         and one `connectionState` call (`checkTenantHealth`)
 *   ours: the `health-check` job through `runJob` (one `fetchInstances` for every tenant; `connectionState` where
 *         the sources disagree or the instance is not open, plus the hourly rotation's share of the open ones; the
 *         liveness probe's 6-hourly rotation share; all within `health_check_probe_budget`; bounded concurrency;
 *         set-wise bookkeeping in SQL, alerts)
 *
 * Each size adds tenants (with integrations, in SQL) and their simulator instances (`seedInstances`): 2 % closed,
 * 1 % connecting (asked again by ours), the rest open. The seed method is timed at the first size only and
 * estimated (× tenants) at the larger ones, as the issue allows: it is linear by construction.
 */
import { createSql } from "../shared/db.ts";
import { buildDeps } from "../shared/deps.ts";
import { createNotifier } from "../shared/alerts/notify.ts";
import { EvolutionClient } from "../shared/evolution/client.ts";
import { healthCheck } from "../shared/jobs/health_check.ts";
import { runJob } from "../shared/jobs/runner.ts";
import { benchConfig, type BenchContext, median, ratio, round, simulatorControl, since, target } from "./harness.ts";

/** Options of the health-check benchmark. */
export interface HealthBenchOptions {
  /** Tenant counts, ascending (the seed method is timed at the first). */
  sizes: number[];
  /** Simulator latency added to every Evolution call (ms). */
  latencyMs: number;
  /** Timed runs of ours per size (after one warm-up run, which records first sight). */
  runs?: number;
}

/** One size's figures. */
export interface HealthSize {
  tenants: number;
  ours: number;
  oursFirstRun: number;
  oursRuns: number[];
  oursStatus: string;
  seed: number;
  seedEstimated: boolean;
  ratio: number | null;
  evolutionCalls: { ours: Record<string, number>; seed: Record<string, number> | null };
  /** What the run itself reports: its calls by kind, its budget, what the budget left unasked. */
  reported: Record<string, number>;
}

const SLUG_PREFIX = "bh-";

function stateOf(i: number): "open" | "connecting" | "close" {
  return i % 50 === 0 ? "close" : i % 100 === 1 ? "connecting" : "open";
}

/** Runs the benchmark; returns the JSON section `healthCheck`. */
export async function benchHealthCheck(ctx: BenchContext, options: HealthBenchOptions) {
  const { sql, info, log } = ctx;
  const runs = options.runs ?? 3;
  const config = benchConfig(info);
  const sim = simulatorControl(info.evolutionUrl);
  const prefix = ctx.exclusive ? SLUG_PREFIX : `${SLUG_PREFIX}${crypto.randomUUID().slice(0, 6)}-`;
  const jobSql = createSql(info.dbUrl);
  const deps = buildDeps(config, { sql: jobSql, notify: createNotifier(config, { sql: jobSql, channels: [] }) });
  const seedClient = new EvolutionClient(config);
  const sizes: HealthSize[] = [];
  let seedPerTenant = 0;
  let made = 0;
  try {
    if (ctx.exclusive) {
      // the bench stack's demo tenants would be checked too: start from none
      await sql`delete from public.tenants`;
      await sim.reset();
    }
    for (const n of options.sizes) {
      log(`health-check: ${n} tenants`);
      await sql`select bench.create_tenants(${prefix}, ${made}, ${n - made}, ${config.instancePrefix},
        ${info.webhookBaseUrl})`;
      await sim.seedInstances(
        Array.from(
          { length: n - made },
          (_, k) => [`${config.instancePrefix}${prefix}${made + k}`, { state: stateOf(made + k) }],
        ),
      );
      made = n;
      const slugs = Array.from({ length: n }, (_, i) => `${prefix}${i}`);
      const input = ctx.exclusive ? {} : { tenants: slugs };
      await sql`analyze public.tenants, public.tenant_integrations`;
      await sim.setLatency(options.latencyMs);

      // ours: one warm-up (first sight of these tenants), then timed runs
      let t0 = performance.now();
      await runJob(deps, healthCheck, { input, trigger: "bench" });
      const oursFirstRun = since(t0);
      const oursRuns: number[] = [];
      let status = "";
      let oursCalls: Record<string, number> = {};
      let reported: Record<string, number> = {};
      for (let r = 0; r < runs; r++) {
        await sim.resetStats();
        t0 = performance.now();
        const res = await runJob(deps, healthCheck, { input, trigger: "bench" });
        oursRuns.push(since(t0));
        status = res.status;
        oursCalls = (await sim.stats()).calls;
        reported = (res.report as { evolutionCalls: Record<string, number> }).evolutionCalls;
      }

      // the seed: the first size measured, the others estimated from it
      let seedMs: number;
      let seedCalls: Record<string, number> | null = null;
      const measureSeed = sizes.length === 0;
      if (measureSeed) {
        await sim.resetStats();
        t0 = performance.now();
        const tenants = ctx.exclusive
          ? await sql<{ slug: string }[]>`select slug from public.tenants where is_active`
          : slugs.map((slug) => ({ slug }));
        for (const { slug } of tenants) await seedCheckTenantHealth(sql, seedClient, slug, config.instancePrefix);
        seedMs = since(t0);
        seedCalls = (await sim.stats()).calls;
        seedPerTenant = seedMs / n;
      } else {
        seedMs = round(seedPerTenant * n, 1);
      }
      const ours = median(oursRuns);
      sizes.push({
        tenants: n,
        ours,
        oursFirstRun,
        oursRuns,
        oursStatus: status,
        seed: seedMs,
        seedEstimated: !measureSeed,
        ratio: ratio(ours, seedMs),
        evolutionCalls: { ours: oursCalls, seed: seedCalls },
        reported,
      });
      await sim.setLatency(0);
    }
  } finally {
    await sim.setLatency(0).catch(() => {});
    if (!ctx.exclusive) {
      await sql`delete from public.tenants where slug like ${prefix + "%"}`;
    }
    await seedClient.flushLogs().catch(() => {});
    await deps.evolution.flushLogs().catch(() => {});
    await jobSql.end();
  }

  const [first] = sizes;
  const large = sizes.find((s) => s.tenants === 5000);
  const small = sizes.find((s) => s.tenants === 500);
  return {
    size: first.tenants,
    unit: "ms",
    ours: first.ours,
    seed: first.seed,
    ratio: first.ratio,
    latencyMs: options.latencyMs,
    evolutionCalls: first.evolutionCalls,
    sizes,
    seedNote: sizes.length > 1
      ? `seed method timed at ${first.tenants} tenants (${
        round(seedPerTenant, 2)
      } ms/tenant); larger sizes estimated as that × tenants`
      : "seed method timed",
    targets: [
      target("500 tenants ≤ 0.5 s", small?.ours ?? null, { max: 500, text: "≤ 500 ms", applies: !!small }),
      target("500 tenants ≥ 50× faster than the seed", small?.ratio ?? null, {
        min: 50,
        text: "≥ 50×",
        applies: !!small && !small.seedEstimated,
      }),
      target("5,000 tenants ≤ 1.5 s", large?.ours ?? null, { max: 1500, text: "≤ 1500 ms", applies: !!large }),
      target("5,000 tenants: Evolution calls per run ≤ 2 + the probe budget", large ? callsOf(large) : null, {
        max: large ? 2 + large.reported.budget : 0,
        text: `≤ 2 + ${large?.reported.budget ?? "budget"}`,
        applies: !!large,
      }),
    ],
  };
}

/** Every Evolution call the simulator saw in one of our runs. */
function callsOf(size: HealthSize): number {
  return Object.values(size.evolutionCalls.ours).reduce((a, b) => a + b, 0);
}

/**
 * The seed's `checkTenantHealth(slug)`: its integration (one lookup), then the instance state from Evolution.
 * Returns the seed's verdict (not used for timing, kept so the work is the seed's).
 */
async function seedCheckTenantHealth(
  sql: BenchContext["sql"],
  evolution: EvolutionClient,
  slug: string,
  prefix: string,
): Promise<{ status: string; issue?: string }> {
  try {
    const [config] = await sql<{ config: unknown; is_active: boolean }[]>`
      select ti.config, ti.is_active from public.tenant_integrations ti
      join public.tenants t on t.id = ti.tenant_id
      where t.slug = ${slug} and ti.integration_type = 'whatsapp'`;
    if (!config) return { status: "healthy" };
    if (!config.is_active) return { status: "healthy" };
    const state = await evolution.connectionState(`${prefix}${slug}`);
    return state === "open"
      ? { status: "healthy" }
      : { status: "degraded", issue: `WhatsApp not connected (${state})` };
  } catch (error) {
    return { status: "unhealthy", issue: error instanceof Error ? error.message : String(error) };
  }
}
