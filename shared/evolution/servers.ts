/**
 * @module
 * The fleet registry: the Evolution servers (`maintenance.evolution_servers`) and which one each tenant is on
 * (`maintenance.tenant_servers`; no link = the default server). Both apps read it through here: the default server's
 * registration on a function's first call ({@link ensureDefaultServer}), the servers with their tenant counts
 * ({@link listServers}), a tenant's linked server ({@link linkedServer}), the client of a server
 * ({@link serverClient}) and where a tenant without a server goes ({@link placementFor}).
 *
 * The default server is the one of `EVOLUTION_API_URL` / `EVOLUTION_API_KEY`: its key stays in the environment.
 * Every other server's key is a Vault secret, read back only to build that server's client; no view of a server
 * this module returns carries a key or a secret id.
 */
import { z } from "zod";
import type postgres from "postgres";
import type { Deps } from "../deps.ts";
import { ConflictError } from "../errors.ts";
import type { EvolutionClient } from "./client.ts";

/** A SQL client or a transaction of one (placement may run inside a caller's transaction). */
export type Queryable = postgres.ISql;

/** The name of the `EVOLUTION_API_URL` server in the registry. */
export const DEFAULT_SERVER = "default";

/** A server's name: a slug of 1–63 lowercase letters, digits and '-' (as the table's check). */
export const ServerName = z.string().regex(
  /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/,
  "must be 1 to 63 lowercase letters, digits or '-', not starting or ending with '-'",
);
export type ServerName = z.infer<typeof ServerName>;

/**
 * An Evolution server's base URL as the registry accepts it: http(s), at most 2048 characters, with no credentials,
 * query or fragment (a URL is stored and shown in plain text, so it must not carry a secret).
 */
export const ServerUrl = z.url({ protocol: /^https?$/, error: "must be an http(s) URL" })
  .max(2048, "must be at most 2048 characters")
  .refine((u) => {
    let x: URL;
    try {
      x = new URL(u);
    } catch {
      return true; // not a URL at all: the check above says so
    }
    return !x.username && !x.password && !u.includes("?") && !u.includes("#");
  }, "must not hold credentials, a query or a fragment");

/** A server as every answer shows it: no key, no secret id. */
export interface ServerView {
  name: string;
  url: string;
  version: string | null;
  versionSeenAt: string | null;
  enabled: boolean;
  draining: boolean;
  capacity: number;
  /** Tenants on it: linked ones, plus (default server) every WhatsApp tenant without a link. */
  tenants: number;
  /** tenants / capacity. */
  load: number;
  isDefault: boolean;
  /** Where its key is kept: the functions' environment (default server) or Vault. */
  keyIn: "environment" | "vault";
  createdAt: string;
  updatedAt: string;
}

/** A row of `maintenance.evolution_server_load` (also what `register_evolution_server` answers). */
export interface ServerLoadRow {
  id: string;
  name: string;
  base_url: string;
  version: string | null;
  version_seen_at: Date | null;
  enabled: boolean;
  draining: boolean;
  capacity: number;
  tenants: number;
  load: string;
  is_default: boolean;
  created_at: Date;
  updated_at: Date;
}

/** A server row of `maintenance.evolution_server_load` as a {@link ServerView}. */
export function serverView(r: ServerLoadRow): ServerView {
  const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);
  return {
    name: r.name,
    url: r.base_url,
    version: r.version,
    versionSeenAt: iso(r.version_seen_at),
    enabled: r.enabled,
    draining: r.draining,
    capacity: r.capacity,
    tenants: r.tenants,
    load: Number(r.load),
    isDefault: r.is_default,
    keyIn: r.is_default ? "environment" : "vault",
    createdAt: iso(r.created_at)!,
    updatedAt: iso(r.updated_at)!,
  };
}

const ensured = new WeakMap<object, Map<string, Promise<void>>>();

/**
 * Registers the default server (`config.evolution.url`) in the registry: once per process, SQL client and URL
 * (`maintenance.ensure_default_server`, idempotent). A failure is not remembered: the next call tries again.
 */
export function ensureDefaultServer(deps: Pick<Deps, "sql" | "config">): Promise<void> {
  const url = deps.config.evolution.url;
  let byUrl = ensured.get(deps.sql);
  if (!byUrl) ensured.set(deps.sql, byUrl = new Map());
  const known = byUrl.get(url);
  if (known) return known;
  const done = deps.sql`select maintenance.ensure_default_server(${url})`.then(() => {});
  byUrl.set(url, done);
  done.catch(() => byUrl.delete(url));
  return done;
}

