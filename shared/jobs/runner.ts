/**
 * @module
 * The job runner every scheduled function goes through: a lease so runs of one job never overlap (the loser is
 * recorded `skipped`), a `maintenance.job_runs` row written at start and completed at the end, and no crash on a
 * fault outside the job: the run is recorded `error` with the cause and the response still goes out.
 */
import { z } from "zod";
import type { JobResult } from "../alerts/notify.ts";
import type { Deps } from "../deps.ts";
import { errorMessage } from "../errors.ts";
import { ensureDefaultServer } from "../evolution/servers.ts";

/** Final statuses of a run, as `job_runs.status` stores them. */
export const JobStatus = z.enum(["healthy", "degraded", "unhealthy", "ok", "error", "skipped"]);
export type JobStatus = z.infer<typeof JobStatus>;

/**
 * A job's name: its function's name, its row in `maintenance.scheduled_jobs`, `job_runs.job`. The jobs themselves
 * are the registry's (shared/jobs/mod.ts).
 */
export const JobName = z.string().regex(/^[a-z][a-z0-9-]{0,62}$/);
export type JobName = z.infer<typeof JobName>;

/** Who started a run. */
export const Trigger = z.enum(["cron", "manual", "cli", "start", "test", "bench"]);
export type Trigger = z.infer<typeof Trigger>;

/**
 * What one scheduled call hands over to the next scheduled call of the same job, through pg_net's record of its
 * answer (`maintenance.invoke_function` reads it back): state that must survive the isolate, for the one case where
 * the database cannot hold it: a database the function cannot reach.
 */
export const Carry = z.object({
  databaseOutage: z.object({
    since: z.iso.datetime({ offset: true }),
    notifiedAt: z.iso.datetime({ offset: true }).nullable(),
  }).strict().optional(),
}).strict();
export type Carry = z.infer<typeof Carry>;

/** What a job returns. */
export interface JobOutcome {
  status: JobStatus;
  report: Record<string, unknown>;
  error?: string;
}

/** What a job receives. */
export interface JobContext<I> {
  deps: Deps;
  input: I;
  runId: string;
  dryRun: boolean;
  trigger: Trigger;
  /** What the previous scheduled call of this job handed over (see {@link Carry}). */
  carry?: Carry;
}

/**
 * A job: its name, its input schema (fields besides `trigger`), whether an input is a dry run, its logic, and what
 * the tools around it need to know of it without naming it (its default schedule, a harmless input, a summary).
 */
export interface JobDefinition<S extends z.ZodObject = z.ZodObject> {
  name: JobName;
  /** The body fields the job accepts (unknown fields are rejected; `trigger` is added by the runner). */
  input: S;
  /**
   * The default schedule (UTC cron), as the job's migration row in `maintenance.scheduled_jobs` writes it (a test
   * compares the two; operators change the row with `maintenance.set_schedule`).
   */
  schedule: string;
  /**
   * An input that changes as little as the job allows (its dry run where it has one): what smoke runs and the test
   * matrices send.
   */
  sampleInput: z.input<S>;
  /** One readable line of a run's report, for `npm start`. */
  summarize(report: Record<string, unknown>): string;
  isDryRun?: (input: z.infer<S>) => boolean;
  /** How long a run may hold the lease before another run may take over (default 10 min). */
  leaseSeconds?: number;
  /**
   * The lease a run of this input takes (default: the job's name): runs with different keys may run in parallel
   * (health-check's shards, one lease each).
   */
  leaseKey?: (input: z.infer<S>) => string;
  /**
   * Called when the database is unreachable (the run cannot be recorded): e.g. alert directly. `report` is merged
   * into the run's report; `carry` is handed to the next scheduled call (the database cannot keep it). `input` is the
   * run's input (health-check alerts only from a full run).
   */
  onDatabaseUnavailable?(
    deps: Deps,
    error: unknown,
    carry?: Carry,
    input?: z.infer<S>,
  ): Promise<{ report: Record<string, unknown>; carry?: Carry }>;
  run(ctx: JobContext<z.infer<S>>): Promise<JobOutcome>;
}

