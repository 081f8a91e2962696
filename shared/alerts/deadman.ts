/**
 * @module
 * The dead-man check: every scheduled job of the bundle (pg_cron jobs `canais-<job>`) must have succeeded by its
 * next expected run after its last success, plus a grace period; otherwise it is a missed run. The expected times
 * come from the pg_cron schedule (croner); the cause from `maintenance.job_runs`, `cron.job_run_details` and
 * `net._http_response` (all read by `maintenance.scheduled_job_status()`).
 */
import { Cron } from "croner";
import type { Sql } from "../db.ts";
import type { AlertCandidate } from "./lifecycle.ts";

/** One scheduled job as `maintenance.scheduled_job_status()` reports it. */
export interface ScheduledJobStatus {
  jobname: string;
  job: string;
  schedule: string;
  active: boolean;
  first_seen_at: Date;
  last_success_at: Date | null;
  last_run_at: Date | null;
  last_run_status: string | null;
  last_run_error: string | null;
  cron_status: string | null;
  cron_message: string | null;
  cron_at: Date | null;
  net_failures_24h: number;
  net_last_error: string | null;
  net_last_error_at: Date | null;
}

/** A job that has not succeeded when it should have. */
export interface MissedRun {
  job: string;
  schedule: string;
  expectedAt: string;
  lastSuccessAt: string | null;
  cause: string;
}

/** What the dead-man check found. */
export interface DeadManReport {
  watched: number;
  missed: MissedRun[];
  unparsable: string[];
  candidates: AlertCandidate[];
}

const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);

/** The most likely reason a job did not succeed, from what pg_cron, pg_net and job_runs recorded. */
export function missedRunCause(s: ScheduledJobStatus): string {
  if (s.cron_status === "failed") return `pg_cron could not run the command: ${s.cron_message ?? "no message"}`;
  if (s.last_run_status === "error") return `the last run failed: ${s.last_run_error ?? "no error recorded"}`;
  if (s.last_run_status === "running") return "the last run never finished (crashed or timed out)";
  if (!s.cron_at) return "pg_cron never ran it (is the scheduler running, and cron.database_name this database?)";
  if (s.last_run_at && s.cron_at && new Date(s.last_run_at) >= new Date(s.cron_at)) {
    return `its runs do not succeed (last: ${s.last_run_status})`;
  }
  if (s.net_failures_24h > 0) {
    return `pg_cron ran it, but the function call did not get through: ${s.net_failures_24h} failed pg_net calls in 24 h, latest: ${s.net_last_error}`;
  }
  return "pg_cron ran it, but the function did not record a run (not deployed, or it timed out before starting)";
}

/**
 * Reads the scheduled jobs and returns the missed runs as `missed_run:<job>` alert candidates. `runningJob`: the job
 * doing the check when its own schedule called it (it is demonstrably running; a manual run does not prove that).
 */
export async function deadManCheck(
  sql: Sql,
  options: { now: Date; graceMs?: number; runningJob?: string },
): Promise<DeadManReport> {
  const rows = await sql<ScheduledJobStatus[]>`select * from maintenance.scheduled_job_status()`;
  let graceMs = options.graceMs;
  if (graceMs === undefined) {
    const [g] = await sql<{ ms: number | null }[]>`
      select (extract(epoch from (maintenance.setting('deadman_grace') #>> '{}')::interval) * 1000)::float8 as ms`;
    graceMs = g?.ms ?? 10 * 60_000;
  }
  const now = options.now.getTime();
  const report: DeadManReport = { watched: 0, missed: [], unparsable: [], candidates: [] };
  for (const s of rows) {
    // inactive schedules are paused on purpose; the job running this check (called by its schedule) is alive
    if (!s.active || s.job === options.runningJob) continue;
    let cron: Cron;
    try {
      cron = new Cron(s.schedule, { timezone: "UTC", paused: true });
    } catch {
      report.unparsable.push(`${s.jobname}: ${s.schedule}`); // e.g. pg_cron's '30 seconds' form
      continue;
    }
    report.watched++;
    const reference = s.last_success_at ?? s.first_seen_at;
    const expected = cron.nextRun(new Date(reference));
    if (!expected || expected.getTime() + graceMs >= now) continue;
    const missed: MissedRun = {
      job: s.job,
      schedule: s.schedule,
      expectedAt: expected.toISOString(),
      lastSuccessAt: iso(s.last_success_at),
      cause: missedRunCause(s),
    };
    report.missed.push(missed);
    report.candidates.push({
      fingerprint: `missed_run:${s.job}`,
      kind: "missed_run",
      severity: s.job === "health-check" ? "critical" : "warning",
      summary: `Scheduled job ${s.job} has not succeeded since ${missed.lastSuccessAt ?? "it was scheduled"}`,
      labels: { job: s.job },
      details: {
        text: `${s.job} (${s.schedule} UTC) was due at ${missed.expectedAt} and has not succeeded: ${missed.cause}.`,
        ...missed,
      },
    });
  }
  return report;
}
