/**
 * @module
 * The instance routes (contract §3.2–§3.8): create, fetchInstances (the stored status, 2.x; memory, 1.8),
 * connectionState (memory), connect, restart (POST; PUT on 1.8), logout and delete (the name stays taken until the
 * `remove.instance` delivery and the clean-up are over).
 */
import type { Hono } from "hono";
import { INTEGRATIONS, SETTINGS_V1 } from "./config.ts";
import { body, envelope, gone, type Handler, key, withInstance } from "./http.ts";
import { memoryState, qrObject, restartSocket, startRemoval, startSocket, terminalClose } from "./machine.ts";
import { eventsError, isHeaders } from "./routes_config.ts";
import { createdBody, itemV1, rowV2 } from "./shapes.ts";
import { type Ctx, defaultSettingsV2, type Inst, newInst, type WebhookRow, webhookRow } from "./state.ts";
import type { RouteName } from "./types.ts";
import { isHttpUrl } from "./webhooks.ts";

type Api = (route: RouteName, handler: Handler) => Handler;

const SUCCESS = (message: string) => Response.json({ status: "SUCCESS", error: false, response: { message } });
const QUIRK = () => Response.json({ error: true, message: "[object Object]" });

/** The webhook of a create body, or the 400 it earns. */
function createWebhook(
  ctx: Ctx,
  b: Record<string, unknown>,
): Omit<WebhookRow, "id" | "createdAt" | "updatedAt" | "instanceId"> | null | Response {
  const all = [...ctx.cfg.events];
  if (ctx.cfg.v1) {
    if (b.webhook === undefined) return null;
    if (!isHttpUrl(b.webhook)) return envelope(400, ['Invalid "url" property in webhook']);
    if (!Array.isArray(b.events)) return null; // v1.8: a webhook without events is silently not saved.
    const bad = eventsError(ctx, b.events, "events");
    if (bad) return bad;
    return {
      url: b.webhook,
      headers: null,
      enabled: true,
      events: b.events.length ? b.events as string[] : all,
      webhookByEvents: b.webhook_by_events === true,
      webhookBase64: b.webhook_base64 === true,
    };
  }
  if (b.webhook === undefined) return null;
  const w = (b.webhook ?? {}) as Record<string, unknown>;
  if (typeof w.url !== "string" || !w.url) return envelope(400, ['webhook requires property "url"']);
  if (!Array.isArray(w.events)) return envelope(400, ["Cannot read properties of undefined (reading 'length')"]);
  const bad = eventsError(ctx, w.events, "webhook.events");
  if (bad) return bad;
  return {
    url: w.url,
    headers: isHeaders(w.headers) ? w.headers : null,
    enabled: true,
    events: w.events.length ? w.events as string[] : all,
    webhookByEvents: w.byEvents === true,
    webhookBase64: w.base64 === true,
  };
}

function createSettings(ctx: Ctx, b: Record<string, unknown>): Record<string, unknown> {
  if (ctx.cfg.v1) {
    return Object.fromEntries(SETTINGS_V1.map((k) => [k, k === "groups_ignore" ? b[k] !== false : b[k] === true]));
  }
  const s = defaultSettingsV2();
  for (const k of Object.keys(s)) {
    if (typeof b[k] === typeof s[k]) s[k] = b[k];
  }
  return s;
}

