/**
 * @module
 * Weekly report, ours against the seed's, on the same api_logs rows and the same 7-day window.
 *
 *   seed: the seed's `analyzePerformance` (every whatsapp row of the window, `select *`) and `generateUsageReport`
 *         (the window's connection.update rows), fetched into TypeScript and aggregated there exactly as the seed
 *         does. Fetched in keyset pages of `pageSize` rows so it finishes: through PostgREST, as the seed is
 *         written, each query would stop at the first 1,000 rows (Supabase's max-rows) and the figures would be
 *         silently wrong. `generateUsageReport` selects `event, tenant_slug, created_at` but then reads
 *         `log.data.state`, so as written it always counts 0 connections; here it also fetches `data`.
 *   ours: `maintenance.weekly_report(7, until)`, one SQL call (usage, uptime, exact percentiles, per tenant).
 *
 * The figures the seed computes are compared with ours (`agree`): counts exactly; rates and averages, which
 * ours rounds to 2 decimals, within that rounding. The seed's disconnections are its `close` events: ours reports
 * those as `totalCloses` (compared), while `totalDisconnections` counts drops (an open connection going
 * `connecting` or `close`, which the seed's rule misses), a figure the seed has no counterpart for.
 */
import type { WeeklyReport } from "../shared/jobs/weekly_report.ts";
import { type BenchContext, median, ratio, since, target } from "./harness.ts";
import type { Dataset } from "./data.ts";

const DAY_MS = 86_400_000;

interface SeedLog {
  id: string;
  created_at: Date;
  tenant_slug: string | null;
  service: string;
  event: string;
  status: string;
  error_type: string | null;
  response_time: number | null;
  data: { state?: string } | null;
}

/** What the seed's two functions return (only the fields they compute). */
export interface SeedWeekly {
  metrics: {
    totalRequests: number;
    successRate: number;
    averageResponseTime: number;
    errorsByType: Record<string, number>;
  };
  usage: {
    total_tenants: number;
    active_integrations: number;
    total_connections: number;
    total_disconnections: number;
    top_active_tenants: Array<{ tenant: string; activity: number }>;
  };
  rowsFetched: number;
  pages: number;
}

/** Fetches a query's rows in keyset pages (by id) into one array, as the seed holds `logs.data`. */
async function fetchAll<T extends { id: string }>(
  page: (after: string) => Promise<T[]>,
  pageSize: number,
): Promise<{ rows: T[]; pages: number }> {
  const rows: T[] = [];
  let after = "0";
  let pages = 0;
  for (;;) {
    const batch = await page(after);
    pages++;
    for (const r of batch) rows.push(r);
    if (batch.length < pageSize) return { rows, pages };
    after = batch[batch.length - 1].id;
  }
}

