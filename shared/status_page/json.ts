/**
 * @module
 * The status board as JSON (`?format=json`), for machines: the same data as the HTML and SVG pages (one
 * `loadStatus`), in a versioned shape documented field by field in `docs/STATUS_PAGE.md`. Every key is always
 * present (`null` when there is no value); timestamps are ISO 8601 in UTC (`2026-12-02T11:53:00.000Z`). A change
 * that removes or renames a key, or changes a type, bumps {@link STATUS_JSON_VERSION}; new keys may be added within a
 * version.
 */
import type {
  AlertRow,
  JobRow,
  Overall,
  Segment,
  ServerRow,
  ServiceHealth,
  StatusData,
  Summary,
  TenantRow,
} from "./data.ts";
import { BAR_BUCKETS } from "./data.ts";
import { jobBadge, SERVICES } from "./render.ts";

/** Version of the JSON shape; bumped on any incompatible change. */
export const STATUS_JSON_VERSION = 1;

/** A tenant or segment state. */
export type TenantState = TenantRow["state"];

/** One segment of an availability bar: buckets `[from, to)` in one state, the time they cover. */
export interface StatusJsonSegment {
  state: TenantState;
  from: number;
  to: number;
  start: string | null;
  end: string | null;
}

/** One availability window: exact healthy share of the known time, and the bar. */
export interface StatusJsonWindow {
  percent: number | null;
  buckets: number;
  bucketSeconds: number;
  segments: StatusJsonSegment[];
}

/** One tenant row. */
export interface StatusJsonTenant {
  slug: string;
  name: string | null;
  state: TenantState;
  issueCode: string | null;
  issue: string | null;
  evolutionState: string | null;
  since: string | null;
  lastCheckedAt: string | null;
  lastEventAt: string | null;
  openAlerts: number;
  availability: { "24h": StatusJsonWindow; "7d": StatusJsonWindow };
}

/** One service as the last health-check run recorded it. */
export interface StatusJsonService {
  key: string;
  name: string;
  status: string;
  latencyMs: number | null;
  version: string | null;
  error: string | null;
  reason: string | null;
}

/** One firing alert. */
export interface StatusJsonAlert {
  severity: AlertRow["severity"];
  fingerprint: string;
  kind: string;
  scope: AlertRow["scope"];
  tenantSlug: string | null;
  summary: string;
  startedAt: string | null;
  inhibitedBy: string | null;
  notifiedCount: number;
}

/** One scheduled job. */
export interface StatusJsonJob {
  job: string;
  state: string;
  schedule: string | null;
  active: boolean | null;
  running: boolean;
  missed: boolean;
  lastRunAt: string | null;
  lastRunStatus: string | null;
  lastRunDurationMs: number | null;
  lastRunError: string | null;
  lastSuccessAt: string | null;
  nextDueAt: string | null;
  expectedBy: string | null;
  missedAlert: string | null;
}

/** One Evolution server of the fleet (added within version 1). */
export interface StatusJsonServer {
  name: string;
  url: string;
  isDefault: boolean;
  enabled: boolean;
  draining: boolean;
  tenants: number;
  state: string;
  version: string | null;
  latencyMs: number | null;
  error: string | null;
  checkedAt: string | null;
  tenantsNotHealthy: number;
  downAlert: string | null;
}

/** The last health-check run. */
export interface StatusJsonLastCheck {
  runId: string;
  status: string;
  startedAt: string | null;
  finishedAt: string | null;
  error: string | null;
  ageSeconds: number;
}

/** The whole answer of `?format=json` (version 1). */
export interface StatusJson {
  version: typeof STATUS_JSON_VERSION;
  asOf: string;
  overall: Overall;
  reasons: string[];
  fresh: boolean;
  lastCheck: StatusJsonLastCheck | null;
  lastSuccessAt: string | null;
  services: StatusJsonService[];
  counts: {
    tenants: Summary["tenants"];
    alerts: Summary["alerts"];
  };
  missedJobs: string[];
  search: string | null;
  limit: number;
  total: number;
  tenants: StatusJsonTenant[];
  alertTotal: number;
  alerts: StatusJsonAlert[];
  jobs: StatusJsonJob[];
  servers: StatusJsonServer[];
}

/** A timestamp (Date, or text from Postgres JSON) as ISO 8601 UTC; `null` when absent or unreadable. */
export function isoTime(value: Date | string | null | undefined): string | null {
  if (value === null || value === undefined || value === "") return null;
  const d = value instanceof Date ? value : new Date(value);
  return Number.isNaN(d.getTime()) ? null : d.toISOString();
}

function numberOrNull(value: unknown): number | null {
  if (value === null || value === undefined || value === "") return null;
  const n = Number(value);
  return Number.isFinite(n) ? n : null;
}

function textOrNull(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  return String(value);
}

