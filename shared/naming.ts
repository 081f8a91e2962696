/**
 * @module
 * Tenant naming: slug validation (used wherever a slug enters), and the instance name and webhook URL derived from
 * a slug. A valid slug is lowercase letters, digits and single hyphens, so it can never be a path trick.
 */
import { z } from "zod";

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
  return `${baseUrl.replace(/\/+$/, "")}/api/whatsapp/webhook/${slug}`;
}

/** The slug an instance name maps to under `prefix`, or null when it lacks the prefix or is not a valid slug. */
export function slugFromInstance(name: string, prefix: string): Slug | null {
  if (!name.startsWith(prefix)) return null;
  const slug = name.slice(prefix.length);
  return isSlug(slug) ? slug : null;
}
