/**
 * @module
 * The generated data the report and purge benchmarks share, made in SQL (`bench/sql/bench.sql`): tenants with
 * their integrations, and api_logs rows over the 60 days before `ctx.until` (the last 30 days for the report, the
 * 30 before them expired for the purge), written once to `bench.api_logs_source` and loaded into
 * `public.api_logs` as often as a benchmark needs the same rows again.
 */
import { type BenchContext, since } from "./harness.ts";

const DAY_MS = 86_400_000;

/** The generated dataset. */
export interface Dataset {
  /** Tenant slug prefix: tenants are `{prefix}{i}`, i < tenants. */
  prefix: string;
  tenants: number;
  /** Rows in the 30 days before `until` (the report's table). */
  recentRows: number;
  /** Rows in the 30 days before those (expired under a 30-day retention); 0 when not generated. */
  expiredRows: number;
  /** Start of the recent period (until − 30 days) = the retention cut-off at `until`. */
  recentSince: Date;
  /** Start of the whole generated period. */
  since: Date;
  until: Date;
  generateMs: number;
}

/** Creates the tenants and generates the rows into `bench.api_logs_source` (nothing in api_logs yet). */
export async function generateDataset(
  ctx: BenchContext,
  options: { tenants: number; recentRows: number; withExpired: boolean },
): Promise<Dataset> {
  const { sql, until } = ctx;
  const prefix = ctx.exclusive ? "bw-" : `bw-${crypto.randomUUID().slice(0, 6)}-`;
  const recentSince = new Date(until.getTime() - 30 * DAY_MS);
  const from = options.withExpired ? new Date(until.getTime() - 60 * DAY_MS) : recentSince;
  const total = options.withExpired ? options.recentRows * 2 : options.recentRows;
  const t0 = performance.now();
  if (ctx.exclusive) await sql`delete from public.tenants`;
  await sql`select bench.create_tenants(${prefix}, 0, ${options.tenants}, 'revalya-', ${ctx.info.webhookBaseUrl})`;
  await sql`select bench.reset_source()`;
  ctx.log(`data: generating ${total.toLocaleString("en")} api_logs rows for ${options.tenants} tenants`);
  await sql`select bench.generate_api_logs(${total}, ${from}, ${until}, ${prefix}, ${options.tenants})`;
  const [{ recent, expired }] = await sql<{ recent: number; expired: number }[]>`
    select count(*) filter (where created_at >= ${recentSince})::int as recent,
      count(*) filter (where created_at < ${recentSince})::int as expired
    from bench.api_logs_source`;
  return {
    prefix,
    tenants: options.tenants,
    recentRows: recent,
    expiredRows: expired,
    recentSince,
    since: from,
    until,
    generateMs: since(t0),
  };
}

/**
 * Loads the dataset's rows from `from` on into public.api_logs: on the bench stack the table is replaced (bulk load,
 * indexes rebuilt, vacuum analyze); on a shared database the dataset's own rows are removed and appended again.
 */
export async function loadDataset(ctx: BenchContext, data: Dataset, from: Date): Promise<{ rows: number; ms: number }> {
  const { sql } = ctx;
  const t0 = performance.now();
  if (!ctx.exclusive) await sql`select bench.remove_loaded(${data.prefix}, ${data.since}, ${data.until})`;
  const [{ n }] = await sql<{ n: number }[]>`select bench.load_api_logs(${from}, ${ctx.exclusive})::int as n`;
  if (ctx.exclusive) await sql`vacuum analyze public.api_logs`;
  else await sql`analyze public.api_logs`;
  const ms = since(t0);
  ctx.log(`data: loaded ${n.toLocaleString("en")} rows into public.api_logs in ${(ms / 1000).toFixed(1)} s`);
  return { rows: n, ms };
}

/** Removes the dataset's tenants and rows (shared database only; the bench stack is thrown away whole). */
export async function dropDataset(ctx: BenchContext, data: Dataset): Promise<void> {
  if (ctx.exclusive) return;
  await ctx.sql`select bench.remove_loaded(${data.prefix}, ${data.since}, ${data.until})`;
  await ctx.sql`delete from public.tenants where slug like ${data.prefix + "%"}`;
  await ctx.sql`select bench.reset_source()`;
}
