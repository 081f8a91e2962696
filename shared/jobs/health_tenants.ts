/**
 * @module
 * Each tenant's state in a health-check run, from the sources that know it. The listing's `connectionStatus` is
 * Evolution's stored value: it stays "open" through reconnect loops, after a drop it never wrote, and on a dead
 * socket. So, per run and per server, beyond the one listing:
 *
 * 1. `connectionState` (the in-memory state) for every instance whose stored state, last observed in-memory state
 *    and last webhook state disagree, or that is not open ("must"), then for open instances in rotation, oldest
 *    first, so each is read at least once per `health_check_state_rotation` (default 1 h);
 * 2. the liveness probe over the WhatsApp socket (2.x) for instances open in memory: first those already found dead
 *    and those silent for longer than usual (the zombie hint), then in rotation (`health_check_socket_rotation`).
 *    Connected in memory and dead on the probe is the zombie (`socket_dead`), once `connectionState` asked again
 *    right after the dead probe still says open: a reconnect loop dropping the socket between the two reads is a
 *    disconnection seen live, not a zombie (the re-read is one call per dead probe, beyond the budget).
 *
 * Every call counts against `health_check_probe_budget` per run: a run costs O(1) listings plus at most that many
 * calls, whatever the number of tenants. What the budget leaves unasked keeps the listing's state (and says so).
 * Silence alone is only a hint (`zombie_suspected`), relative to the tenant's own event rate, and only where no probe
 * can tell (1.8, or no budget left); a tenant that has never sent an event counts as silent since it opened.
 */
import pMap from "p-map";
import type { ConnectionState, InstanceSummary, SocketLiveness } from "../evolution/types.ts";
import type { EvolutionClient } from "../evolution/client.ts";
import { errorMessage } from "../errors.ts";
import { instanceName } from "../naming.ts";
import { isEvolutionError } from "../evolution/errors.ts";

/** A tenant as the run reads it: its integration, and what earlier runs and the webhook receiver know of it. */
export interface TenantRow {
  id: string;
  slug: string;
  integration_id: string | null;
  integration_active: boolean | null;
  instance_name: string | null;
  /** The registry server the tenant is linked to (`maintenance.tenant_servers`); null: no link. */
  server_name?: string | null;
  /**
   * The legacy config keys of a migrate by an older deploy (the tenant's server and its key's Vault secret id): read
   * only when the tenant has no link.
   */
  evolution_api_url: string | null;
  evolution_key_id: string | null;
  /** The last in-memory state read (connectionState), and when. */
  live_state: string | null;
  live_checked_at: Date | null;
  /** The last liveness probe's answer, and when. */
  socket_state: string | null;
  socket_checked_at: Date | null;
  /** Since when the tenant has been healthy (its current healthy streak), or null. */
  healthy_since: Date | null;
  /** The last connection.update state the receiver stored, and when it arrived. */
  webhook_state: string | null;
  webhook_state_at: Date | null;
  last_event_at: Date | null;
  first_event_at: Date | null;
  events_total: number | null;
}

/** One tenant's result as sent to `maintenance.record_tenant_health`. */
export interface TenantResult {
  tenant_id: string;
  slug: string;
  state: "healthy" | "degraded" | "unhealthy";
  issue_code?: string;
  issue?: string;
  severity?: "high" | "medium";
  evolution_state?: string | null;
  /** The Evolution server the instance is on (null: the default one). */
  server_url?: string | null;
  /** Set when connectionState was read in this run. */
  live_state?: string;
  /** Set when the liveness probe ran in this run. */
  socket_state?: SocketLiveness;
  /** Flags decided here (the SQL adds the log-based ones). */
  flags?: string[];
  details?: Record<string, unknown>;
}

/** One Evolution server's listing, and the client to ask it again. */
export interface ServerListing {
  client: EvolutionClient;
  url: string;
  /** Null for the default server (EVOLUTION_API_URL). */
  serverUrl: string | null;
  instances: Map<string, InstanceSummary> | null;
  error: string | null;
}

