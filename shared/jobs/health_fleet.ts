/**
 * @module
 * The fleet as one health-check run sees it: every Evolution server of the registry (`maintenance.evolution_servers`)
 * with the tenants placed on it (`maintenance.tenant_servers`; no link = the default server, the one of
 * `EVOLUTION_API_URL`), each asked `GET /` and listed ONCE per run. A server that answers neither is down: its
 * tenants are `evolution_unreachable` (judged by nobody), it is its own platform incident (`evolution_down` for the
 * default server, `evolution_down:<name>` for another: see {@link serverDownCandidate}), and the other servers'
 * tenants are judged as usual.
 *
 * A tenant with no link whose config row still carries the legacy `evolution_api_url` + `evolution_api_key_secret_id`
 * (written by a migrate of an older deploy) is placed by those keys, as a fallback: on the registered server of that
 * URL, else on an unregistered server named by its URL, with the key read from Vault. A disabled server is not asked
 * (out of service): its tenants are reported unreachable, and it raises no alert.
 */
import pMap from "p-map";
import { normalizeBaseUrl } from "../config.ts";
import type { Deps } from "../deps.ts";
import { errorMessage } from "../errors.ts";
import type { EvolutionClient } from "../evolution/client.ts";
import { isEvolutionError } from "../evolution/errors.ts";
import { DEFAULT_SERVER } from "../evolution/servers.ts";
import type { InstanceSummary } from "../evolution/types.ts";
import type { AlertCandidate } from "../alerts/lifecycle.ts";
import type { ServerListing, TenantRow } from "./health_tenants.ts";

/** Health of one service (an Evolution server, the database, Supabase). */
export interface ServiceHealth {
  status: "healthy" | "degraded" | "unhealthy" | "skipped";
  latencyMs?: number;
  version?: string;
  error?: string;
  reason?: string;
  /** A failure with a name of its own (Evolution 2.4 not activated: `license_required`). */
  code?: string;
  endpoints?: Record<string, number | string>;
}

/** One server's row in the run report (`report.servers`, read by `maintenance.dashboard_servers`). */
export interface ServerReport {
  /** The registry name (`default` for EVOLUTION_API_URL's); the URL for an unregistered legacy server. */
  name: string;
  url: string;
  isDefault: boolean;
  registered: boolean;
  enabled: boolean;
  draining: boolean;
  /** Tenants of this run with an active WhatsApp integration on this server. */
  tenants: number;
  state: ServiceHealth["status"];
  version: string | null;
  /** `GET /`'s latency. */
  latencyMs: number | null;
  /** Instances the listing returned (null: not listed). */
  instances: number | null;
  error: string | null;
  code: string | null;
  reason: string | null;
}

/** A server of the run, before and after it is asked. */
interface FleetServer {
  name: string;
  url: string;
  isDefault: boolean;
  registered: boolean;
  enabled: boolean;
  draining: boolean;
  /** Null when its key cannot be read (`keyError` says why). */
  client: EvolutionClient | null;
  keyError?: string;
  tenants: TenantRow[];
  health?: ServiceHealth;
  listing?: ServerListing;
}

/** What {@link checkFleet} answers. */
export interface FleetCheck {
  /** The listing each tenant is judged against. */
  listingOf(t: TenantRow): ServerListing;
  /** The default server's health (`services.evolution_api` of the report). */
  defaultHealth: ServiceHealth;
  servers: ServerReport[];
  /** The servers that are down (GET / and the listing fail, or the key is gone), as platform alert candidates. */
  candidates: AlertCandidate[];
  calls: { serverInfo: number; fetchInstances: number };
}

async function timed<T>(fn: () => Promise<T>): Promise<{ value?: T; error?: unknown; ms: number }> {
  const t0 = performance.now();
  try {
    const value = await fn();
    return { value, ms: Math.round(performance.now() - t0) };
  } catch (error) {
    return { error, ms: Math.round(performance.now() - t0) };
  }
}