/** The response of every job function: the `maintenance.job_runs` row as stored. */
export interface JobRunResponse {
  job: JobName;
  runId: string;
  status: JobStatus;
  startedAt: string;
  finishedAt: string;
  durationMs: number;
  dryRun: boolean;
  report: Record<string, unknown>;
  /** Only when there is something to hand to the next scheduled call (see {@link Carry}). */
  carry?: Carry;
}

const synced = new WeakSet<object>();

/**
 * Keeps `maintenance.settings` in step with the configuration (instance prefix, webhook base URL, retention), so
 * the SQL views read the same values the functions use. Once per process and SQL client.
 */
export async function syncSettings(deps: Deps): Promise<void> {
  if (synced.has(deps.sql)) return;
  const { config, sql } = deps;
  const rows = [
    { key: "instance_prefix", value: config.instancePrefix },
    { key: "webhook_base_url", value: config.webhookBaseUrl },
    { key: "log_retention_days", value: config.logRetentionDays },
  ];
  for (const r of rows) {
    await sql`
      insert into maintenance.settings (key, value, updated_at) values (${r.key}, ${sql.json(r.value)}, now())
      on conflict (key) do update set value = excluded.value, updated_at = now()
      where maintenance.settings.value is distinct from excluded.value`;
  }
  synced.add(deps.sql);
}

