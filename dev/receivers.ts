/**
 * @module
 * Local stand-ins for the notification receivers, for tests and the dev stack: a Slack incoming webhook that
 * answers like Slack (200 `ok`; `invalid_payload` 400 without text/blocks; told to fail: 500 `rollup_error`, or 429
 * with Retry-After, or any status) and an HTTP email API (Resend-style `POST {from,to,subject,text}` with a Bearer
 * key), and an application webhook endpoint (`POST /app/<anything>`) that verifies each delivery's Standard Webhooks
 * signature with the `standardwebhooks` library's own `Webhook.verify` (401 when it fails: bad signature, tampered
 * body, timestamp outside its 5-minute tolerance) and dedupes on `webhook-id` as a receiver should (a second delivery
 * of an id is answered 200 and recorded `duplicate`). All record every request; each can be told to fail the next N
 * requests, or to answer slowly.
 *
 *   in process: const r = await startReceivers(); r.slackUrl, r.emailUrl, r.appWebhookUrl, r.control.failNext("slack", 2)
 *   standalone: RECEIVERS_PORT=8090 deno run -A dev/receivers.ts   (control: POST /_control/<method> [args])
 */

import { Webhook } from "standardwebhooks";

/** A receiver channel. */
export type ReceiverChannel = "slack" | "email" | "webhook";

/** One request a receiver got, with what it answered. */
export interface Received {
  channel: ReceiverChannel;
  at: string;
  body: Record<string, unknown>;
  headers: Record<string, string>;
  status: number;
  /** The application webhook: the body as it came (the signed bytes). */
  raw?: string;
  /** The application webhook: the id was delivered before (answered 200, not processed again). */
  duplicate?: boolean;
  /** The application webhook: why `Webhook.verify` refused it. */
  verifyError?: string;
}

/** How to fail: an HTTP status (default 500), or `reset` to drop the connection. */
export interface FailOptions {
  status?: number;
  retryAfterSeconds?: number;
}

/** Controls of the running receivers. */
export interface ReceiverControl {
  /** Fails the next `count` requests of a channel. */
  failNext(channel: ReceiverChannel, count: number, options?: FailOptions): void;
  /** Holds every request of a channel `ms` before answering it (0: at once), like a slow Slack. */
  delay(channel: ReceiverChannel, ms: number): void;
  /** Requests answered 2xx (delivered), in arrival order. */
  received(channel: ReceiverChannel): Received[];
  /** Every request, failed ones included. */
  attempts(channel: ReceiverChannel): Received[];
  /** Forget everything and stop failing. */
  reset(): void;
}

/** The running receivers. */
export interface Receivers {
  url: string;
  slackUrl: string;
  emailUrl: string;
  emailApiKey: string;
  /** The application webhook endpoint, and the `whsec_…` secret it verifies signatures with. */
  appWebhookUrl: string;
  appWebhookSecret: string;
  control: ReceiverControl;
  close(): Promise<void>;
}

const SLACK_ERRORS: Record<number, string> = {
  400: "invalid_payload",
  403: "action_prohibited",
  404: "no_service",
  410: "channel_is_archived",
  429: "rate_limited",
  500: "rollup_error",
};

/** A Standard Webhooks secret for the local receiver: `whsec_` and 32 random bytes in base64. */
export function newWebhookSecret(): string {
  return `whsec_${btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))))}`;
}