function create(ctx: Ctx, api: Api): Handler {
  const { cfg, store } = ctx;
  return api("create", async (c) => {
    const b = await body(c);
    if (b instanceof Response) return b;
    const raw = typeof b.instanceName === "string" ? b.instanceName : undefined;
    const name = cfg.v24 ? raw?.trim() : raw;
    // Guard order: the duplicate-name check (memory or row: a delete still finishing) runs before the key check.
    if (name === undefined && store.size > 0) return envelope(403, ['This name "undefined" is already in use.']);
    if (name !== undefined && store.has(name)) return envelope(403, [`This name "${name}" is already in use.`]);
    if (key(c) !== ctx.apiKey) return envelope(401, "Unauthorized");
    if (!name) return envelope(400, ['The "instanceName" cannot be empty']);
    const integration = b.integration ?? (cfg.v1 ? "WHATSAPP-BAILEYS" : undefined);
    if (typeof integration !== "string" || !INTEGRATIONS.has(integration)) {
      return envelope(400, ["Invalid integration"]);
    }
    const token = typeof b.token === "string" && b.token ? b.token : crypto.randomUUID().toUpperCase();
    if (cfg.v1 && [...store.values()].some((i) => i.token === token)) return envelope(400, ["Token already exists"]);
    const hook = createWebhook(ctx, b);
    if (hook instanceof Response) return hook;
    const inst = newInst(name, { token, integration, number: typeof b.number === "string" ? b.number : null });
    if (hook) inst.webhook = webhookRow(inst, hook);
    const settings = createSettings(ctx, b);
    inst.settings = settings;
    if (integration !== "WHATSAPP-BAILEYS") {
      inst.state = "open";
      inst.dbStatus = "open";
    }
    store.set(name, inst);
    void ctx.emit(inst, "instance.create", { instanceName: name, instanceId: inst.id });
    const qr = b.qrcode === true && integration === "WHATSAPP-BAILEYS";
    if (qr) {
      inst.pairingNumber = inst.number;
      startSocket(ctx, inst, true);
      await ctx.clock.sleep(cfg.createQrWaitMs, gone(c));
    }
    const out: Record<string, unknown> = createdBody(ctx, inst, settings);
    if (b.qrcode === true) out.qrcode = qrObject(inst);
    return Response.json(out, { status: 201 });
  });
}

const notFoundV1 = (what: string) =>
  Response.json({ error: true, message: [`Instance "${what}" not found`] }, { status: 500 });

type Query = { name?: string; id?: string; number?: string };
/** A listing to answer (after the time its rows cost), or an error to answer at once. */
type Listing = { body: unknown; rows: number } | Response;

/** 1.8: the memory state; a single object for `?instanceName=`; every error in the handler is a bare 500. */
function fetchV1(ctx: Ctx, k: string, q: Query): Listing {
  const all = [...ctx.store.values()];
  const mem = all.filter((i) => i.inMemory);
  if (k !== ctx.apiKey) {
    const owner = all.find((i) => i.token === k);
    if (!owner) return envelope(401, "Unauthorized");
    return owner.inMemory ? { body: [itemV1(owner)], rows: 1 } : notFoundV1(owner.name);
  }
  if (q.name !== undefined) {
    const one = mem.find((i) => i.name === q.name);
    return one ? { body: itemV1(one), rows: 1 } : notFoundV1(q.name);
  }
  if (q.id !== undefined || q.number !== undefined) {
    const one = mem.find((i) => (q.id !== undefined ? i.id === q.id : i.number === q.number));
    return one ? { body: [itemV1(one)], rows: 1 } : notFoundV1(String(q.id ?? q.number));
  }
  return { body: mem.map(itemV1), rows: mem.length };
}

/** 2.x: the rows (a delete's row included until it is cleaned); a filter names instances that must be in memory. */
function fetchV2(ctx: Ctx, k: string, q: Query): Listing {
  const rows = [...ctx.store.values()].filter((i) => i.hasRow);
  let list: Inst[];
  if (k !== ctx.apiKey) {
    list = rows.filter((i) =>
      i.token === k && (q.name === undefined || i.name === q.name) && (q.id === undefined || i.id === q.id)
    );
    if (list.length === 0) return envelope(401, "Unauthorized");
  } else if (q.id !== undefined || q.number !== undefined) {
    const row = rows.find((i) => (q.id !== undefined ? i.id === q.id : i.number === q.number));
    if (!row) return envelope(404, [`Instance "${q.id ?? q.number}" not found`]);
    list = [row];
  } else if (q.name !== undefined) {
    if (!ctx.store.get(q.name)?.inMemory) return envelope(404, [`Instance "${q.name}" not found`]);
    list = rows.filter((i) => i.name === q.name);
  } else list = rows;
  const missing = list.filter((i) => !i.inMemory).map((i) => i.name);
  if (missing.length && list !== rows) {
    return envelope(404, [`Instance${missing.length > 1 ? "s" : ""} "${missing.join(", ")}" not found`]);
  }
  return { body: list.map(rowV2), rows: list.length };
}

