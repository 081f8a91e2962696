/**
 * @module
 * The notification channels: a Slack incoming webhook (Block Kit message), an HTTP email API (POST JSON
 * `{from, to, subject, text}` with a Bearer key; Edge Functions cannot reach SMTP ports) and the log. Each is
 * enabled by configuration; a failed delivery throws a {@link DeliveryError} that says whether a retry can help.
 * Every channel has a timeout (`timeoutMs`), so one delivery has a known worst duration ({@link deliveryBoundMs}):
 * the outbox sizes a row's lease from it.
 *
 * What a notification carries comes partly from outside: a tenant's slug (`tenants.slug` predates the bundle and may
 * hold anything), an Evolution error message, a report's rows. So every text a channel sends is escaped
 * ({@link escapeText}): Slack's control characters `&`, `<`, `>` become the entities Slack decodes for display, and
 * a `<!channel>`, `<!here>`, `<!everyone>`, `<@U…>`, `<#C…>` or `<https://…|link>` in a slug or an error is shown,
 * never acted on (it would page a whole channel). Slack's mrkdwn text objects are also `verbatim`, so a bare
 * `@here` or channel name in them is not turned into a mention or a link either. Email text is escaped the same way,
 * so a mail rendered as HTML, or forwarded into Slack, cannot inject markup or a mention. Our own formatting
 * (`*bold*` field names, line breaks, the severity icon) is not made of those characters and survives.
 *
 * The application webhook channel (issue 19): every alert notification (firing, reminder, resolved), every job result and
 * every other notification, POSTed as JSON to each URL of `APP_WEBHOOK_URLS` and signed per the Standard Webhooks
 * specification with the `standardwebhooks` library (`webhook-id`, `webhook-timestamp`, `webhook-signature`: `v1,`
 * HMAC-SHA256 of `id.timestamp.body` under the `whsec_…` secret of `APP_WEBHOOK_SECRET`).
 *
 * Each endpoint is a channel of its own in the outbox (`webhook:<8 hex digits, a hash of the URL>`), so each has
 * its own rows, retries, backoff and claims: an endpoint that is down delays only itself, and never makes another
 * one receive a delivery twice. The `webhook-id` is the outbox row's dedupe key (`alert:42:firing`, `job:<run id>`,
 * `message:…`): the same for every attempt of the same event, after a crash too, so the receiver dedupes on it.
 * The body is built from the stored row alone (its payload and its `created_at`), so every attempt sends the same
 * bytes; only `webhook-timestamp` (the attempt's time, as the specification asks) and the signature change.
 */
import pRetry from "p-retry";
import { Webhook } from "standardwebhooks";
import type { Config } from "../config.ts";

/** A message to the operators. `dedupeKey`: the same key is delivered at most once per channel. */
export interface Notification {
  severity: "info" | "warning" | "critical";
  title: string;
  text: string;
  fields?: Record<string, string | number>;
  dedupeKey?: string;
}

/** Names of the channels, as stored in `maintenance.notification_outbox.channel`. */
export type ChannelName = "slack" | "email" | "log" | `webhook:${string}`;

/**
 * A channel: delivers one notification or throws a {@link DeliveryError}. `timeoutMs`: the longest one `deliver()`
 * takes, answered or not (the HTTP channels abort their request then); {@link DEFAULT_TIMEOUT_MS} when absent.
 */
export interface Channel {
  name: ChannelName;
  timeoutMs?: number;
  deliver(message: Notification): Promise<void>;
  /**
   * Delivers one outbox row as it is stored (its dedupe key, kind, time and payload), for a channel that needs more
   * than the {@link Notification} (the application webhook); the outbox calls it instead of `deliver` when present.
   */
  deliverEvent?(event: OutboxEvent): Promise<void>;
}

/** Options of the HTTP channels. */
export interface HttpChannelOptions {
  /** Abort a request that has not been answered (body included) after this long; default 10 s. */
  timeoutMs?: number;
}

