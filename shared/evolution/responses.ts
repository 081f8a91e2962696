/**
 * @module
 * Evolution's response bodies, v2.3 and v1.8 alike: one zod schema per answer, and the normalisers that turn each
 * into the client's types (`types.ts`). v1.8 lists `{instance:{…}}` items (one object when filtered by name) where
 * v2 lists DB rows; v1.8 webhooks are flat snake_case objects without headers.
 */
import { z } from "zod";
import type { ConnectionState, InstanceSummary, QrCode, WebhookConfig } from "./types.ts";

const nstr = z.string().nullish();
const nnum = z.number().nullish();

export const ServerInfoBody = z.object({ version: z.string(), message: z.string().default(""), clientName: nstr });

export const InstanceRowV2 = z.object({
  name: z.string(),
  id: nstr,
  connectionStatus: nstr,
  ownerJid: nstr,
  profileName: nstr,
  integration: nstr,
  disconnectionReasonCode: nnum,
  disconnectionAt: nstr,
});
export const InstanceItemV1 = z.object({
  instance: z.object({
    instanceName: z.string(),
    instanceId: nstr,
    status: nstr,
    owner: nstr,
    profileName: nstr,
    integration: z.union([z.string(), z.object({ integration: nstr })]).nullish(),
  }),
});
/** One row of a listing: a 2.x DB row or a v1.8 `{instance:{…}}` item. */
export const FetchInstancesItem = z.union([InstanceRowV2, InstanceItemV1]);
export const FetchInstancesBody = z.union([z.array(FetchInstancesItem), InstanceItemV1]);

export const StateBody = z.object({ instance: z.object({ instanceName: z.string(), state: nstr, status: nstr }) });

export const QrBody = z.object({ pairingCode: nstr, code: nstr, base64: nstr, count: z.number().int().default(0) });

export const ErrorQuirk = z.object({ error: z.literal(true), message: z.unknown().optional() });

export const CreateBody = z.object({
  instance: z.object({ instanceName: z.string(), instanceId: nstr, status: nstr }),
  qrcode: z.object({ pairingCode: nstr, code: nstr, base64: nstr, count: z.number().int().optional() }).nullish(),
});

export const SuccessBody = z.object({ status: z.unknown().optional(), error: z.boolean().optional() }).nullish();

const Headers = z.record(z.string(), z.unknown()).nullish();
export const WebhookRowV2 = z.object({
  url: nstr,
  enabled: z.boolean().nullish(),
  events: z.array(z.string()).nullish(),
  webhookByEvents: z.boolean().nullish(),
  webhookBase64: z.boolean().nullish(),
  headers: Headers,
});
export const WebhookFlatV1 = z.object({
  url: nstr,
  enabled: z.boolean().nullish(),
  events: z.array(z.string()).nullish(),
  webhook_by_events: z.boolean().nullish(),
  webhook_base64: z.boolean().nullish(),
});
export const SetWebhookV1 = z.object({ webhook: z.object({ webhook: WebhookFlatV1 }) });

export function state(value: string | null | undefined): ConnectionState {
  if (value === "open" || value === "connecting" || value === "close") return value;
  if (value === "created" || value === "closed") return "close";
  return "unknown";
}

export function qr(body: z.infer<typeof QrBody>): QrCode {
  return {
    pairingCode: body.pairingCode ?? null,
    code: body.code ?? null,
    base64: body.base64 ?? null,
    count: body.count ?? 0,
  };
}

function headersOf(h: z.infer<typeof Headers>): Record<string, string> | null {
  if (!h) return null;
  return Object.fromEntries(Object.entries(h).map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)]));
}

export function webhookV2(row: z.infer<typeof WebhookRowV2>): WebhookConfig {
  return {
    enabled: row.enabled ?? false,
    url: row.url ?? null,
    events: row.events ?? [],
    byEvents: row.webhookByEvents ?? false,
    base64: row.webhookBase64 ?? false,
    headers: headersOf(row.headers),
  };
}

export function webhookV1(row: z.infer<typeof WebhookFlatV1>): WebhookConfig {
  return {
    enabled: row.enabled ?? false,
    url: row.url ?? null,
    events: row.events ?? [],
    byEvents: row.webhook_by_events ?? false,
    base64: row.webhook_base64 ?? false,
    headers: null,
  };
}

export function summaryV2(row: z.infer<typeof InstanceRowV2>): InstanceSummary {
  return {
    name: row.name,
    id: row.id ?? null,
    state: state(row.connectionStatus),
    ownerJid: row.ownerJid ?? null,
    profileName: row.profileName ?? null,
    integration: row.integration ?? null,
    disconnectionReasonCode: row.disconnectionReasonCode ?? null,
    disconnectionAt: row.disconnectionAt ?? null,
  };
}

export function summaryV1(item: z.infer<typeof InstanceItemV1>): InstanceSummary {
  const i = item.instance;
  return {
    name: i.instanceName,
    id: i.instanceId ?? null,
    state: state(i.status),
    ownerJid: i.owner ?? null,
    profileName: i.profileName ?? null,
    integration: typeof i.integration === "string" ? i.integration : i.integration?.integration ?? null,
    disconnectionReasonCode: null,
    disconnectionAt: null,
  };
}

/** Messages of an Evolution error body: `response.message` as a string (401) or an array (others), else `message`. */
export function messagesOf(body: unknown, text: string): string[] {
  const asText = (m: unknown) => (typeof m === "string" ? m : JSON.stringify(m));
  const b = body as { response?: { message?: unknown }; message?: unknown } | null | undefined;
  const m = b && typeof b === "object" ? (b.response?.message ?? b.message) : undefined;
  if (Array.isArray(m)) return m.map(asText);
  if (m !== undefined && m !== null) return [asText(m)];
  if (body === undefined && text.trim() !== "") return [text.trim().slice(0, 300)];
  return [];
}
