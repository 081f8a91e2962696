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
 * - Responses are zod-checked and normalised into `types.ts`: v2.3 and v1.8 shapes alike. The server's major
 *   version is learnt once and cached: from `GET /` when something called it, else from how the server answers a
 *   listing of a name that does not exist (v1.8: 500 `{error:true}`, 2.x: 404), never by waiting on `GET /` before
 *   a write (on 2.3.x `GET /` fetches WhatsApp Web's version from outside on every call and can hang). v1.8:
 *   restart is PUT, create/webhook bodies are flat snake_case, and its event list lacks the 2.x lifecycle names.
 * - `GET /` has its own short timeout (at most 3 s): a slow `GET /` says nothing about the instances.
 * - A dead WhatsApp socket ("Connection Closed"; a delete whose logout failed) is `socket_closed`, 2.4's licence
 *   gate `license_required`, v1.8's 500 for a missing instance `not_found` (see `classifyAnswer`).
 * - Every call is logged to `public.api_logs` (`service='whatsapp'`, `event` = operation) through a buffer written
 *   in batches (one multi-row insert), so logging never slows nor fails the caller. `flushLogs()` writes it now.
 * - The API key is sent in the `apikey` header only: never logged, never in an error message.
 */
import pRetry from "p-retry";
import { z } from "zod";
import { type Config, normalizeBaseUrl } from "../config.ts";
import type { Sql } from "../db.ts";
import { type LogOptions, LogSink } from "./log_sink.ts";
import {
  CreateBody,
  ErrorQuirk,
  FetchInstancesBody,
  FetchInstancesItem,
  messagesOf,
  qr,
  QrBody,
  ServerInfoBody,
  SetWebhookV1,
  state,
  StateBody,
  SuccessBody,
  summaryV1,
  summaryV2,
  WebhookFlatV1,
  WebhookRowV2,
  webhookV1,
  webhookV2,
} from "./responses.ts";
import { errorMessage } from "../errors.ts";
import { JsonStreamError, readJsonArray } from "./json_stream.ts";
import {
  instanceName,
  parseSlug,
  slugFromInstance,
  WEBHOOK_TOKEN_HEADER,
  WEBHOOK_TOKEN_PARAM,
  webhookToken,
  webhookUrl,
} from "../naming.ts";
import { classifyAnswer, EvolutionError } from "./errors.ts";
import { lifecycleEvents } from "./events.ts";
import type {
  ApiMajor,
  ConnectionState,
  ConnectResult,
  CreatedInstance,
  EvolutionOperation,
  InstanceListing,
  InstanceSummary,
  ServerInfo,
  SocketLiveness,
  WebhookConfig,
} from "./types.ts";

export type * from "./types.ts";
export { EvolutionError } from "./errors.ts";
export type { LogOptions } from "./log_sink.ts";

/** Retry policy of idempotent reads (p-retry options, in milliseconds). */
export interface RetryOptions {
  /** Retries after the first attempt (default 2). */
  retries?: number;
  /** First backoff delay (default 250 ms); doubles each retry, randomised ×1–2 (jitter). */
  minDelayMs?: number;
  /** Longest backoff delay (default 2,000 ms). */
  maxDelayMs?: number;
}

/** Options of {@link EvolutionClient}. `sql`: where `api_logs` rows go (none: calls are not logged). */
export interface EvolutionClientOptions {
  sql?: Sql;
  retry?: RetryOptions;
  logs?: LogOptions;
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
  probe_socket: "probe the WhatsApp socket of instance",
};

/** The longest `GET /` may take (it may fetch WhatsApp Web's version from outside before answering). */
const INFO_TIMEOUT_MS = 3000;

/** A name no instance has: listing it tells the server's major version apart by how it says "not found". */
const VERSION_PROBE_NAME = "canais-version-probe-0";

function what(op: EvolutionOperation, instance: string | null): string {
  return instance ? `${OPERATION_WORDS[op]} '${instance}'` : OPERATION_WORDS[op];
}

type ApiVersion = ApiMajor;

interface RequestSpec<T> {
  op: EvolutionOperation;
  instance?: string | null;
  slug?: string | null;
  /** GETs without side effects: retried on network errors and 5xx. */
  idempotent?: boolean;
  /** Read the server version first (cached) and build the request from it. */
  build: (version: ApiVersion) => { method: string; path: string; body?: unknown };
  needsVersion?: boolean;
  /** This call's own timeout (default: the client's). */
  timeoutMs?: number;
  /**
   * A `not_found` is the answer the caller is after (a name confirmed free, a deleted instance confirmed gone): it is
   * still thrown, but logged as a successful call, so it does not count as a failure of Evolution.
   */
  absentOk?: boolean;
  parse: (body: unknown, version: ApiVersion) => T;
  /**
   * Reads a 2xx body incrementally instead of `parse` (a listing of every instance: see `listInstances`). Errors of
   * the body's contents are `bad_response`, a timeout or a broken connection while reading are `timeout` /
   * `unreachable`.
   */
  stream?: (body: ReadableStream<Uint8Array>, version: ApiVersion) => Promise<T>;
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

  /**
   * Another client for another server (e.g. the target of a migration), writing to the same log buffer; it learns
   * that server's version on its own.
   */
  withCredentials(url: string, apiKey: string): EvolutionClient {
    const other = new EvolutionClient(this.#config, { [SHARED]: this.#shared } as EvolutionClientOptions);
    other.#url = normalizeBaseUrl(url);
    other.#apiKey = apiKey;
    return other;
  }

  /** The server's major version if this client has learnt it ("1" = 1.8.x, "2" = 2.x), else null. */
  async knownMajor(): Promise<ApiMajor | null> {
    return this.#version ? await this.#version.catch(() => null) : null;
  }

  /** Writes the buffered `api_logs` rows now (the job runner calls it at the end of each run). Never throws. */
  flushLogs(): Promise<void> {
    return this.#shared.sink.flush();
  }

  /** `GET /` (its own short timeout): server info; also refreshes the cached server version. */
  async serverInfo(): Promise<ServerInfo> {
    const info = await this.#call({
      op: "server_info",
      idempotent: true,
      timeoutMs: Math.min(this.#shared.timeoutMs, INFO_TIMEOUT_MS),
      build: () => ({ method: "GET", path: "/" }),
      parse: (body) => {
        const b = ServerInfoBody.parse(body);
        return { version: b.version, message: b.message, clientName: b.clientName ?? null };
      },
    });
    this.#version = Promise.resolve(info.version.startsWith("1.") ? "1" : "2");
    return info;
  }

  /**
   * `GET /instance/fetchInstances`: every instance in ONE call (or the one named). `absentOk`: the caller wants the
   * name to be free, so a `not_found` (still thrown) is logged as a successful call.
   */
  fetchInstances(options: { instanceName?: string; absentOk?: boolean } = {}): Promise<InstanceSummary[]> {
    const name = options.instanceName;
    return this.#call({
      op: "fetch_instances",
      instance: name ?? null,
      idempotent: true,
      absentOk: options.absentOk,
      build: () => ({
        method: "GET",
        path: `/instance/fetchInstances${name ? `?instanceName=${encodeURIComponent(name)}` : ""}`,
      }),
      parse: (body) => {
        const b = FetchInstancesBody.parse(body);
        const items = Array.isArray(b) ? b : [b];
        // a listing's rows have their version's shape: the version is learnt for free (no probe needed later)
        if (!this.#version && items.length) this.#version = Promise.resolve("instance" in items[0] ? "1" : "2");
        return items.map((i) => ("instance" in i ? summaryV1(i) : summaryV2(i)));
      },
    });
  }

  /**
   * `GET /instance/fetchInstances` (every instance, ONE call) read incrementally: each row is parsed and checked as
   * {@link fetchInstances} does (the same zod schema and normaliser) as soon as it has arrived, and only its summary
   * is kept, so a listing of tens of thousands of rows of 1–2 KB never exists whole in memory (as text or as
   * objects: see `json_stream.ts`). The answer is the same as `fetchInstances()`'s; with `keep`, only the summaries
   * of the instances it accepts (by name) are kept (every row is still read and checked), and `total` counts them all:
   * a shard of a large server keeps its own tenants' rows only.
   */
  listInstances(options: { keep?: (name: string) => boolean } = {}): Promise<InstanceListing> {
    const keep = options.keep ?? (() => true);
    let total = 0;
    const add = (out: InstanceSummary[], s: InstanceSummary) => {
      total++;
      if (keep(s.name)) out.push(s);
    };
    return this.#call({
      op: "fetch_instances",
      idempotent: true,
      build: () => ({ method: "GET", path: "/instance/fetchInstances" }),
      parse: () => {
        throw new Error("listInstances reads its body as a stream");
      },
      stream: async (body) => {
        const out: InstanceSummary[] = [];
        const read = await readJsonArray(body, (raw) => {
          const item = FetchInstancesItem.parse(raw);
          // a listing's rows have their version's shape: the version is learnt for free (no probe needed later)
          if (!this.#version && total === 0) this.#version = Promise.resolve("instance" in item ? "1" : "2");
          add(out, "instance" in item ? summaryV1(item) : summaryV2(item));
        });
        if (read.root === "value") {
          // not an array: the one v1.8 item a filtered listing answers (or something the contract does not allow)
          const b = FetchInstancesBody.parse(read.value);
          const items = Array.isArray(b) ? b : [b];
          for (const item of items) add(out, "instance" in item ? summaryV1(item) : summaryV2(item));
        }
        // not enumerable: the listing still compares equal to fetchInstances()' summaries
        return Object.defineProperty(out, "total", { value: total, enumerable: false }) as InstanceListing;
      },
    });
  }

  /**
   * `GET /instance/connectionState/{i}`: the in-memory state (`unknown` when the server does not say). `absentOk`: the
   * caller waits for the instance to be gone, so a `not_found` (still thrown) is logged as a successful call.
   */
  connectionState(instance: string, options: { absentOk?: boolean } = {}): Promise<ConnectionState> {
    return this.#call({
      op: "connection_state",
      instance,
      idempotent: true,
      absentOk: options.absentOk,
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
            events: lifecycleEvents(v),
          }
          : {
            instanceName: name,
            integration: "WHATSAPP-BAILEYS",
            qrcode: options.qrcode ?? false,
            webhook: {
              url: hook.url,
              byEvents: false,
              base64: false,
              headers: hook.headers,
              events: lifecycleEvents(v),
            },
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

  /**
   * `GET /instance/connect/{i}[?number=<digits>]`: starts the session; answers the state (open) or a QR code to scan.
   * With `number` (digits, country code first), a closed instance's QR object also carries a pairing code for that
   * number (Evolution ignores the number for an instance already `connecting`: it answers the current QR).
   */
  connect(instance: string, options: { number?: string } = {}): Promise<ConnectResult> {
    const query = options.number ? `?number=${encodeURIComponent(options.number)}` : "";
    return this.#call({
      op: "connect",
      instance,
      build: () => ({ method: "GET", path: `/instance/connect/${encodeURIComponent(instance)}${query}` }),
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
   * `POST /webhook/set/{i}`. `events` defaults to the lifecycle events of the server's version (always sent: an
   * omitted list is a server error), `enabled` to true. v1.8 takes the flat body and has no custom headers.
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
    const enabled = webhook.enabled ?? true;
    return this.#call({
      op: "set_webhook",
      instance,
      needsVersion: true,
      build: (v) => ({
        method: "POST",
        path: `/webhook/set/${encodeURIComponent(instance)}`,
        body: v === "1"
          ? {
            enabled,
            url: webhook.url,
            events: webhook.events ?? lifecycleEvents(v),
            webhook_by_events: webhook.byEvents ?? false,
            webhook_base64: false,
          }
          : {
            webhook: {
              enabled,
              url: webhook.url,
              events: webhook.events ?? lifecycleEvents(v),
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

  /**
   * The liveness probe (`POST /chat/fetchBusinessProfile/{i}`, one query over the WhatsApp socket, no side effect):
   * `live` (200), `dead` (Connection Closed), `unknown` (anything else, or a v1.8 server: the route exists there,
   * but how it answers on a dead socket is known for 2.x only; the version is learnt once, cached). Only
   * meaningful for an instance whose connectionState is `open`: reads of state cannot see a dead socket.
   */
  async probeSocket(instance: string): Promise<SocketLiveness> {
    if ((await this.#detectVersion().catch(() => "2" as const)) === "1") return "unknown";
    try {
      await this.#call({
        op: "probe_socket",
        instance,
        build: () => ({
          method: "POST",
          path: `/chat/fetchBusinessProfile/${encodeURIComponent(instance)}`,
          body: {},
        }),
        parse: () => undefined,
      });
      return "live";
    } catch (error) {
      if (error instanceof EvolutionError && error.code === "socket_closed") return "dead";
      return "unknown";
    }
  }

  /**
   * Waits until a deleted instance's name is free: Evolution answers a delete at once but keeps the name (and the
   * instance, then its row) until its `remove.instance` webhook delivery, retries included, and its cleanup are done
   * (v1.8: the cleanup only). Polls connectionState until it is 404; answers whether the name is free and how long
   * it waited (at most `timeoutMs`, default 120 s).
   */
  async waitUntilGone(
    instance: string,
    options: { timeoutMs?: number; pollMs?: number } = {},
  ): Promise<{ gone: boolean; waitedMs: number }> {
    const t0 = performance.now();
    const timeoutMs = options.timeoutMs ?? 120_000;
    let pause = options.pollMs ?? 200;
    for (;;) {
      try {
        await this.connectionState(instance, { absentOk: true });
      } catch (error) {
        if (error instanceof EvolutionError && error.code === "not_found") {
          return { gone: true, waitedMs: Math.round(performance.now() - t0) };
        }
        if (!(error instanceof EvolutionError) || !["timeout", "unreachable", "server_error"].includes(error.code)) {
          throw error;
        }
      }
      const waited = performance.now() - t0;
      if (waited >= timeoutMs) return { gone: false, waitedMs: Math.round(waited) };
      await new Promise((r) => setTimeout(r, Math.min(pause, timeoutMs - waited)));
      pause = Math.min(pause * 2, 2000);
    }
  }

  /**
   * The webhook a tenant's instance must have on this server: its URL and its token, as a header on 2.x, and in the
   * URL's query (`?token=`) on 1.8, which stores no webhook headers.
   */
  async expectedWebhook(slug: string): Promise<{ url: string; headers: Record<string, string> }> {
    const valid = parseSlug(slug);
    const url = webhookUrl(valid, this.#shared.webhookBaseUrl);
    const token = await webhookToken(valid, this.#shared.webhookSecret);
    const major = await this.#detectVersion().catch(() => "2" as const);
    return major === "1"
      ? { url: `${url}?${WEBHOOK_TOKEN_PARAM}=${token}`, headers: {} }
      : { url, headers: { [WEBHOOK_TOKEN_HEADER]: token } };
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

  /**
   * The server's major version, cached: from `GET /` when serverInfo() has run, or from the shape of a non-empty
   * listing's rows, else from a listing of a name that does not exist (v1.8 answers 500 `{error:true}`, 2.x 404; a v1.8 before 1.8.4 also answers 404 and is read as
   * 2.x until serverInfo() says otherwise).
   */
  #detectVersion(): Promise<ApiVersion> {
    if (!this.#version) {
      const p = this.#probeVersion();
      this.#version = p;
      p.catch(() => {
        if (this.#version === p) this.#version = null;
      });
    }
    return this.#version;
  }

  async #probeVersion(): Promise<ApiVersion> {
    try {
      await this.fetchInstances({ instanceName: VERSION_PROBE_NAME, absentOk: true });
      return "2";
    } catch (error) {
      if (error instanceof EvolutionError && error.code === "not_found") return error.status === 404 ? "2" : "1";
      throw error;
    }
  }

  async #call<T>(spec: RequestSpec<T>): Promise<T> {
    const started = performance.now();
    const createdAt = new Date().toISOString();
    const instance = spec.instance ?? null;
    let attempts = 0;
    let httpStatus: number | null = null;
    const log = (error: EvolutionError | null) => {
      const slug = spec.slug ?? (instance ? slugFromInstance(instance, this.#shared.prefix) : null);
      const data: Record<string, unknown> = { instance, httpStatus: httpStatus ?? error?.status ?? null, attempts };
      if (error) data.messages = error.messages.slice(0, 5);
      // the absence the caller asked about is an answer, not a failure (it would read as an error rate otherwise)
      const wanted = spec.absentOk === true && error?.code === "not_found";
      if (wanted) data.notFound = true;
      const failed = error !== null && !wanted;
      this.#shared.sink.push({
        created_at: createdAt,
        tenant_slug: slug,
        event: spec.op,
        status: failed ? "error" : "success",
        error_type: failed ? error.code : null,
        response_time: Math.round(performance.now() - started),
        data,
      });
    };
    try {
      let version: ApiVersion = "2";
      // the version is never a precondition of a write: when it cannot be learnt, the call goes out as 2.x and
      // the server's own answer says what is wrong
      if (spec.needsVersion) version = await this.#detectVersion().catch(() => "2" as const);
      const attempt = async () => {
        attempts++;
        const { status, body, stream } = await this.#request(spec, version);
        httpStatus = status;
        try {
          return stream && spec.stream ? await spec.stream(stream, version) : spec.parse(body, version);
        } catch (error) {
          if (error instanceof EvolutionError) throw error;
          const name = (error as { name?: string })?.name;
          if (stream && (name === "TimeoutError" || name === "AbortError")) {
            throw new EvolutionError(
              "timeout",
              `Cannot ${what(spec.op, instance)} as Evolution did not send its whole answer in ${
                spec.timeoutMs ?? this.#shared.timeoutMs
              } ms`,
              { operation: spec.op, instance, status, cause: error },
            );
          }
          if (stream && !(error instanceof z.ZodError) && !(error instanceof JsonStreamError)) {
            throw new EvolutionError(
              "unreachable",
              `Cannot ${what(spec.op, instance)} as the connection to Evolution at ${this.#url} broke while it ` +
                `answered: ${errorMessage(error)}`,
              { operation: spec.op, instance, status, cause: error },
            );
          }
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

  async #request<T>(
    spec: RequestSpec<T>,
    version: ApiVersion,
  ): Promise<{ status: number; body: unknown; stream?: ReadableStream<Uint8Array> }> {
    const { method, path, body } = spec.build(version);
    const op = spec.op;
    const instance = spec.instance ?? null;
    const headers: Record<string, string> = { apikey: this.#apiKey, accept: "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    let status: number;
    let text: string;
    const timeoutMs = spec.timeoutMs ?? this.#shared.timeoutMs;
    try {
      const res = await fetch(`${this.#url}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
      status = res.status;
      // a 2xx answer of a streamed call is read by its reader (the timeout still covers the whole body)
      if (spec.stream && status >= 200 && status < 300 && res.body) {
        return { status, body: undefined, stream: res.body };
      }
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
    const code = classifyAnswer(op, status, parsed, messages);
    const said = `Evolution answered ${status}${messages.length ? `: ${messages.join("; ")}` : ""}`;
    const why = code === "license_required"
      ? `this Evolution 2.4 server is not activated (503 LICENSE_REQUIRED): activate its licence (${
        String((parsed as { register_url?: unknown })?.register_url ?? "its manager")
      })`
      : code === "socket_closed"
      ? `the instance's WhatsApp socket is dead (${said}): restart the instance`
      : said;
    throw new EvolutionError(code, `Cannot ${what(op, instance)} as ${why}`, {
      operation: op,
      instance,
      status,
      messages,
    });
  }
}
