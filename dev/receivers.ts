/**
 * @module
 * Local stand-ins for the notification receivers, for tests and the dev stack: a Slack incoming webhook that
 * answers like Slack (200 `ok`; `invalid_payload` 400 without text/blocks; told to fail: 500 `rollup_error`, or 429
 * with Retry-After, or any status) and an HTTP email API (Resend-style `POST {from,to,subject,text}` with a Bearer
 * key). Both record every request; either can be told to fail the next N requests, or to answer slowly.
 *
 *   in process: const r = await startReceivers(); r.slackUrl, r.emailUrl, r.control.failNext("slack", 2)
 *   standalone: RECEIVERS_PORT=8090 deno run -A dev/receivers.ts   (control: POST /_control/<method> [args])
 */

/** A receiver channel. */
export type ReceiverChannel = "slack" | "email";

/** One request a receiver got, with what it answered. */
export interface Received {
  channel: ReceiverChannel;
  at: string;
  body: Record<string, unknown>;
  headers: Record<string, string>;
  status: number;
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

/** Starts both receivers on one port (0 = any). */
export function startReceivers(
  options: { port?: number; emailApiKey?: string } = {},
): Promise<Receivers> {
  const emailApiKey = options.emailApiKey ?? "re_test_key";
  const log: Received[] = [];
  const failing: Record<ReceiverChannel, { count: number; options: FailOptions }> = {
    slack: { count: 0, options: {} },
    email: { count: 0, options: {} },
  };
  const delays: Record<ReceiverChannel, number> = { slack: 0, email: 0 };
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
      delays.slack = 0;
      delays.email = 0;
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
      : null;
    if (!channel || req.method !== "POST") return new Response("not found", { status: 404 });
    const raw = await req.text();
    let body: Record<string, unknown> = {};
    try {
      body = JSON.parse(raw);
    } catch { /* left empty: answered as invalid below */ }
    const record = (status: number) =>
      log.push({
        channel,
        at: new Date().toISOString(),
        body,
        headers: Object.fromEntries(req.headers.entries()),
        status,
      });
    if (delays[channel] > 0) await new Promise((r) => setTimeout(r, delays[channel]));
    const f = failing[channel];
    if (f.count > 0) {
      f.count--;
      const status = f.options.status ?? 500;
      record(status);
      const headers: Record<string, string> = {};
      if (f.options.retryAfterSeconds !== undefined) headers["retry-after"] = String(f.options.retryAfterSeconds);
      return channel === "slack"
        ? new Response(SLACK_ERRORS[status] ?? "internal_error", { status, headers })
        : Response.json({ statusCode: status, name: "internal_server_error", message: "failing on purpose" }, {
          status,
          headers,
        });
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
    control,
    close: () => server.shutdown(),
  });
}

if (import.meta.main) {
  const r = await startReceivers({ port: Number(Deno.env.get("RECEIVERS_PORT") ?? "8090") });
  console.log(JSON.stringify({ slackUrl: r.slackUrl, emailUrl: r.emailUrl, emailApiKey: r.emailApiKey }));
}
