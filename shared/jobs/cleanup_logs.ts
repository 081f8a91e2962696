/**
 * @module
 * The `cleanup-logs` job: the daily retention purge. `api_logs` rows older than `LOG_RETENTION_DAYS` go in
 * index-driven batches, each its own short transaction (`maintenance.purge_api_logs_batch`), under a time budget so
 * a run never outlives the Edge Functions wall clock; what is left is finished by the next run (`remaining`). Then
 * every table of `maintenance.retention_policies` that exists (expired sessions, pg_cron history, pg_net responses,
 * old job runs, resolved alerts, settled notifications, other engineers' tables) is purged the same way, and the
 * orphan integrations (integration rows whose tenant is gone) are reported. Before that, cross-tenant attempts older
 * than `cross_tenant_collapse_after` are folded into one row per tenant, claimed instance and hour
 * (`maintenance.cross_tenant_hourly`), and notifications pending past `outbox_pending_expiry` are failed as dead.
 * `{"dryRun": true}` counts what would go and deletes nothing.
 */
import { z } from "zod";
import type { Sql } from "../db.ts";
import { errorMessage } from "../errors.ts";
import type { JobDefinition, JobOutcome } from "./runner.ts";

/** Default rows per batch: measured on 2 M rows with a concurrent writer (README, "Retention"). */
export const DEFAULT_BATCH_SIZE = 10_000;

/** The longest time budget a run may ask for (seconds). */
export const MAX_SECONDS = 120;

/** Input accepted by `cleanup-logs`. */
export const CleanupLogsInput = z.object({
  /** Count what would be purged, delete nothing. */
  dryRun: z.boolean().default(false),
  /**
   * Time budget of the run in seconds; what is left is finished by the next run. At most 120: an Edge Function's
   * request may sit idle for at most 150 s, and a direct (synchronous) call waits for the whole run.
   */
  maxSeconds: z.number().int().min(1).max(MAX_SECONDS).default(60),
  /** Rows per batch (each batch is one transaction). */
  batchSize: z.number().int().min(100).max(100_000).default(DEFAULT_BATCH_SIZE),
});
export type CleanupLogsInput = z.infer<typeof CleanupLogsInput>;

/** What was (or, in a dry run, would be) purged from one table. */
export interface PurgeResult {
  table: string;
  cutoff: string;
  deleted: number;
  batches: number;
  remaining: boolean;
  skipped?: string;
  error?: string;
  /** On the partitioned layout only: whole expired days detached and dropped before the row-wise batches. */
  partitionsDropped?: number;
}

interface Budget {
  deadline: number;
  clock: () => number;
}

async function purgeApiLogs(
  sql: Sql,
  cutoff: Date,
  input: CleanupLogsInput,
  budget: Budget,
  partitioned = false,
): Promise<PurgeResult> {
  const result: PurgeResult = {
    table: "public.api_logs",
    cutoff: cutoff.toISOString(),
    deleted: 0,
    batches: 0,
    remaining: false,
  };
  if (input.dryRun) {
    const [{ n }] = await sql<{ n: string }[]>`select maintenance.count_expired_api_logs(${cutoff}) as n`;
    result.deleted = Number(n);
    result.remaining = result.deleted > 0;
    return result;
  }
  let after: Date | null = null;
  for (;;) {
    if (budget.clock() >= budget.deadline) {
      const [{ n }] = await sql<{ n: string }[]>`select maintenance.count_expired_api_logs(${cutoff}) as n`;
      result.remaining = Number(n) > 0;
      return result;
    }
    const [batch]: { deleted: number; last_created_at: Date | null }[] = await sql`
      select deleted, last_created_at from ${
      // the partitioned layout's batch matches rows by (tableoid, ctid): a ctid is unique only within a partition
      sql(
        partitioned ? "maintenance.purge_api_logs_partitioned_batch" : "maintenance.purge_api_logs_batch",
      )}(${cutoff}, ${input.batchSize}, ${after})`;
    result.batches++;
    result.deleted += batch.deleted;
    if (batch.deleted < input.batchSize) return result;
    after = batch.last_created_at;
  }
}

