/**
 * @module
 * The `whatsapp-webhook` app: receives Evolution's webhook POSTs at
 * `…/whatsapp-webhook/api/whatsapp/webhook/<slug>[/<event-suffix>]` (the tenants' webhook URL convention, `{WEBHOOK_BASE_URL}/api/whatsapp/webhook/{slug}`, with
 * `WEBHOOK_BASE_URL` pointing at this function; the suffix is Evolution's `byEvents` mode).
 *
 * Per request, in this order: the slug is valid (400); the `x-webhook-token` header equals the tenant's token,
 * HMAC-SHA256(slug, WEBHOOK_SECRET), compared in constant time (401; an unknown slug gets the same 401, body and
 * work, so the receiver tells strangers nothing about which tenants exist); the body is JSON ≤ 1 MB with Evolution's
 * webhook envelope (400/413/415; text the database cannot store, such as NUL or a lone surrogate, is a 400 naming
 * the field); the envelope's `instance` is the tenant's own instance name, else 403 and a cross-tenant attempt on
 * record (also when the body held such text: the attempt is stored sanitised). Then ONE statement stores the
 * receipt (dedup of redeliveries), the `api_logs` row for connection/lifecycle events and the tenant's webhook
 * activity: `maintenance.record_webhook_event` for a lone event, `maintenance.record_webhook_events` for the events
 * of concurrent requests together (group commit, ./batch.ts); the answer goes out after that statement committed.
 * Tenants are looked up by one indexed query and cached for a few seconds.
 */
import type { Hono } from "hono";
import { z } from "zod";
import type { Deps } from "../deps.ts";
import { retryOnConnectionLoss } from "../db.ts";
import { createFunctionApp, describeIssues, jsonProblemError, readJsonText, timingSafeEqual } from "../http.ts";
import { ForbiddenError, UnauthorizedError, ValidationError } from "../errors.ts";
import { cleanText, inspectJson, sanitizeJson } from "../strict_json.ts";
import { instanceName, parseSlug, WEBHOOK_TOKEN_HEADER, WEBHOOK_TOKEN_PARAM, webhookToken } from "../naming.ts";
import { eventSuffix, LOGGED_EVENTS } from "../evolution/events.ts";
import { createRecorder, type RecorderOptions } from "./batch.ts";

/** Evolution's webhook envelope (docs/EVOLUTION.md), as far as the receiver needs it (other keys are allowed and ignored). */
export const WebhookEnvelope = z.object({
  event: z.string().min(1).max(100).regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, "must be an Evolution event name"),
  instance: z.string().min(1).max(200),
  data: z.unknown().optional(),
  date_time: z.string().max(64).nullish(),
  destination: z.string().max(2048).nullish(),
  sender: z.string().max(200).nullish(),
  server_url: z.string().max(2048).nullish(),
  apikey: z.string().max(512).nullish(),
});
export type WebhookEnvelope = z.infer<typeof WebhookEnvelope>;

interface TenantEntry {
  exists: boolean;
  token: string;
  instance: string;
  expires: number;
}

/** How long a tenant lookup is trusted (a deleted tenant is still accepted for at most this long). */
const TENANT_TTL_MS = 5_000;
/**
 * How long "no such tenant" is remembered (a tenant created right now is found after at most this long): as long
 * as a real one, so that a stranger probing a slug twice sees the same cached and uncached timings either way.
 */
const MISSING_TTL_MS = TENANT_TTL_MS;
const CACHE_MAX = 20_000;

