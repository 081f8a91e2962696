/**
 * @module
 * What every on-demand action needs about one tenant: its row and WhatsApp integration (404 when the tenant is
 * unknown), the expected instance name, webhook URL and config, who asked, and the tenant's Evolution server (from
 * the registry, `../evolution/servers.ts`) with its client, or where a tenant with no server yet is placed. (The
 * per-tenant lease the actions hold is `../tenant_lease.ts`.)
 */
import { z } from "zod";
import type { Sql } from "../db.ts";
import { type Config, normalizeBaseUrl } from "../config.ts";
import { ConflictError, NotFoundError } from "../errors.ts";
import type { EvolutionClient } from "../evolution/client.ts";
import type { Deps } from "../deps.ts";
import { instanceName, type Slug, webhookUrl } from "../naming.ts";
import {
  clientForServer,
  DEFAULT_SERVER,
  ensureDefaultServer,
  linkedServer,
  placementFor,
  serverClient,
  type ServerView,
} from "../evolution/servers.ts";
import { commitPlacement } from "../evolution/fleet.ts";

/** The `config` jsonb of a WhatsApp integration (extra keys kept). */
export const IntegrationConfig = z.object({
  instance_name: z.string().optional(),
  webhook_url: z.string().optional(),
  environment: z.string().optional(),
  evolution_api_url: z.string().optional(),
  evolution_api_key_secret_id: z.string().optional(),
}).passthrough();
export type IntegrationConfig = z.infer<typeof IntegrationConfig>;

/** A tenant and its WhatsApp integration row (null when there is none). */
export interface TenantView {
  id: string;
  slug: Slug;
  isActive: boolean;
  integration: {
    id: string;
    config: IntegrationConfig;
    isActive: boolean;
    updatedAt: string;
  } | null;
}

/** Reads a tenant and its integration; {@link NotFoundError} (404) when the slug is unknown. */
export async function loadTenant(sql: Sql, slug: Slug): Promise<TenantView> {
  const rows = await sql<
    {
      id: string;
      is_active: boolean | null;
      integration_id: string | null;
      config: unknown;
      integration_active: boolean | null;
      updated_at: Date | null;
    }[]
  >`
    select t.id, t.is_active, ti.id as integration_id, ti.config, ti.is_active as integration_active, ti.updated_at
    from public.tenants t
    left join public.tenant_integrations ti on ti.tenant_id = t.id and ti.integration_type = 'whatsapp'
    where t.slug = ${slug}`;
  if (!rows.length) throw new NotFoundError(`Tenant '${slug}' does not exist`, { details: { slug } });
  const r = rows[0];
  return {
    id: r.id,
    slug,
    isActive: r.is_active !== false,
    integration: r.integration_id
      ? {
        id: r.integration_id,
        config: IntegrationConfig.catch({}).parse(r.config ?? {}),
        isActive: r.integration_active !== false,
        updatedAt: new Date(r.updated_at ?? 0).toISOString(),
      }
      : null,
  };
}

/** The integration config a tenant should have (the seed's saveInstanceConfig), on top of `base`. */
export function expectedConfig(config: Config, slug: Slug, base: IntegrationConfig = {}): IntegrationConfig {
  return {
    ...base,
    instance_name: instanceName(slug, config.instancePrefix),
    webhook_url: webhookUrl(slug, config.webhookBaseUrl),
    environment: base.environment ?? "production",
  };
}

/** Who asked: `api:<x-ops-actor header>` (sanitised), or `api`. */
export function actorFrom(header: string | undefined | null): string {
  const clean = (header ?? "").replace(/[^\w@.:/ -]/g, "").trim().slice(0, 100);
  return clean ? `api:${clean}` : "api";
}

/** Where a tenant's server came from: its link in the registry, a legacy config row, or none (the default server). */
export type ServerSource = "link" | "config" | "default";

/** A tenant's server: the client to reach it, its registry name (null for a legacy config URL), and the source. */
export interface TenantServer {
  client: EvolutionClient;
  server: string | null;
  source: ServerSource;
}

/**
 * The tenant's server. The registry is the source of truth: the server its link names
 * (`maintenance.tenant_servers`; the default server's client is `deps.evolution`, another's uses its key from
 * Vault). Without a link, the fallback of a config row an older function wrote (`evolution_api_url` with the key
 * named by `evolution_api_key_secret_id`; the migration converted every such row, a function of the previous deploy
 * may still write one). Otherwise the default server, source `default`: the tenant has not been placed.
 */
export async function serverFor(deps: Deps, tenant: TenantView): Promise<TenantServer> {
  const linked = await linkedServer(deps.sql, tenant.id);
  if (linked) return { client: serverClient(deps, linked), server: linked.name, source: "link" };
  const cfg = tenant.integration?.config;
  if (cfg?.evolution_api_url && cfg.evolution_api_key_secret_id) {
    if (normalizeBaseUrl(cfg.evolution_api_url) === deps.evolution.baseUrl) {
      return { client: deps.evolution, server: DEFAULT_SERVER, source: "config" };
    }
    const [row] = await deps.sql<{ key: string | null }[]>`
      select maintenance.evolution_key(${cfg.evolution_api_key_secret_id}::uuid) as key`;
    if (row?.key) {
      return { client: deps.evolution.withCredentials(cfg.evolution_api_url, row.key), server: null, source: "config" };
    }
  }
  return { client: deps.evolution, server: DEFAULT_SERVER, source: "default" };
}

/** The Evolution client of a tenant's server ({@link serverFor}). */
export async function clientFor(deps: Deps, tenant: TenantView): Promise<EvolutionClient> {
  return (await serverFor(deps, tenant)).client;
}

/** Where a new instance of a tenant with no server yet goes, and how to record it once the instance exists. */
export interface NewPlacement {
  server: ServerView;
  client: EvolutionClient;
  /**
   * Writes the tenant's link to the server (before its instance is created there: a tenant with a link keeps that
   * server), and, for a server other than the default one, the legacy config keys
   * (`evolution_api_url`, `evolution_api_key_secret_id` = the server's key) that the jobs not yet reading the
   * registry look at; `tenant.integration.config` is updated in place to match. One transaction.
   */
  commit(): Promise<void>;
}

/**
 * For a tenant that has no server yet (no link, no legacy config), the server its new instance goes to
 * ({@link placementFor}: the least-loaded enabled, non-draining server); null when the tenant has a server (its
 * instance is created there). Throws a {@link ConflictError} when no server takes new tenants.
 */
export async function placeNewInstance(deps: Deps, tenant: TenantView): Promise<NewPlacement | null> {
  if ((await serverFor(deps, tenant)).source !== "default") return null;
  await ensureDefaultServer(deps);
  const server = await placementFor(deps.sql);
  if (!server) {
    throw new ConflictError(
      `Cannot place tenant '${tenant.slug}' as no Evolution server takes new tenants (every one is disabled or ` +
        `draining): enable or undrain one, or register another`,
      { code: "no_server_available" },
    );
  }
  const client = server.isDefault ? deps.evolution : await clientForServer(deps, server.name);
  if (!client) throw new ConflictError(`Cannot place tenant '${tenant.slug}' as server '${server.name}' is gone`);
  return {
    server,
    client,
    async commit() {
      const config = await commitPlacement(deps.sql, tenant.id, server);
      if (config && tenant.integration) tenant.integration.config = IntegrationConfig.catch({}).parse(config);
    },
  };
}