/** Every server with its tenant count, the default one first, then by name. */
export async function listServers(sql: Queryable): Promise<ServerView[]> {
  const rows = await sql<ServerLoadRow[]>`
    select * from maintenance.evolution_server_load order by is_default desc, name`;
  return rows.map(serverView);
}

/** One server by name, or null. */
export async function findServer(sql: Queryable, name: string): Promise<ServerView | null> {
  const [row] = await sql<ServerLoadRow[]>`select * from maintenance.evolution_server_load where name = ${name}`;
  return row ? serverView(row) : null;
}

/** The registered server of a base URL (normalised), or null. */
export async function serverByUrl(sql: Queryable, url: string): Promise<ServerView | null> {
  const [row] = await sql<ServerLoadRow[]>`
    select * from maintenance.evolution_server_load where base_url = maintenance.normalize_base_url(${url})`;
  return row ? serverView(row) : null;
}

/**
 * Where a tenant without a server goes: the enabled, non-draining server with the lowest tenants/capacity (then the
 * fewest tenants, then the oldest). Null when no server takes new tenants. A server at or over its capacity is still
 * chosen when every candidate is (capacity is a target; `tenants >= capacity` tells the caller).
 */
export async function placementFor(sql: Queryable): Promise<ServerView | null> {
  const [row] = await sql<ServerLoadRow[]>`
    select * from maintenance.evolution_server_load where enabled and not draining
    order by load, tenants, id
    limit 1`;
  return row ? serverView(row) : null;
}

/** A tenant's linked server, with its key read back from Vault (null for the default server), or null: no link. */
export interface LinkedServer {
  id: string;
  name: string;
  url: string;
  isDefault: boolean;
  /** A disabled server is not asked by the jobs, and nothing new is created on it. */
  enabled: boolean;
  /** Never returned by a route or written anywhere: only for {@link serverClient}. */
  key: string | null;
}

/** The server a tenant is linked to (`maintenance.tenant_servers`), or null when it has no link. */
export async function linkedServer(sql: Queryable, tenantId: string): Promise<LinkedServer | null> {
  const [row] = await sql<{ id: string; name: string; base_url: string; enabled: boolean; key: string | null }[]>`
    select s.id, s.name, s.base_url, s.enabled,
      case when s.key_secret_id is null then null else maintenance.evolution_key(s.key_secret_id) end as key
    from maintenance.tenant_servers ts join maintenance.evolution_servers s on s.id = ts.server_id
    where ts.tenant_id = ${tenantId}`;
  if (!row) return null;
  return {
    id: String(row.id),
    name: row.name,
    url: row.base_url,
    isDefault: row.name === DEFAULT_SERVER,
    enabled: row.enabled,
    key: row.key,
  };
}

/** The Evolution client of a server: the default one's is `deps.evolution`; another's uses its key from Vault. */
export function serverClient(
  deps: Pick<Deps, "evolution">,
  server: Omit<LinkedServer, "enabled">,
): EvolutionClient {
  if (server.isDefault || server.url === deps.evolution.baseUrl) return deps.evolution;
  if (!server.key) {
    throw new ConflictError(
      `Cannot reach Evolution server '${server.name}' as its key is no longer in Vault: remove it and register it ` +
        `again`,
      { code: "server_key_missing", details: { server: server.name } },
    );
  }
  return deps.evolution.withCredentials(server.url, server.key);
}

/** The client of a server known by name (404-free: null when there is no such server). */
export async function clientForServer(
  deps: Pick<Deps, "evolution" | "sql">,
  name: string,
): Promise<EvolutionClient | null> {
  const [row] = await deps.sql<{ id: string; name: string; base_url: string; key: string | null }[]>`
    select s.id, s.name, s.base_url,
      case when s.key_secret_id is null then null else maintenance.evolution_key(s.key_secret_id) end as key
    from maintenance.evolution_servers s where s.name = ${name}`;
  if (!row) return null;
  return serverClient(deps, {
    id: String(row.id),
    name: row.name,
    url: row.base_url,
    isDefault: row.name === DEFAULT_SERVER,
    key: row.key,
  });
}
