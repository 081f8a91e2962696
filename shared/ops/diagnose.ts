/**
 * @module
 * `diagnose` (seed troubleshooting §1.1, §1.2, §3.1) for one tenant, with the evidence behind each verdict:
 *
 * - connection: `instance_not_found`, `config_missing`, `invalid_api_key`, `api_unreachable`, or `ok` / `unknown`.
 *   Unlike the seed (which asked for the instance first, so a wrong key on a missing instance read as "not found"
 *   because Evolution checks existence before the key), the key and reachability come from ONE
 *   `fetchInstances?instanceName=` call, which is not instance-guarded: 401 is the key, a network error is the
 *   server, 404 is the instance. Every problem found is listed in `problems`, the seed's code is the first of them.
 * - disconnection: `frequent_disconnections` (> 3 closes in 2 h, from the receiver's `connection.update` logs),
 *   `api_unstable` (the live probe `GET /` fails, as the seed's checkEvolutionAPIHealth; the last 30 min of
 *   Evolution calls are given as context), else `ok` (no close) or `unknown` (closes without a pattern).
 * - performance: `slow_api` (mean > 5 s), `high_error_rate` (success < 95 %), or `normal`, over the tenant's
 *   Evolution calls in the window (default 24 h), aggregated in SQL; fewer than 3 calls is too small a sample.
 */
import type { Deps } from "../deps.ts";
import type { EvolutionOperation } from "../evolution/types.ts";
import { instanceName, type Slug } from "../naming.ts";
import { describeError, isEvolutionError } from "../evolution/errors.ts";
import { webhookCheck } from "../evolution/webhook_check.ts";
import { clientFor, expectedConfig, loadTenant, type TenantView } from "./tenants.ts";

/** The seed's connection codes. */
export type ConnectionCode =
  | "ok"
  | "instance_not_found"
  | "config_missing"
  | "invalid_api_key"
  | "api_unreachable"
  | "unknown";
/** The seed's disconnection codes (plus `ok`: no close at all). */
export type DisconnectionCode = "frequent_disconnections" | "api_unstable" | "unknown" | "ok";
/** The seed's performance codes. */
export type PerformanceCode = "slow_api" | "high_error_rate" | "normal";

/** Problems a diagnosis can list (the seed's codes plus what `fix` also repairs). */
export type Problem =
  | "instance_not_found"
  | "config_missing"
  | "config_mismatch"
  | "invalid_api_key"
  | "api_unreachable"
  | "api_error"
  | "not_connected"
  | "webhook_mismatch"
  | "frequent_disconnections"
  | "api_unstable"
  | "slow_api"
  | "high_error_rate";

/** The result of `diagnose`. */
export interface Diagnosis {
  tenant: Slug;
  instance: string;
  checkedAt: string;
  healthy: boolean;
  problems: Problem[];
  connection: { code: ConnectionCode; evidence: Record<string, unknown> };
  disconnection: { code: DisconnectionCode; evidence: Record<string, unknown> };
  performance: { code: PerformanceCode; evidence: Record<string, unknown> };
}

/** The Evolution client's operations, as written to `api_logs.event` (the tenant's API calls). */
export const EVOLUTION_OPERATIONS: EvolutionOperation[] = [
  "server_info",
  "fetch_instances",
  "connection_state",
  "create_instance",
  "connect",
  "restart",
  "logout",
  "delete_instance",
  "set_webhook",
  "find_webhook",
];

/** Thresholds of the verdicts (the seed's numbers). */
export const THRESHOLDS = {
  frequentCloses: 3,
  closesWindowHours: 2,
  slowMeanMs: 5000,
  minSuccessRate: 95,
  minSample: 3,
  unstableWindowMinutes: 30,
};