/** Starts the receivers on one port (0 = any). */
export function startReceivers(
  options: { port?: number; emailApiKey?: string; appWebhookSecret?: string } = {},
): Promise<Receivers> {
  const emailApiKey = options.emailApiKey ?? "re_test_key";
  const appWebhookSecret = options.appWebhookSecret ?? newWebhookSecret();
  const verifier = new Webhook(appWebhookSecret);
  const seen = new Set<string>();
  const log: Received[] = [];
  const failing: Record<ReceiverChannel, { count: number; options: FailOptions }> = {
    slack: { count: 0, options: {} },
    email: { count: 0, options: {} },
    webhook: { count: 0, options: {} },
  };
  const delays: Record<ReceiverChannel, number> = { slack: 0, email: 0, webhook: 0 };
  const control: ReceiverControl = {
    failNext(channel, count, opts = {}) {
      failing[channel] = { count, options: opts };
    },
    delay(channel, ms) {
      delays[channel] = Math.max(0, ms);
    },
    received: (channel) => log.filter((r) => r.channel === channel && r.status < 300),
    attempts: (channel) => log.filter((r) => r.channel === channel),
    reset() {
      log.length = 0;
      failing.slack = { count: 0, options: {} };
      failing.email = { count: 0, options: {} };
      failing.webhook = { count: 0, options: {} };
      delays.slack = 0;
      delays.email = 0;
      delays.webhook = 0;
      seen.clear();
    },
  };

  const handler = async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    if (url.pathname.startsWith("/_control/")) {
      const method = url.pathname.slice("/_control/".length);
      if (method === "received" || method === "attempts") {
        return Response.json(control[method]((url.searchParams.get("channel") ?? "slack") as ReceiverChannel));
      }
      if (method === "failNext" || method === "delay" || method === "reset") {
        const args = req.method === "POST" ? await req.json().catch(() => []) : [];
        (control[method] as (...a: unknown[]) => void)(...(Array.isArray(args) ? args : []));
        return Response.json({ ok: true });
      }
      return Response.json({ error: `unknown control method ${method}` }, { status: 404 });
    }
    const channel: ReceiverChannel | null = url.pathname.startsWith("/slack/")
      ? "slack"
      : url.pathname === "/email/send"
      ? "email"
      : url.pathname.startsWith("/app/")
      ? "webhook"
      : null;
    if (!channel || req.method !== "POST") return new Response("not found", { status: 404 });
    const raw = await req.text();
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(raw);
    } catch { /* left empty: answered as invalid below */ }
    const record = (status: number, extra: Partial<Received> = {}) =>
      log.push({
        channel,
        at: new Date().toISOString(),
        body,
        headers: Object.fromEntries(req.headers.entries()),
        status,
        ...extra,
      });
    if (delays[channel] > 0) await new Promise((r) => setTimeout(r, delays[channel]));
    const f = failing[channel];
    if (f.count > 0) {
      f.count--;
      const status = f.options.status ?? 500;
      record(status);
      const headers: Record<string, string> = {};
      if (f.options.retryAfterSeconds !== undefined) headers["retry-after"] = String(f.options.retryAfterSeconds);
      return channel !== "email"
        ? new Response(SLACK_ERRORS[status] ?? "internal_error", { status, headers })
        : Response.json({ statusCode: status, name: "internal_server_error", message: "failing on purpose" }, {
          status,
          headers,
        });
    }
    if (channel === "webhook") {
      // the library's verifier on the raw body and the three headers, as an application would run it
      try {
        verifier.verify(raw, Object.fromEntries(req.headers.entries()));
      } catch (error) {
        record(401, { raw, verifyError: (error as Error).message });
        return Response.json({ error: "invalid signature" }, { status: 401 });
      }
      const id = req.headers.get("webhook-id")!;
      const duplicate = seen.has(id);
      seen.add(id);
      record(200, duplicate ? { raw, duplicate } : { raw });
      return Response.json({ ok: true, duplicate });
    }
    if (channel === "slack") {
      if (typeof body.text !== "string" && !Array.isArray(body.blocks)) {
        record(400);
        return new Response(raw ? "invalid_payload" : "no_text", { status: 400 });
      }
      record(200);
      return new Response("ok", { status: 200, headers: { "content-type": "text/html" } });
    }
    if (req.headers.get("authorization") !== `Bearer ${emailApiKey}`) {
      record(401);
      return Response.json({ statusCode: 401, name: "missing_api_key", message: "Missing API key" }, { status: 401 });
    }
    const missing = ["from", "to", "subject", "text"].filter((k) => !body[k]);
    if (missing.length) {
      record(422);
      return Response.json({ statusCode: 422, name: "validation_error", message: `Missing ${missing.join(", ")}` }, {
        status: 422,
      });
    }
    record(200);
    return Response.json({ id: crypto.randomUUID() });
  };

  const server = Deno.serve({ hostname: "127.0.0.1", port: options.port ?? 0, onListen: () => {} }, handler);
  const port = server.addr.port;
  const url = `http://127.0.0.1:${port}`;
  return Promise.resolve({
    url,
    slackUrl: `${url}/slack/services/T0000/B0000/local`,
    emailUrl: `${url}/email/send`,
    emailApiKey,
    appWebhookUrl: `${url}/app/hooks/canais`,
    appWebhookSecret,
    control,
    close: () => server.shutdown(),
  });
}

if (import.meta.main) {
  const r = await startReceivers({ port: Number(Deno.env.get("RECEIVERS_PORT") ?? "8090") });
  console.log(JSON.stringify({
    slackUrl: r.slackUrl,
    emailUrl: r.emailUrl,
    emailApiKey: r.emailApiKey,
    appWebhookUrl: r.appWebhookUrl,
    appWebhookSecret: r.appWebhookSecret,
  }));
}
