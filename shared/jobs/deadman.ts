/**
 * @module
 * The dead-man check: every scheduled job (`maintenance.scheduled_jobs`) must have succeeded by the next run of its
 * schedule after its last success, plus `deadman_grace`; otherwise it is a missed run. The rule itself is SQL
 * (`maintenance.job_health`, which the dashboard and the status page read too); this module turns its verdicts into
 * `missed_run:<job>` alert candidates and explains each from what pg_cron, the scheduled calls and job_runs recorded
 * (`maintenance.deadman_status`).
 */
import type { Sql } from "../db.ts";
import type { AlertCandidate } from "../alerts/lifecycle.ts";

/** One scheduled job as `maintenance.deadman_status()` reports it. */
export interface DeadManStatus {
  job: string;
  schedule: string;
  active: boolean;
  last_run_at: Date | null;
  last_run_status: string | null;
  last_run_error: string | null;
  last_success_at: Date | null;
  expected_by: Date | null;
  missed: boolean;
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
  /** When it should have succeeded by (its expected run plus the grace). */
  expectedBy: string;
  lastSuccessAt: string | null;
  cause: string;
}

/** What the dead-man check found. */
export interface DeadManReport {
  watched: number;
  missed: MissedRun[];
  /** Active jobs whose schedule has no next run (`maintenance.cron_next_run` could not read it). */
  unparsable: string[];
  candidates: AlertCandidate[];
}

const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);

/** The most likely reason a job did not succeed, from what pg_cron, the scheduled calls and job_runs recorded. */
export function missedRunCause(s: DeadManStatus): string {
  if (s.cron_status === "failed") return `pg_cron could not run the command: ${s.cron_message ?? "no message"}`;
  if (s.last_run_status === "error") return `the last run failed: ${s.last_run_error ?? "no error recorded"}`;
  if (s.last_run_status === "running") return "the last run never finished (crashed or timed out)";
  if (!s.cron_at) return "pg_cron never ran it (is the scheduler running, and cron.database_name this database?)";
  if (s.last_run_at && s.cron_at && new Date(s.last_run_at) >= new Date(s.cron_at)) {
    return `its runs do not succeed (last: ${s.last_run_status})`;
  }
  if (s.net_failures_24h > 0) {
    return `pg_cron ran it, but the function call did not get through: ${s.net_failures_24h} failed scheduled calls in 24 h, latest: ${s.net_last_error}`;
  }
  return "pg_cron ran it, but the function did not record a run (not deployed, or it timed out before starting)";
}

/**
 * Reads the scheduled jobs' health and returns the missed runs as `missed_run:<job>` alert candidates.
 * `runningJob`: the job doing the check when its own schedule called it (it is demonstrably running; a manual run
 * does not prove that).
 */
export async function deadManCheck(
  sql: Sql,
  options: { now: Date; runningJob?: string },
): Promise<DeadManReport> {
  const rows = await sql<DeadManStatus[]>`select * from maintenance.deadman_status(${options.now})`;
  const report: DeadManReport = { watched: 0, missed: [], unparsable: [], candidates: [] };
  for (const s of rows) {
    // inactive schedules are paused on purpose; the job running this check (called by its schedule) is alive
    if (!s.active || s.job === options.runningJob) continue;
    if (!s.expected_by) {
      report.unparsable.push(`${s.job}: ${s.schedule}`);
      continue;
    }
    report.watched++;
    if (!s.missed) continue;
    const missed: MissedRun = {
      job: s.job,
      schedule: s.schedule,
      expectedBy: iso(s.expected_by)!,
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
        text: `${s.job} (${s.schedule} UTC) should have succeeded by ${missed.expectedBy}: ${missed.cause}.`,
        ...missed,
      },
    });
  }
  return report;
}