/** A delivery that did not go through. `retryable`: a later attempt may succeed (5xx, 429, network, timeout). */
export class DeliveryError extends Error {
  override name = "DeliveryError";
  readonly code: string;
  readonly retryable: boolean;
  readonly status: number | null;
  readonly retryAfterMs: number | null;
  constructor(
    message: string,
    options: {
      code: string;
      retryable: boolean;
      status?: number | null;
      retryAfterMs?: number | null;
      cause?: unknown;
    },
  ) {
    super(message, { cause: options.cause });
    this.code = options.code;
    this.retryable = options.retryable;
    this.status = options.status ?? null;
    this.retryAfterMs = options.retryAfterMs ?? null;
  }
}

const ICON: Record<Notification["severity"], string> = { critical: "🔴", warning: "🟠", info: "🟢" };
/** The timeout of a channel that states none, and of the HTTP channels by default. */
export const DEFAULT_TIMEOUT_MS = 10_000;
/** {@link deliverWithRetry}: one in-process retry, after this delay. */
const RETRIES = 1;
const RETRY_DELAY_MS = 250;

function retryAfterMs(res: Response): number | null {
  const v = res.headers.get("retry-after");
  if (!v) return null;
  const secs = Number(v);
  if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : null;
}

/** POSTs JSON; maps the answer to success or a {@link DeliveryError} (4xx permanent except 408/429). */
async function post(
  channel: ChannelName,
  url: string,
  body: unknown,
  options: { headers?: Record<string, string>; timeoutMs: number },
) {
  const timeoutMs = options.timeoutMs;
  let res: Response;
  try {
    res = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json", ...options.headers },
      body: typeof body === "string" ? body : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    const timeout = (error as Error)?.name === "TimeoutError";
    throw new DeliveryError(
      `Cannot deliver to ${channel} as ${
        timeout
          ? `it did not answer within ${timeoutMs} ms`
          : `it is unreachable: ${String((error as Error)?.message).replaceAll(url, "<url>")}`
      }`,
      { code: timeout ? "timeout" : "unreachable", retryable: true, cause: error },
    );
  }
  const text = (await res.text().catch(() => "")).slice(0, 300);
  if (res.ok) return text;
  const retryable = res.status >= 500 || res.status === 429 || res.status === 408;
  throw new DeliveryError(`Cannot deliver to ${channel} as it answered HTTP ${res.status}: ${text || res.statusText}`, {
    code: res.status === 429 ? "rate_limited" : retryable ? "server_error" : "rejected",
    retryable,
    status: res.status,
    retryAfterMs: retryAfterMs(res),
  });
}

const ENTITIES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;" };

/**
 * `text` with Slack's control characters escaped (`&` → `&amp;`, `<` → `&lt;`, `>` → `&gt;`, what Slack's formatting
 * reference asks for): no mention (`<!channel>`, `<!here>`, `<@U…>`), link or date token can come out of it, and Slack
 * shows the characters themselves. Cut to at most `max` characters without leaving half an entity.
 */
export function escapeText(text: string, max = Infinity): string {
  const escaped = text.replace(/[&<>]/g, (c) => ENTITIES[c]);
  if (escaped.length <= max) return escaped;
  return escaped.slice(0, max).replace(/&[a-z]{0,3}$/, "");
}

/** A mrkdwn text object that shows `text` as written (escaped by the caller) and parses nothing in it itself. */
function mrkdwn(text: string) {
  return { type: "mrkdwn", text, verbatim: true };
}

/**
 * The Slack Block Kit message of a notification (header, text, up to 10 fields, context), every text in it escaped
 * ({@link escapeText}).
 */
export function slackMessage(message: Notification): Record<string, unknown> {
  const fields = Object.entries(message.fields ?? {}).slice(0, 10).map(([k, v]) =>
    mrkdwn(`*${escapeText(k, 100)}*\n${escapeText(String(v), 1900)}`)
  );
  const title = `${ICON[message.severity]} ${message.title}`;
  const blocks: Record<string, unknown>[] = [
    { type: "header", text: { type: "plain_text", text: escapeText(title, 150), emoji: true } },
    { type: "section", text: mrkdwn(escapeText(message.text, 3000) || " ") },
  ];
  if (fields.length) blocks.push({ type: "section", fields });
  blocks.push({
    type: "context",
    elements: [mrkdwn(`${message.severity.toUpperCase()} · WhatsApp integration maintenance`)],
  });
  return { text: escapeText(title, 3000), blocks };
}