/** The probing policy of a run (settings). */
export interface ProbePolicy {
  budget: number;
  concurrency: number;
  stateRotationMs: number;
  socketRotationMs: number;
  /** The shortest silence that can make a tenant suspect (the tenant's own rate may make it longer). */
  zombieMinSilenceMs: number;
  /** The health-check interval the rotations are spread over (the schedule's 5 minutes). */
  runIntervalMs: number;
}

/** What the probes cost in this run. */
export interface ProbeCounts {
  connectionState: number;
  socketProbe: number;
  /** Instances that should have been asked but the budget did not allow. */
  overBudget: number;
}

/** A listed instance of a tenant, on its server. */
interface Listed {
  tenant: TenantRow;
  name: string;
  listed: InstanceSummary;
  server: ServerListing;
  /** The state this run settles on, and where it comes from. */
  state: ConnectionState;
  source: "listing" | "connectionState";
  live?: string;
  socket?: SocketLiveness;
  error?: string;
}

/** How long the tenant has been silent, when that is longer than is usual for it (else null). */
export function unusualSilence(t: TenantRow, now: Date, minSilenceMs: number): number | null {
  const since = t.last_event_at ?? t.healthy_since;
  if (!since) return null;
  const silent = now.getTime() - new Date(since).getTime();
  let usualGap = 0;
  if (t.first_event_at && t.last_event_at && (t.events_total ?? 0) >= 2) {
    usualGap = (new Date(t.last_event_at).getTime() - new Date(t.first_event_at).getTime()) / (t.events_total! - 1);
  }
  // four of its usual gaps, and never less than the floor: a quiet tenant's quiet day is not a zombie
  return silent > Math.max(minSilenceMs, 4 * usualGap) ? silent : null;
}

const older = (a: Date | null, b: Date | null) => (a ? new Date(a).getTime() : 0) - (b ? new Date(b).getTime() : 0);

/** The share of a rotation one run must cover: every instance once per rotation period, spread over the runs. */
function quota(count: number, policy: ProbePolicy, rotationMs: number): number {
  return Math.ceil(count / Math.max(1, Math.floor(rotationMs / policy.runIntervalMs)));
}

/**
 * Picks, from `pool` sorted oldest-checked first, the `must` ones, then the overdue ones and a rotation quota, up to
 * `budget`; answers the chosen and how many the budget left out.
 */
function pick<T>(
  must: T[],
  rotation: T[],
  options: { budget: number; quota: number; overdue: (t: T) => boolean },
): { chosen: T[]; overBudget: number } {
  const chosen = must.slice(0, options.budget);
  let overBudget = must.length - chosen.length;
  let taken = 0;
  for (const t of rotation) {
    const wanted = taken < options.quota || options.overdue(t);
    if (!wanted) break; // sorted oldest first: nothing after is overdue either
    if (chosen.length >= options.budget) {
      if (options.overdue(t)) overBudget++;
      continue;
    }
    chosen.push(t);
    taken++;
  }
  return { chosen, overBudget };
}

