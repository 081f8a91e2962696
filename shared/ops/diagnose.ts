/**
 * @module
 * `diagnose` (the seed's troubleshooting of connection, disconnection and performance) for one tenant, with the evidence behind each verdict:
 *
 * - connection: `instance_not_found`, `config_missing`, `invalid_api_key`, `api_unreachable`, or `ok` / `unknown`.
 *   The state is the in-memory one (`connectionState`), never the listing's stored `connectionStatus`, which stays
 *   "open" through reconnect loops; an instance open in memory is then asked over its WhatsApp socket (the liveness
 *   probe, 2.x): a dead socket (listed and connected, but nothing goes through) is `socket_dead`. An instance that
 *   answers 401 while the same key lists it is `instance_unauthorized` (Evolution's intermittent 401), not a wrong key.
 *   Unlike the seed (which asked for the instance first, so a wrong key on a missing instance read as "not found"
 *   because Evolution checks existence before the key), the key and reachability come from ONE
 *   `fetchInstances?instanceName=` call, which is not instance-guarded: 401 is the key, a network error is the
 *   server, 404 is the instance. Every problem found is listed in `problems`, the seed's code is the first of them.
 * - disconnection: `frequent_disconnections` (> 3 drops in 2 h, from the receiver's `connection.update` logs: a
 *   drop is an open connection going `connecting` or `close`, since a transient drop sends no `close`),
 *   `api_unstable` (the live probe `GET /` fails, as the seed's checkEvolutionAPIHealth; the last 30 min of
 *   Evolution calls are given as context), else `ok` (no drop) or `unknown` (drops without a pattern).
 * - performance: `slow_api` (mean > 5 s), `high_error_rate` (success < 95 %), or `normal`, over the tenant's
 *   Evolution calls in the window (default 24 h), aggregated in SQL; fewer than 3 calls is too small a sample.
 */
import type { Config } from "../config.ts";
import type { Sql } from "../db.ts";
import type { Deps } from "../deps.ts";
import type { EvolutionClient } from "../evolution/client.ts";
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
/** The seed's disconnection codes (plus `ok`: no drop at all). */
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
  | "socket_dead"
  | "instance_unauthorized"
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

/** One section of a diagnosis, with the problems it found (in the order they are listed). */
interface Section<C> {
  code: C;
  evidence: Record<string, unknown>;
  problems: Problem[];
}

/** Diagnoses one tenant. Throws NotFoundError (404) for an unknown tenant; never throws for an Evolution fault. */
export async function diagnose(
  deps: Deps,
  slug: Slug,
  options: { windowHours?: number; tenant?: TenantView } = {},
): Promise<Diagnosis> {
  const tenant = options.tenant ?? await loadTenant(deps.sql, slug);
  const evolution = await clientFor(deps, tenant);
  const name = instanceName(slug, deps.config.instancePrefix);
  const now = deps.now();
  // Performance first: the tenant's calls so far, before this diagnosis adds its own probes to api_logs.
  const performance = await diagnosePerformance(deps.sql, slug, { windowHours: options.windowHours ?? 24 });
  const connection = await diagnoseConnection(deps, slug, { tenant, evolution, name });
  const disconnection = await diagnoseDisconnection(deps, slug, {
    evolution,
    apiProblem: connection.apiProblem,
    evolutionError: connection.evidence.evolutionError,
  });
  const problems = [...connection.problems, ...disconnection.problems, ...performance.problems];
  return {
    tenant: slug,
    instance: name,
    checkedAt: now.toISOString(),
    healthy: problems.length === 0,
    problems,
    connection: { code: connection.code, evidence: connection.evidence },
    disconnection: { code: disconnection.code, evidence: disconnection.evidence },
    performance: { code: performance.code, evidence: performance.evidence },
  };
}

/**
 * Connection: the key, the server and the instance (one listing call), the config row, then, when the instance is
 * listed, its live state and its webhook. `apiProblem`: what the listing call said about the key or the server.
 */
async function diagnoseConnection(
  deps: Deps,
  slug: Slug,
  options: { tenant: TenantView; evolution: EvolutionClient; name: string },
): Promise<Section<ConnectionCode> & { apiProblem: Problem | null }> {
  const { evolution, name } = options;
  const probe = await probeInstance(evolution, name);
  const problems: Problem[] = probe.apiProblem ? [probe.apiProblem] : probe.found ? [] : ["instance_not_found"];
  const rowCheck = checkConfigRow(deps.config, slug, { tenant: options.tenant });
  const evidence: Record<string, unknown> = {
    evolutionUrl: evolution.baseUrl,
    ...probe.evidence,
    ...rowCheck.evidence,
  };
  problems.push(...rowCheck.problems);
  if (!probe.apiProblem && probe.found) {
    const live = await checkLiveInstance(evolution, slug, { name, listedState: probe.listedState });
    Object.assign(evidence, live.evidence);
    problems.push(...live.problems);
  }
  return { code: connectionCode(problems), evidence, problems, apiProblem: probe.apiProblem };
}