/** The HTTP email API's body of a notification: subject and text escaped as for Slack ({@link escapeText}). */
export function emailMessage(message: Notification): { subject: string; text: string } {
  const fields = Object.entries(message.fields ?? {}).map(([k, v]) => `${k}: ${v}`).join("\n");
  return {
    subject: escapeText(`[${message.severity.toUpperCase()}] ${message.title}`),
    text: escapeText(fields ? `${message.text}\n\n${fields}` : message.text),
  };
}

/** Slack incoming webhook: 200 `ok`; 4xx (invalid_payload, no_service, …) permanent; 429/5xx retried. */
export function slackChannel(url: string, options: HttpChannelOptions = {}): Channel {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return {
    name: "slack",
    timeoutMs,
    async deliver(message) {
      await post("slack", url, slackMessage(message), { timeoutMs });
    },
  };
}

/** Email through an HTTP email API (Resend-style): `{from, to, subject, text}` with `Authorization: Bearer`. */
export function emailChannel(email: NonNullable<Config["email"]>, options: HttpChannelOptions = {}): Channel {
  const to = email.to.split(",").map((s) => s.trim()).filter(Boolean);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  return {
    name: "email",
    timeoutMs,
    async deliver(message) {
      await post("email", email.apiUrl, {
        from: email.from,
        to: to.length === 1 ? to[0] : to,
        ...emailMessage(message),
      }, { headers: email.apiKey ? { authorization: `Bearer ${email.apiKey}` } : {}, timeoutMs });
    },
  };
}

/** The log channel: one JSON line per notification on stdout (Supabase keeps function logs). */
export function logChannel(): Channel {
  return {
    name: "log",
    timeoutMs: 1_000,
    deliver(message) {
      console.log(JSON.stringify({ level: "alert", ...message }));
      return Promise.resolve();
    },
  };
}

/** One outbox row as a channel sees it. */
export interface OutboxEvent {
  /** The row's dedupe key: stable across attempts, the `webhook-id`. */
  id: string;
  kind: "firing" | "reminder" | "resolved" | "message" | "job" | TenantNoticeKind;
  /** When the row was queued: the body's `timestamp`. */
  createdAt: Date;
  payload: Record<string, unknown>;
}

/**
 * The tenant-facing notices (`maintenance.tenant_notices`, 20261203013000): one `tenant_action_required` when a
 * tenant's number needs its owner (a QR scan or pairing code, the QR limit, a ban), one `tenant_action_done` once it
 * is paired again; the outbox kind is the body's `type`, and the payload (that tenant only) is the body's `data`.
 */
export type TenantNoticeKind = "tenant_action_required" | "tenant_action_done";

/** The body of one delivery (Standard Webhooks' recommended `{type, timestamp, data}`). */
export interface WebhookBody {
  type: "alert.firing" | "alert.reminder" | "alert.resolved" | "job.completed" | "notification" | TenantNoticeKind;
  timestamp: string;
  data: Record<string, unknown>;
}

/**
 * The outbox channel name of an endpoint: `webhook:` and a 32-bit FNV-1a hash of the URL in hex (stable while
 * the URL is; the URL itself, which may carry a token, is never stored).
 */
export function webhookChannelName(url: string): `webhook:${string}` {
  return `webhook:${fnv1a(url)}`;
}

/** The body sent for one outbox row: alert events carry the alert, job rows the run, the rest the notification. */
export function webhookBody(event: OutboxEvent): WebhookBody {
  const timestamp = event.createdAt.toISOString();
  const p = event.payload;
  if (event.kind === "job") return { type: "job.completed", timestamp, data: p };
  if (event.kind === "tenant_action_required" || event.kind === "tenant_action_done") {
    return { type: event.kind, timestamp, data: p };
  }
  if (event.kind === "message") {
    const { severity, title, text, fields } = p;
    return { type: "notification", timestamp, data: { severity, title, text, fields: fields ?? {} } };
  }
  const fields = (p.fields ?? {}) as Record<string, unknown>;
  // rows queued before 20261202008500 have no `alert` object: the same facts from the fields
  const alert = (p.alert as Record<string, unknown> | undefined) ?? {
    id: p.alertId ?? null,
    fingerprint: fields.fingerprint ?? null,
    kind: fields.alert ?? null,
    tenant: fields.tenant ? { id: null, slug: fields.tenant } : null,
    severity: fields.severity ?? null,
    summary: String(p.title ?? "").replace(/^\[[^\]]*\]\s*/, ""),
    fix: null,
  };
  return {
    type: `alert.${event.kind}`,
    timestamp,
    data: { ...alert, status: event.kind === "resolved" ? "resolved" : "firing", text: p.text ?? null },
  };
}