function fetchInstances(ctx: Ctx, api: Api): Handler {
  return api("fetchInstances", async (c) => {
    const q = { name: c.req.query("instanceName"), id: c.req.query("instanceId"), number: c.req.query("number") };
    const k = key(c);
    const listing = ctx.cfg.v1 ? fetchV1(ctx, k, q) : fetchV2(ctx, k, q);
    if (listing instanceof Response) return listing;
    // One query with every relation and a `_count` per row: the time grows with the rows returned.
    await ctx.clock.sleep(ctx.cfg.listBaseMs + ctx.cfg.listPerRowMs * listing.rows, gone(c));
    return Response.json(listing.body);
  });
}

export function instanceRoutes(app: Hono, ctx: Ctx, api: Api): void {
  const { cfg, clock } = ctx;
  app.post("/instance/create", create(ctx, api));
  app.get("/instance/fetchInstances", fetchInstances(ctx, api));

  app.get(
    "/instance/connectionState/:instance",
    api(
      "connectionState",
      withInstance(ctx, (_c, inst) => {
        // Memory only: no `state` key once the memory object is gone; `open` on a dead socket.
        return Response.json({ instance: { instanceName: inst.name, state: memoryState(inst) } });
      }),
    ),
  );

  app.get(
    "/instance/connect/:instance",
    api(
      "connect",
      withInstance(ctx, async (c, inst) => {
        if (!inst.inMemory) return cfg.v1 ? new Response(null, { status: 200 }) : QUIRK();
        if (inst.state === "open") return Response.json({ instance: { instanceName: inst.name, state: "open" } });
        // connecting: the current QR object as it is (a `number` now is not applied: no new socket is started)
        if (inst.state === "connecting") return Response.json(qrObject(inst));
        // close: `connectToWhatsapp(number)`: the new socket's QR events also carry a pairing code for the number
        inst.pairingNumber = c.req.query("number") || null;
        startSocket(ctx, inst, true);
        await clock.sleep(cfg.connectWaitMs, gone(c));
        return Response.json(qrObject(inst));
      }),
    ),
  );

  const restart = api(
    "restart",
    withInstance(ctx, async (c, inst) => {
      if (cfg.v1) {
        if (inst.inMemory && inst.state === "open") {
          restartSocket(ctx, inst);
          await clock.sleep(cfg.restartWaitMs, gone(c));
        }
        return Response.json({ instance: { instanceName: inst.name, state: memoryState(inst) } });
      }
      if (!inst.inMemory || inst.state === "close") return QUIRK();
      // Answered before the new socket is up; the close it causes is transient (connecting, then open or QRs).
      const answer = inst.state === "open" ? { instance: { instanceName: inst.name, state: "open" } } : qrObject(inst);
      restartSocket(ctx, inst);
      return Response.json(answer);
    }),
  );
  if (cfg.v1) app.put("/instance/restart/:instance", restart);
  else app.post("/instance/restart/:instance", restart);

  app.delete(
    "/instance/logout/:instance",
    api(
      "logout",
      withInstance(ctx, (_c, inst) => {
        if (!inst.inMemory) return SUCCESS("Instance logged out");
        if (inst.state === "close") {
          if (cfg.v24) return SUCCESS("Instance was already disconnected");
          return envelope(400, [`The "${inst.name}" instance is not connected`]);
        }
        if (inst.dead) {
          // 1.8 does not await the Baileys logout: SUCCESS, and nothing happens. 2.x awaits it, and it throws.
          if (cfg.v1) return SUCCESS("Instance logged out");
          return envelope(500, ["Error: Connection Closed"]);
        }
        terminalClose(ctx, inst, 401, true);
        return SUCCESS("Instance logged out");
      }),
    ),
  );

  app.delete(
    "/instance/delete/:instance",
    api(
      "delete",
      withInstance(ctx, (_c, inst) => {
        if (!inst.inMemory) return SUCCESS("Instance deleted");
        if (inst.state !== "close") {
          // 2.3.7 awaits the logout, whose exception object becomes the message; 2.4.0 and 1.8 go on.
          if (inst.dead && cfg.version === "2.3.7") return envelope(400, ["[object Object]"]);
          if (!inst.dead) terminalClose(ctx, inst, 401, true);
        }
        startRemoval(ctx, inst);
        return SUCCESS("Instance deleted");
      }),
    ),
  );
}