/**
 * The key and reachability come from ONE `fetchInstances?instanceName=` call, which is not instance-guarded: 401 is
 * the key, a network error is the server, 404 is the instance.
 */
async function probeInstance(
  evolution: EvolutionClient,
  name: string,
): Promise<
  { found: boolean; listedState: string | null; apiProblem: Problem | null; evidence: Record<string, unknown> }
> {
  try {
    // a missing instance is an answer, not a failed call (so it does not count against the tenant's success rate)
    const listed = await evolution.fetchInstances({ instanceName: name, absentOk: true });
    const mine = listed.find((i) => i.name === name);
    return {
      found: Boolean(mine),
      listedState: mine?.state ?? null,
      apiProblem: null,
      evidence: {
        instance: mine
          ? {
            name,
            listedState: mine.state,
            ownerJid: mine.ownerJid,
            disconnectionReasonCode: mine.disconnectionReasonCode,
          }
          : null,
      },
    };
  } catch (error) {
    const apiProblem: Problem | null = isEvolutionError(error, "unauthorized")
      ? "invalid_api_key"
      : isEvolutionError(error, "unreachable", "timeout")
      ? "api_unreachable"
      : isEvolutionError(error, "not_found")
      ? null
      : "api_error";
    return { found: false, listedState: null, apiProblem, evidence: { evolutionError: describeError(error) } };
  }
}

/** The tenant's integration row against the config it should have (`config_missing`, `config_mismatch`). */
function checkConfigRow(
  config: Config,
  slug: Slug,
  options: { tenant: TenantView },
): { problems: Problem[]; evidence: Record<string, unknown> } {
  const integration = options.tenant.integration;
  const evidence: Record<string, unknown> = {
    config: integration
      ? { instance_name: integration.config.instance_name ?? null, webhook_url: integration.config.webhook_url ?? null }
      : null,
  };
  if (!integration) return { problems: ["config_missing"], evidence };
  const problems: Problem[] = [];
  const want = expectedConfig(config, slug);
  const mismatched = (["instance_name", "webhook_url"] as const).filter((k) => integration.config[k] !== want[k]);
  if (mismatched.length) {
    problems.push("config_mismatch");
    evidence.configMismatch = Object.fromEntries(
      mismatched.map((k) => [k, { current: integration.config[k] ?? null, expected: want[k] }]),
    );
  }
  if (!integration.isActive) evidence.integrationInactive = true;
  return { problems, evidence };
}

/**
 * A listed instance: its live state (`not_connected` unless open in memory), its socket when open (`socket_dead`),
 * and its webhook (`webhook_mismatch`). `evidence.state` is the in-memory state, `instance.listedState` the stored
 * one; they disagree during reconnects, after the QR limit and when a drop was never written (`stateSources`).
 */
async function checkLiveInstance(
  evolution: EvolutionClient,
  slug: Slug,
  options: { name: string; listedState: string | null },
): Promise<{ problems: Problem[]; evidence: Record<string, unknown> }> {
  const { name } = options;
  const problems: Problem[] = [];
  const evidence: Record<string, unknown> = {};
  let state: string | null = null;
  try {
    state = await evolution.connectionState(name);
  } catch (error) {
    evidence.connectionStateError = describeError(error);
    // the listing just accepted this key: a 401 naming the instance is Evolution's, not the key's
    if (isEvolutionError(error, "unauthorized")) problems.push("instance_unauthorized");
    else state = options.listedState; // the stored state, the best left (and said so)
    evidence.stateFrom = "listing";
  }
  evidence.state = state;
  const live = evidence.stateFrom === undefined;
  if (live && state !== options.listedState) evidence.stateSources = { live: state, listed: options.listedState };
  if (state !== null && state !== "open") problems.push("not_connected");
  if (live && state === "open") {
    const socket = await evolution.probeSocket(name);
    evidence.socket = socket;
    if (socket === "dead") problems.push("socket_dead");
  }
  try {
    const hook = await evolution.findWebhook(name);
    const expected = await evolution.expectedWebhook(slug);
    const check = webhookCheck(hook, expected);
    evidence.webhook = check;
    if (!check.ok) problems.push("webhook_mismatch");
  } catch (error) {
    evidence.webhookError = describeError(error);
  }
  return { problems, evidence };
}

/** The seed's connection code: its first problem in the seed's order, else `unknown` for another problem, or `ok`. */
function connectionCode(problems: Problem[]): ConnectionCode {
  const seedOrder: ConnectionCode[] = ["invalid_api_key", "api_unreachable", "instance_not_found", "config_missing"];
  return seedOrder.find((c) => problems.includes(c as Problem)) ??
    (problems.some((p) =>
        ["api_error", "not_connected", "socket_dead", "instance_unauthorized", "config_mismatch", "webhook_mismatch"]
          .includes(p)
      )
      ? "unknown"
      : "ok");
}