/**
 * `GET /`: the server's version and whether it answers at all. Its failure alone does not make the server unhealthy:
 * on 2.3.x `GET /` fetches WhatsApp Web's version from outside before it answers, so where Evolution's outbound
 * traffic is dropped it times out while the API works; the listing that follows decides.
 */
export async function serverInfoHealth(client: EvolutionClient): Promise<ServiceHealth> {
  const r = await timed(() => client.serverInfo());
  if (r.error) {
    const licence = isEvolutionError(r.error, "license_required");
    return {
      status: "unhealthy",
      latencyMs: r.ms,
      error: errorMessage(r.error),
      ...(licence ? { code: "license_required" } : {}),
    };
  }
  return { status: "healthy", latencyMs: r.ms, version: r.value!.version };
}

/** The listing of one server, as a map by instance name; `health` is updated with what the listing says. */
async function listServer(
  client: EvolutionClient,
  health: ServiceHealth,
  needsListing: boolean,
  list: (client: EvolutionClient) => Promise<InstanceSummary[] & { total?: number }>,
): Promise<{ instances: Map<string, InstanceSummary> | null; listed: boolean; total: number | null }> {
  const infoFailed = health.status === "unhealthy" && health.code !== "license_required";
  if (health.status === "healthy" && !needsListing) return { instances: new Map(), listed: false, total: null };
  if (!needsListing || !(health.status === "healthy" || infoFailed)) {
    return { instances: null, listed: false, total: null };
  }
  const listed = await timed(() => list(client));
  if (listed.error) {
    health.status = "unhealthy";
    if (isEvolutionError(listed.error, "license_required")) health.code = "license_required";
    health.error = infoFailed
      ? `${health.error}; fetchInstances failed too: ${errorMessage(listed.error)}`
      : `fetchInstances failed: ${errorMessage(listed.error)}`;
    return { instances: null, listed: true, total: null };
  }
  const instances = new Map(listed.value!.map((i) => [i.name, i]));
  const total = listed.value!.total ?? instances.size;
  if (infoFailed) {
    // the API answers: only GET / is failing (its outside call); the instances can be judged
    health.status = "degraded";
    health.reason = `GET / failed (${health.error}) but the API answers: Evolution may not reach the internet`;
    delete health.error;
  }
  return { instances, listed: true, total };
}

interface RegistryRow {
  name: string;
  base_url: string;
  enabled: boolean;
  draining: boolean;
  key: string | null;
  key_secret_id: string | null;
}

/**
 * Places each tenant on its server (link, legacy keys, else the default one), asks every server `GET /` and, when
 * it has tenants to judge, its listing (one call each, `concurrency` servers at a time), and answers the listing of
 * each tenant, a report row per server and an `evolution_down` candidate per server that is down.
 *
 * `defaultHealth` is the default server's `GET /` when the caller already asked it (in parallel with its other
 * probes). `list` lists one server (default: `client.listInstances()`, the listing read as a stream).
 */
