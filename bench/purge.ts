/**
 * @module
 * Retention purge, ours against the seed's, each on a fresh load of the same rows (half of them expired), while a
 * concurrent writer records webhook events on its own connection and times each insert.
 *
 *   seed: the seed's purge, one `DELETE FROM api_logs WHERE created_at < now() - interval '30 days'`
 *   ours: the `cleanup-logs` job through `runJob` (index-driven batches, each its own short transaction, each
 *         tenant's latest connection.update kept), with a time budget large enough to finish
 *
 * Both use the same cut-off (`until` − 30 days; the job's clock is shifted so its "now" is `until`). Ours keeps at
 * most one row per tenant more than the seed (the latest state), so rows/s is computed from each one's own count.
 */
import { createSql } from "../shared/db.ts";
import { buildDeps } from "../shared/deps.ts";
import { createNotifier } from "../shared/alerts/notify.ts";
import { cleanupLogs } from "../shared/jobs/cleanup_logs.ts";
import { runJob } from "../shared/jobs/runner.ts";
import {
  benchConfig,
  type BenchContext,
  ratio,
  round,
  since,
  startWriter,
  target,
  type Writer,
  writerFigures,
} from "./harness.ts";
import { type Dataset, loadDataset } from "./data.ts";

/** Options of the purge benchmark. */
export interface PurgeBenchOptions {
  fullSize: boolean;
  /** Writer-only measurement before each purge (ms), the writer's baseline. */
  baselineMs?: number;
}

interface PurgeRun {
  deleted: number;
  ms: number;
  rowsPerSec: number;
  batches?: number;
  status?: string;
  writer: ReturnType<typeof writerFigures>;
  writerBaseline: ReturnType<typeof writerFigures>;
  writerErrors: string[];
  /** WAL written during the purge (`pg_wal_lsn_diff` of `pg_current_wal_lsn()`), the writer's few rows included. */
  walBytes: number;
  /** The writer's own WAL per insert, from its baseline window (WAL there ÷ its inserts there). */
  writerWalPerInsert: number;
  /** walBytes less the writer's inserts during the purge × writerWalPerInsert: the purge's own WAL. */
  netWalBytes: number;
}

const lsn = async (ctx: BenchContext) => (await ctx.sql<{ l: string }[]>`select pg_current_wal_lsn()::text as l`)[0].l;

async function withWriter(
  ctx: BenchContext,
  data: Dataset,
  baselineMs: number,
  purge: () => Promise<{ deleted: number; batches?: number; status?: string }>,
): Promise<PurgeRun> {
  const writer: Writer = startWriter(ctx.info.dbUrl, { slug: `${data.prefix}0` });
  let run: { result: { deleted: number; batches?: number; status?: string }; ms: number; walBytes: number } | undefined;
  let failure: unknown;
  let baselineWal = 0;
  try {
    const lb = await lsn(ctx);
    await new Promise((r) => setTimeout(r, baselineMs));
    const [{ wal: bw }] = await ctx.sql<
      { wal: string }[]
    >`select pg_wal_lsn_diff(pg_current_wal_lsn(), ${lb})::text as wal`;
    baselineWal = Number(bw);
    writer.mark();
    const l0 = await lsn(ctx);
    const t0 = performance.now();
    const result = await purge();
    const ms = since(t0);
    const [{ wal }] = await ctx.sql<
      { wal: string }[]
    >`select pg_wal_lsn_diff(pg_current_wal_lsn(), ${l0})::text as wal`;
    run = { result, ms, walBytes: Number(wal) };
  } catch (error) {
    failure = error;
  }
  const stopped = await writer.stop();
  if (!run) throw failure;
  const { result, ms, walBytes } = run;
  const [baseline, during] = stopped.windows;
  const [baselineWindowMs, duringWindowMs] = stopped.windowMs;
  const writerWalPerInsert = baseline.length ? baselineWal / baseline.length : 0;
  return {
    ...result,
    ms,
    rowsPerSec: Math.round(result.deleted / (ms / 1000)),
    writer: writerFigures(during ?? [], duringWindowMs ?? 0),
    writerBaseline: writerFigures(baseline, baselineWindowMs),
    writerErrors: stopped.errors,
    walBytes,
    writerWalPerInsert: Math.round(writerWalPerInsert),
    netWalBytes: Math.max(0, walBytes - (during?.length ?? 0) * writerWalPerInsert),
  };
}