/** Builds the whatsapp-webhook app. */
export function createWebhookApp(deps: Deps, options: RecorderOptions = {}): Hono {
  const { sql, config } = deps;
  const app = createFunctionApp("whatsapp-webhook");
  const recorder = createRecorder(sql, options);
  const cache = new Map<string, Promise<TenantEntry>>();

  async function load(slug: string): Promise<TenantEntry> {
    const rows = await retryOnConnectionLoss(() =>
      sql<{ slug: string }[]>`select slug from public.tenants where slug = ${slug}`
    );
    const exists = rows.length > 0;
    return {
      exists,
      // computed for an unknown slug too: the same work either way
      token: await webhookToken(slug, config.webhookSecret),
      instance: instanceName(slug, config.instancePrefix),
      expires: Date.now() + (exists ? TENANT_TTL_MS : MISSING_TTL_MS),
    };
  }

  async function tenant(slug: string): Promise<TenantEntry> {
    const hit = cache.get(slug);
    if (hit) {
      const entry = await hit.catch(() => null);
      if (entry && entry.expires > Date.now()) return entry;
      if (cache.get(slug) === hit) cache.delete(slug);
    }
    if (cache.size >= CACHE_MAX) cache.clear();
    const pending = load(slug);
    cache.set(slug, pending);
    pending.catch(() => cache.get(slug) === pending && cache.delete(slug));
    return await pending;
  }

  app.post("/api/whatsapp/webhook/:slug/:suffix?", async (c) => {
    const slug = parseSlug(c.req.param("slug"));
    const suffix = c.req.param("suffix");
    if (suffix !== undefined && !/^[a-z0-9]+(-[a-z0-9]+)*$/.test(suffix)) {
      throw new ValidationError(`Invalid 'suffix': must be an event suffix such as 'connection-update'`, {
        details: [{ field: "suffix", message: "must be an event suffix such as 'connection-update'" }],
      });
    }
    const t = await tenant(slug);
    // the header (Evolution 2.x sends the instance's custom headers) or `?token=` (1.8 stores no headers)
    const presented = c.req.header(WEBHOOK_TOKEN_HEADER) ?? c.req.query(WEBHOOK_TOKEN_PARAM) ?? "";
    const matches = presented !== "" && timingSafeEqual(presented, t.token);
    if (!matches || !t.exists) {
      throw new UnauthorizedError(
        `Missing or invalid webhook token: send the tenant's '${WEBHOOK_TOKEN_HEADER}' header (or '?${WEBHOOK_TOKEN_PARAM}=')`,
      );
    }
    const crossTenant = async (instance: string, event: string) => {
      await retryOnConnectionLoss(() =>
        sql`select maintenance.record_cross_tenant_attempt(${slug}, ${instance}, ${t.instance}, ${event})`
      );
      return new ForbiddenError(
        `Cannot accept an event for instance '${instance.slice(0, 200)}' on tenant '${slug}': ` +
          `its instance is '${t.instance}' (logged as a cross-tenant attempt)`,
      );
    };
    const text = await readJsonText(c);
    const inspected = inspectJson(text === "" ? "{}" : text);
    if (!inspected.ok) {
      // text the database cannot store: still a cross-tenant attempt on record when it names another instance
      if (inspected.problem.code !== "syntax") {
        const claimed = readClaim(text);
        if (claimed && claimed.instance !== t.instance) throw await crossTenant(claimed.instance, claimed.event);
      }
      throw jsonProblemError(inspected.problem);
    }
    const parsed = WebhookEnvelope.safeParse(inspected.value);
    if (!parsed.success) throw describeIssues(parsed.error);
    const envelope = parsed.data;
    if (suffix !== undefined && suffix !== eventSuffix(envelope.event)) {
      throw new ValidationError(
        `Invalid 'suffix': '${suffix}' does not match the event '${envelope.event}' (expected '${
          eventSuffix(envelope.event)
        }')`,
        { details: [{ field: "suffix", message: `expected '${eventSuffix(envelope.event)}'` }] },
      );
    }
    if (envelope.instance !== t.instance) throw await crossTenant(envelope.instance, envelope.event);
    const store = LOGGED_EVENTS.has(envelope.event);
    // date_time is Evolution's local wall time with a `Z`, never UTC: it only tells redeliveries apart (dedup key)
    const at = envelope.date_time ? new Date(envelope.date_time) : null;
    const eventAt = at && !Number.isNaN(at.getTime()) ? at : null;
    if (eventAt && (eventAt.getUTCFullYear() < 1 || eventAt.getUTCFullYear() > 9999)) {
      // JavaScript reads it, Postgres cannot store it: refused here, before it could fail a batch
      throw new ValidationError(`Invalid 'date_time': the year must be between 1 and 9999`, {
        details: [{ field: "date_time", message: "the year must be between 1 and 9999" }],
      });
    }
    const payload = store ? (envelope.data ?? null) : null;
    // answered once the statement holding the event has committed (group commit: shared/webhook/batch.ts)
    const isNew = await recorder.record({
      slug,
      instance: envelope.instance,
      event: envelope.event,
      at: eventAt,
      payload,
      store,
      bytes: text.length,
    });
    return c.json({ ok: true, event: envelope.event, stored: store, duplicate: !isNew });
  });
  return app;
}

/**
 * The instance and event a body claims, sanitised (NUL and lone surrogates replaced, cut to their envelope limits),
 * from text {@link inspectJson} refused but `JSON.parse` reads; null when it names no instance.
 */
function readClaim(text: string): { instance: string; event: string } | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (!value || typeof value !== "object" || Array.isArray(value)) return null;
  const { instance, event } = value as Record<string, unknown>;
  if (typeof instance !== "string" || instance === "") return null;
  const clean = sanitizeJson({ instance, event: typeof event === "string" ? event : "(none)" }, 2) as {
    instance: string;
    event: string;
  };
  return { instance: cleanText(clean.instance).slice(0, 200), event: clean.event.slice(0, 100) };
}
