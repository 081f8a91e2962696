/**
 * @module
 * Turns one `maintenance.metrics_snapshot()` answer into the Prometheus text format (0.0.4) or OpenMetrics 1.0,
 * written by `prom-client` (escaping, HELP/TYPE lines, the OpenMetrics `# EOF`). A fresh registry per scrape: the
 * function keeps nothing in memory between requests (an isolate can be recycled at any time), so every value comes
 * from the database. Per-tenant series exist only for tenants that are not healthy (at most `tenantLimit`, worst
 * first); every tenant is counted in `canais_tenants`. Windowed families (`*_window*`, the Evolution latency
 * histogram) cover the snapshot's trailing window and are gauges over it, not counters since start.
 */
import client from "prom-client";

/** The snapshot `maintenance.metrics_snapshot()` answers (see its migration). */
export interface MetricsSnapshot {
  asOf: number;
  windowSeconds: number;
  tenantStates: Array<{ server: string; state: string; count: number; maxCheckAge: number | null }>;
  tenantsNotHealthy: Array<
    { tenant: string; state: string; server: string; issue: string; consecutive: number; checkAge: number }
  >;
  tenantsNotHealthyTotal: number;
  servers: Array<{ server: string; state: string; enabled: boolean; draining: boolean; tenants: number | null }>;
  alertsOpen: Array<{ kind: string; severity: string; count: number }>;
  jobsLast: Array<
    { job: string; status: string; durationSeconds: number | null; startedAt: number; lastSuccessAt: number | null }
  >;
  jobRuns: Array<{ job: string; status: string; count: number; durationSecondsSum: number }>;
  evolutionCalls: Array<{ route: string; status: string; count: number; sumSeconds: number; buckets: number[] }>;
  outbox: Array<{ channel: string; status: string; count: number; oldestAge: number | null }>;
  webhooksReceived: number;
  webhooksRejected: Array<{ reason: string; count: number }>;
}

/** Upper bounds (seconds) of the Evolution latency histogram; the SQL counts `response_time <=` each, in ms. */
export const LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] as const;

/** Every metric family this function serves (the README documents each; the Prometheus test queries each). */
export const METRIC_FAMILIES = [
  "canais_tenants",
  "canais_tenant_check_age_max_seconds",
  "canais_tenants_not_healthy",
  "canais_tenant_not_healthy",
  "canais_tenant_consecutive_failures",
  "canais_tenant_check_age_seconds",
  "canais_evolution_server_state",
  "canais_evolution_server_tenants",
  "canais_alerts_open",
  "canais_job_last_run_status",
  "canais_job_last_run_duration_seconds",
  "canais_job_last_run_timestamp_seconds",
  "canais_job_last_success_timestamp_seconds",
  "canais_job_runs_window",
  "canais_job_run_seconds_window",
  "canais_evolution_call_duration_seconds",
  "canais_outbox_messages",
  "canais_outbox_oldest_age_seconds",
  "canais_webhook_events_received_window",
  "canais_webhook_events_rejected_window",
  "canais_metrics_window_seconds",
] as const;

/** The two content types a scrape may get: OpenMetrics when the `Accept` header asks for it, else text 0.0.4. */
export const OPENMETRICS_CONTENT_TYPE = client.Registry.OPENMETRICS_CONTENT_TYPE;
export const PROMETHEUS_CONTENT_TYPE = client.Registry.PROMETHEUS_CONTENT_TYPE;

function gauge(
  registry: client.Registry<client.RegistryContentType>,
  name: string,
  help: string,
  labelNames: string[] = [],
) {
  return new client.Gauge({ name, help, labelNames, registers: [registry] });
}

/**
 * A histogram whose buckets were counted in SQL: prom-client's `Histogram` only counts its own `observe()` calls,
 * so this registers a metric object of the shape the registry formats (`get()` → name, help, type, values).
 */
function precomputedHistogram(
  registry: client.Registry<client.RegistryContentType>,
  name: string,
  help: string,
  series: Array<{ labels: Record<string, string>; buckets: number[]; count: number; sum: number }>,
) {
  const values = series.flatMap((s) => [
    ...LATENCY_BUCKETS.map((le, i) => ({
      metricName: `${name}_bucket`,
      labels: { ...s.labels, le: String(le) },
      value: Number(s.buckets[i] ?? 0),
    })),
    { metricName: `${name}_bucket`, labels: { ...s.labels, le: "+Inf" }, value: Number(s.count) },
    { metricName: `${name}_sum`, labels: s.labels, value: Number(s.sum) },
    { metricName: `${name}_count`, labels: s.labels, value: Number(s.count) },
  ]);
  const metric = {
    name,
    help,
    type: "histogram",
    aggregator: "sum",
    get: () => Promise.resolve({ name, help, type: "histogram", values, aggregator: "sum" }),
    reset: () => {},
  };
  registry.registerMetric(metric as unknown as client.Metric);
}