/** A stand-in row for a notification delivered without the outbox (the database is down). */
function directEvent(message: Notification): OutboxEvent {
  const { dedupeKey, ...payload } = message;
  return {
    id: `message:${dedupeKey ?? crypto.randomUUID()}`,
    kind: "message",
    createdAt: new Date(),
    payload: payload as Record<string, unknown>,
  };
}

/**
 * The channel of one application endpoint. A 2xx is delivered; 408, 429 and 5xx (and no answer) are retried by the
 * outbox with backoff; any other 4xx is permanent (the receiver refuses this event: a retry would be refused too),
 * as for Slack and email.
 */
export function webhookChannel(url: string, secret: string, options: HttpChannelOptions = {}): Channel {
  const signer = new Webhook(secret);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const name = webhookChannelName(url);
  // a direct send is retried in process with the same message: it keeps the id (and the body) of its first attempt
  const direct = new WeakMap<Notification, OutboxEvent>();
  const deliverEvent = async (event: OutboxEvent) => {
    const body = JSON.stringify(webhookBody(event));
    const at = new Date();
    await post(name, url, body, {
      timeoutMs,
      headers: {
        "webhook-id": event.id,
        "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
        "webhook-signature": signer.sign(event.id, at, body),
      },
    });
  };
  return {
    name,
    timeoutMs,
    deliverEvent,
    deliver(message) {
      if (!direct.has(message)) direct.set(message, directEvent(message));
      return deliverEvent(direct.get(message)!);
    },
  };
}

/** The channels of `APP_WEBHOOK_URLS` (none when it is unset), one per distinct URL. */
export function webhookChannels(appWebhooks: { urls: string[]; secret: string } | undefined): Channel[] {
  if (!appWebhooks) return [];
  return [...new Set(appWebhooks.urls)].map((url) => webhookChannel(url, appWebhooks.secret));
}

/** Whether a channel is an application endpoint (job results go to those only). */
export function isWebhookChannel(name: string): boolean {
  return name.startsWith("webhook:");
}

/** FNV-1a, 32 bits, as 8 hex digits: a stable short name, not a secret. */
function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}

/**
 * The channels the configuration enables: Slack and email when configured, the log unless `alertLog` is false, one
 * application webhook per URL of `APP_WEBHOOK_URLS`.
 */
export function channelsFor(config: Config): Channel[] {
  const channels: Channel[] = [];
  if (config.slackWebhookUrl) channels.push(slackChannel(config.slackWebhookUrl));
  if (config.email) channels.push(emailChannel(config.email));
  if (config.alertLog !== false) channels.push(logChannel());
  channels.push(...webhookChannels(config.appWebhooks));
  return channels;
}

/**
 * Delivers with a short in-process retry (p-retry: one retry after ~250 ms, only for retryable failures and a
 * Retry-After of at most 2 s); longer outages are left to the outbox's backoff across runs.
 */
export async function deliverWithRetry(channel: Channel, message: Notification | OutboxEvent): Promise<void> {
  const attempt = () =>
    "payload" in message
      ? channel.deliverEvent ? channel.deliverEvent(message) : Promise.reject(
        new TypeError(`Cannot deliver an outbox row to ${channel.name} as it takes notifications only`),
      )
      : channel.deliver(message);
  await pRetry(attempt, {
    retries: RETRIES,
    minTimeout: RETRY_DELAY_MS,
    factor: 2,
    shouldRetry: ({ error }) => error instanceof DeliveryError && error.retryable && (error.retryAfterMs ?? 0) <= 2_000,
  });
}

/**
 * The longest {@link deliverWithRetry} can take on a channel: every attempt running to the channel's timeout, plus
 * the delay before the retry. A lease on a notification must be longer than this.
 */
export function deliveryBoundMs(channel: Channel): number {
  return (RETRIES + 1) * (channel.timeoutMs ?? DEFAULT_TIMEOUT_MS) + RETRIES * RETRY_DELAY_MS;
}
