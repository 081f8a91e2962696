/**
 * @module
 * The fleet as the jobs that look at every server read it (isolation-audit, orphan-cleanup): the enabled servers of
 * the registry with a client each ({@link loadFleet}), one listing per server with what an audited delete of ours is
 * still removing there left out ({@link listFleet}), which server each tenant is on ({@link tenantHomes}), and the
 * placement of a tenant that has no server yet ({@link placeTenant}, {@link commitPlacement}, which `whatsapp-ops fix`
 * shares).
 *
 * A server whose listing fails is a listing with `instances: null` and the cause: never "no instances". The default
 * server's client is always `deps.evolution` (the `EVOLUTION_API_URL` / `EVOLUTION_API_KEY` of this deploy); every
 * other server's is built from its registered URL and its key in Vault.
 */
import pMap from "p-map";
import type { Deps } from "../deps.ts";
import type { Sql } from "../db.ts";
import type { EvolutionClient } from "./client.ts";
import { describeError } from "./errors.ts";
import type { ConnectionState } from "./types.ts";
import { normalizeBaseUrl } from "../config.ts";
import { DEFAULT_SERVER, ensureDefaultServer, placementFor, type ServerView } from "./servers.ts";

/** An enabled server of the registry, ready to be listed. */
export interface FleetServer {
  /** Its registry name (what every report names it by). */
  name: string;
  url: string;
  isDefault: boolean;
  draining: boolean;
  /** Null when it cannot be called at all (its key is no longer in Vault): `error` says why. */
  client: EvolutionClient | null;
  error: string | null;
}

/** The servers the fleet-aware jobs look at: every enabled one (the default server first), and the disabled ones. */
export interface Fleet {
  servers: FleetServer[];
  /** Registry names of the disabled servers: not listed, and their tenants not audited. */
  disabled: string[];
}

/**
 * The enabled servers of the registry with their clients (the default server registered first, as on a function's
 * first call). A non-default row with this deploy's `EVOLUTION_API_URL` is the default server itself: left out.
 */
export async function loadFleet(deps: Pick<Deps, "sql" | "config" | "evolution">): Promise<Fleet> {
  await ensureDefaultServer(deps);
  const rows = await deps.sql<
    { name: string; base_url: string; enabled: boolean; draining: boolean; key: string | null }[]
  >`
    select s.name, s.base_url, s.enabled, s.draining,
      case when s.key_secret_id is null then null else maintenance.evolution_key(s.key_secret_id) end as key
    from maintenance.evolution_servers s
    order by s.name <> ${DEFAULT_SERVER}, s.name`;
  const servers: FleetServer[] = [];
  const disabled: string[] = [];
  for (const r of rows) {
    const isDefault = r.name === DEFAULT_SERVER;
    if (!isDefault && normalizeBaseUrl(r.base_url) === deps.evolution.baseUrl) continue;
    if (!r.enabled) {
      disabled.push(r.name);
      continue;
    }
    const url = isDefault ? deps.evolution.baseUrl : r.base_url;
    const client = isDefault ? deps.evolution : r.key ? deps.evolution.withCredentials(r.base_url, r.key) : null;
    servers.push({
      name: r.name,
      url,
      isDefault,
      draining: r.draining,
      client,
      error: client
        ? null
        : `Cannot call server '${r.name}' as its key is no longer in Vault: remove it and register ` +
          `it again`,
    });
  }
  return { servers, disabled };
}

/** One instance as the fleet-aware jobs keep it from a listing (only what they use: a listing can be large). */
export interface ListedInstance {
  name: string;
  state: ConnectionState;
}

/** An instance of ours Evolution still lists after an audited delete on that server. */
export interface BeingRemoved {
  instance: string;
  deletedAt: string;
  server: string;
}

/** One server's listing in a run. */
export interface ServerListing {
  server: FleetServer;
  /** Every instance it listed (minus those being removed), or null: it could not be listed (`error`). */
  instances: ListedInstance[] | null;
  byName: Map<string, ListedInstance>;
  error: string | null;
  beingRemoved: BeingRemoved[];
}

/**
 * One `fetchInstances` per server (`concurrency` at a time, default 2), read as a stream (`listInstances`: only each
 * row's summary is kept), each minus the prefixed instances an
 * audited delete of ours on that server is still removing (`maintenance.instances_being_removed_on`: a deleted
 * instance stays listed for seconds, or ~20 min while Evolution retries a failing remove.instance delivery).
 */
