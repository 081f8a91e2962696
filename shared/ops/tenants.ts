/**
 * @module
 * What every on-demand action needs about one tenant: its row and WhatsApp integration (404 when the tenant is
 * unknown), the expected instance name, webhook URL and config, who asked, and the Evolution client of the
 * tenant's server. (The per-tenant lease the actions hold is `../tenant_lease.ts`.)
 */
import { z } from "zod";
import type { Sql } from "../db.ts";
import { type Config, normalizeBaseUrl } from "../config.ts";
import { NotFoundError } from "../errors.ts";
import type { EvolutionClient } from "../evolution/client.ts";
import type { Deps } from "../deps.ts";
import { instanceName, type Slug, webhookUrl } from "../naming.ts";

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

/**
 * The Evolution client of a tenant's server: the default one, or, after a migration, the server named in its
 * config (`evolution_api_url`) with the key read back from Vault (`evolution_api_key_secret_id`).
 */
export async function clientFor(deps: Deps, tenant: TenantView): Promise<EvolutionClient> {
  const cfg = tenant.integration?.config;
  if (!cfg?.evolution_api_url || !cfg.evolution_api_key_secret_id) return deps.evolution;
  if (normalizeBaseUrl(cfg.evolution_api_url) === deps.evolution.baseUrl) return deps.evolution;
  const [row] = await deps.sql<{ key: string | null }[]>`
    select maintenance.evolution_key(${cfg.evolution_api_key_secret_id}::uuid) as key`;
  if (!row?.key) return deps.evolution;
  return deps.evolution.withCredentials(cfg.evolution_api_url, row.key);
}
