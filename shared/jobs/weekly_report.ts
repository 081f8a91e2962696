/**
 * @module
 * The `weekly-report` job: usage and performance over the last `days` days (default 7), computed entirely in SQL
 * (`maintenance.weekly_report` → `usage_report` + `performance_metrics`), stored in `maintenance.job_runs` and sent
 * to the notifiers with the headline figures as fields.
 */
import { z } from "zod";
import { errorMessage } from "../errors.ts";
import type { JobDefinition, JobOutcome } from "./runner.ts";

/** Input accepted by `weekly-report`. */
export const WeeklyReportInput = z.object({
  /** Length of the period in days, ending now. */
  days: z.number().int().min(1).max(90).default(7),
});
export type WeeklyReportInput = z.infer<typeof WeeklyReportInput>;

/** The report as `maintenance.weekly_report` returns it (the parts the notification reads). */
export interface WeeklyReport {
  period: { days: number; since: string; until: string };
  diagnosis: "slow_api" | "high_error_rate" | "normal";
  usage: {
    totalTenants: number;
    activeIntegrations: number;
    totalConnections: number;
    /** Drops: an open connection going `connecting` or `close` (`maintenance.connection_drops`). */
    totalDisconnections: number;
    /** `connection.update` close events: terminal closes (logouts, bans). */
    totalCloses: number;
    averageUptime: number | null;
    [key: string]: unknown;
  };
  performance: {
    totalRequests: number;
    successRate: number | null;
    responseTime: { avg: number | null; p50: number | null; p95: number | null; p99: number | null };
    [key: string]: unknown;
  };
}

const show = (v: number | null, unit = "") => (v === null ? "n/a" : `${v}${unit}`);

/** The notification of a report: a headline and the figures as Block Kit fields. */
export function reportNotification(report: WeeklyReport) {
  const { usage, performance: perf } = report;
  const connections = `${usage.totalConnections} connections, ${usage.totalDisconnections} disconnections ` +
    `(${usage.totalCloses} terminal closes)`;
  return {
    severity: "info" as const,
    title: `Weekly WhatsApp report (${report.period.days} days): ${report.diagnosis}`,
    text: `${perf.totalRequests} requests, ${show(perf.successRate, "%")} success, average ${
      show(perf.responseTime.avg, " ms")
    } (p95 ${show(perf.responseTime.p95, " ms")}); ${connections}; average uptime ${
      show(usage.averageUptime, "%")
    }. Period ${report.period.since} to ${report.period.until}.`,
    fields: {
      "Requests": perf.totalRequests,
      "Success rate": show(perf.successRate, "%"),
      "Avg / p95 / p99": `${show(perf.responseTime.avg)} / ${show(perf.responseTime.p95)} / ${
        show(perf.responseTime.p99)
      } ms`,
      "Diagnosis": report.diagnosis,
      "Active tenants": usage.totalTenants,
      "Active integrations": usage.activeIntegrations,
      "Connections / disconnections": `${usage.totalConnections} / ${usage.totalDisconnections}`,
      "Average uptime": show(usage.averageUptime, "%"),
    },
  };
}

/** The `weekly-report` job. */
export const weeklyReport: JobDefinition<typeof WeeklyReportInput> = {
  name: "weekly-report",
  input: WeeklyReportInput,
  schedule: "0 8 * * 0",
  sampleInput: { days: 1 },
  summarize(r) {
    // deno-lint-ignore no-explicit-any
    const p = r.performance as any, u = r.usage as any, period = r.period as any;
    if (!p || !u) return "";
    return `${period?.days ?? "?"} days: ${p.totalRequests} request(s), ${p.successRate ?? "-"} % success, ` +
      `${u.totalConnections} connection(s), ${u.totalDisconnections} disconnection(s); diagnosis ${
        p.diagnosis ?? r.diagnosis
      }`;
  },
  async run({ deps, input }): Promise<JobOutcome> {
    const until = deps.now();
    const [{ report }] = await deps.sql<{ report: WeeklyReport }[]>`
      select maintenance.weekly_report(${input.days}, ${until}) as report`;
    let notified: boolean | string = true;
    try {
      await deps.notify.send(reportNotification(report));
    } catch (error) {
      notified = `Cannot send the report: ${errorMessage(error)}`;
    }
    return { status: "ok", report: { ...report, notified } as unknown as Record<string, unknown> };
  },
};
