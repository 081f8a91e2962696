/**
 * @module
 * Tenant naming: slug validation (used wherever a slug enters), and the instance name and webhook URL derived from
 * a slug. A valid slug is lowercase letters, digits and single hyphens, so it can never be a path trick. Which tenant
 * an instance belongs to ({@link tenantOfInstance}) does not ask for that format: existing tenants may have older
 * slugs, and their instances are theirs all the same.
 */
import { z } from "zod";
import { normalizeBaseUrl } from "./config.ts";
import type { Sql } from "./db.ts";
import { ValidationError } from "./errors.ts";

/** Longest slug accepted (the instance name adds the prefix; Evolution names are stored as text). */
export const SLUG_MAX_LENGTH = 63;

/** A tenant slug: lowercase letters, digits and inner hyphens, 1–63 characters. */
export const Slug = z.string().min(1, "must not be empty").max(
  SLUG_MAX_LENGTH,
  `must be at most ${SLUG_MAX_LENGTH} characters`,
).regex(
  /^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9]))*$/,
  "must be lowercase letters, digits and single inner hyphens (e.g. 'acme-2')",
);
export type Slug = z.infer<typeof Slug>;

/** True when `value` is a valid slug. */
export function isSlug(value: unknown): value is Slug {
  return Slug.safeParse(value).success;
}

/** `{prefix}{slug}`: the tenant's Evolution instance name. */
export function instanceName(slug: Slug, prefix: string): string {
  return `${prefix}${slug}`;
}

/** `{base}/api/whatsapp/webhook/{slug}`: the tenant's webhook URL. */
export function webhookUrl(slug: Slug, baseUrl: string): string {
  return `${normalizeBaseUrl(baseUrl)}/api/whatsapp/webhook/${slug}`;
}

/** The slug an instance name maps to under `prefix`, or null when it lacks the prefix or is not a valid slug. */
export function slugFromInstance(name: string, prefix: string): Slug | null {
  if (!name.startsWith(prefix)) return null;
  const slug = name.slice(prefix.length);
  return isSlug(slug) ? slug : null;
}

/**
 * What an instance name says about its tenant under `prefix`, whatever the slug's format: the text after the prefix
 * (`revalya-Legacy_Co` → `Legacy_Co`), or null when the name lacks the prefix or has nothing after it. Unlike
 * {@link slugFromInstance} it does not ask for the bundle's slug format: `tenants.slug` predates this bundle, and a
 * slug with upper case, underscores or dots still names a tenant whose instance is `{prefix}{slug}`.
 */
export function instanceSuffix(name: string, prefix: string): string | null {
  if (!name.startsWith(prefix) || name.length === prefix.length) return null;
  return name.slice(prefix.length);
}

/**
 * The one rule of "whose instance is this", used by every job that may delete an instance (isolation-audit,
 * orphan-cleanup): the existing tenant whose instance `name` is, that is the tenant whose slug, exactly as stored,
 * follows the prefix (`{prefix}{slug}`, the same rule as the SQL side's `prefix || slug = name`), or null. An
 * instance this returns a tenant for is never deleted as unknown or orphaned, whatever the slug's format: at worst
 * its integration row is missing, and `whatsapp-ops fix` recreates that. `tenants`: the existing slugs (all of
 * them, or at least those {@link instanceSuffix} gives for the names in question, see {@link existingTenants}).
 */
export function tenantOfInstance(name: string, prefix: string, tenants: ReadonlySet<string>): string | null {
  const suffix = instanceSuffix(name, prefix);
  return suffix !== null && tenants.has(suffix) ? suffix : null;
}

/**
 * The existing tenants among those the instance `names` map to under `prefix` (one query), for
 * {@link tenantOfInstance}: read again just before a deletion, so a tenant created since a listing still counts.
 */
export async function existingTenants(sql: Sql, names: string[], prefix: string): Promise<Set<string>> {
  const suffixes = [...new Set(names.map((n) => instanceSuffix(n, prefix)).filter((s): s is string => s !== null))];
  if (!suffixes.length) return new Set();
  const rows = await sql<{ slug: string }[]>`select slug from public.tenants where slug = any (${suffixes}::text[])`;
  return new Set(rows.map((r) => r.slug));
}

/** The request header carrying a tenant's webhook token (set on the instance's webhook at creation). */
export const WEBHOOK_TOKEN_HEADER = "x-webhook-token";

/**
 * The query parameter that carries the token where the Evolution server cannot send custom headers (1.8 stores no
 * webhook headers): `{webhook URL}?token=<token>`. The receiver accepts the header or this parameter.
 */
export const WEBHOOK_TOKEN_PARAM = "token";

/** A webhook URL with its `?token=` masked, for reports and the audit trail (which never hold a secret). */
export function redactWebhookUrl<T extends string | null | undefined>(url: T): T {
  if (!url) return url;
  const i = url.indexOf(`?${WEBHOOK_TOKEN_PARAM}=`);
  return (i < 0 ? url : `${url.slice(0, i)}?${WEBHOOK_TOKEN_PARAM}=…`) as T;
}

const hmacKeys = new Map<string, Promise<CryptoKey>>();

function hmacKey(secret: string): Promise<CryptoKey> {
  let key = hmacKeys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", new TextEncoder().encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
      "sign",
    ]);
    hmacKeys.set(secret, key);
  }
  return key;
}

/**
 * The tenant's webhook token: hex HMAC-SHA256 of the slug under `WEBHOOK_SECRET` (WebCrypto). Evolution sends it in
 * {@link WEBHOOK_TOKEN_HEADER}; the receiver recomputes it, so no per-tenant secret is stored anywhere.
 * Throws a ValidationError for an invalid slug.
 */
export async function webhookToken(slug: string, secret: string): Promise<string> {
  const valid = parseSlug(slug);
  const mac = await crypto.subtle.sign("HMAC", await hmacKey(secret), new TextEncoder().encode(valid));
  return Array.from(new Uint8Array(mac), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Validates a slug where it enters (route parameter, request body, CLI argument): returns it, or throws a
 * {@link ValidationError} (400) naming `field`. Rejects path tricks (`../x`, `a%2Fb`), upper case, look-alike
 * unicode and anything longer than {@link SLUG_MAX_LENGTH}, without echoing a huge value back.
 */
export function parseSlug(value: unknown, field = "slug"): Slug {
  const parsed = Slug.safeParse(value);
  if (parsed.success) return parsed.data;
  const shown = typeof value === "string"
    ? `'${value.length > 80 ? value.slice(0, 80) + "…" : value}'`
    : value === undefined
    ? "missing"
    : typeof value;
  throw new ValidationError(`Invalid '${field}': ${parsed.error.issues[0]?.message ?? "not a slug"}: got ${shown}`, {
    code: "invalid_slug",
    details: [{ field, message: parsed.error.issues[0]?.message ?? "not a slug" }],
  });
}