export async function listFleet(
  deps: Pick<Deps, "sql">,
  fleet: Fleet,
  options: { prefix: string; concurrency?: number },
): Promise<ServerListing[]> {
  return await pMap(fleet.servers, async (server): Promise<ServerListing> => {
    let instances: ListedInstance[] | null = null;
    let error = server.error;
    if (server.client) {
      try {
        instances = (await server.client.listInstances()).map((i) => ({ name: i.name, state: i.state }));
      } catch (e) {
        error = `Cannot list Evolution instances on server '${server.name}': ${describeError(e)}`;
      }
    }
    const ours = (instances ?? []).filter((i) => i.name.startsWith(options.prefix)).map((i) => i.name);
    const removing = ours.length
      ? await deps.sql<{ instance_name: string; deleted_at: Date }[]>`
        select instance_name, deleted_at from maintenance.instances_being_removed_on(${server.name}, ${ours}::text[])`
      : [];
    const gone = new Set(removing.map((r) => r.instance_name));
    if (instances) instances = instances.filter((i) => !gone.has(i.name));
    return {
      server,
      instances,
      byName: new Map((instances ?? []).map((i) => [i.name, i])),
      error,
      beingRemoved: removing.map((r) => ({
        instance: r.instance_name,
        deletedAt: new Date(r.deleted_at).toISOString(),
        server: server.name,
      })).sort((a, b) => a.instance.localeCompare(b.instance)),
    };
  }, { concurrency: options.concurrency ?? 2 });
}

/** Which server a tenant is on, as the fleet-aware jobs read it (`maintenance.tenant_server_of`). */
export interface TenantHome {
  /**
   * Its server's registry name; null when a config row of an older deploy names a URL no server is registered
   * under (the jobs then leave that tenant's instances alone: they cannot tell where it really lives).
   */
  server: string | null;
  /** `link` (the registry), `config` (an older deploy's config row), `default` (no server yet: the default one). */
  source: "link" | "config" | "default";
  /** The URL of that config row (source `config`). */
  legacyUrl: string | null;
}

/** Every tenant's server (or those of `slugs`), by slug. */
export async function tenantHomes(
  deps: Pick<Deps, "sql" | "evolution">,
  slugs?: string[],
): Promise<Map<string, TenantHome>> {
  const rows = await deps.sql<
    { slug: string; server: string | null; source: TenantHome["source"]; legacy_url: string | null }[]
  >`
    select slug, server, source, legacy_url from maintenance.tenant_server_of
    ${slugs ? deps.sql`where slug = any (${slugs}::text[])` : deps.sql``}`;
  const homes = new Map<string, TenantHome>();
  for (const r of rows) {
    // a config row naming this deploy's EVOLUTION_API_URL is on the default server, whatever the registry's row says
    const server = r.source === "config" && r.legacy_url === deps.evolution.baseUrl ? DEFAULT_SERVER : r.server;
    homes.set(r.slug, { server, source: r.source, legacyUrl: r.legacy_url });
  }
  return homes;
}

/** Where a new instance of a tenant with no server goes, with its client; null when no server takes new tenants. */
export async function placeTenant(
  deps: Pick<Deps, "sql" | "config" | "evolution">,
  fleet?: Fleet,
): Promise<{ server: ServerView; client: EvolutionClient | null } | null> {
  await ensureDefaultServer(deps);
  const server = await placementFor(deps.sql);
  if (!server) return null;
  if (server.isDefault) return { server, client: deps.evolution };
  const known = fleet?.servers.find((s) => s.name === server.name);
  if (known) return { server, client: known.client };
  const [row] = await deps.sql<{ key: string | null }[]>`
    select case when key_secret_id is null then null else maintenance.evolution_key(key_secret_id) end as key
    from maintenance.evolution_servers where name = ${server.name}`;
  return { server, client: row?.key ? deps.evolution.withCredentials(server.url, row.key) : null };
}

/**
 * Records a placement: the tenant's link to `server` (`placed_by = 'placement'`, written before its instance is
 * created there: a tenant with a link keeps that server), and, for a server other than the default one, the legacy
 * config keys (`evolution_api_url`, `evolution_api_key_secret_id` = the server's key) that a function of the previous
 * deploy reads. One transaction; returns the integration's new config (null: unchanged, or no row).
 */
export async function commitPlacement(
  sql: Sql,
  tenantId: string,
  server: ServerView,
): Promise<Record<string, unknown> | null> {
  return await sql.begin(async (tx) => {
    await tx`select * from maintenance.link_tenant_server(${tenantId}, ${server.url}, null, null, 'placement')`;
    if (server.isDefault) return null;
    const [row] = await tx<{ config: Record<string, unknown> }[]>`
      update public.tenant_integrations ti
      set config = ti.config || jsonb_build_object('evolution_api_url', s.base_url,
          'evolution_api_key_secret_id', s.key_secret_id::text),
        updated_at = now()
      from maintenance.evolution_servers s
      where s.name = ${server.name} and s.key_secret_id is not null
        and ti.tenant_id = ${tenantId} and ti.integration_type = 'whatsapp'
      returning ti.config`;
    return row?.config ?? null;
  });
}