export async function checkFleet(
  deps: Deps,
  tenants: TenantRow[],
  options: {
    concurrency: number;
    defaultHealth?: Promise<ServiceHealth>;
    list?: (client: EvolutionClient) => Promise<InstanceSummary[] & { total?: number }>;
    /** Keep only these instances of each listing (a shard: its own tenants'); the report still counts them all. */
    keep?: (name: string) => boolean;
  },
): Promise<FleetCheck> {
  const defaultUrl = deps.evolution.baseUrl;
  const rows = await deps.sql<RegistryRow[]>`
    select s.name, s.base_url, s.enabled, s.draining, s.key_secret_id::text as key_secret_id,
      case when s.key_secret_id is null then null else maintenance.evolution_key(s.key_secret_id) end as key
    from maintenance.evolution_servers s
    order by s.name`;
  // the default server is the environment's, whatever URL the registry's `default` row says (it follows the env)
  const def: FleetServer = {
    name: DEFAULT_SERVER,
    url: defaultUrl,
    isDefault: true,
    registered: true,
    enabled: true,
    draining: rows.find((r) => r.name === DEFAULT_SERVER)?.draining ?? false,
    client: deps.evolution,
    tenants: [],
  };
  const byName = new Map<string, FleetServer>([[DEFAULT_SERVER, def]]);
  const byUrl = new Map<string, FleetServer>([[defaultUrl, def]]);
  for (const r of rows) {
    if (r.name === DEFAULT_SERVER) continue;
    const url = normalizeBaseUrl(r.base_url);
    if (url === defaultUrl) {
      byName.set(r.name, def); // registered under the default server's URL: the same server
      continue;
    }
    const s: FleetServer = {
      name: r.name,
      url,
      isDefault: false,
      registered: true,
      enabled: r.enabled,
      draining: r.draining,
      client: r.key ? deps.evolution.withCredentials(url, r.key) : null,
      ...(r.key ? {} : { keyError: "its API key is missing from Vault (remove the server and register it again)" }),
      tenants: [],
    };
    byName.set(r.name, s);
    byUrl.set(url, s);
  }
  // unregistered servers of legacy config rows, by URL and key secret (their keys read once each)
  const legacy = new Map<string, { url: string; keyId: string; tenants: TenantRow[] }>();
  const placed = new Map<TenantRow, FleetServer | string>();
  for (const t of tenants) {
    const linked = t.server_name ? byName.get(t.server_name) : undefined;
    if (linked) {
      placed.set(t, linked);
    } else if (t.evolution_api_url && t.evolution_key_id) {
      const url = normalizeBaseUrl(t.evolution_api_url);
      const known = byUrl.get(url);
      if (known) placed.set(t, known);
      else {
        const k = `${url}|${t.evolution_key_id}`;
        const g = legacy.get(k) ?? { url, keyId: t.evolution_key_id, tenants: [] };
        g.tenants.push(t);
        legacy.set(k, g);
        placed.set(t, k);
      }
    } else placed.set(t, def);
  }
  const legacyServers = new Map<string, FleetServer>();
  for (const [k, g] of legacy) {
    let key: string | null = null;
    let keyError: string | undefined;
    try {
      const [row] = await deps.sql<{ key: string | null }[]>`
        select maintenance.evolution_key(${g.keyId}::uuid) as key`;
      key = row?.key ?? null;
      if (!key) keyError = "its API key is missing from Vault";
    } catch (error) {
      keyError = `its API key cannot be read: ${errorMessage(error)}`;
    }
    // two key secrets of one unregistered URL are one server: the first readable key lists it
    const same = [...legacyServers.values()].find((s) => s.url === g.url);
    if (same && (same.client || !key)) {
      legacyServers.set(k, same);
      continue;
    }
    const s: FleetServer = same ?? {
      name: g.url,
      url: g.url,
      isDefault: false,
      registered: false,
      enabled: true,
      draining: false,
      client: null,
      tenants: [],
    };
    s.client = key ? deps.evolution.withCredentials(g.url, key) : null;
    if (key) delete s.keyError;
    else s.keyError = keyError;
    legacyServers.set(k, s);
  }
  for (const [t, where] of placed) {
    const s = typeof where === "string" ? legacyServers.get(where)! : where;
    s.tenants.push(t);
  }

  const servers = [...new Set([...byName.values(), ...legacyServers.values()])];
  const list = options.list ?? ((c: EvolutionClient) => c.listInstances({ keep: options.keep }));
  const totals = new Map<FleetServer, number | null>();
  const calls = { serverInfo: 0, fetchInstances: 0 };
  await pMap(servers, async (s) => {
    const serverUrl = s.isDefault ? null : s.url;
    const judged = s.tenants.filter((t) => t.integration_id && t.integration_active).length;
    if (!s.enabled) {
      s.health = { status: "skipped", reason: "the server is disabled (out of service): not asked" };
      s.listing = listingOf(s, serverUrl, null, `server '${s.name}' is disabled (out of service)`);
      return;
    }
    if (!s.client) {
      s.health = { status: "unhealthy", error: `server '${s.name}': ${s.keyError}` };
      s.listing = listingOf(s, serverUrl, null, s.health.error!);
      return;
    }
    calls.serverInfo++;
    const health = s.isDefault && options.defaultHealth
      ? await options.defaultHealth
      : await serverInfoHealth(s.client);
    const { instances, listed, total } = await listServer(s.client, health, judged > 0, list);
    if (listed) calls.fetchInstances++;
    totals.set(s, total);
    s.health = health;
    s.listing = listingOf(s, serverUrl, instances, health.error ?? null);
  }, { concurrency: Math.max(1, options.concurrency) });

  const listings = new Map<TenantRow, ServerListing>();
  for (const s of servers) for (const t of s.tenants) listings.set(t, s.listing!);
  const reports: ServerReport[] = servers.map((s) => ({
    name: s.name,
    url: s.url,
    isDefault: s.isDefault,
    registered: s.registered,
    enabled: s.enabled,
    draining: s.draining,
    tenants: s.tenants.filter((t) => t.integration_id && t.integration_active).length,
    state: s.health!.status,
    version: s.health!.version ?? null,
    latencyMs: s.health!.latencyMs ?? null,
    // rows listed, or null: not listed (down, or no tenant of this run to judge there)
    instances: totals.get(s) ?? null,
    error: s.health!.error ?? null,
    code: s.health!.code ?? null,
    reason: s.health!.reason ?? null,
  }));
  const candidates = servers.filter((s) => s.health!.status === "unhealthy")
    .map((s) => serverDownCandidate(s, reports.find((r) => r.name === s.name)!, deps.config.evolution.url));
  return {
    listingOf: (t) => listings.get(t) ?? def.listing!,
    defaultHealth: def.health!,
    servers: reports,
    candidates,
    calls,
  };
}

