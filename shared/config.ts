/**
 * @module
 * The bundle's configuration, parsed once from the environment with zod. A missing required value is a start-up
 * error that names it; nothing else in the code base reads `Deno.env`.
 */
import { z } from "zod";
import { ConfigError } from "./errors.ts";

const url = z.url({ protocol: /^https?$/ });

/**
 * A base URL without its trailing slashes, ready for `${base}/path` and for comparing servers. The URLs of the
 * environment are normalised once here ({@link loadConfig}); this is for the others (a server URL stored in a
 * tenant's config row, the `apiUrl` of a migrate request, a URL given to a client).
 */
export function normalizeBaseUrl(url: string): string {
  return url.replace(/\/+$/, "");
}
const optionalString = z.string().trim().min(1).optional().catch(undefined);
const optionalUrl = z.preprocess((v) => (v === "" ? undefined : v), url.optional());

/**
 * A set of named API keys as Supabase gives it to functions: a JSON object of `name → key`
 * (`SUPABASE_SECRET_KEYS='{"default":"sb_secret_…","cron":"sb_secret_…"}'`).
 */
export const KeySet = z.preprocess(
  (v, ctx) => {
    if (typeof v !== "string") return v;
    try {
      return JSON.parse(v);
    } catch {
      ctx.addIssue({ code: "custom", message: "not valid JSON: expected an object of name → key" });
      return z.NEVER;
    }
  },
  z.record(z.string().min(1), z.string().trim().min(1), { error: "expected an object of name → key" }),
);
export type KeySet = z.infer<typeof KeySet>;

/** The environment variables the functions read. */
export const Env = z.object({
  SUPABASE_DB_URL: z.string().min(1),
  SUPABASE_SECRET_KEYS: KeySet.optional(),
  SUPABASE_SECRET_KEY: optionalString,
  SUPABASE_SERVICE_ROLE_KEY: optionalString,
  SUPABASE_URL: optionalUrl,
  SUPABASE_PUBLISHABLE_KEYS: KeySet.optional(),
  SUPABASE_PUBLISHABLE_KEY: optionalString,
  EVOLUTION_API_URL: url,
  EVOLUTION_API_KEY: z.string().min(1),
  EVOLUTION_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(10_000),
  WEBHOOK_BASE_URL: url,
  WEBHOOK_SECRET: z.string().min(16),
  INSTANCE_PREFIX: z.string().regex(/^[a-z0-9][a-z0-9-]{0,30}$/).default("revalya-"),
  LOG_RETENTION_DAYS: z.coerce.number().int().min(1).max(3650).default(30),
  SLACK_WEBHOOK_URL: optionalUrl,
  ALERT_EMAIL_TO: optionalString,
  ALERT_EMAIL_FROM: optionalString,
  EMAIL_API_URL: optionalUrl,
  EMAIL_API_KEY: optionalString,
  STATUS_PAGE_TOKEN: optionalString,
  METRICS_TOKEN: optionalString,
  ALERT_LOG: z.enum(["true", "false", "1", "0"]).optional(),
  APP_WEBHOOK_URLS: z.string().transform((v) => v.split(",").map((s) => s.trim()).filter(Boolean))
    .pipe(z.array(url).max(10)).optional(),
  APP_WEBHOOK_SECRET: z.string().trim().regex(/^whsec_[A-Za-z0-9+/]{32,}={0,2}$/, {
    error: "expected whsec_ followed by at least 24 random bytes in base64",
  }).optional(),
});
export type Env = z.infer<typeof Env>;

/** Parsed configuration, with the names the code uses. */
export interface Config {
  dbUrl: string;
  /**
   * Every secret key a caller may present, by name: the keys of `SUPABASE_SECRET_KEYS`, plus `SUPABASE_SECRET_KEY`
   * (self-hosted; named `secret_key`) and the legacy `SUPABASE_SERVICE_ROLE_KEY` while it is set (`service_role`).
   */
  secretKeys: KeySet;
  /** The secret key this bundle itself presents (the `default` one, else the first). */
  secretKey: string;
  /** `SUPABASE_URL`, without trailing slashes. */
  supabaseUrl?: string;
  publishableKey?: string;
  /** `url`: `EVOLUTION_API_URL`, without trailing slashes. */
  evolution: { url: string; apiKey: string; timeoutMs: number };
  /** `WEBHOOK_BASE_URL`, without trailing slashes. */
  webhookBaseUrl: string;
  webhookSecret: string;
  instancePrefix: string;
  logRetentionDays: number;
  slackWebhookUrl?: string;
  email?: { to: string; from: string; apiUrl: string; apiKey?: string };
  statusPageToken?: string;
  /** Read-only token of the `metrics` function (Prometheus' Bearer credentials). */
  metricsToken?: string;
  /** Whether alerts are also written to the function log (default true; `ALERT_LOG=false` turns it off). */
  alertLog?: boolean;
  /**
   * The application's webhook endpoints (`APP_WEBHOOK_URLS`, comma-separated) and the Standard Webhooks secret that
   * signs every delivery to them (`APP_WEBHOOK_SECRET`, `whsec_…`); absent unless both are set.
   */
  appWebhooks?: { urls: string[]; secret: string };
}

