/**
 * @module
 * The bundle's configuration, parsed once from the environment with zod. A missing required value is a start-up
 * error that names it; nothing else in the code base reads `Deno.env`.
 */
import { z } from "zod";
import { ConfigError } from "./errors.ts";

const url = z.url({ protocol: /^https?$/ });
const optionalString = z.string().trim().min(1).optional().catch(undefined);
const optionalUrl = z.preprocess((v) => (v === "" ? undefined : v), url.optional());

/** The environment variables the functions read. */
export const Env = z.object({
  SUPABASE_DB_URL: z.string().min(1),
  SUPABASE_SECRET_KEY: z.string().min(16),
  SUPABASE_URL: optionalUrl,
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
  ALERT_LOG: z.enum(["true", "false", "1", "0"]).optional(),
});
export type Env = z.infer<typeof Env>;

/** Parsed configuration, with the names the code uses. */
export interface Config {
  dbUrl: string;
  secretKey: string;
  supabaseUrl?: string;
  publishableKey?: string;
  evolution: { url: string; apiKey: string; timeoutMs: number };
  webhookBaseUrl: string;
  webhookSecret: string;
  instancePrefix: string;
  logRetentionDays: number;
  slackWebhookUrl?: string;
  email?: { to: string; from: string; apiUrl: string; apiKey?: string };
  statusPageToken?: string;
  /** Whether alerts are also written to the function log (default true; `ALERT_LOG=false` turns it off). */
  alertLog?: boolean;
}

/**
 * Parses the environment (default: `Deno.env`). Accepts `SUPABASE_SERVICE_ROLE_KEY` where `SUPABASE_SECRET_KEY`
 * is not set. Throws a {@link ConfigError} naming every missing or invalid variable.
 */
export function loadConfig(env: Record<string, string | undefined> = Deno.env.toObject()): Config {
  const raw: Record<string, string | undefined> = {
    ...env,
    SUPABASE_SECRET_KEY: env.SUPABASE_SECRET_KEY || env.SUPABASE_SERVICE_ROLE_KEY,
  };
  for (const [k, v] of Object.entries(raw)) if (v === "") delete raw[k];
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
  if (e.ALERT_EMAIL_TO && !e.EMAIL_API_URL) {
    throw new ConfigError("Cannot start as ALERT_EMAIL_TO is set without EMAIL_API_URL", ["EMAIL_API_URL"]);
  }
  return {
    dbUrl: e.SUPABASE_DB_URL,
    secretKey: e.SUPABASE_SECRET_KEY,
    supabaseUrl: e.SUPABASE_URL,
    publishableKey: e.SUPABASE_PUBLISHABLE_KEY,
    evolution: {
      url: e.EVOLUTION_API_URL.replace(/\/+$/, ""),
      apiKey: e.EVOLUTION_API_KEY,
      timeoutMs: e.EVOLUTION_TIMEOUT_MS,
    },
    webhookBaseUrl: e.WEBHOOK_BASE_URL.replace(/\/+$/, ""),
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
    alertLog: e.ALERT_LOG !== "false" && e.ALERT_LOG !== "0",
  };
}