/** Every tenant's result for this run (see the module doc). */
export async function checkTenants(
  tenants: TenantRow[],
  serverOf: (t: TenantRow) => ServerListing,
  options: { prefix: string; now: Date; policy: ProbePolicy },
): Promise<{ results: TenantResult[]; calls: ProbeCounts }> {
  const { now, policy } = options;
  const results: TenantResult[] = [];
  const listed: Listed[] = [];
  for (const t of tenants) {
    const base = { tenant_id: t.id, slug: t.slug };
    if (!t.integration_id) {
      results.push({ ...base, state: "healthy", details: { message: "No WhatsApp integration" } });
      continue;
    }
    if (!t.integration_active) {
      results.push({ ...base, state: "healthy", details: { message: "WhatsApp integration disabled" } });
      continue;
    }
    const name = t.instance_name || instanceName(t.slug, options.prefix);
    const server = serverOf(t);
    const where = server.serverUrl ? { server: server.serverUrl } : {};
    if (!server.instances) {
      results.push({
        ...base,
        state: "unhealthy",
        issue_code: "evolution_unreachable",
        issue: `Evolution API unreachable: ${server.error}`,
        severity: "high",
        evolution_state: "unknown",
        server_url: server.serverUrl,
        details: { instance: name, ...where },
      });
      continue;
    }
    const inst = server.instances.get(name);
    if (!inst) {
      results.push({
        ...base,
        state: "unhealthy",
        issue_code: "instance_missing",
        issue: "Instance not found in Evolution API",
        severity: "high",
        evolution_state: "missing",
        server_url: server.serverUrl,
        details: { instance: name, ...where },
      });
      continue;
    }
    listed.push({ tenant: t, name, listed: inst, server, state: inst.state, source: "listing" });
  }

  // 1. connectionState: where the sources disagree or the instance is not open, then open ones in rotation
  const sourcesDisagree = (l: Listed) => {
    const t = l.tenant;
    const stored = l.listed.state;
    return (t.live_state !== null && t.live_state !== stored) ||
      (t.webhook_state !== null && t.webhook_state !== stored &&
        (!t.live_checked_at || !t.webhook_state_at || t.webhook_state_at > t.live_checked_at));
  };
  const disagree = (l: Listed) => l.listed.state !== "open" || sourcesDisagree(l);
  // real disagreements first, then the instances that are simply not open, the least recently asked first
  const must = listed.filter(disagree).sort((a, b) =>
    Number(sourcesDisagree(b)) - Number(sourcesDisagree(a)) ||
    older(a.tenant.live_checked_at, b.tenant.live_checked_at)
  );
  const calm = listed.filter((l) => !disagree(l)).sort((a, b) =>
    older(a.tenant.live_checked_at, b.tenant.live_checked_at)
  );
  const stateOverdue = (l: Listed) =>
    l.tenant.live_checked_at !== null && now.getTime() - new Date(l.tenant.live_checked_at).getTime() >=
      policy.stateRotationMs;
  const states = pick(must, calm, {
    budget: policy.budget,
    quota: quota(calm.length, policy, policy.stateRotationMs),
    overdue: stateOverdue,
  });
  await pMap(states.chosen, async (l) => {
    try {
      l.live = await l.server.client.connectionState(l.name);
      l.state = l.live as ConnectionState;
      l.source = "connectionState";
    } catch (error) {
      l.error = errorMessage(error);
      if (isEvolutionError(error, "not_found")) l.live = "missing";
    }
  }, { concurrency: policy.concurrency });

  // 2. the liveness probe for instances open in memory: known-dead and silent ones first, then in rotation
  const open = listed.filter((l) => l.state === "open" && !l.error && (l.source === "connectionState" || !disagree(l)));
  const silence = new Map(open.map((l) => [l, unusualSilence(l.tenant, now, policy.zombieMinSilenceMs)]));
  const socketDue = (l: Listed) =>
    !l.tenant.socket_checked_at || now.getTime() - new Date(l.tenant.socket_checked_at).getTime() >=
      policy.socketRotationMs;
  const urgent = open.filter((l) =>
    l.tenant.socket_state === "dead" ||
    (silence.get(l) !== null && (!l.tenant.socket_checked_at ||
      new Date(l.tenant.socket_checked_at).getTime() < now.getTime() - policy.runIntervalMs * 12))
  );
  const rest = open.filter((l) => !urgent.includes(l))
    .sort((a, b) => older(a.tenant.socket_checked_at, b.tenant.socket_checked_at));
  const sockets = pick(urgent, rest, {
    budget: Math.max(0, policy.budget - states.chosen.length),
    quota: quota(open.length, policy, policy.socketRotationMs),
    overdue: (l) => l.tenant.socket_checked_at !== null && socketDue(l),
  });
  let socketCalls = 0;
  let rechecks = 0;
  await pMap(sockets.chosen, async (l) => {
    l.socket = await l.server.client.probeSocket(l.name);
    if (l.socket !== "unknown" || (await l.server.client.knownMajor()) !== "1") socketCalls++;
    if (l.socket !== "dead") return;
    // a reconnect loop can drop the socket between the state read and the probe: a dead probe is a zombie only
    // if the instance still says open right after it (a real zombie does); otherwise it is that drop, seen live
    rechecks++;
    try {
      const again = await l.server.client.connectionState(l.name);
      if (again !== "open") {
        l.live = again;
        l.state = again as ConnectionState;
        l.source = "connectionState";
        l.socket = undefined;
      }
    } catch (error) {
      if (isEvolutionError(error, "not_found")) l.live = "missing";
      // any other failure leaves the probe's verdict standing: it was read, the recheck only could clear it
    }
  }, { concurrency: policy.concurrency });

  for (const l of listed) results.push(resultOf(l, silence.get(l) ?? null));
  return {
    results,
    calls: {
      connectionState: states.chosen.length + rechecks,
      socketProbe: socketCalls,
      overBudget: states.overBudget + sockets.overBudget,
    },
  };
}