/** Diagnoses one tenant. Throws NotFoundError (404) for an unknown tenant; never throws for an Evolution fault. */
export async function diagnose(
  deps: Deps,
  slug: Slug,
  options: { windowHours?: number; tenant?: TenantView } = {},
): Promise<Diagnosis> {
  const { sql, config } = deps;
  const tenant = options.tenant ?? await loadTenant(sql, slug);
  const evolution = await clientFor(deps, tenant);
  const name = instanceName(slug, config.instancePrefix);
  const now = deps.now();
  const problems: Problem[] = [];

  // Connection.
  const evidence: Record<string, unknown> = { evolutionUrl: evolution.baseUrl };
  let instanceFound = false;
  let apiProblem: Problem | null = null;
  try {
    const listed = await evolution.fetchInstances({ instanceName: name });
    const mine = listed.find((i) => i.name === name);
    instanceFound = Boolean(mine);
    evidence.instance = mine
      ? {
        name,
        listedState: mine.state,
        ownerJid: mine.ownerJid,
        disconnectionReasonCode: mine.disconnectionReasonCode,
      }
      : null;
  } catch (error) {
    evidence.evolutionError = describeError(error);
    if (isEvolutionError(error, "unauthorized")) apiProblem = "invalid_api_key";
    else if (isEvolutionError(error, "unreachable", "timeout")) apiProblem = "api_unreachable";
    else if (isEvolutionError(error, "not_found")) instanceFound = false;
    else apiProblem = "api_error";
  }
  if (apiProblem) problems.push(apiProblem);
  else if (!instanceFound) problems.push("instance_not_found");

  const integration = tenant.integration;
  evidence.config = integration
    ? { instance_name: integration.config.instance_name ?? null, webhook_url: integration.config.webhook_url ?? null }
    : null;
  if (!integration) problems.push("config_missing");
  else {
    const want = expectedConfig(config, slug);
    const mismatched = (["instance_name", "webhook_url"] as const).filter((k) => integration.config[k] !== want[k]);
    if (mismatched.length) {
      problems.push("config_mismatch");
      evidence.configMismatch = Object.fromEntries(
        mismatched.map((k) => [k, { current: integration.config[k] ?? null, expected: want[k] }]),
      );
    }
    if (!integration.isActive) evidence.integrationInactive = true;
  }

  let state: string | null = null;
  if (!apiProblem && instanceFound) {
    try {
      state = await evolution.connectionState(name);
    } catch (error) {
      evidence.connectionStateError = describeError(error);
      state = (evidence.instance as { listedState?: string } | null)?.listedState ?? null;
    }
    evidence.state = state;
    if (state !== "open") problems.push("not_connected");
    try {
      const hook = await evolution.findWebhook(name);
      const expected = await evolution.expectedWebhook(slug);
      const check = webhookCheck(hook, expected);
      evidence.webhook = check;
      if (!check.ok) problems.push("webhook_mismatch");
    } catch (error) {
      evidence.webhookError = describeError(error);
    }
  }
  const seedOrder: ConnectionCode[] = ["invalid_api_key", "api_unreachable", "instance_not_found", "config_missing"];
  const connectionCode: ConnectionCode = seedOrder.find((c) => problems.includes(c as Problem)) ??
    (problems.some((p) => ["api_error", "not_connected", "config_mismatch", "webhook_mismatch"].includes(p))
      ? "unknown"
      : "ok");

  // Disconnection. (The SQL windows end at the database's now(): the audit and log rows carry its clock.)
  const [closes] = await sql<{ closes: number; last_close_at: Date | null; reasons: unknown; events: number }[]>`
    select * from maintenance.tenant_disconnections(${slug},
      make_interval(hours => ${THRESHOLDS.closesWindowHours}))`;
  const disc: Record<string, unknown> = {
    windowHours: THRESHOLDS.closesWindowHours,
    closes: closes.closes,
    lastCloseAt: closes.last_close_at ? new Date(closes.last_close_at).toISOString() : null,
    reasons: closes.reasons,
  };
  let disconnectionCode: DisconnectionCode;
  if (closes.closes > THRESHOLDS.frequentCloses) disconnectionCode = "frequent_disconnections";
  else {
    let unstable: string | null = null;
    if (apiProblem === "api_unreachable" || apiProblem === "api_error") unstable = String(evidence.evolutionError);
    else {
      try {
        const info = await evolution.serverInfo();
        disc.serverVersion = info.version;
      } catch (error) {
        unstable = `GET / failed: ${describeError(error)}`;
      }
    }
    // Context only: the last minutes of Evolution calls of every tenant (one server's bad minute shows here too).
    const [stab] = await sql<{ total: number; errors: number; error_rate: string | null; unreachable: number }[]>`
      select * from maintenance.evolution_stability(${EVOLUTION_OPERATIONS},
        make_interval(mins => ${THRESHOLDS.unstableWindowMinutes}))`;
    disc.recentCalls = {
      windowMinutes: THRESHOLDS.unstableWindowMinutes,
      total: stab.total,
      errors: stab.errors,
      errorRate: stab.error_rate === null ? null : Number(stab.error_rate),
      unreachableOrServerErrors: stab.unreachable,
    };
    if (unstable) disc.unstable = unstable;
    disconnectionCode = unstable ? "api_unstable" : closes.closes > 0 ? "unknown" : "ok";
  }
  if (disconnectionCode === "frequent_disconnections" || disconnectionCode === "api_unstable") {
    problems.push(disconnectionCode);
  }

  // Performance.
  const windowHours = options.windowHours ?? 24;
  const [perf] = await sql<
    {
      total: number;
      successes: number;
      success_rate: string | null;
      avg_response_ms: string | null;
      p95_response_ms: string | null;
      errors_by_type: Record<string, number>;
    }[]
  >`select * from maintenance.tenant_performance(${slug}, ${EVOLUTION_OPERATIONS},
      make_interval(hours => ${windowHours}))`;
  const perfEvidence: Record<string, unknown> = {
    windowHours,
    calls: perf.total,
    successRate: perf.success_rate === null ? null : Number(perf.success_rate),
    avgResponseMs: perf.avg_response_ms === null ? null : Number(perf.avg_response_ms),
    p95ResponseMs: perf.p95_response_ms === null ? null : Number(perf.p95_response_ms),
    errorsByType: perf.errors_by_type,
  };
  let performanceCode: PerformanceCode = "normal";
  if (perf.total < THRESHOLDS.minSample) {
    perfEvidence.note = `fewer than ${THRESHOLDS.minSample} calls: too few to judge`;
  } else if (Number(perf.avg_response_ms) > THRESHOLDS.slowMeanMs) performanceCode = "slow_api";
  else if (Number(perf.success_rate) < THRESHOLDS.minSuccessRate) performanceCode = "high_error_rate";
  if (performanceCode !== "normal") problems.push(performanceCode);

  return {
    tenant: slug,
    instance: name,
    checkedAt: now.toISOString(),
    healthy: problems.length === 0,
    problems,
    connection: { code: connectionCode, evidence },
    disconnection: { code: disconnectionCode, evidence: disc },
    performance: { code: performanceCode, evidence: perfEvidence },
  };
}