/**
 * Disconnection: the tenant's drops in the window (`maintenance.tenant_disconnections`, over
 * `maintenance.connection_drops`: the receiver's `connection.update` logs), then, short of
 * `frequent_disconnections`, whether the API is stable. The evidence keeps its names: `closes` counts the drops,
 * `lastCloseAt` is the last one, `reasons` their statusReason (200 for a transient drop, 401 for a logout), and
 * `terminalCloses` the `close` events (logouts, bans). (The SQL windows end at the database's now(): the audit and
 * log rows carry its clock.)
 */
async function diagnoseDisconnection(
  deps: Deps,
  slug: Slug,
  options: { evolution: EvolutionClient; apiProblem: Problem | null; evolutionError: unknown },
): Promise<Section<DisconnectionCode>> {
  const [closes] = await deps.sql<
    { closes: number; last_close_at: Date | null; reasons: unknown; events: number; terminal_closes: number }[]
  >`
    select * from maintenance.tenant_disconnections(${slug},
      make_interval(hours => ${THRESHOLDS.closesWindowHours}))`;
  const evidence: Record<string, unknown> = {
    windowHours: THRESHOLDS.closesWindowHours,
    closes: closes.closes,
    lastCloseAt: closes.last_close_at ? new Date(closes.last_close_at).toISOString() : null,
    reasons: closes.reasons,
    terminalCloses: closes.terminal_closes,
  };
  if (closes.closes > THRESHOLDS.frequentCloses) {
    return { code: "frequent_disconnections", evidence, problems: ["frequent_disconnections"] };
  }
  const stability = await apiStability(deps, options);
  Object.assign(evidence, stability.evidence);
  if (stability.unstable) return { code: "api_unstable", evidence, problems: ["api_unstable"] };
  return { code: closes.closes > 0 ? "unknown" : "ok", evidence, problems: [] };
}

/**
 * `api_unstable`: the listing call already failed on the server, or the live probe `GET /` fails (as the seed's
 * checkEvolutionAPIHealth). The last minutes of Evolution calls of every tenant are context only (one server's bad
 * minute shows here too).
 */
async function apiStability(
  deps: Deps,
  options: { evolution: EvolutionClient; apiProblem: Problem | null; evolutionError: unknown },
): Promise<{ unstable: string | null; evidence: Record<string, unknown> }> {
  const evidence: Record<string, unknown> = {};
  let unstable: string | null = null;
  if (options.apiProblem === "api_unreachable" || options.apiProblem === "api_error") {
    unstable = String(options.evolutionError);
  } else {
    try {
      const info = await options.evolution.serverInfo();
      evidence.serverVersion = info.version;
    } catch (error) {
      unstable = `GET / failed: ${describeError(error)}`;
    }
  }
  const [stab] = await deps.sql<{ total: number; errors: number; error_rate: string | null; unreachable: number }[]>`
    select * from maintenance.evolution_stability(${EVOLUTION_OPERATIONS},
      make_interval(mins => ${THRESHOLDS.unstableWindowMinutes}))`;
  evidence.recentCalls = {
    windowMinutes: THRESHOLDS.unstableWindowMinutes,
    total: stab.total,
    errors: stab.errors,
    errorRate: stab.error_rate === null ? null : Number(stab.error_rate),
    unreachableOrServerErrors: stab.unreachable,
  };
  if (unstable) evidence.unstable = unstable;
  return { unstable, evidence };
}

/** Performance: the tenant's Evolution calls in the window, aggregated in SQL (`slow_api`, `high_error_rate`). */
async function diagnosePerformance(
  sql: Sql,
  slug: Slug,
  options: { windowHours: number },
): Promise<Section<PerformanceCode>> {
  const { windowHours } = options;
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
  const evidence: Record<string, unknown> = {
    windowHours,
    calls: perf.total,
    successRate: perf.success_rate === null ? null : Number(perf.success_rate),
    avgResponseMs: perf.avg_response_ms === null ? null : Number(perf.avg_response_ms),
    p95ResponseMs: perf.p95_response_ms === null ? null : Number(perf.p95_response_ms),
    errorsByType: perf.errors_by_type,
  };
  let code: PerformanceCode = "normal";
  if (perf.total < THRESHOLDS.minSample) {
    evidence.note = `fewer than ${THRESHOLDS.minSample} calls: too few to judge`;
  } else if (Number(perf.avg_response_ms) > THRESHOLDS.slowMeanMs) code = "slow_api";
  else if (Number(perf.success_rate) < THRESHOLDS.minSuccessRate) code = "high_error_rate";
  return { code, evidence, problems: code === "normal" ? [] : [code] };
}