/** Names under which the singular and the legacy key join the set of accepted secret keys. */
export const SINGULAR_KEY_NAME = "secret_key";
export const LEGACY_KEY_NAME = "service_role";

/**
 * Parses the environment (default: `Deno.env`). The secret keys come from `SUPABASE_SECRET_KEYS` (what Supabase
 * gives functions), `SUPABASE_SECRET_KEY` (self-hosted) and the legacy `SUPABASE_SERVICE_ROLE_KEY`; at least one
 * is required, and every one of them is accepted. Throws a {@link ConfigError} naming every missing or invalid
 * variable.
 */
export function loadConfig(env: Record<string, string | undefined> = Deno.env.toObject()): Config {
  const raw: Record<string, string | undefined> = { ...env };
  for (const [k, v] of Object.entries(raw)) if (v === "" || v === undefined) delete raw[k];
  const parsed = Env.safeParse(raw);
  if (!parsed.success) {
    const names = [...new Set(parsed.error.issues.map((i) => String(i.path[0])))];
    const missing = names.filter((n) => raw[n] === undefined);
    const invalid = names.filter((n) => raw[n] !== undefined);
    const parts = [];
    if (missing.length) parts.push(`missing ${missing.join(", ")}`);
    if (invalid.length) {
      parts.push(
        `invalid ${
          invalid.map((n) => `${n} (${parsed.error.issues.find((i) => i.path[0] === n)?.message})`).join(", ")
        }`,
      );
    }
    throw new ConfigError(`Cannot start as the configuration is incomplete: ${parts.join("; ")}`, missing);
  }
  const e = parsed.data;
  const secretKeys: KeySet = { ...e.SUPABASE_SECRET_KEYS };
  if (e.SUPABASE_SECRET_KEY) secretKeys[SINGULAR_KEY_NAME] ??= e.SUPABASE_SECRET_KEY;
  if (e.SUPABASE_SERVICE_ROLE_KEY) secretKeys[LEGACY_KEY_NAME] ??= e.SUPABASE_SERVICE_ROLE_KEY;
  const own = secretKeys.default ?? Object.values(secretKeys)[0];
  if (!own) {
    throw new ConfigError(
      "Cannot start as the configuration is incomplete: missing SUPABASE_SECRET_KEYS (or SUPABASE_SECRET_KEY, or the legacy SUPABASE_SERVICE_ROLE_KEY)",
      ["SUPABASE_SECRET_KEYS"],
    );
  }
  const publishable = e.SUPABASE_PUBLISHABLE_KEYS ?? {};
  if (e.ALERT_EMAIL_TO && !e.EMAIL_API_URL) {
    throw new ConfigError("Cannot start as ALERT_EMAIL_TO is set without EMAIL_API_URL", ["EMAIL_API_URL"]);
  }
  if (e.APP_WEBHOOK_URLS?.length && !e.APP_WEBHOOK_SECRET) {
    throw new ConfigError("Cannot start as APP_WEBHOOK_URLS is set without APP_WEBHOOK_SECRET", [
      "APP_WEBHOOK_SECRET",
    ]);
  }
  return {
    dbUrl: e.SUPABASE_DB_URL,
    secretKeys,
    secretKey: own,
    supabaseUrl: e.SUPABASE_URL === undefined ? undefined : normalizeBaseUrl(e.SUPABASE_URL),
    publishableKey: publishable.default ?? Object.values(publishable)[0] ?? e.SUPABASE_PUBLISHABLE_KEY,
    evolution: {
      url: normalizeBaseUrl(e.EVOLUTION_API_URL),
      apiKey: e.EVOLUTION_API_KEY,
      timeoutMs: e.EVOLUTION_TIMEOUT_MS,
    },
    webhookBaseUrl: normalizeBaseUrl(e.WEBHOOK_BASE_URL),
    webhookSecret: e.WEBHOOK_SECRET,
    instancePrefix: e.INSTANCE_PREFIX,
    logRetentionDays: e.LOG_RETENTION_DAYS,
    slackWebhookUrl: e.SLACK_WEBHOOK_URL,
    email: e.ALERT_EMAIL_TO && e.EMAIL_API_URL
      ? {
        to: e.ALERT_EMAIL_TO,
        from: e.ALERT_EMAIL_FROM ?? "alerts@localhost",
        apiUrl: e.EMAIL_API_URL,
        apiKey: e.EMAIL_API_KEY,
      }
      : undefined,
    statusPageToken: e.STATUS_PAGE_TOKEN,
    metricsToken: e.METRICS_TOKEN,
    alertLog: e.ALERT_LOG !== "false" && e.ALERT_LOG !== "0",
    appWebhooks: e.APP_WEBHOOK_URLS?.length && e.APP_WEBHOOK_SECRET
      ? { urls: e.APP_WEBHOOK_URLS, secret: e.APP_WEBHOOK_SECRET }
      : undefined,
  };
}