function listingOf(
  s: FleetServer,
  serverUrl: string | null,
  instances: Map<string, InstanceSummary> | null,
  error: string | null,
): ServerListing {
  // a server without a client is never asked again in this run: any client will do for the type
  return { client: s.client!, url: s.url, serverUrl, instances, error };
}

/**
 * The platform alert of a server that is down: `evolution_down` for the default server (the fingerprint it always
 * had), `evolution_down:<name>` for another (its registry name; an unregistered legacy server's URL). It silences
 * exactly that server's tenants' alerts (`maintenance.evaluate_alerts`, step 4).
 */
function serverDownCandidate(s: FleetServer, r: ServerReport, defaultUrl: string): AlertCandidate {
  const error = s.health!.error ?? "not answering";
  if (s.isDefault) {
    return {
      fingerprint: "evolution_down",
      kind: "evolution_down",
      severity: "critical",
      summary: "Evolution API is down",
      labels: { service: "evolution", server: DEFAULT_SERVER },
      details: {
        text:
          `Evolution API at ${defaultUrl} is not answering: ${error}. The alerts of its ${r.tenants} tenant(s) are silenced until it is back.`,
        error,
        server: DEFAULT_SERVER,
        tenants: r.tenants,
      },
    };
  }
  return {
    fingerprint: `evolution_down:${s.name}`,
    kind: "evolution_down",
    severity: "critical",
    summary: `Evolution server '${s.name}' is down`,
    labels: { service: "evolution", server: s.name },
    details: {
      text:
        `Evolution server '${s.name}' at ${s.url} is not answering: ${error}. The alerts of its ${r.tenants} tenant(s) are silenced until it is back; the other servers' tenants are checked as usual.`,
      error,
      server: s.name,
      url: s.url,
      tenants: r.tenants,
    },
  };
}