/** One listed tenant's result: its state, the issue, and the evidence of each source. */
function resultOf(l: Listed, silentMs: number | null): TenantResult {
  const t = l.tenant;
  const details: Record<string, unknown> = {
    instance: l.name,
    source: l.source,
    listed: l.listed.state,
    paired: Boolean(l.listed.ownerJid),
    ...(l.live !== undefined ? { live: l.live } : {}),
    ...(t.webhook_state ? { webhook: t.webhook_state } : {}),
    ...(l.socket ? { socket: l.socket } : {}),
    ...(l.server.serverUrl ? { server: l.server.serverUrl } : {}),
  };
  const base = {
    tenant_id: t.id,
    slug: t.slug,
    server_url: l.server.serverUrl,
    ...(l.live !== undefined && l.live !== "missing" ? { live_state: l.live } : {}),
    ...(l.socket ? { socket_state: l.socket } : {}),
  };
  if (l.live === "missing") {
    return {
      ...base,
      state: "unhealthy",
      issue_code: "instance_missing",
      issue: "Instance not found in Evolution API",
      severity: "high",
      evolution_state: "missing",
      details,
    };
  }
  if (l.error) {
    return {
      ...base,
      state: "unhealthy",
      issue_code: "check_error",
      issue: `Cannot read the connection state: ${l.error}`,
      severity: "high",
      evolution_state: "unknown",
      details,
    };
  }
  if (l.state === "open") {
    if (l.socket === "dead") {
      return {
        ...base,
        state: "unhealthy",
        issue_code: "socket_dead",
        issue: "Connected, but the WhatsApp socket is dead (the liveness probe fails): nothing goes in or out",
        severity: "high",
        evolution_state: "open",
        details: {
          ...details,
          text: `Evolution says ${t.slug}'s number is connected, but its WhatsApp socket does not answer. ` +
            `Fix: npm run ops -- fix ${t.slug} (restarts the instance; if that does not heal it, restart the ` +
            `Evolution process).`,
        },
      };
    }
    // silence is only a hint, and only where no probe could tell
    const flags = silentMs !== null && l.socket !== "live" ? ["zombie_suspected"] : [];
    return {
      ...base,
      state: "healthy",
      evolution_state: "open",
      ...(flags.length ? { flags } : {}),
      details: silentMs !== null ? { ...details, silentMinutes: Math.round(silentMs / 60_000) } : details,
    };
  }
  // a logout is terminal, so Evolution writes it (the stored status is close); the stored reason alone is stale
  // after a re-pairing, and a transient drop writes nothing
  const reason = l.listed.disconnectionReasonCode;
  if (l.state === "close" && l.listed.state === "close" && reason === 401) {
    return {
      ...base,
      state: "degraded",
      issue_code: "logged_out",
      issue: "WhatsApp logged out (401): the number must be paired again with a new QR code",
      severity: "medium",
      evolution_state: "close",
      details: {
        ...details,
        reason,
        text: `${t.slug}'s number was logged out of WhatsApp (401: removed from the phone's linked devices, or a ` +
          `new pairing replaced it). A person must scan a new QR code: npm run ops -- reconnect ${t.slug}`,
      },
    };
  }
  return {
    ...base,
    state: "degraded",
    issue_code: "instance_disconnected",
    issue: `WhatsApp not connected (${l.state})`,
    severity: "medium",
    evolution_state: l.state,
    details: { ...details, ...(reason ? { reason } : {}) },
  };
}