/** The seed's analyzePerformance + generateUsageReport over [since, until), rows aggregated in TypeScript. */
export async function seedWeeklyReport(
  sql: BenchContext["sql"],
  window: { since: Date; until: Date },
  pageSize = 10_000,
): Promise<SeedWeekly> {
  const { since: from, until } = window;
  // analyzePerformance: .from('api_logs').select('*').gte('created_at', since).eq('service', 'whatsapp')
  const perf = await fetchAll<SeedLog>(
    (after) =>
      sql<SeedLog[]>`select * from public.api_logs
        where created_at >= ${from} and created_at < ${until} and service = 'whatsapp' and id > ${after}
        order by id limit ${pageSize}`,
    pageSize,
  );
  const logs = perf.rows;
  const metrics = {
    totalRequests: 0,
    successRate: 0,
    averageResponseTime: 0,
    errorsByType: {} as Record<string, number>,
    slowestTenants: [] as unknown[],
  };
  metrics.totalRequests = logs.length;
  const successful = logs.filter((log) => log.status === "success");
  metrics.successRate = (successful.length / logs.length) * 100;
  const responseTimes = logs.filter((log) => log.response_time).map((log) => log.response_time as number);
  if (responseTimes.length > 0) {
    metrics.averageResponseTime = responseTimes.reduce((a, b) => a + b, 0) / responseTimes.length;
  }
  const errors = logs.filter((log) => log.status === "error");
  for (const error of errors) {
    const type = error.error_type || "unknown";
    metrics.errorsByType[type] = (metrics.errorsByType[type] || 0) + 1;
  }

  // generateUsageReport(days)
  const [{ total_tenants }] = await sql<{ total_tenants: number }[]>`
    select count(*)::int as total_tenants from public.tenants where is_active = true`;
  const [{ active_integrations }] = await sql<{ active_integrations: number }[]>`
    select count(*)::int as active_integrations from public.tenant_integrations
    where integration_type = 'whatsapp' and is_active = true`;
  const conn = await fetchAll<Pick<SeedLog, "id" | "event" | "tenant_slug" | "created_at" | "data">>(
    (after) =>
      sql`select id, event, tenant_slug, created_at, data from public.api_logs
        where service = 'whatsapp' and event in ('connection.update') and created_at >= ${from}
          and created_at < ${until} and id > ${after}
        order by id limit ${pageSize}`,
    pageSize,
  );
  const connectionLogs = conn.rows;
  const connections = connectionLogs.filter((log) => log.event === "connection.update" && log.data?.state === "open");
  const disconnections = connectionLogs.filter((log) =>
    log.event === "connection.update" && log.data?.state === "close"
  );
  const tenantActivity: Record<string, number> = {};
  for (const log of connectionLogs) {
    const k = String(log.tenant_slug);
    tenantActivity[k] = (tenantActivity[k] || 0) + 1;
  }
  const top = Object.entries(tenantActivity)
    .sort(([, a], [, b]) => b - a)
    .slice(0, 10)
    .map(([tenant, activity]) => ({ tenant, activity }));
  return {
    metrics: {
      totalRequests: metrics.totalRequests,
      successRate: metrics.successRate,
      averageResponseTime: metrics.averageResponseTime,
      errorsByType: metrics.errorsByType,
    },
    usage: {
      total_tenants,
      active_integrations,
      total_connections: connections.length,
      total_disconnections: disconnections.length,
      top_active_tenants: top,
    },
    rowsFetched: logs.length + connectionLogs.length,
    pages: perf.pages + conn.pages,
  };
}

/** Where ours and the seed's figures differ (empty when they agree). */
export function compareWeekly(ours: WeeklyReport, seed: SeedWeekly): string[] {
  const diffs: string[] = [];
  const exact = (name: string, a: unknown, b: unknown) => {
    if (JSON.stringify(a) !== JSON.stringify(b)) {
      diffs.push(`${name}: ours ${JSON.stringify(a)}, seed ${JSON.stringify(b)}`);
    }
  };
  // ours rounds to 2 decimals: agreement is |ours − seed| ≤ half a unit of the last decimal
  const rounded = (name: string, a: number | null, b: number) => {
    if (a === null || Math.abs(a - b) > 0.005 + 1e-9) diffs.push(`${name}: ours ${a}, seed ${b}`);
  };
  const perf = ours.performance;
  const usage = ours.usage;
  exact("totalRequests", perf.totalRequests, seed.metrics.totalRequests);
  rounded("successRate", perf.successRate, seed.metrics.successRate);
  rounded("averageResponseTime", perf.responseTime.avg, seed.metrics.averageResponseTime);
  const sortKeys = (o: Record<string, number>) =>
    Object.fromEntries(Object.entries(o).sort(([a], [b]) => a < b ? -1 : 1));
  exact("errorsByType", sortKeys(perf.errorsByType as Record<string, number>), sortKeys(seed.metrics.errorsByType));
  exact("totalTenants", usage.totalTenants, seed.usage.total_tenants);
  exact("activeIntegrations", usage.activeIntegrations, seed.usage.active_integrations);
  exact("totalConnections", usage.totalConnections, seed.usage.total_connections);
  exact("totalCloses", usage.totalCloses, seed.usage.total_disconnections);
  // the top 10 by activity: the same counts in the same order; ties may be listed in another order (the seed's
  // order among equals is whatever order the rows came in, ours is by slug), so tenants are compared per count
  const oursTop = usage.topActiveTenants as Array<{ tenant: string; activity: number }>;
  const seedTop = seed.usage.top_active_tenants;
  exact("topActiveTenants.activity", oursTop.map((t) => t.activity), seedTop.map((t) => t.activity));
  const lastCount = seedTop.at(-1)?.activity;
  const untied = (list: typeof seedTop) => list.filter((t) => t.activity !== lastCount).map((t) => t.tenant).sort();
  exact("topActiveTenants.tenants", untied(oursTop), untied(seedTop));
  return diffs;
}