/** Runs the benchmark; returns the JSON section `purge`. */
export async function benchPurge(ctx: BenchContext, data: Dataset, options: PurgeBenchOptions) {
  const { sql, until, log } = ctx;
  const baselineMs = options.baselineMs ?? 2000;
  const cutoff = data.recentSince;

  // seed: one DELETE, on a fresh load
  const loadSeed = await loadDataset(ctx, data, data.since);
  log(`purge: seed (one DELETE of ${data.expiredRows.toLocaleString("en")} expired rows) with a concurrent writer`);
  const seed = await withWriter(ctx, data, baselineMs, async () => {
    const rows = ctx.exclusive
      ? await sql`delete from public.api_logs where created_at < ${cutoff}`
      : await sql`delete from public.api_logs where created_at < ${cutoff} and tenant_slug like ${data.prefix + "%"}`;
    return { deleted: rows.count };
  });

  // ours: the cleanup-logs job, on a fresh load of the same rows
  const loadOurs = await loadDataset(ctx, data, data.since);
  log("purge: ours (cleanup-logs job, batched) with a concurrent writer");
  const jobSql = createSql(ctx.info.dbUrl);
  const config = benchConfig(ctx.info, { LOG_RETENTION_DAYS: "30" });
  const shift = () => Date.now() - until.getTime();
  let offset = 0;
  const deps = buildDeps(config, {
    sql: jobSql,
    notify: createNotifier(config, { sql: jobSql, channels: [] }),
    now: () => new Date(Date.now() - offset),
  });
  const expiredNow = async () =>
    (await sql<{ n: number }[]>`select count(*)::int as n from public.api_logs where created_at < ${cutoff}
      and tenant_slug like ${data.prefix + "%"}`)[0].n;
  const job = async () => {
    offset = shift();
    const res = await runJob(deps, cleanupLogs, {
      input: cleanupLogs.input.parse({ maxSeconds: 120 }),
      trigger: "bench",
    });
    const tables = (res.report.tables ?? []) as Array<
      { table: string; deleted: number; batches: number; partitionsDropped?: number }
    >;
    const api = tables.find((t) => t.table === "public.api_logs");
    if (res.status !== "ok" || !api) {
      throw new Error(`cleanup-logs ended ${res.status}: ${JSON.stringify(res.report)}`);
    }
    return { deleted: api.deleted, batches: api.batches, status: res.status, partitionsDropped: api.partitionsDropped };
  };
  let ours: PurgeRun;
  let partitioned:
    | (PurgeRun & { removed: number; days: { ms: number; walBytes: number; dropped: number } })
    | null = null;
  let left: number;
  let loadPartitioned: number | null = null;
  try {
    ours = await withWriter(ctx, data, baselineMs, job);
    left = await expiredNow();
    // partitioned: the same job on the opt-in day-partitioned layout (README "Retention by partition"): whole expired
    // days dropped, the boundary day purged row-wise. The bench stack only (it converts the whole table).
    if (ctx.exclusive) {
      await sql`truncate public.api_logs`;
      await sql`select maintenance.api_logs_set_layout(true)`;
      await sql.unsafe(`do $$ declare d date; begin
        for d in select g::date from generate_series('${data.since.toISOString()}'::timestamptz at time zone 'UTC',
            '${until.toISOString()}'::timestamptz at time zone 'UTC', interval '1 day') g loop
          if to_regclass(format('public.api_logs_p%s', to_char(d, 'YYYYMMDD'))) is null then
            execute format('create table public.%I partition of public.api_logs for values from (%L) to (%L)',
              'api_logs_p' || to_char(d, 'YYYYMMDD'), d::timestamp at time zone 'UTC', (d + 1)::timestamp at time zone 'UTC');
          end if;
        end loop; end $$`);
      loadPartitioned = (await loadDataset(ctx, data, data.since)).ms;
      log(
        "purge: partitioned (cleanup-logs job: expired days dropped, boundary day row-wise) with a concurrent writer",
      );
      const expiredBefore = await expiredNow();
      // the two phases timed apart: the whole days (what the job does first, one day per transaction, called here
      // the same way), then the job itself, which finds no whole day left and purges the boundary day row-wise
      const days = { ms: 0, walBytes: 0, dropped: 0 };
      const run = await withWriter(ctx, data, baselineMs, async () => {
        const l0 = await lsn(ctx);
        const t0 = performance.now();
        for (;;) {
          const [{ n }] = await jobSql<{ n: number }[]>`
            select maintenance.api_logs_drop_expired_partitions(${cutoff}, 1) as n`;
          if (Number(n) === 0) break;
          days.dropped += Number(n);
        }
        days.ms = since(t0);
        const [{ wal }] = await sql<
          { wal: string }[]
        >`select pg_wal_lsn_diff(pg_current_wal_lsn(), ${l0})::text as wal`;
        days.walBytes = Number(wal);
        return await job();
      });
      partitioned = { ...run, removed: expiredBefore - await expiredNow(), days };
      await sql`truncate public.api_logs`;
      await sql`select maintenance.api_logs_set_layout(false)`;
    }
  } finally {
    await jobSql.end();
  }
  const mb = (b: number) => round(b / 1e6, 2);
  // the days phase's own WAL: its share of the writer's inserts (by time) taken out
  const daysNet = partitioned
    ? Math.max(
      0,
      partitioned.days.walBytes -
        partitioned.writer.inserts * (partitioned.days.ms / partitioned.ms) * partitioned.writerWalPerInsert,
    )
    : null;

  return {
    size: { rows: data.recentRows + data.expiredRows, expired: data.expiredRows, tenants: data.tenants },
    unit: "rows/s",
    ours: {
      rowsPerSec: ours.rowsPerSec,
      ms: ours.ms,
      deleted: ours.deleted,
      batches: ours.batches,
      // each batch is its own transaction: how long one holds its locks and its snapshot, on average
      avgTransactionMs: ours.batches ? round(ours.ms / ours.batches, 1) : null,
    },
    seed: { rowsPerSec: seed.rowsPerSec, ms: seed.ms, deleted: seed.deleted, transactions: 1 },
    // the retention comparison (issue 18): same rows, same cut-off, each with the concurrent writer
    retention: {
      partitioned: partitioned && {
        ms: partitioned.ms,
        removed: partitioned.removed,
        partitionsDropped: partitioned.days.dropped,
        rowWiseDeleted: partitioned.deleted,
        // the whole days alone (detach + drop, each tenant's latest state kept), within `ms`
        days: { ms: partitioned.days.ms, walMB: mb(partitioned.days.walBytes), netWalMB: mb(daysNet!) },
        walMB: mb(partitioned.walBytes),
        netWalMB: mb(partitioned.netWalBytes),
        writerWalPerInsert: partitioned.writerWalPerInsert,
        writer: partitioned.writer,
        writerErrors: partitioned.writerErrors,
      },
      batched: {
        ms: ours.ms,
        removed: ours.deleted,
        walMB: mb(ours.walBytes),
        netWalMB: mb(ours.netWalBytes),
        writerP99: ours.writer.p99,
      },
      singleDelete: {
        ms: seed.ms,
        removed: seed.deleted,
        walMB: mb(seed.walBytes),
        netWalMB: mb(seed.netWalBytes),
        writerP99: seed.writer.p99,
      },
      timeRatio: partitioned ? ratio(partitioned.ms, seed.ms) : null,
      walRatio: partitioned ? ratio(partitioned.netWalBytes, seed.netWalBytes) : null,
      daysTimeRatio: partitioned ? ratio(partitioned.days.ms, seed.ms) : null,
      daysWalRatio: partitioned ? ratio(daysNet!, seed.netWalBytes) : null,
      note: "timeRatio = single DELETE ms ÷ partitioned ms; walRatio = single DELETE WAL ÷ partitioned WAL " +
        "(both the whole partitioned run: days dropped + the boundary day row-wise); days*: the days alone; " +
        "netWalMB (used in the ratios) = WAL less the writer's own (its inserts during × its WAL per insert at baseline)",
      loadMs: loadPartitioned,
    },
    ratio: ratio(ours.rowsPerSec, seed.rowsPerSec, "higher"),
    ratioNote: "ratio = ours rows/s ÷ seed rows/s; writerP99Ratio = seed writer p99 ÷ ours writer p99",
    writer: {
      ours: ours.writer,
      seed: seed.writer,
      baselineBeforeOurs: ours.writerBaseline,
      baselineBeforeSeed: seed.writerBaseline,
    },
    writerP99Ratio: ratio(ours.writer.p99, seed.writer.p99),
    writerErrors: { ours: ours.writerErrors, seed: seed.writerErrors },
    keptLatestStates: left,
    loadMs: { seed: loadSeed.ms, ours: loadOurs.ms },
    targets: [
      target("ours ≥ 100,000 rows/s", ours.rowsPerSec, {
        min: 100_000,
        text: "≥ 100000 rows/s",
        applies: options.fullSize,
      }),
      target("partitioned ≥ 100× faster than one DELETE", partitioned ? ratio(partitioned.ms, seed.ms) : null, {
        min: 100,
        text: "≥ 100×",
        applies: options.fullSize && partitioned !== null,
      }),
      target(
        "partitioned ≥ 100× less WAL than one DELETE",
        partitioned ? ratio(partitioned.netWalBytes, seed.netWalBytes) : null,
        {
          min: 100,
          text: "≥ 100×",
          applies: options.fullSize && partitioned !== null,
        },
      ),
      target("writer p99 ≤ 50 ms during ours", ours.writer.p99, {
        max: 50,
        text: "≤ 50 ms",
        applies: options.fullSize,
      }),
    ],
    seconds: { ours: round(ours.ms / 1000, 1), seed: round(seed.ms / 1000, 1) },
  };
}
