/**
 * @module
 * The registry of scheduled jobs: every job of the bundle, once. Whatever needs "every job" iterates it (npm start's
 * run-once, the operator CLI, the functions' tests and the reliability matrices); nothing else lists job names. In
 * the database the same list is `maintenance.scheduled_jobs` (each job's migration inserts its row; pg_cron follows
 * the table). A new job: its module here, its entrypoint, its migration row, its test, its README line.
 */
import type { JobDefinition } from "./runner.ts";
import { healthCheck } from "./health_check.ts";
import { cleanupLogs } from "./cleanup_logs.ts";
import { isolationAudit } from "./isolation_audit.ts";
import { orphanCleanup } from "./orphan_cleanup.ts";
import { weeklyReport } from "./weekly_report.ts";

/** Every scheduled job, in the order `npm start` runs them. */
export const JOBS: readonly JobDefinition[] = [
  healthCheck,
  cleanupLogs,
  isolationAudit,
  orphanCleanup,
  weeklyReport,
] as unknown as readonly JobDefinition[];

/** The job of that name, or undefined. */
export function findJob(name: string, jobs: readonly JobDefinition[] = JOBS): JobDefinition | undefined {
  return jobs.find((j) => j.name === name);
}

/** One readable line for a run's report: the job's own summary, the error, or the report itself, shortened. */
export function summaryLine(job: JobDefinition | undefined, report: unknown): string {
  const r = (report ?? {}) as Record<string, unknown>;
  if (r.error) return `error: ${String(r.error).slice(0, 200)}`;
  let line = "";
  try {
    line = job?.summarize(r) ?? "";
  } catch { /* a report of another shape: shown as it is */ }
  if (line) return line;
  const text = JSON.stringify(r);
  return text.length > 200 ? text.slice(0, 197) + "..." : text;
}