/**
 * The partitioned layout's first step (opt-in, README "Retention by partition"): day partitions made ahead, then
 * every day wholly before the cut-off (and before the rollup watermark) detached and dropped, one day per
 * transaction so a writer waits for one day's detach at most (each tenant's latest connection.update kept); the
 * boundary day is left to the row-wise batches. `null` on the plain layout, where nothing changes.
 */
async function dropExpiredApiLogPartitions(
  sql: Sql,
  cutoff: Date,
  dryRun: boolean,
  budget: Budget,
): Promise<number | null> {
  const [{ partitioned }] = await sql<{ partitioned: boolean }[]>`
    select maintenance.api_logs_is_partitioned() as partitioned`;
  if (!partitioned || dryRun) return null;
  await sql`select maintenance.api_logs_ensure_partitions(7)`;
  let dropped = 0;
  while (budget.clock() < budget.deadline) {
    const [{ n }] = await sql<{ n: number }[]>`
      select maintenance.api_logs_drop_expired_partitions(${cutoff}, 1) as n`;
    if (Number(n) === 0) break;
    dropped += Number(n);
  }
  return dropped;
}

/** Folds old cross-tenant attempts into their hours, batch by batch, within the budget. */
async function collapseCrossTenant(sql: Sql, asOf: Date, input: CleanupLogsInput, budget: Budget) {
  const [{ cutoff }] = await sql<{ cutoff: Date }[]>`
    select ${asOf}::timestamptz - (maintenance.setting('cross_tenant_collapse_after') #>> '{}')::interval as cutoff`;
  const result = { cutoff: new Date(cutoff).toISOString(), folded: 0, batches: 0, remaining: false };
  // a batch first, then the clock: attempts are rare, so a run almost always folds everything in one batch and
  // leaves the budget to the purge
  for (;;) {
    const [{ n }] = await sql<{ n: string }[]>`
      select maintenance.collapse_cross_tenant_batch(${cutoff}, ${input.batchSize}, ${input.dryRun}) as n`;
    result.batches++;
    result.folded += Number(n);
    if (input.dryRun) {
      result.remaining = Number(n) > 0;
      return result;
    }
    if (Number(n) < input.batchSize) return result;
    if (budget.clock() >= budget.deadline) {
      result.remaining = true;
      return result;
    }
  }
}

async function purgePolicy(
  sql: Sql,
  plan: { relation: string; cutoff: Date },
  asOf: Date,
  input: CleanupLogsInput,
  budget: Budget,
): Promise<PurgeResult> {
  const result: PurgeResult = {
    table: plan.relation,
    cutoff: new Date(plan.cutoff).toISOString(),
    deleted: 0,
    batches: 0,
    remaining: false,
  };
  for (;;) {
    if (budget.clock() >= budget.deadline) {
      result.remaining = true;
      return result;
    }
    const [{ n }] = await sql<{ n: string }[]>`
      select maintenance.purge_policy_batch(${plan.relation}, ${asOf}, ${input.batchSize}, ${input.dryRun}) as n`;
    result.batches++;
    result.deleted += Number(n);
    if (input.dryRun) {
      result.remaining = Number(n) > 0;
      return result;
    }
    if (Number(n) < input.batchSize) return result;
  }
}

