/**
 * @module
 * Response bodies per version: the fetchInstances row (2.x, Prisma `Instance` + relations, 1–2 KB once connected)
 * and item (1.8), the create answers, the 1.8 webhook find, `GET /`, and 2.4.0's LICENSE_REQUIRED body.
 */
import { WA_WEB_VERSION } from "./config.ts";
import type { Ctx, Inst, WebhookRow } from "./state.ts";

/** A fetchInstances row of 2.x (contract §3.3): the stored status, never the memory state. */
export function rowV2(inst: Inst) {
  return {
    id: inst.id,
    name: inst.name,
    connectionStatus: inst.dbStatus,
    ownerJid: inst.ownerJid,
    profileName: inst.profileName,
    profilePicUrl: inst.profilePicUrl,
    integration: inst.integration,
    number: inst.number,
    businessId: null,
    token: inst.token,
    clientName: "evolution",
    disconnectionReasonCode: inst.disconnectionReasonCode,
    disconnectionObject: inst.disconnectionObject,
    disconnectionAt: inst.disconnectionAt,
    createdAt: inst.createdAt,
    updatedAt: inst.updatedAt,
    Chatwoot: null,
    Proxy: null,
    Rabbitmq: null,
    Nats: null,
    Sqs: null,
    Websocket: null,
    Setting: inst.settings
      ? {
        id: inst.settingId,
        ...inst.settings,
        createdAt: inst.createdAt,
        updatedAt: inst.updatedAt,
        instanceId: inst.id,
      }
      : null,
    _count: { ...inst.counts },
  };
}

/** A fetchInstances item of 1.8: the memory state; owner keys only when open. */
export function itemV1(inst: Inst) {
  const i: Record<string, unknown> = { instanceName: inst.name, instanceId: inst.id, status: inst.state };
  if (inst.state === "open") {
    i.owner = inst.ownerJid;
    i.profileName = inst.profileName;
    i.profilePictureUrl = inst.profilePicUrl;
    i.profileStatus = "";
  }
  return { instance: i };
}

export function webhookV1(w: WebhookRow | null) {
  return w
    ? {
      enabled: w.enabled,
      url: w.url,
      events: w.events,
      webhook_by_events: w.webhookByEvents,
      webhook_base64: w.webhookBase64,
    }
    : { enabled: false, url: "", events: [], webhook_by_events: false, webhook_base64: false };
}

/** The 201 answer of `POST /instance/create`. */
export function createdBody(ctx: Ctx, inst: Inst, settings: Record<string, unknown>) {
  const w = inst.webhook;
  if (ctx.cfg.v1) {
    return {
      instance: {
        instanceName: inst.name,
        instanceId: inst.id,
        integration: inst.integration,
        webhook_wa_business: null,
        access_token_wa_business: "",
        status: "created",
      },
      hash: { apikey: inst.token },
      webhook: {
        webhook: w?.url,
        webhook_by_events: w?.webhookByEvents ?? false,
        webhook_base64: w?.webhookBase64 ?? false,
        events: w?.events,
      },
      websocket: { enabled: false, events: [] },
      rabbitmq: { enabled: false, events: [] },
      sqs: { enabled: false, events: [] },
      typebot: { enabled: false },
      settings,
    };
  }
  return {
    instance: {
      instanceName: inst.name,
      instanceId: inst.id,
      integration: inst.integration,
      webhookWaBusiness: null,
      accessTokenWaBusiness: "",
      status: inst.state,
    },
    hash: inst.token,
    webhook: w
      ? {
        webhookUrl: w.url,
        webhookHeaders: w.headers ?? undefined,
        webhookByEvents: w.webhookByEvents,
        webhookBase64: w.webhookBase64,
      }
      : {},
    websocket: {},
    rabbitmq: {},
    nats: {},
    sqs: {},
    settings,
  };
}

/** `GET /` (contract §3.1); `waVersion` is what the outside lookup found (2.x). */
export function infoBody(ctx: Ctx, waVersion: string = WA_WEB_VERSION) {
  const base = { status: 200, message: "Welcome to the Evolution API, it is working!", version: ctx.cfg.version };
  if (ctx.cfg.v1) {
    return {
      ...base,
      swagger: `${ctx.self.url}/docs`,
      manager: `${ctx.self.url}/manager`,
      documentation: "https://doc.evolution-api.com",
    };
  }
  return {
    ...base,
    clientName: "evolution",
    manager: `${ctx.self.url}/manager`,
    documentation: "https://doc.evolution-api.com",
    whatsappWebVersion: waVersion,
  };
}

/** 2.4.0-rc before activation (`gateMiddleware`, src/licensing/runtime.ts@2.4.0-rc2): no §2 envelope. */
export function licenseRequired(ctx: Ctx): Response {
  const register = `${ctx.self.url || "http://localhost:8080"}/manager/login`;
  return Response.json({
    error: "service not activated",
    code: "LICENSE_REQUIRED",
    register_url: register,
    instance_id: ctx.serverId,
    docs_url: "https://doc.evolution-api.com",
    message: `This Evolution API instance is not activated. Register it at ${register} to activate it.`,
  }, { status: 503 });
}

/** Paths 2.4.0 serves without a licence (§0). */
export function licenseExempt(path: string): boolean {
  return [
    "/",
    "/health",
    "/server/ok",
    "/favicon.ico",
    "/license/status",
    "/license/register",
    "/license/activate",
    "/ws",
  ]
    .includes(path) || /^\/(manager|assets|store)(\/|$)/.test(path);
}