function availabilityWindow(
  name: "24h" | "7d",
  segments: Segment[] | null,
  availability: string | null,
): StatusJsonWindow {
  const buckets = BAR_BUCKETS[name];
  return {
    percent: numberOrNull(availability),
    buckets,
    bucketSeconds: ((name === "24h" ? 24 : 7 * 24) * 3600) / buckets,
    segments: (segments ?? []).map((s) => ({
      state: s.state,
      from: s.from,
      to: s.to,
      start: isoTime(s.start),
      end: isoTime(s.end),
    })),
  };
}

function service(key: string, name: string, s: ServiceHealth | undefined): StatusJsonService {
  return {
    key,
    name,
    status: s?.status ?? "unknown",
    latencyMs: numberOrNull(s?.latencyMs),
    version: textOrNull(s?.version),
    error: textOrNull(s?.error),
    reason: textOrNull(s?.reason),
  };
}

function tenant(t: TenantRow): StatusJsonTenant {
  return {
    slug: t.tenant_slug,
    name: t.tenant_name,
    state: t.state,
    issueCode: t.issue_code,
    issue: t.issue,
    evolutionState: t.evolution_state,
    since: isoTime(t.since),
    lastCheckedAt: isoTime(t.last_checked_at),
    lastEventAt: isoTime(t.last_event_at),
    openAlerts: Number(t.open_alerts),
    availability: {
      "24h": availabilityWindow("24h", t.segments_24h, t.availability_24h),
      "7d": availabilityWindow("7d", t.segments_7d, t.availability_7d),
    },
  };
}

function alert(a: AlertRow): StatusJsonAlert {
  return {
    severity: a.severity,
    fingerprint: a.fingerprint,
    kind: a.kind,
    scope: a.scope,
    tenantSlug: a.tenant_slug,
    summary: a.summary,
    startedAt: isoTime(a.started_at),
    inhibitedBy: a.inhibited_by,
    notifiedCount: Number(a.notified_count),
  };
}

function job(j: JobRow): StatusJsonJob {
  return {
    job: j.job,
    state: jobBadge(j).state,
    schedule: j.schedule,
    active: j.active,
    running: j.running,
    missed: j.missed,
    lastRunAt: isoTime(j.last_run_at),
    lastRunStatus: j.last_run_status,
    lastRunDurationMs: numberOrNull(j.last_run_duration_ms),
    lastRunError: j.last_run_error,
    lastSuccessAt: isoTime(j.last_success_at),
    nextDueAt: isoTime(j.next_due_at),
    expectedBy: isoTime(j.expected_by),
    missedAlert: j.missed_alert,
  };
}

function server(s: ServerRow): StatusJsonServer {
  return {
    name: s.name,
    url: s.url,
    isDefault: s.is_default,
    enabled: s.enabled,
    draining: s.draining,
    tenants: Number(s.tenants),
    state: s.state,
    version: s.version,
    latencyMs: numberOrNull(s.latency_ms),
    error: s.error,
    checkedAt: isoTime(s.checked_at),
    tenantsNotHealthy: Number(s.tenants_not_healthy),
    downAlert: s.down_alert,
  };
}

/** Builds the JSON answer from what `loadStatus` read. */
export function statusJson(data: StatusData, opts: { asOf: Date; limit: number; search?: string }): StatusJson {
  const s = data.summary;
  const lc = s.lastCheck;
  return {
    version: STATUS_JSON_VERSION,
    asOf: opts.asOf.toISOString(),
    overall: s.overall,
    reasons: [...s.reasons],
    fresh: s.fresh,
    lastCheck: lc
      ? {
        runId: String(lc.runId),
        status: lc.status,
        startedAt: isoTime(lc.startedAt),
        finishedAt: isoTime(lc.finishedAt),
        error: lc.error,
        ageSeconds: Number(lc.ageSeconds),
      }
      : null,
    lastSuccessAt: isoTime(s.lastSuccessAt),
    services: SERVICES.map(([key, name]) => service(key, name, s.services?.[key])),
    counts: {
      tenants: {
        total: Number(s.tenants.total),
        healthy: Number(s.tenants.healthy),
        degraded: Number(s.tenants.degraded),
        unhealthy: Number(s.tenants.unhealthy),
        unknown: Number(s.tenants.unknown),
      },
      alerts: {
        firing: Number(s.alerts.firing),
        critical: Number(s.alerts.critical),
        warning: Number(s.alerts.warning),
        inhibited: Number(s.alerts.inhibited),
      },
    },
    missedJobs: [...s.missedJobs],
    search: opts.search ?? null,
    limit: opts.limit,
    total: data.tenantTotal,
    tenants: data.tenants.map(tenant),
    alertTotal: data.alertTotal,
    alerts: data.alerts.map(alert),
    jobs: data.jobs.map(job),
    servers: (data.servers ?? []).map(server),
  };
}
