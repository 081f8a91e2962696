/**
 * @module
 * What the status page shows, read from Postgres with one statement per section (summary, tenants with their
 * availability bars, open alerts, jobs, Evolution servers); every aggregate is computed in SQL
 * (`maintenance.status_page_summary`, `maintenance.status_page_tenants`, `maintenance.dashboard_open_alerts`,
 * `maintenance.job_health`, `maintenance.dashboard_servers`).
 */
import type { Sql } from "../db.ts";

/** Overall status of the platform as the page headline shows it. */
export type Overall = "operational" | "degraded" | "outage" | "unknown";

/** One service as the last health-check run reported it. */
export interface ServiceHealth {
  status: string;
  latencyMs?: number;
  version?: string;
  error?: string;
  reason?: string;
}

/** The page's top section (`maintenance.status_page_summary`). */
export interface Summary {
  asOf: string;
  overall: Overall;
  reasons: string[];
  lastCheck:
    | {
      runId: string;
      status: string;
      startedAt: string;
      finishedAt: string | null;
      error: string | null;
      ageSeconds: number;
    }
    | null;
  lastSuccessAt: string | null;
  fresh: boolean;
  services: Record<string, ServiceHealth>;
  tenants: { total: number; healthy: number; degraded: number; unhealthy: number; unknown: number };
  alerts: { firing: number; critical: number; warning: number; inhibited: number };
  missedJobs: string[];
}

/** One segment of an availability bar: buckets `[from, to)` in one state. */
export interface Segment {
  from: number;
  to: number;
  state: "healthy" | "degraded" | "unhealthy" | "unknown";
  start: string;
  end: string;
}

/** One tenant row (`maintenance.status_page_tenants`). */
export interface TenantRow {
  tenant_slug: string;
  tenant_name: string | null;
  state: "healthy" | "degraded" | "unhealthy" | "unknown";
  issue_code: string | null;
  issue: string | null;
  evolution_state: string | null;
  since: Date | null;
  last_checked_at: Date | null;
  last_event_at: Date | null;
  open_alerts: number;
  availability_24h: string | null;
  segments_24h: Segment[] | null;
  availability_7d: string | null;
  segments_7d: Segment[] | null;
  total: string;
}

/** One firing alert (`maintenance.dashboard_open_alerts`). */
export interface AlertRow {
  severity: "critical" | "warning";
  fingerprint: string;
  kind: string;
  scope: "platform" | "tenant";
  tenant_slug: string | null;
  summary: string;
  started_at: Date;
  inhibited_by: string | null;
  notified_count: number;
  total: string;
}

/** One job (`maintenance.job_health`). */
export interface JobRow {
  job: string;
  schedule: string | null;
  active: boolean | null;
  last_run_at: Date | null;
  last_run_status: string | null;
  last_run_duration_ms: number | null;
  last_run_error: string | null;
  last_success_at: Date | null;
  running: boolean;
  next_due_at: Date | null;
  expected_by: Date | null;
  missed: boolean;
  missed_alert: string | null;
}

/** One Evolution server of the fleet (`maintenance.dashboard_servers`). */
export interface ServerRow {
  name: string;
  url: string;
  is_default: boolean;
  enabled: boolean;
  draining: boolean;
  /** Tenants placed on it (the registry's count). */
  tenants: number;
  /** What the last full health-check run saw: healthy, degraded, unhealthy, skipped; `unknown` / `disabled` else. */
  state: string;
  version: string | null;
  latency_ms: number | null;
  error: string | null;
  checked_at: Date | null;
  tenants_not_healthy: number;
  down_alert: string | null;
}

/** Everything one page shows. */
export interface StatusData {
  summary: Summary;
  tenants: TenantRow[];
  tenantTotal: number;
  alerts: AlertRow[];
  alertTotal: number;
  jobs: JobRow[];
  /** The fleet's servers, the default one first (at most {@link SERVER_LIMIT}). */
  servers: ServerRow[];
}

/** How many servers one page lists (a fleet holds tens of them). */
export const SERVER_LIMIT = 200;

/** Bars per window: 24 h in 96 buckets of 15 min, 7 days in 168 buckets of 1 h (as the SQL computes them). */
export const BAR_BUCKETS = { "24h": 96, "7d": 168 } as const;

/** How many tenants one page lists: `?limit=` defaults to 200 and may go up to 2000. */
export const TENANT_LIMIT = { default: 200, max: 2000 } as const;

/** Reads the five sections (five statements, run concurrently; none of them per tenant). */
export async function loadStatus(
  sql: Sql,
  options: { asOf: Date; limit: number; search?: string; alertLimit?: number },
): Promise<StatusData> {
  const search = options.search?.trim() || null;
  const pattern = search === null ? null : `%${search.replace(/[\\%_]/g, (ch) => `\\${ch}`)}%`;
  const alertLimit = options.alertLimit ?? 100;
  const [[summaryRow], tenants, alerts, jobs, servers] = await Promise.all([
    sql<{ summary: Summary }[]>`select maintenance.status_page_summary(${options.asOf}) as summary`,
    sql<TenantRow[]>`select * from maintenance.status_page_tenants(${options.asOf}, ${options.limit}, ${search})`,
    sql<AlertRow[]>`
      select a.severity, a.fingerprint, a.kind, a.scope, a.tenant_slug, a.summary, a.started_at, a.inhibited_by,
        a.notified_count, count(*) over () as total
      from maintenance.dashboard_open_alerts a
      where ${pattern}::text is null or a.scope = 'platform' or a.tenant_slug ilike ${pattern}
      order by case a.severity when 'critical' then 0 else 1 end, (a.scope = 'tenant'), a.started_at desc, a.alert_id
      limit ${alertLimit}`,
    sql<JobRow[]>`select * from maintenance.job_health(${options.asOf})`,
    sql<ServerRow[]>`
      select name, url, is_default, enabled, draining, tenants, state, version, latency_ms, error, checked_at,
        tenants_not_healthy, down_alert
      from maintenance.dashboard_servers limit ${SERVER_LIMIT}`,
  ]);
  return {
    summary: summaryRow.summary,
    tenants,
    tenantTotal: tenants.length ? Number(tenants[0].total) : 0,
    alerts,
    alertTotal: alerts.length ? Number(alerts[0].total) : 0,
    jobs,
    servers,
  };
}
