/**
 * @module
 * Webhook and settings routes (contract §3.9, §3.10): `POST /webhook/set` with the version's event enum (2.x
 * nested camelCase, 1.8 flat snake_case), `GET /webhook/find`, `POST /settings/set`, `GET /settings/find`.
 */
import type { Hono } from "hono";
import { SETTINGS_V2 } from "./config.ts";
import { envelope, type Handler, noMemory, stringError, withBody, withInstance } from "./http.ts";
import { webhookV1 } from "./shapes.ts";
import { type Ctx, webhookRow } from "./state.ts";
import type { RouteName } from "./types.ts";
import { isHttpUrl } from "./webhooks.ts";

type Api = (route: RouteName, handler: Handler) => Handler;

/** The enum check of `events` against the version's list (`<path>[i] is not one of enum values: …`). */
export function eventsError(ctx: Ctx, events: unknown[], path: string): Response | null {
  const allowed = ctx.cfg.events as readonly unknown[];
  const bad = events.findIndex((e) => !allowed.includes(e));
  return bad >= 0 ? envelope(400, [`${path}[${bad}] is not one of enum values: ${ctx.cfg.events.join(",")}`]) : null;
}

export function isHeaders(h: unknown): h is Record<string, string> {
  return !!h && typeof h === "object" && !Array.isArray(h) &&
    Object.values(h as Record<string, unknown>).every((v) => typeof v === "string");
}

export function configRoutes(app: Hono, ctx: Ctx, api: Api): void {
  const { cfg } = ctx;
  app.post(
    "/webhook/set/:instance",
    api(
      "setWebhook",
      withBody(ctx, (_c, inst, b) => {
        if (!inst.inMemory) return noMemory("instanceId");
        const all = [...cfg.events];
        if (cfg.v1) {
          if (!isHttpUrl(b.url)) return envelope(400, ['Invalid "url" property']);
          const enabled = b.enabled !== false;
          if (enabled && !Array.isArray(b.events)) {
            return stringError("Cannot read properties of undefined (reading 'length')");
          }
          const events = Array.isArray(b.events) ? b.events : [];
          const bad = eventsError(ctx, events, "events");
          if (bad) return bad;
          inst.webhook = webhookRow(inst, {
            url: enabled ? b.url : "",
            enabled,
            events: !enabled ? [] : events.length ? events as string[] : all,
            webhookByEvents: b.webhook_by_events === true,
            webhookBase64: b.webhook_base64 === true,
          });
          return Response.json({ webhook: { instanceName: inst.name, webhook: { ...b } } }, { status: 201 });
        }
        if (!b.webhook || typeof b.webhook !== "object") return envelope(400, ['instance requires property "webhook"']);
        const w = b.webhook as Record<string, unknown>;
        if (typeof w.enabled !== "boolean") return envelope(400, ['webhook requires property "enabled"']);
        if (typeof w.url !== "string" || !w.url) return envelope(400, ['webhook requires property "url"']);
        if (w.events !== undefined) {
          if (!Array.isArray(w.events)) return envelope(400, ["webhook.events is not of a type(s) array"]);
          const bad = eventsError(ctx, w.events, "webhook.events");
          if (bad) return bad;
        } else if (w.enabled) {
          return stringError("Cannot read properties of undefined (reading 'length')");
        }
        const events = (w.events ?? []) as string[];
        inst.webhook = webhookRow(inst, {
          url: w.url,
          enabled: w.enabled,
          events: !w.enabled ? [] : events.length ? events : all,
          webhookByEvents: w.byEvents === true,
          webhookBase64: w.base64 === true,
          headers: isHeaders(w.headers) ? w.headers : null,
        });
        return Response.json(inst.webhook, { status: 201 });
      }),
    ),
  );

  app.get(
    "/webhook/find/:instance",
    api(
      "findWebhook",
      withInstance(ctx, (_c, inst) => {
        return Response.json(cfg.v1 ? webhookV1(inst.webhook) : inst.webhook);
      }),
    ),
  );

  app.post(
    "/settings/set/:instance",
    api(
      "setSettings",
      withBody(ctx, (_c, inst, b) => {
        for (const k of cfg.v1 ? [] : SETTINGS_V2) {
          if (typeof b[k] !== "boolean") return envelope(400, [`instance requires property "${k}"`]);
        }
        if (!inst.inMemory) return noMemory("setSettings");
        inst.settings = { ...b };
        return Response.json({ settings: { instanceName: inst.name, settings: b } }, { status: 201 });
      }),
    ),
  );

  app.get(
    "/settings/find/:instance",
    api(
      "findSettings",
      withInstance(ctx, (_c, inst) => {
        if (cfg.v1) return Response.json(inst.settings ?? { reject_call: false, msg_call: "", groups_ignore: true });
        // The service's catch turns a missing memory object (or no row) into null.
        return Response.json(inst.inMemory ? inst.settings : null);
      }),
    ),
  );
}