/**
 * The same weekly report read from the hourly rollups (`maintenance.api_logs_hourly`): the window's closed hours
 * rolled up once (one refresh from the window's first hour: what a scheduled refresh does an hour at a time), then
 * `runs` reports side by side with the raw scan's. `identical`: the jsonb is the raw scan's, byte for byte. The
 * rollups are removed afterwards, so the other benchmarks see the table as before.
 */
async function rollupRuns(
  ctx: BenchContext,
  window: { since: Date; until: Date },
  runs: number,
  raw: WeeklyReport,
) {
  const { sql, until, log } = ctx;
  log("weekly report: from the hourly rollups (one refresh of the window, then the same runs)");
  await sql`update maintenance.api_logs_rollup_state set watermark = date_trunc('hour', ${window.since}::timestamptz)`;
  let t0 = performance.now();
  const [refresh] = await sql<{ rows: number; watermark: Date }[]>`
    select rows_written::int as rows, watermark from maintenance.refresh_api_logs_rollup('0 hours')`;
  const refreshMs = since(t0);
  await sql`vacuum analyze maintenance.api_logs_hourly`;
  const [{ n, elements }] = await sql<{ n: number; elements: number }[]>`
    select count(*)::int as n, coalesce(sum(cardinality(rt_values)), 0)::int as elements
    from maintenance.api_logs_hourly where hour >= ${window.since} and hour < ${until}`;
  let report = raw;
  const ms: number[] = [];
  const rawMs: number[] = [];
  for (let r = 0; r <= runs; r++) {
    t0 = performance.now();
    [{ report }] = await sql<{ report: WeeklyReport }[]>`select maintenance.weekly_report(7, ${until}) as report`;
    if (r > 0) ms.push(since(t0)); // the first is the warm-up
  }
  t0 = performance.now();
  await sql`select maintenance.performance_metrics(${window.since}, ${until}) as r`;
  const performanceMs = since(t0);
  // the raw scan again, interleaved with the rollup-based runs' conditions (same cache state): rollups set aside
  await sql`update maintenance.api_logs_rollup_state set watermark = null`;
  for (let r = 0; r < runs; r++) {
    t0 = performance.now();
    await sql`select maintenance.weekly_report(7, ${until}) as report`;
    rawMs.push(since(t0));
  }
  await sql`delete from maintenance.api_logs_hourly`;
  return {
    ms: median(ms),
    runs: ms,
    rawAgainMs: median(rawMs),
    rawAgainRuns: rawMs,
    ratio: ratio(median(ms), median(rawMs)),
    performanceMetricsMs: performanceMs,
    refreshMs,
    rollupRows: refresh.rows,
    rollupRowsInWindow: n,
    histogramElements: elements,
    watermark: refresh.watermark,
    identical: JSON.stringify(report) === JSON.stringify(raw),
  };
}