/** Builds the registry of one scrape from the snapshot. */
export function metricsRegistry(s: MetricsSnapshot, openMetrics = false): client.Registry<client.RegistryContentType> {
  const r = new client.Registry<client.RegistryContentType>();
  if (openMetrics) r.setContentType(client.Registry.OPENMETRICS_CONTENT_TYPE);
  const w = `the last ${s.windowSeconds} s`;

  const tenants = gauge(r, "canais_tenants", "Tenants by Evolution server and state of their last check", [
    "server",
    "state",
  ]);
  const maxAge = gauge(
    r,
    "canais_tenant_check_age_max_seconds",
    "Age of the oldest last check among the tenants of a server and state",
    ["server", "state"],
  );
  for (const t of s.tenantStates) {
    tenants.set({ server: t.server, state: t.state }, Number(t.count));
    if (t.maxCheckAge !== null) maxAge.set({ server: t.server, state: t.state }, Number(t.maxCheckAge));
  }
  gauge(r, "canais_tenants_not_healthy", "Tenants not healthy (all of them; per-tenant series are capped)").set(
    Number(s.tenantsNotHealthyTotal),
  );
  const one = gauge(r, "canais_tenant_not_healthy", "1 per tenant that is not healthy, with its state and issue", [
    "tenant",
    "server",
    "state",
    "issue",
  ]);
  const streak = gauge(
    r,
    "canais_tenant_consecutive_failures",
    "Consecutive checks a tenant that is not healthy has been in its state",
    ["tenant"],
  );
  const age = gauge(r, "canais_tenant_check_age_seconds", "Age of the last check of a tenant that is not healthy", [
    "tenant",
  ]);
  for (const t of s.tenantsNotHealthy) {
    one.set({ tenant: t.tenant, server: t.server, state: t.state, issue: t.issue }, 1);
    streak.set({ tenant: t.tenant }, Number(t.consecutive));
    age.set({ tenant: t.tenant }, Number(t.checkAge));
  }

  const serverState = gauge(
    r,
    "canais_evolution_server_state",
    "1 for the status of each Evolution server in the last full health check (healthy, degraded, unhealthy; unknown, disabled)",
    ["server", "state"],
  );
  const serverTenants = gauge(r, "canais_evolution_server_tenants", "Tenants linked to each Evolution server", [
    "server",
  ]);
  for (const v of s.servers) {
    serverState.set({ server: v.server, state: v.state }, 1);
    serverTenants.set({ server: v.server }, Number(v.tenants ?? 0));
  }

  const alerts = gauge(r, "canais_alerts_open", "Firing alerts by kind and severity", ["kind", "severity"]);
  for (const a of s.alertsOpen) alerts.set({ kind: a.kind, severity: a.severity }, Number(a.count));

  const lastStatus = gauge(r, "canais_job_last_run_status", "1 for the status of each job's last finished run", [
    "job",
    "status",
  ]);
  const lastDuration = gauge(r, "canais_job_last_run_duration_seconds", "Duration of each job's last finished run", [
    "job",
  ]);
  const lastAt = gauge(r, "canais_job_last_run_timestamp_seconds", "Start of each job's last finished run", ["job"]);
  const lastOk = gauge(
    r,
    "canais_job_last_success_timestamp_seconds",
    "Start of each job's last successful run (healthy, degraded or ok)",
    ["job"],
  );
  for (const j of s.jobsLast) {
    lastStatus.set({ job: j.job, status: j.status }, 1);
    if (j.durationSeconds !== null) lastDuration.set({ job: j.job }, Number(j.durationSeconds));
    lastAt.set({ job: j.job }, Number(j.startedAt));
    if (j.lastSuccessAt !== null) lastOk.set({ job: j.job }, Number(j.lastSuccessAt));
  }
  const runs = gauge(r, "canais_job_runs_window", `Finished job runs by outcome in ${w}`, ["job", "status"]);
  const runSeconds = gauge(r, "canais_job_run_seconds_window", `Summed duration of those runs in ${w}`, [
    "job",
    "status",
  ]);
  for (const j of s.jobRuns) {
    runs.set({ job: j.job, status: j.status }, Number(j.count));
    runSeconds.set({ job: j.job, status: j.status }, Number(j.durationSecondsSum));
  }

  precomputedHistogram(
    r,
    "canais_evolution_call_duration_seconds",
    `Evolution API call latency by route (the client's api_logs event) and outcome, calls of ${w}`,
    s.evolutionCalls.map((c) => ({
      labels: { route: c.route, status: c.status },
      buckets: c.buckets,
      count: c.count,
      sum: c.sumSeconds,
    })),
  );

  const outbox = gauge(r, "canais_outbox_messages", "Notification outbox rows not sent, by channel and status", [
    "channel",
    "status",
  ]);
  const outboxAge = gauge(r, "canais_outbox_oldest_age_seconds", "Age of the oldest such row", ["channel", "status"]);
  for (const o of s.outbox) {
    outbox.set({ channel: o.channel, status: o.status }, Number(o.count));
    if (o.oldestAge !== null) outboxAge.set({ channel: o.channel, status: o.status }, Number(o.oldestAge));
  }

  gauge(r, "canais_webhook_events_received_window", `Webhook events accepted (deduplicated receipts) in ${w}`).set(
    Number(s.webhooksReceived),
  );
  const rejected = gauge(
    r,
    "canais_webhook_events_rejected_window",
    `Webhook events refused and logged (cross-tenant instance) in ${w}, by reason`,
    ["reason"],
  );
  rejected.set({ reason: "cross_tenant" }, 0);
  for (const x of s.webhooksRejected) rejected.set({ reason: x.reason }, Number(x.count));
  gauge(r, "canais_metrics_window_seconds", "Length of the trailing window of the *_window families").set(
    Number(s.windowSeconds),
  );
  return r;
}