/** Runs one job under its lease and records it. Never throws for a fault outside the job. */
export async function runJob<S extends z.ZodObject>(
  deps: Deps,
  job: JobDefinition<S>,
  options: {
    input: z.infer<S>;
    trigger?: Trigger;
    carry?: Carry;
    /** Called once the run is recorded (lease held, `running` row committed), before the job itself starts. */
    onStarted?: (runId: string) => void;
  },
): Promise<JobRunResponse> {
  const { sql } = deps;
  const runId = crypto.randomUUID();
  const input = options.input;
  const trigger = options.trigger ?? "manual";
  const dryRun = job.isDryRun?.(input) ?? false;
  const started = deps.now();
  const leaseSeconds = job.leaseSeconds ?? 600;
  const leaseKey = job.leaseKey?.(input) ?? job.name;
  const finish = (status: JobStatus, report: Record<string, unknown>): JobRunResponse => {
    const finished = deps.now();
    return {
      job: job.name,
      runId,
      status,
      startedAt: started.toISOString(),
      finishedAt: finished.toISOString(),
      durationMs: Math.max(0, finished.getTime() - started.getTime()),
      dryRun,
      report,
    };
  };

  // 1. Lease + start row, in one short transaction.
  let holder: { run_id: string; acquired_at: Date } | undefined;
  // A run whose lease expired without being released (killed, or timed out by the runtime): its row stays 'running'
  // and this run names it in its report.
  let abandoned: { runId: string; since: string } | undefined;
  try {
    await syncSettings(deps);
    // the EVOLUTION_API_URL server in the fleet registry (once per process; ../evolution/servers.ts)
    await ensureDefaultServer(deps);
    holder = await sql.begin(async (tx) => {
      const [lease] = await tx<{ run_id: string; previous_run_id: string | null; previous_since: Date | null }[]>`
        with previous as (
          select run_id, acquired_at from maintenance.job_leases where job = ${leaseKey} and expires_at < now())
        insert into maintenance.job_leases (job, run_id, acquired_at, expires_at)
        values (${leaseKey}, ${runId}, now(), now() + make_interval(secs => ${leaseSeconds}))
        on conflict (job) do update set run_id = excluded.run_id, acquired_at = excluded.acquired_at,
          expires_at = excluded.expires_at
        where maintenance.job_leases.expires_at < now()
        returning run_id, (select p.run_id from previous p) as previous_run_id,
          (select p.acquired_at from previous p) as previous_since`;
      if (lease?.previous_run_id) {
        abandoned = { runId: lease.previous_run_id, since: new Date(lease.previous_since!).toISOString() };
      }
      if (!lease) {
        const [current] = await tx<{ run_id: string; acquired_at: Date }[]>`
          select run_id, acquired_at from maintenance.job_leases where job = ${leaseKey}`;
        return current ?? { run_id: "unknown", acquired_at: new Date(0) };
      }
      await tx`
        insert into maintenance.job_runs (id, job, status, started_at, dry_run, trigger, input)
        values (${runId}, ${job.name}, 'running', ${started}, ${dryRun}, ${trigger}, ${tx.json(input as never)})`;
      return undefined;
    });
  } catch (error) {
    // The database is the one place a run is recorded; without it, answer with the cause and stop.
    const extra = await job.onDatabaseUnavailable?.(deps, error, options.carry, input)
      .catch((e) => ({ report: { hookError: errorMessage(e) }, carry: options.carry }));
    const response = finish("error", {
      error: `Cannot record the run as the database is unavailable: ${errorMessage(error)}`,
      ...extra?.report,
    });
    if (extra?.carry && Object.keys(extra.carry).length) response.carry = extra.carry;
    return response;
  }

  if (holder) {
    const response = finish("skipped", {
      reason: "another run of this job is in progress",
      runningRunId: holder.run_id,
      runningSince: new Date(holder.acquired_at).toISOString(),
    });
    await sql`
      insert into maintenance.job_runs (id, job, status, started_at, finished_at, duration_ms, dry_run, trigger, input,
        report)
      values (${runId}, ${job.name}, 'skipped', ${started}, ${response.finishedAt}, ${response.durationMs}, ${dryRun},
        ${trigger}, ${sql.json(input as never)}, ${sql.json(response.report as never)})`.catch(() => {});
    return response;
  }

  // 2. The job itself.
  options.onStarted?.(runId);
  let outcome: JobOutcome;
  try {
    outcome = await job.run({ deps, input, runId, dryRun, trigger, carry: options.carry });
  } catch (error) {
    outcome = {
      status: "error",
      report: { error: errorMessage(error), code: (error as { code?: string })?.code ?? null },
      error: errorMessage(error),
    };
  }
  // Evolution call logs are buffered; write them before the runtime may freeze the process. Never throws.
  try {
    await deps.evolution.flushLogs?.();
  } catch { /* logging never fails a run */ }
  const response = finish(outcome.status, abandoned ? { ...outcome.report, abandonedRun: abandoned } : outcome.report);

  // 3. Complete the row and release the lease. A failure here is retried once, then left to lease expiry.
  const complete = () =>
    sql.begin(async (tx) => {
      await tx`
        update maintenance.job_runs set status = ${response.status}, finished_at = ${response.finishedAt},
          duration_ms = ${response.durationMs}, report = ${tx.json(response.report as never)},
          error = ${outcome.error ?? (outcome.status === "error" ? String(outcome.report.error ?? "") : null)}
        where id = ${runId}`;
      await tx`delete from maintenance.job_leases where job = ${leaseKey} and run_id = ${runId}`;
    });
  try {
    await complete();
  } catch {
    await new Promise((r) => setTimeout(r, 500));
    await complete().catch((error) => {
      response.report = { ...response.report, recordError: errorMessage(error) };
    });
  }
  // 4. The application webhooks hear of the run (job.completed); nothing when none is configured. Never throws.
  await deps.notify.jobResult?.(jobResult(job, response, { trigger, error: outcome.error })).catch(() => {});
  return response;
}

/** The small record of a finished run the application webhooks receive: no report, one summary line. */
function jobResult(
  job: JobDefinition<z.ZodObject>,
  r: JobRunResponse,
  options: { trigger: Trigger; error?: string },
): JobResult {
  let summary: string;
  try {
    summary = job.summarize(r.report);
  } catch {
    summary = r.status;
  }
  return {
    job: r.job,
    runId: r.runId,
    status: r.status,
    summary: summary.slice(0, 500),
    startedAt: r.startedAt,
    finishedAt: r.finishedAt,
    durationMs: r.durationMs,
    trigger: options.trigger,
    dryRun: r.dryRun,
    error: options.error?.slice(0, 500) ?? (r.status === "error" ? String(r.report.error ?? "").slice(0, 500) : null),
  };
}
