/**
 * @module
 * The one Evolution API client every job and route uses (the Evolution behaviours it relies on: docs/EVOLUTION.md).
 *
 * - Every call has a timeout (`config.evolution.timeoutMs`, per attempt) and fails with an {@link EvolutionError}
 *   carrying a stable code (`unauthorized`, `not_found`, `name_in_use`, `bad_request`, `unreachable`, `timeout`,
 *   `server_error`, `bad_response`), the HTTP status and the server's messages (401 string and 4xx arrays alike).
 * - Idempotent reads (GET `/`, fetchInstances, connectionState, findWebhook) are retried with exponential backoff
 *   and jitter (p-retry) on network errors and 5xx only. Writes, `connect` (a GET that starts a socket) and
 *   timeouts are never retried: a timeout already spent the caller's budget once.
 * - Responses are zod-checked and normalised into `types.ts`: v2.3 and v1.8 shapes alike. The server version is
 *   read once from `GET /` and cached (v1.8: restart is PUT, create/webhook bodies are flat snake_case).
 * - Every call is logged to `public.api_logs` (`service='whatsapp'`, `event` = operation) through a buffer written
 *   in batches (one multi-row insert), so logging never slows nor fails the caller. `flushLogs()` writes it now.
 * - The API key is sent in the `apikey` header only: never logged, never in an error message.
 */
import pRetry from "p-retry";
import { z } from "zod";
import { type Config, normalizeBaseUrl } from "../config.ts";
import type { Sql } from "../db.ts";
import { errorMessage } from "../errors.ts";
import {
  instanceName,
  parseSlug,
  slugFromInstance,
  WEBHOOK_TOKEN_HEADER,
  webhookToken,
  webhookUrl,
} from "../naming.ts";
import { EvolutionError } from "./errors.ts";
import { LIFECYCLE_EVENTS } from "./events.ts";
import type {
  ConnectionState,
  ConnectResult,
  CreatedInstance,
  EvolutionErrorCode,
  EvolutionOperation,
  InstanceSummary,
  QrCode,
  ServerInfo,
  WebhookConfig,
} from "./types.ts";

export type * from "./types.ts";
export { EvolutionError } from "./errors.ts";

/** Retry policy of idempotent reads (p-retry options, in milliseconds). */
export interface RetryOptions {
  /** Retries after the first attempt (default 2). */
  retries?: number;
  /** First backoff delay (default 250 ms); doubles each retry, randomised ×1–2 (jitter). */
  minDelayMs?: number;
  /** Longest backoff delay (default 2,000 ms). */
  maxDelayMs?: number;
}

/** How `api_logs` rows are buffered. */
export interface LogOptions {
  /** Rows written per insert; a full batch is written at once (default 200). */
  batchSize?: number;
  /** Longest time a row waits in the buffer (default 1,000 ms). */
  intervalMs?: number;
  /** Rows kept while the database is unreachable; older ones are dropped beyond this (default 10,000). */
  maxBuffered?: number;
}

/** Options of {@link EvolutionClient}. `sql`: where `api_logs` rows go (none: calls are not logged). */
export interface EvolutionClientOptions {
  sql?: Sql;
  retry?: RetryOptions;
  logs?: LogOptions;
}

interface LogRow {
  created_at: string;
  tenant_slug: string | null;
  event: EvolutionOperation;
  status: "success" | "error";
  error_type: string | null;
  response_time: number;
  data: Record<string, unknown>;
}

/** The api_logs buffer, shared by a client and the clients made by `withCredentials`. */
class LogSink {
  #rows: LogRow[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #chain: Promise<void> = Promise.resolve();
  #dropped = 0;
  readonly #sql: Sql | undefined;
  readonly #batchSize: number;
  readonly #intervalMs: number;
  readonly #maxBuffered: number;

