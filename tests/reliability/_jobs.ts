/**
 * @module
 * The five scheduled jobs by name, for the matrices that run each of them.
 */
import { cleanupLogs } from "../../shared/jobs/cleanup_logs.ts";
import { healthCheck } from "../../shared/jobs/health_check.ts";
import { isolationAudit } from "../../shared/jobs/isolation_audit.ts";
import { orphanCleanup } from "../../shared/jobs/orphan_cleanup.ts";
import { weeklyReport } from "../../shared/jobs/weekly_report.ts";
import type { JobDefinition } from "../../shared/jobs/runner.ts";

/** Every scheduled job, by its function name. */
export const JOBS: Record<string, JobDefinition> = {
  "health-check": healthCheck as unknown as JobDefinition,
  "cleanup-logs": cleanupLogs as unknown as JobDefinition,
  "isolation-audit": isolationAudit as unknown as JobDefinition,
  "orphan-cleanup": orphanCleanup as unknown as JobDefinition,
  "weekly-report": weeklyReport as unknown as JobDefinition,
};