/** The `cleanup-logs` job. */
export const cleanupLogs: JobDefinition<typeof CleanupLogsInput> = {
  name: "cleanup-logs",
  input: CleanupLogsInput,
  schedule: "0 2 * * *",
  sampleInput: { dryRun: true },
  summarize(r) {
    if (!("totalDeleted" in r)) return "";
    // deno-lint-ignore no-explicit-any
    const orphans = (r.orphanIntegrations as any)?.count ?? 0;
    return `${r.totalDeleted} row(s) removed${r.remaining ? " (more left for the next run)" : ""}; ` +
      `${orphans} orphan integration(s)${r.dryRun ? " (dry run)" : ""}`;
  },
  isDryRun: (input) => input.dryRun,
  async run({ deps, input }): Promise<JobOutcome> {
    const { sql, config } = deps;
    const asOf = deps.now();
    const clock = () => deps.now().getTime();
    const budget: Budget = { deadline: asOf.getTime() + input.maxSeconds * 1000, clock };
    const cutoff = new Date(asOf.getTime() - config.logRetentionDays * 86_400_000);
    const purged: PurgeResult[] = [];
    const errors: string[] = [];

    let crossTenant: Awaited<ReturnType<typeof collapseCrossTenant>> | null = null;
    try {
      crossTenant = await collapseCrossTenant(sql, asOf, input, budget);
    } catch (error) {
      errors.push(`Cannot collapse cross-tenant attempts: ${errorMessage(error)}`);
    }
    let deadNotifications: number | null = null;
    try {
      const [{ n }] = await sql<{ n: string }[]>`
        select maintenance.expire_dead_notifications(${asOf}, ${input.dryRun}) as n`;
      deadNotifications = Number(n);
    } catch (error) {
      errors.push(`Cannot expire dead notifications: ${errorMessage(error)}`);
    }

    try {
      const partitionsDropped = await dropExpiredApiLogPartitions(sql, cutoff, input.dryRun, budget);
      const result = await purgeApiLogs(sql, cutoff, input, budget, partitionsDropped !== null);
      purged.push(partitionsDropped === null ? result : { ...result, partitionsDropped });
    } catch (error) {
      const message = `Cannot purge public.api_logs: ${errorMessage(error)}`;
      errors.push(message);
      purged.push({
        table: "public.api_logs",
        cutoff: cutoff.toISOString(),
        deleted: 0,
        batches: 0,
        remaining: true,
        error: message,
      });
    }

    let plans: { relation: string; cutoff: Date; reason: string | null }[] = [];
    try {
      plans = await sql`select relation, cutoff, reason from maintenance.retention_plan(${asOf})`;
    } catch (error) {
      errors.push(`Cannot read maintenance.retention_policies: ${errorMessage(error)}`);
    }
    const skipped: { table: string; reason: string }[] = [];
    for (const plan of plans) {
      if (plan.reason) {
        skipped.push({ table: plan.relation, reason: plan.reason });
        continue;
      }
      try {
        purged.push(await purgePolicy(sql, plan, asOf, input, budget));
      } catch (error) {
        const message = `Cannot purge ${plan.relation}: ${errorMessage(error)}`;
        errors.push(message);
        purged.push({
          table: plan.relation,
          cutoff: new Date(plan.cutoff).toISOString(),
          deleted: 0,
          batches: 0,
          remaining: true,
          error: message,
        });
      }
    }

    let orphanIntegrations: { count: number; rows: unknown[] } | null = null;
    try {
      const [{ report }] = await sql<{ report: { count: number; rows: unknown[] } }[]>`
        select maintenance.orphan_integrations_report(50) as report`;
      orphanIntegrations = report;
    } catch (error) {
      errors.push(`Cannot list orphan integrations: ${errorMessage(error)}`);
    }

    const totals = Object.fromEntries(purged.map((p) => [p.table, p.deleted]));
    const report = {
      dryRun: input.dryRun,
      asOf: asOf.toISOString(),
      retentionDays: config.logRetentionDays,
      maxSeconds: input.maxSeconds,
      batchSize: input.batchSize,
      [input.dryRun ? "wouldDelete" : "deleted"]: totals,
      totalDeleted: purged.reduce((s, p) => s + p.deleted, 0),
      remaining: purged.some((p) => p.remaining) || !!crossTenant?.remaining,
      tables: purged,
      skipped,
      crossTenantCollapsed: crossTenant,
      [input.dryRun ? "deadNotificationsToExpire" : "deadNotificationsExpired"]: deadNotifications,
      orphanIntegrations,
      errors,
    };
    return errors.length ? { status: "error", report, error: errors.join("; ") } : { status: "ok", report };
  },
};