  constructor(sql: Sql | undefined, options: LogOptions) {
    this.#sql = sql;
    this.#batchSize = options.batchSize ?? 200;
    this.#intervalMs = options.intervalMs ?? 1000;
    this.#maxBuffered = options.maxBuffered ?? 10_000;
  }

  push(row: LogRow) {
    if (!this.#sql) return;
    this.#rows.push(row);
    if (this.#rows.length > this.#maxBuffered) {
      const extra = this.#rows.length - this.#maxBuffered;
      this.#rows.splice(0, extra);
      this.#dropped += extra;
    }
    if (this.#rows.length >= this.#batchSize) void this.flush();
    else if (this.#timer === undefined) {
      const timer = setTimeout(() => {
        this.#timer = undefined;
        void this.flush();
      }, this.#intervalMs);
      this.#timer = timer;
      Deno.unrefTimer(timer as unknown as number); // a pending flush never keeps the process (or a test) alive
    }
  }

  /** Writes everything buffered (in batches), and waits for writes already under way. Never throws. */
  flush(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const sql = this.#sql;
    if (!sql || this.#rows.length === 0) return this.#chain;
    const rows = this.#rows.splice(0);
    this.#chain = this.#chain.then(async () => {
      for (let i = 0; i < rows.length; i += this.#batchSize) {
        const batch = rows.slice(i, i + this.#batchSize);
        try {
          await sql`
            insert into public.api_logs (created_at, tenant_slug, service, event, status, error_type, response_time,
              data)
            select r.created_at, r.tenant_slug, 'whatsapp', r.event, r.status, r.error_type, r.response_time, r.data
            from jsonb_to_recordset(${sql.json(batch as never)}) as r(created_at timestamptz, tenant_slug text,
              event text, status text, error_type text, response_time integer, data jsonb)`;
        } catch (error) {
          this.#dropped += batch.length;
          console.error(JSON.stringify({
            level: "warn",
            msg: "Cannot write Evolution call logs to api_logs; rows dropped",
            rows: batch.length,
            droppedTotal: this.#dropped,
            error: errorMessage(error),
          }));
        }
      }
    });
    return this.#chain;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Response schemas (v2.3 and v1.8), each normalised into types.ts.

const nstr = z.string().nullish();
const nnum = z.number().nullish();

const ServerInfoBody = z.object({ version: z.string(), message: z.string().default(""), clientName: nstr });

const InstanceRowV2 = z.object({
  name: z.string(),
  id: nstr,
  connectionStatus: nstr,
  ownerJid: nstr,
  profileName: nstr,
  integration: nstr,
  disconnectionReasonCode: nnum,
  disconnectionAt: nstr,
});
const InstanceItemV1 = z.object({
  instance: z.object({
    instanceName: z.string(),
    instanceId: nstr,
    status: nstr,
    owner: nstr,
    profileName: nstr,
    integration: z.union([z.string(), z.object({ integration: nstr })]).nullish(),
  }),
});
const FetchInstancesBody = z.union([z.array(z.union([InstanceRowV2, InstanceItemV1])), InstanceItemV1]);

const StateBody = z.object({ instance: z.object({ instanceName: z.string(), state: nstr, status: nstr }) });

const QrBody = z.object({ pairingCode: nstr, code: nstr, base64: nstr, count: z.number().int().default(0) });

const ErrorQuirk = z.object({ error: z.literal(true), message: z.unknown().optional() });

const CreateBody = z.object({
  instance: z.object({ instanceName: z.string(), instanceId: nstr, status: nstr }),
  qrcode: z.object({ pairingCode: nstr, code: nstr, base64: nstr, count: z.number().int().optional() }).nullish(),
});

const SuccessBody = z.object({ status: z.unknown().optional(), error: z.boolean().optional() }).nullish();

const Headers = z.record(z.string(), z.unknown()).nullish();
const WebhookRowV2 = z.object({
  url: nstr,
  enabled: z.boolean().nullish(),
  events: z.array(z.string()).nullish(),
  webhookByEvents: z.boolean().nullish(),
  webhookBase64: z.boolean().nullish(),
  headers: Headers,
});
const WebhookFlatV1 = z.object({
  url: nstr,
  enabled: z.boolean().nullish(),
  events: z.array(z.string()).nullish(),
  webhook_by_events: z.boolean().nullish(),
  webhook_base64: z.boolean().nullish(),
});
const SetWebhookV1 = z.object({ webhook: z.object({ webhook: WebhookFlatV1 }) });

function state(value: string | null | undefined): ConnectionState {
  if (value === "open" || value === "connecting" || value === "close") return value;
  if (value === "created" || value === "closed") return "close";
  return "unknown";
}

function qr(body: z.infer<typeof QrBody>): QrCode {
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

function webhookV2(row: z.infer<typeof WebhookRowV2>): WebhookConfig {
  return {
    enabled: row.enabled ?? false,
    url: row.url ?? null,
    events: row.events ?? [],
    byEvents: row.webhookByEvents ?? false,
    base64: row.webhookBase64 ?? false,
    headers: headersOf(row.headers),
  };
}

function webhookV1(row: z.infer<typeof WebhookFlatV1>): WebhookConfig {
  return {
    enabled: row.enabled ?? false,
    url: row.url ?? null,
    events: row.events ?? [],
    byEvents: row.webhook_by_events ?? false,
    base64: row.webhook_base64 ?? false,
    headers: null,
  };
}

function summaryV2(row: z.infer<typeof InstanceRowV2>): InstanceSummary {
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

function summaryV1(item: z.infer<typeof InstanceItemV1>): InstanceSummary {
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
function messagesOf(body: unknown, text: string): string[] {
  const asText = (m: unknown) => (typeof m === "string" ? m : JSON.stringify(m));
  const b = body as { response?: { message?: unknown }; message?: unknown } | null | undefined;
  const m = b && typeof b === "object" ? (b.response?.message ?? b.message) : undefined;
  if (Array.isArray(m)) return m.map(asText);
  if (m !== undefined && m !== null) return [asText(m)];
  if (body === undefined && text.trim() !== "") return [text.trim().slice(0, 300)];
  return [];
}

const OPERATION_WORDS: Record<EvolutionOperation, string> = {
  server_info: "read the server info",
  fetch_instances: "list instances",
  connection_state: "read the connection state",
  create_instance: "create instance",
  connect: "connect instance",
  restart: "restart instance",
  logout: "log out instance",
  delete_instance: "delete instance",
  set_webhook: "set the webhook of instance",
  find_webhook: "read the webhook of instance",
};

function what(op: EvolutionOperation, instance: string | null): string {
  return instance ? `${OPERATION_WORDS[op]} '${instance}'` : OPERATION_WORDS[op];
}

type ApiVersion = "2" | "1";

interface RequestSpec<T> {
  op: EvolutionOperation;
  instance?: string | null;
  slug?: string | null;
  /** GETs without side effects: retried on network errors and 5xx. */
  idempotent?: boolean;
  /** Read the server version first (cached) and build the request from it. */
  build: (version: ApiVersion) => { method: string; path: string; body?: unknown };
  needsVersion?: boolean;
  parse: (body: unknown, version: ApiVersion) => T;
}

/** Option key under which `withCredentials` hands its log buffer and settings to the new client. */
const SHARED = Symbol("shared");

interface Shared {
  sink: LogSink;
  prefix: string;
  webhookBaseUrl: string;
  webhookSecret: string;
  timeoutMs: number;
  retry: Required<RetryOptions>;
}

/** One client for every call to Evolution. */
export class EvolutionClient {
  #url: string;
  #apiKey: string;
  #version: Promise<ApiVersion> | null = null;
  readonly #config: Config;
  readonly #shared: Shared;

  constructor(config: Config, options: EvolutionClientOptions = {}) {
    this.#config = config;
    this.#url = config.evolution.url;
    this.#apiKey = config.evolution.apiKey;
    this.#shared = (options as { [SHARED]?: Shared })[SHARED] ?? {
      sink: new LogSink(options.sql, options.logs ?? {}),
      prefix: config.instancePrefix,
      webhookBaseUrl: config.webhookBaseUrl,
      webhookSecret: config.webhookSecret,
      timeoutMs: config.evolution.timeoutMs,
      retry: {
        retries: options.retry?.retries ?? 2,
        minDelayMs: options.retry?.minDelayMs ?? 250,
        maxDelayMs: options.retry?.maxDelayMs ?? 2000,
      },
    };
  }

  /** The Evolution server this client talks to (no trailing slash). */
  get baseUrl(): string {
    return this.#url;
  }

  /** Points this client at another server (or key); the cached server version is forgotten. */
  setCredentials(url: string, apiKey: string): void {
    this.#url = normalizeBaseUrl(url);
    this.#apiKey = apiKey;
    this.#version = null;
  }

  /** Another client for another server (e.g. the target of a migration), writing to the same log buffer. */
  withCredentials(url: string, apiKey: string): EvolutionClient {
    const other = new EvolutionClient(this.#config, { [SHARED]: this.#shared } as EvolutionClientOptions);
    other.setCredentials(url, apiKey);
    return other;
  }

  /** Writes the buffered `api_logs` rows now (the job runner calls it at the end of each run). Never throws. */
  flushLogs(): Promise<void> {
    return this.#shared.sink.flush();
  }

  /** `GET /`: server info; also refreshes the cached server version. */
  async serverInfo(): Promise<ServerInfo> {
    const info = await this.#call({
      op: "server_info",
      idempotent: true,
      build: () => ({ method: "GET", path: "/" }),
      parse: (body) => {
        const b = ServerInfoBody.parse(body);
        return { version: b.version, message: b.message, clientName: b.clientName ?? null };
      },
    });
    this.#version = Promise.resolve(info.version.startsWith("1.") ? "1" : "2");
    return info;
  }

  /** `GET /instance/fetchInstances`: every instance in ONE call (or the one named). */
  fetchInstances(options: { instanceName?: string } = {}): Promise<InstanceSummary[]> {
    const name = options.instanceName;
    return this.#call({
      op: "fetch_instances",
      instance: name ?? null,
      idempotent: true,
      build: () => ({
        method: "GET",
        path: `/instance/fetchInstances${name ? `?instanceName=${encodeURIComponent(name)}` : ""}`,
      }),
      parse: (body) => {
        const b = FetchInstancesBody.parse(body);
        const items = Array.isArray(b) ? b : [b];
        return items.map((i) => ("instance" in i ? summaryV1(i) : summaryV2(i)));
      },
    });
  }

  /** `GET /instance/connectionState/{i}`: the in-memory state (`unknown` when the server does not say). */
  connectionState(instance: string): Promise<ConnectionState> {
    return this.#call({
      op: "connection_state",
      instance,
      idempotent: true,
      build: () => ({ method: "GET", path: `/instance/connectionState/${encodeURIComponent(instance)}` }),
      parse: (body) => {
        const b = StateBody.parse(body);
        return state(b.instance.state ?? b.instance.status);
      },
    });
  }

  /**
   * `POST /instance/create` for a tenant: name `{prefix}{slug}`, integration WHATSAPP-BAILEYS, webhook to the
   * tenant's URL with the lifecycle events (never omitted) and the tenant's token header.
   */
  async createInstance(slug: string, options: { qrcode?: boolean } = {}): Promise<CreatedInstance> {
    const valid = parseSlug(slug);
    const name = instanceName(valid, this.#shared.prefix);
    const hook = await this.expectedWebhook(valid);
    return this.#call({
      op: "create_instance",
      instance: name,
      slug: valid,
      needsVersion: true,
      build: (v) => ({
        method: "POST",
        path: "/instance/create",
        body: v === "1"
          ? {
            instanceName: name,
            integration: "WHATSAPP-BAILEYS",
            qrcode: options.qrcode ?? false,
            webhook: hook.url,
            webhook_by_events: false,
            webhook_base64: false,
            events: LIFECYCLE_EVENTS,
          }
          : {
            instanceName: name,
            integration: "WHATSAPP-BAILEYS",
            qrcode: options.qrcode ?? false,
            webhook: { url: hook.url, byEvents: false, base64: false, headers: hook.headers, events: LIFECYCLE_EVENTS },
          },
      }),
      parse: (body) => {
        const b = CreateBody.parse(body);
        return {
          name: b.instance.instanceName,
          id: b.instance.instanceId ?? null,
          state: state(b.instance.status),
          qr: b.qrcode ? qr({ ...b.qrcode, count: b.qrcode.count ?? 0 }) : null,
        };
      },
    });
  }

  /** `GET /instance/connect/{i}`: starts the session; answers the state (open) or a QR code to scan. */
  connect(instance: string): Promise<ConnectResult> {
    return this.#call({
      op: "connect",
      instance,
      build: () => ({ method: "GET", path: `/instance/connect/${encodeURIComponent(instance)}` }),
      parse: (body) => this.#connectResult("connect", instance, body),
    });
  }

  /** `POST /instance/restart/{i}` (PUT on v1.8). */
  restart(instance: string): Promise<ConnectResult> {
    return this.#call({
      op: "restart",
      instance,
      needsVersion: true,
      build: (v) => ({ method: v === "1" ? "PUT" : "POST", path: `/instance/restart/${encodeURIComponent(instance)}` }),
      parse: (body) => this.#connectResult("restart", instance, body),
    });
  }

  /** `DELETE /instance/logout/{i}` (a closed instance is a 400 `bad_request`). */
  async logout(instance: string): Promise<void> {
    await this.#call({
      op: "logout",
      instance,
      build: () => ({ method: "DELETE", path: `/instance/logout/${encodeURIComponent(instance)}` }),
      parse: (body) => this.#success("logout", instance, body),
    });
  }

  /** `DELETE /instance/delete/{i}` (Evolution logs it out first when open). */
  async deleteInstance(instance: string): Promise<void> {
    await this.#call({
      op: "delete_instance",
      instance,
      build: () => ({ method: "DELETE", path: `/instance/delete/${encodeURIComponent(instance)}` }),
      parse: (body) => this.#success("delete_instance", instance, body),
    });
  }

  /**
   * `POST /webhook/set/{i}`. `events` defaults to the lifecycle events (always sent: an omitted list is a server
   * error), `enabled` to true. v1.8 takes the flat body and has no custom headers.
   */
  setWebhook(
    instance: string,
    webhook: {
      url: string;
      events?: string[];
      enabled?: boolean;
      byEvents?: boolean;
      headers?: Record<string, string>;
    },
  ): Promise<WebhookConfig> {
    const events = webhook.events ?? LIFECYCLE_EVENTS;
    const enabled = webhook.enabled ?? true;
    return this.#call({
      op: "set_webhook",
      instance,
      needsVersion: true,
      build: (v) => ({
        method: "POST",
        path: `/webhook/set/${encodeURIComponent(instance)}`,
        body: v === "1"
          ? { enabled, url: webhook.url, events, webhook_by_events: webhook.byEvents ?? false, webhook_base64: false }
          : {
            webhook: {
              enabled,
              url: webhook.url,
              events,
              byEvents: webhook.byEvents ?? false,
              base64: false,
              ...(webhook.headers ? { headers: webhook.headers } : {}),
            },
          },
      }),
      parse: (body, v) => {
        if (v === "1" || (body && typeof body === "object" && "webhook" in body)) {
          return webhookV1(SetWebhookV1.parse(body).webhook.webhook);
        }
        return webhookV2(WebhookRowV2.parse(body));
      },
    });
  }

  /** `GET /webhook/find/{i}`: the stored webhook, or null when none was ever set. */
  findWebhook(instance: string): Promise<WebhookConfig | null> {
    return this.#call({
      op: "find_webhook",
      instance,
      idempotent: true,
      build: () => ({ method: "GET", path: `/webhook/find/${encodeURIComponent(instance)}` }),
      parse: (body) => {
        if (body === null || body === undefined) return null;
        if (body && typeof body === "object" && ("webhook_by_events" in body || !("webhookByEvents" in body))) {
          const flat = WebhookFlatV1.parse(body);
          return !flat.url && !flat.enabled ? null : webhookV1(flat);
        }
        return webhookV2(WebhookRowV2.parse(body));
      },
    });
  }

  /** The webhook a tenant's instance must have: its URL and its token header. */
  async expectedWebhook(slug: string): Promise<{ url: string; headers: Record<string, string> }> {
    const valid = parseSlug(slug);
    return {
      url: webhookUrl(valid, this.#shared.webhookBaseUrl),
      headers: { [WEBHOOK_TOKEN_HEADER]: await webhookToken(valid, this.#shared.webhookSecret) },
    };
  }

  // -------------------------------------------------------------------------------------------------------------

  #connectResult(op: EvolutionOperation, instance: string, body: unknown): ConnectResult {
    if (body === undefined) {
      throw new EvolutionError("server_error", `Cannot ${what(op, instance)} as Evolution answered 200 with no body`, {
        operation: op,
        instance,
        status: 200,
      });
    }
    const quirk = ErrorQuirk.safeParse(body);
    if (quirk.success) {
      const messages = messagesOf(body, "");
      throw new EvolutionError(
        "server_error",
        `Cannot ${what(op, instance)} as Evolution answered 200 with an error: ${messages.join("; ")}`,
        { operation: op, instance, status: 200, messages },
      );
    }
    const st = StateBody.safeParse(body);
    if (st.success) return { kind: "state", state: state(st.data.instance.state ?? st.data.instance.status) };
    return { kind: "qr", qr: qr(QrBody.parse(body)) };
  }

  #success(op: EvolutionOperation, instance: string, body: unknown): void {
    const b = SuccessBody.parse(body);
    if (b?.error === true) {
      const messages = messagesOf(body, "");
      throw new EvolutionError("server_error", `Cannot ${what(op, instance)} as Evolution answered with an error`, {
        operation: op,
        instance,
        status: 200,
        messages,
      });
    }
  }

  #detectVersion(): Promise<ApiVersion> {
    if (!this.#version) {
      const p = this.serverInfo().then((i) => (i.version.startsWith("1.") ? "1" as const : "2" as const));
      this.#version = p;
      p.catch(() => {
        if (this.#version === p) this.#version = null;
      });
    }
    return this.#version;
  }

  async #call<T>(spec: RequestSpec<T>): Promise<T> {
    const started = performance.now();
    const createdAt = new Date().toISOString();
    const instance = spec.instance ?? null;
    let attempts = 0;
    let httpStatus: number | null = null;
    const log = (error: EvolutionError | null) => {
      const slug = spec.slug ?? (instance ? slugFromInstance(instance, this.#shared.prefix) : null);
      const data: Record<string, unknown> = { instance, httpStatus, attempts };
      if (error) data.messages = error.messages.slice(0, 5);
      this.#shared.sink.push({
        created_at: createdAt,
        tenant_slug: slug,
        event: spec.op,
        status: error ? "error" : "success",
        error_type: error?.code ?? null,
        response_time: Math.round(performance.now() - started),
        data,
      });
    };
    try {
      let version: ApiVersion = "2";
      if (spec.needsVersion) {
        try {
          version = await this.#detectVersion();
        } catch (error) {
          const e = error instanceof EvolutionError ? error : null;
          throw new EvolutionError(
            e?.code ?? "unreachable",
            `Cannot ${what(spec.op, instance)} as the server version could not be read: ${errorMessage(error)}`,
            { operation: spec.op, instance, status: e?.status, messages: e?.messages, cause: error },
          );
        }
      }
      const attempt = async () => {
        attempts++;
        const { status, body } = await this.#request(spec, version);
        httpStatus = status;
        try {
          return spec.parse(body, version);
        } catch (error) {
          if (error instanceof EvolutionError) throw error;
          throw new EvolutionError(
            "bad_response",
            `Cannot ${what(spec.op, instance)} as Evolution's answer does not match the contract: ${
              error instanceof z.ZodError ? z.prettifyError(error).replace(/\n/g, " ") : errorMessage(error)
            }`,
            { operation: spec.op, instance, status, cause: error },
          );
        }
      };
      const { retries, minDelayMs, maxDelayMs } = this.#shared.retry;
      const result = spec.idempotent && retries > 0
        ? await pRetry(attempt, {
          retries,
          minTimeout: minDelayMs,
          maxTimeout: maxDelayMs,
          factor: 2,
          randomize: true,
          unref: true,
          shouldRetry: ({ error }) =>
            error instanceof EvolutionError &&
            (error.code === "unreachable" || (error.code === "server_error" && (error.status ?? 0) >= 500)),
        })
        : await attempt();
      log(null);
      return result;
    } catch (error) {
      const e = error instanceof EvolutionError ? error : new EvolutionError(
        "unreachable",
        `Cannot ${what(spec.op, instance)}: ${errorMessage(error)}`,
        { operation: spec.op, instance, cause: error },
      );
      log(e);
      throw e;
    }
  }

  async #request<T>(spec: RequestSpec<T>, version: ApiVersion): Promise<{ status: number; body: unknown }> {
    const { method, path, body } = spec.build(version);
    const op = spec.op;
    const instance = spec.instance ?? null;
    const headers: Record<string, string> = { apikey: this.#apiKey, accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    let status: number;
    let text: string;
    const timeoutMs = this.#shared.timeoutMs;
    try {
      const res = await fetch(`${this.#url}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
      status = res.status;
      text = await res.text();
    } catch (error) {
      const name = (error as { name?: string })?.name;
      if (name === "TimeoutError" || name === "AbortError") {
        throw new EvolutionError(
          "timeout",
          `Cannot ${what(op, instance)} as Evolution did not answer in ${timeoutMs} ms`,
          {
            operation: op,
            instance,
            cause: error,
          },
        );
      }
      throw new EvolutionError(
        "unreachable",
        `Cannot ${what(op, instance)} as Evolution at ${this.#url} is unreachable: ${errorMessage(error)}`,
        { operation: op, instance, cause: error },
      );
    }
    let parsed: unknown = undefined;
    let jsonError: unknown = null;
    if (text.trim() !== "") {
      try {
        parsed = JSON.parse(text);
      } catch (error) {
        jsonError = error;
      }
    }
    if (status >= 200 && status < 300) {
      if (jsonError) {
        throw new EvolutionError(
          "bad_response",
          `Cannot ${what(op, instance)} as Evolution answered ${status} with a body that is not JSON`,
          { operation: op, instance, status, messages: [text.slice(0, 300)], cause: jsonError },
        );
      }
      return { status, body: parsed };
    }
    const messages = messagesOf(parsed, text);
    const code: EvolutionErrorCode = status === 401
      ? "unauthorized"
      : status === 404
      ? "not_found"
      : status === 403 && op === "create_instance"
      ? "name_in_use"
      : status >= 500
      ? "server_error"
      : "bad_request";
    throw new EvolutionError(
      code,
      `Cannot ${what(op, instance)} as Evolution answered ${status}${
        messages.length ? `: ${messages.join("; ")}` : ""
      }`,
      { operation: op, instance, status, messages },
    );
  }
}