/** Runs the benchmark on a loaded dataset; returns the JSON section `weeklyReport`. */
export async function benchWeeklyReport(
  ctx: BenchContext,
  data: Dataset,
  options: { runs?: number; pageSize?: number; fullSize: boolean },
) {
  const { sql, until, log } = ctx;
  const runs = options.runs ?? 3;
  const window = { since: new Date(until.getTime() - 7 * DAY_MS), until };
  const [{ windowRows }] = await sql<{ windowRows: number }[]>`
    select count(*)::int as "windowRows" from public.api_logs
    where created_at >= ${window.since} and created_at < ${until} and service = 'whatsapp'`;

  // the raw scan first: nothing rolled up (on the bench's own stack; a shared database keeps its rollups)
  if (ctx.exclusive) {
    await sql`delete from maintenance.api_logs_hourly`;
    await sql`update maintenance.api_logs_rollup_state set watermark = null`;
  }
  log(`weekly report: ours (maintenance.weekly_report, ${runs} runs after a warm-up)`);
  let t0 = performance.now();
  let [{ report }] = await sql<{ report: WeeklyReport }[]>`select maintenance.weekly_report(7, ${until}) as report`;
  const oursFirstRun = since(t0);
  const oursRuns: number[] = [];
  for (let r = 0; r < runs; r++) {
    t0 = performance.now();
    [{ report }] = await sql<{ report: WeeklyReport }[]>`select maintenance.weekly_report(7, ${until}) as report`;
    oursRuns.push(since(t0));
  }
  // where ours spends its time: the two halves of weekly_report, once each
  t0 = performance.now();
  await sql`select maintenance.usage_report(7, ${until}) as r`;
  const usageMs = since(t0);
  t0 = performance.now();
  await sql`select maintenance.performance_metrics(${window.since}, ${until}) as r`;
  const performanceMs = since(t0);
  const fromRollups = ctx.exclusive ? await rollupRuns(ctx, window, runs, report) : null;
  log(`weekly report: seed (${windowRows.toLocaleString("en")} rows into TypeScript)`);
  t0 = performance.now();
  const seed = await seedWeeklyReport(sql, window, options.pageSize);
  const seedMs = since(t0);
  const mismatches = compareWeekly(report, seed);
  const ours = median(oursRuns);
  return {
    size: { rows: data.recentRows, tenants: data.tenants, days: 30, windowDays: 7, windowRows },
    unit: "ms",
    ours,
    seed: seedMs,
    ratio: ratio(ours, seedMs),
    oursFirstRun,
    oursRuns,
    oursParts: { usageReportMs: usageMs, performanceMetricsMs: performanceMs },
    fromRollups,
    agree: mismatches.length === 0,
    mismatches,
    compared: [
      "totalRequests",
      "successRate",
      "averageResponseTime",
      "errorsByType",
      "totalTenants",
      "activeIntegrations",
      "totalConnections",
      "totalCloses",
      "topActiveTenants",
    ],
    figures: {
      totalRequests: report.performance.totalRequests,
      successRate: report.performance.successRate,
      responseTime: report.performance.responseTime,
      totalConnections: report.usage.totalConnections,
      totalDisconnections: report.usage.totalDisconnections,
      totalCloses: report.usage.totalCloses,
      averageUptime: report.usage.averageUptime,
      diagnosis: report.diagnosis,
    },
    seedRowsFetched: seed.rowsFetched,
    seedPages: seed.pages,
    seedNote: `seed rows fetched in keyset pages of ${
      options.pageSize ?? 10_000
    } (as written, through PostgREST, each query stops at 1,000 rows); ours also computes what the seed does not (uptime, p50/p95/p99, per tenant)`,
    targets: [
      target("7-day report ≤ 1 s", ours, { max: 1000, text: "≤ 1000 ms", applies: options.fullSize }),
      target("agrees with the seed", mismatches.length === 0 ? 1 : 0, { min: 1, text: "agree: true" }),
    ],
  };
}
