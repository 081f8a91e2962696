/**
 * @module
 * Contract-faithful Evolution API simulator (dev and tests only; the behaviours it follows: docs/EVOLUTION.md).
 *
 * - Auth: global key, per-instance token; guard order 404 (unknown instance) → 403 (create: name in use) → 401;
 *   the 401 body carries a string message, every other error an array, in the `{status, error, response}` envelope.
 * - The endpoints the client uses (v2.3.7 by default, or v1.8.6: flat snake_case bodies, PUT restart, v1 shapes).
 * - The instance state machine: close → connecting (QR every `qrIntervalMs`, refused after `qrLimit`) → open on a
 *   simulated scan; terminal close with `status.instance`, `logout.instance`, `connection.update{close}`.
 * - Webhooks: the envelope, event filter by config name, `byEvents` suffixes, custom headers, retries with
 *   backoff (`webhookRetryDelaysMs`), no retry on 400/401/403/404/422.
 * - A control API for tests, in process (`Simulator.control`) and over HTTP (`/_control/*`, see README).
 */
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { Buffer } from "node:buffer";
import { Hono } from "hono";
import type { Context } from "hono";
import { EVENT_CONFIG_NAMES, eventConfigName, eventSuffix } from "../../shared/evolution/events.ts";

/** The server versions the simulator can play. */
export type SimVersion = "2.3.7" | "1.8.6";
/** Memory states of an instance. */
export type SimState = "open" | "connecting" | "close";
/** Route names, as counted by `stats()` and targeted by `fault()`. */
export const ROUTE_NAMES = [
  "info",
  "create",
  "fetchInstances",
  "connectionState",
  "connect",
  "restart",
  "logout",
  "delete",
  "setWebhook",
  "findWebhook",
  "setSettings",
  "findSettings",
  "sendText",
] as const;
export type RouteName = typeof ROUTE_NAMES[number];
/** Injectable faults. */
export type FaultKind = "status500" | "status401" | "timeout" | "malformed" | "errorQuirk" | "reset";

/** Options of {@link startSimulator} / {@link createSimulator}. */
export interface SimulatorOptions {
  /** Port to listen on (0 = any free port). Default 0. */
  port?: number;
  hostname?: string;
  /** The global API key. Default: a random one. */
  apiKey?: string;
  version?: SimVersion;
  /** Delays between webhook delivery attempts (length = number of retries). Default: 5 s doubling to 300 s, 9 retries. */
  webhookRetryDelaysMs?: number[];
  /** Per-attempt timeout of a webhook delivery. Default 30,000 ms. */
  webhookTimeoutMs?: number;
  /** A new QR code every this many ms while connecting. Default 45,000 ms. */
  qrIntervalMs?: number;
  /** QR codes per attempt before `refused` (QRCODE_LIMIT). Default 30. */
  qrLimit?: number;
  /** `server_url` of webhook envelopes (SERVER_URL). Default: the simulator's own URL. */
  serverUrl?: string;
}

/** One webhook delivery attempt, as recorded by the simulator. */
export interface Delivery {
  url: string;
  event: string;
  instance: string;
  status: number | null;
  attempt: number;
}

/** An instance as the control API shows it. */
export interface SimInstanceView {
  name: string;
  state: string;
  token: string;
  webhook: {
    url: string;
    headers: Record<string, string> | null;
    events: string[];
    enabled: boolean;
    byEvents: boolean;
  } | null;
}

/** Options of `seedInstance`. */
export interface SeedOptions {
  state?: SimState;
  webhookUrl?: string;
  webhookHeaders?: Record<string, string>;
  token?: string;
}

/** The simulator's control surface (also at `POST /_control/<method>` with a JSON array of arguments). */
export interface SimulatorControl {
  reset(): void;
  seedInstance(name: string, opts?: SeedOptions): void;
  /** Many `seedInstance` calls at once: `[[name, opts?], …]`. */
  seedInstances(list: Array<[string, SeedOptions?]>): void;
  setState(name: string, state: SimState, opts?: { statusReason?: number }): void;
  scan(name: string): void;
  disconnect(name: string, statusReason?: number): void;
  setLatency(ms: number): void;
  fault(f: { route?: string; kind: FaultKind; count?: number }): void;
  clearFaults(): void;
  setDown(down: boolean): void;
  stats(): { calls: Record<string, number>; total: number };
  resetStats(): void;
  instances(): SimInstanceView[];
  deliveries(): Delivery[];
  /** Resolves when no webhook delivery (or retry) is pending. */
  drain(): Promise<void>;
}

/** A running simulator. */
export interface Simulator {
  url: string;
  apiKey: string;
  control: SimulatorControl;
  close(): Promise<void>;
}

interface WebhookRow {
  id: string;
  url: string;
  headers: Record<string, string> | null;
  enabled: boolean;
  events: string[];
  webhookByEvents: boolean;
  webhookBase64: boolean;
  createdAt: string;
  updatedAt: string;
  instanceId: string;
}

interface Inst {
  id: string;
  name: string;
  token: string;
  integration: string;
  number: string | null;
  state: SimState;
  dbStatus: SimState;
  ownerJid: string | null;
  profileName: string | null;
  profilePicUrl: string | null;
  qrCount: number;
  qrTimer: ReturnType<typeof setInterval> | undefined;
  webhook: WebhookRow | null;
  settings: Record<string, unknown> | null;
  createdAt: string;
  updatedAt: string;
  disconnectionReasonCode: number | null;
  disconnectionAt: string | null;
  disconnectionObject: string | null;
}

const REASONS: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  500: "Internal Server Error",
};
const NO_RETRY = new Set([400, 401, 403, 404, 422]);
const V1_EVENTS_MISSING = new Set(["remove.instance", "logout.instance"]);
const INTEGRATIONS = new Set(["WHATSAPP-BAILEYS", "WHATSAPP-BUSINESS", "EVOLUTION"]);
const SETTINGS_V2 = ["rejectCall", "groupsIgnore", "alwaysOnline", "readMessages", "readStatus", "syncFullHistory"];
const SETTINGS_V1 = [
  "reject_call",
  "groups_ignore",
  "always_online",
  "read_messages",
  "read_status",
  "sync_full_history",
];
const PNG =
  "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
const DEFAULT_RETRY_DELAYS = [5, 10, 20, 40, 80, 160, 300, 300, 300].map((s) => s * 1000);

function envelope(status: number, message: unknown): Response {
  return Response.json(
    { status, error: REASONS[status] ?? "Error", response: { message } },
    { status },
  );
}

/** Responses the HTTP bridge answers by destroying the socket (a connection reset, i.e. a network error). */
const RESETS = new WeakSet<Response>();

function reset(): Response {
  const r = new Response(null, { status: 502 });
  RESETS.add(r);
  return r;
}

function isHttpUrl(u: unknown): u is string {
  if (typeof u !== "string") return false;
  try {
    const p = new URL(u);
    return p.protocol === "http:" || p.protocol === "https:";
  } catch {
    return false;
  }
}

function randomDigits(n: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) => String(b % 10)).join("");
}

/** Builds the simulator's Hono app and control without listening (used by {@link startSimulator}). */
export function createSimulator(options: SimulatorOptions & { url?: string } = {}) {
  const apiKey = options.apiKey ?? `sim_${crypto.randomUUID().replace(/-/g, "")}`;
  const version: SimVersion = options.version ?? "2.3.7";
  const v1 = version.startsWith("1.");
  const retryDelays = options.webhookRetryDelaysMs ?? DEFAULT_RETRY_DELAYS;
  const jitter = options.webhookRetryDelaysMs ? 0 : 0.2;
  const webhookTimeoutMs = options.webhookTimeoutMs ?? 30_000;
  const qrIntervalMs = options.qrIntervalMs ?? 45_000;
  const qrLimit = options.qrLimit ?? 30;
  const self = { url: options.url ?? "", serverUrl: options.serverUrl };

  const instances = new Map<string, Inst>();
  let faults: Array<{ route: string; kind: FaultKind; remaining: number }> = [];
  let latencyMs = 0;
  let down = false;
  let calls: Record<string, number> = {};
  let total = 0;
  let deliveries: Delivery[] = [];
  let pending = 0;
  let drainWaiters: Array<() => void> = [];
  let lifetime = new AbortController();
  let closed = false;
  // Deno's timers are numbers; node:http's types widen them, so keep the type loose.
  type Timer = ReturnType<typeof setTimeout>;
  const timers = new Set<Timer>();

  // -- helpers ---------------------------------------------------------------------------------------------------

  const now = () => new Date().toISOString();

  function sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted || ms <= 0) return resolve();
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, ms);
      timers.add(t);
      signal.addEventListener("abort", () => {
        clearTimeout(t);
        timers.delete(t);
        resolve();
      }, { once: true });
    });
  }

  function newInst(name: string, init: Partial<Inst> = {}): Inst {
    const t = now();
    return {
      id: crypto.randomUUID(),
      name,
      token: crypto.randomUUID().toUpperCase(),
      integration: "WHATSAPP-BAILEYS",
      number: null,
      state: "close",
      dbStatus: "close",
      ownerJid: null,
      profileName: null,
      profilePicUrl: null,
      qrCount: 0,
      qrTimer: undefined,
      webhook: null,
      settings: null,
      createdAt: t,
      updatedAt: t,
      disconnectionReasonCode: null,
      disconnectionAt: null,
      disconnectionObject: null,
      ...init,
    };
  }

  function webhookRow(inst: Inst, w: Partial<WebhookRow> & { url: string }): WebhookRow {
    const t = now();
    return {
      id: inst.webhook?.id ?? crypto.randomUUID(),
      headers: null,
      enabled: true,
      events: [...EVENT_CONFIG_NAMES],
      webhookByEvents: false,
      webhookBase64: false,
      createdAt: inst.webhook?.createdAt ?? t,
      updatedAt: t,
      instanceId: inst.id,
      ...w,
    };
  }

  function qrObject(inst: Inst) {
    return inst.qrCount > 0
      ? { pairingCode: null, code: `2@sim,${inst.name},${inst.qrCount}`, base64: PNG, count: inst.qrCount }
      : { count: 0 };
  }

  function stopQr(inst: Inst) {
    if (inst.qrTimer !== undefined) {
      clearInterval(inst.qrTimer);
      timers.delete(inst.qrTimer);
      inst.qrTimer = undefined;
    }
  }

  function ownerData(inst: Inst) {
    return { wuid: inst.ownerJid, profileName: inst.profileName, profilePictureUrl: inst.profilePicUrl };
  }

  // -- webhooks --------------------------------------------------------------------------------------------------

  function emit(inst: Inst, event: string, data: unknown) {
    const hook = inst.webhook;
    if (!hook || !hook.enabled || !isHttpUrl(hook.url)) return;
    if (v1 && V1_EVENTS_MISSING.has(event)) return;
    if (!hook.events.includes(eventConfigName(event))) return;
    const body: Record<string, unknown> = {
      event,
      instance: inst.name,
      data,
      destination: hook.url,
      date_time: now(),
    };
    if (inst.ownerJid) body.sender = inst.ownerJid;
    const serverUrl = self.serverUrl ?? self.url;
    if (serverUrl) body.server_url = serverUrl;
    if (!v1) body.apikey = null;
    const url = hook.webhookByEvents ? `${hook.url}/${eventSuffix(event)}` : hook.url;
    const headers: Record<string, string> = { "content-type": "application/json", ...(v1 ? {} : hook.headers ?? {}) };
    deliver(url, headers, JSON.stringify(body), event, inst.name);
  }

  /** Per instance, the first attempt of each delivery waits for the previous one (retries do not block). */
  const chains = new Map<string, Promise<unknown>>();

  function deliver(url: string, headers: Record<string, string>, body: string, event: string, name: string) {
    pending++;
    const life = lifetime.signal;
    const attemptOnce = async (attempt: number): Promise<number | null> => {
      let status: number | null = null;
      try {
        const res = await fetch(url, {
          method: "POST",
          headers,
          body,
          signal: AbortSignal.any([life, AbortSignal.timeout(webhookTimeoutMs)]),
        });
        status = res.status;
        await res.body?.cancel();
      } catch {
        status = null;
      }
      if (!life.aborted) {
        deliveries.push({ url, event, instance: name, status, attempt });
        if (deliveries.length > 12_000) deliveries = deliveries.slice(-10_000);
      }
      return status;
    };
    const done = (status: number | null) =>
      status !== null && ((status >= 200 && status < 300) || NO_RETRY.has(status));
    const first = (chains.get(name) ?? Promise.resolve()).then(() => (life.aborted ? null : attemptOnce(1)));
    const link = first.catch(() => {});
    chains.set(name, link);
    void first.then(async (status) => {
      if (chains.get(name) === link) chains.delete(name);
      for (let attempt = 2; attempt <= retryDelays.length + 1 && !life.aborted && !done(status); attempt++) {
        const d = retryDelays[attempt - 2];
        await sleep(d * (1 + (Math.random() * 2 - 1) * jitter), life);
        if (life.aborted) break;
        status = await attemptOnce(attempt);
      }
    }).finally(() => {
      pending--;
      if (pending === 0) {
        const waiters = drainWaiters;
        drainWaiters = [];
        for (const w of waiters) w();
      }
    });
  }

  // -- state machine ---------------------------------------------------------------------------------------------

  function connectionUpdate(inst: Inst, state: string, statusReason: number, withOwner = false) {
    const data: Record<string, unknown> = { instance: inst.name, state, statusReason };
    if (withOwner || v1) Object.assign(data, ownerData(inst));
    emit(inst, "connection.update", data);
  }

  function startConnecting(inst: Inst) {
    stopQr(inst);
    inst.state = "connecting";
    inst.dbStatus = "connecting";
    inst.qrCount = 1;
    inst.updatedAt = now();
    connectionUpdate(inst, "connecting", 200);
    emit(inst, "qrcode.updated", { qrcode: { instance: inst.name, ...qrObject(inst) } });
    const timer = setInterval(() => {
      inst.qrCount++;
      if (inst.qrCount > qrLimit) {
        stopQr(inst);
        emit(inst, "qrcode.updated", { message: "QR code limit reached, please login again", statusCode: 500 });
        connectionUpdate(inst, "refused", 428);
        inst.state = "close";
        inst.dbStatus = "close";
        inst.qrCount = 0;
        return;
      }
      emit(inst, "qrcode.updated", { qrcode: { instance: inst.name, ...qrObject(inst) } });
    }, qrIntervalMs);
    Deno.unrefTimer(timer as unknown as number);
    timers.add(timer);
    inst.qrTimer = timer;
  }

  function open(inst: Inst) {
    stopQr(inst);
    inst.qrCount = 0;
    inst.ownerJid ??= `55${randomDigits(11)}@s.whatsapp.net`;
    inst.profileName ??= `Sim ${inst.name}`;
    inst.state = "open";
    inst.dbStatus = "open";
    inst.updatedAt = now();
    connectionUpdate(inst, "connecting", 200);
    connectionUpdate(inst, "open", 200, true);
  }

  function terminalClose(inst: Inst, reason: number) {
    stopQr(inst);
    const at = now();
    inst.state = "close";
    inst.dbStatus = "close";
    inst.qrCount = 0;
    inst.disconnectionReasonCode = reason;
    inst.disconnectionAt = at;
    inst.disconnectionObject = JSON.stringify({ error: { output: { statusCode: reason } }, date: at });
    inst.updatedAt = at;
    emit(
      inst,
      "status.instance",
      v1 ? { instance: inst.name, status: "closed" } : {
        instance: inst.name,
        status: "closed",
        disconnectionAt: at,
        disconnectionReasonCode: reason,
        disconnectionObject: inst.disconnectionObject,
      },
    );
    emit(inst, "logout.instance", null);
    connectionUpdate(inst, "close", reason);
  }

  function removeInst(inst: Inst) {
    stopQr(inst);
    if (inst.state !== "close") terminalClose(inst, 401);
    emit(inst, "instance.delete", { instanceName: inst.name, instanceId: inst.id });
    emit(inst, "remove.instance", null);
    instances.delete(inst.name);
  }

  // -- shapes ----------------------------------------------------------------------------------------------------

  function rowV2(inst: Inst) {
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
      Setting: inst.settings ? { id: inst.id, ...inst.settings, instanceId: inst.id } : null,
      _count: { Message: 0, Contact: 0, Chat: 0 },
    };
  }

  function itemV1(inst: Inst) {
    const i: Record<string, unknown> = { instanceName: inst.name, instanceId: inst.id, status: inst.state };
    if (inst.state === "open") {
      i.owner = inst.ownerJid;
      i.profileName = inst.profileName;
      i.profilePictureUrl = inst.profilePicUrl;
      i.profileStatus = "";
    }
    return { instance: i };
  }

  function webhookV1(w: WebhookRow | null) {
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

  // -- request plumbing ------------------------------------------------------------------------------------------

  const key = (c: Context) => c.req.header("apikey") ?? "";

  /** Parses the JSON body; malformed JSON → body-parser style 400 (string message, "Internal Server Error"). */
  async function body(c: Context): Promise<Record<string, unknown> | Response> {
    const text = await c.req.text();
    if (text.trim() === "") return {};
    try {
      const v = JSON.parse(text);
      return v && typeof v === "object" ? v : {};
    } catch (e) {
      return Response.json(
        { status: 400, error: "Internal Server Error", response: { message: (e as Error).message } },
        { status: 400 },
      );
    }
  }

  /** Instance guard: 404 unknown instance, then 401 unless the global key or the instance's own token. */
  function guard(c: Context): Inst | Response {
    const name = decodeURIComponent(c.req.param("instance") ?? "");
    const inst = instances.get(name);
    if (!inst) return envelope(404, [`The "${name}" instance does not exist`]);
    const k = key(c);
    if (k !== apiKey && k !== inst.token) return envelope(401, "Unauthorized");
    return inst;
  }

  type Handler = (c: Context) => Response | Promise<Response>;

  /** Wraps a route: counts it, then server-wide behaviour (down, latency, faults), then the handler. */
  function api(route: RouteName | "notFound", handler: Handler): Handler {
    return async (c) => {
      calls[route] = (calls[route] ?? 0) + 1;
      total++;
      if (down) return reset();
      if (latencyMs > 0) await sleep(latencyMs, lifetime.signal);
      if (down) return reset();
      const f = faults.find((f) => f.remaining > 0 && (f.route === "*" || f.route === route));
      if (f) {
        f.remaining--;
        switch (f.kind) {
          case "status500":
            return envelope(500, ["Error: Connection Closed"]);
          case "status401":
            return envelope(401, "Unauthorized");
          case "malformed":
            return new Response('{"status":200,"response":{"mess', {
              status: 200,
              headers: { "content-type": "application/json" },
            });
          case "errorQuirk":
            if (v1 && route === "connect") return new Response(null, { status: 200 });
            return Response.json({ error: true, message: "[object Object]" });
          case "reset":
            return reset();
          case "timeout": {
            // Hang until the client gives up (the bridge passes its socket's close as `gone`) or the simulator stops.
            const gone = (c.env as { gone?: AbortSignal } | undefined)?.gone;
            const signal = gone ? AbortSignal.any([gone, lifetime.signal]) : lifetime.signal;
            await new Promise<void>((resolve) => {
              if (signal.aborted) return resolve();
              signal.addEventListener("abort", () => resolve(), { once: true });
            });
            return reset();
          }
        }
      }
      return await handler(c);
    };
  }

  // -- routes ----------------------------------------------------------------------------------------------------

  const app = new Hono();

  app.get(
    "/",
    api("info", () =>
      Response.json(
        v1
          ? {
            status: 200,
            message: "Welcome to the Evolution API, it is working!",
            version,
            swagger: `${self.url}/docs`,
            manager: `${self.url}/manager`,
            documentation: "https://doc.evolution-api.com",
          }
          : {
            status: 200,
            message: "Welcome to the Evolution API, it is working!",
            version,
            clientName: "evolution",
            manager: `${self.url}/manager`,
            documentation: "https://doc.evolution-api.com",
            whatsappWebVersion: "2.3000.1025190524",
          },
      )),
  );

  app.post(
    "/instance/create",
    api("create", async (c) => {
      const b = await body(c);
      if (b instanceof Response) return b;
      const name = typeof b.instanceName === "string" ? b.instanceName : undefined;
      // Guard order: the duplicate-name check runs before the key check.
      if (name === undefined && instances.size > 0) return envelope(403, ['This name "undefined" is already in use.']);
      if (name !== undefined && instances.has(name)) return envelope(403, [`This name "${name}" is already in use.`]);
      if (key(c) !== apiKey) return envelope(401, "Unauthorized");
      if (!name) return envelope(400, ['The "instanceName" cannot be empty']);
      const integration = b.integration ?? (v1 ? "WHATSAPP-BAILEYS" : undefined);
      if (typeof integration !== "string" || !INTEGRATIONS.has(integration)) {
        return envelope(400, ["Invalid integration"]);
      }
      const token = typeof b.token === "string" && b.token ? b.token : crypto.randomUUID().toUpperCase();
      if (v1 && [...instances.values()].some((i) => i.token === token)) return envelope(400, ["Token already exists"]);
      const inst = newInst(name, { token, integration, number: typeof b.number === "string" ? b.number : null });
      let hookInput: Partial<WebhookRow> & { url: string } | null = null;
      if (v1) {
        if (b.webhook !== undefined) {
          if (!isHttpUrl(b.webhook)) return envelope(400, ['Invalid "url" property in webhook']);
          if (Array.isArray(b.events)) {
            const bad = b.events.findIndex((e) => !(EVENT_CONFIG_NAMES as readonly unknown[]).includes(e));
            if (bad >= 0) return envelope(400, [`events[${bad}] is not one of enum values`]);
            hookInput = {
              url: b.webhook,
              events: b.events.length ? b.events as string[] : [...EVENT_CONFIG_NAMES],
              webhookByEvents: b.webhook_by_events === true,
              webhookBase64: b.webhook_base64 === true,
            };
          } // v1.8: a webhook without events is silently not saved.
        }
      } else if (b.webhook !== undefined) {
        const w = (b.webhook ?? {}) as Record<string, unknown>;
        if (typeof w.url !== "string" || !w.url) return envelope(400, ['webhook requires property "url"']);
        if (!Array.isArray(w.events)) return envelope(400, ["Cannot read properties of undefined (reading 'length')"]);
        const bad = eventsError(w.events, "webhook.events");
        if (bad) return bad;
        hookInput = {
          url: w.url,
          events: w.events.length ? w.events as string[] : [...EVENT_CONFIG_NAMES],
          webhookByEvents: w.byEvents === true,
          webhookBase64: w.base64 === true,
          headers: isHeaders(w.headers) ? w.headers : null,
        };
      }
      if (hookInput) inst.webhook = webhookRow(inst, hookInput);
      const settings = v1
        ? Object.fromEntries(SETTINGS_V1.map((k) => [k, k === "groups_ignore" ? b[k] !== false : b[k] === true]))
        : {
          rejectCall: b.rejectCall === true,
          msgCall: typeof b.msgCall === "string" ? b.msgCall : "",
          groupsIgnore: b.groupsIgnore === true,
          alwaysOnline: b.alwaysOnline === true,
          readMessages: b.readMessages === true,
          readStatus: b.readStatus === true,
          syncFullHistory: b.syncFullHistory === true,
          wavoipToken: typeof b.wavoipToken === "string" ? b.wavoipToken : "",
        };
      inst.settings = settings;
      if (integration !== "WHATSAPP-BAILEYS") {
        inst.state = "open";
        inst.dbStatus = "open";
      }
      instances.set(name, inst);
      emit(inst, "instance.create", { instanceName: name, instanceId: inst.id });
      if (b.qrcode === true && integration === "WHATSAPP-BAILEYS") startConnecting(inst);
      const w = inst.webhook;
      const out: Record<string, unknown> = v1
        ? {
          instance: {
            instanceName: name,
            instanceId: inst.id,
            integration,
            webhook_wa_business: null,
            access_token_wa_business: "",
            status: "created",
          },
          hash: { apikey: token },
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
        }
        : {
          instance: {
            instanceName: name,
            instanceId: inst.id,
            integration,
            webhookWaBusiness: null,
            accessTokenWaBusiness: "",
            status: inst.state,
          },
          hash: token,
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
      if (b.qrcode === true) out.qrcode = qrObject(inst);
      return Response.json(out, { status: 201 });
    }),
  );

  app.get(
    "/instance/fetchInstances",
    api("fetchInstances", (c) => {
      const k = key(c);
      let list = k === apiKey ? [...instances.values()] : [...instances.values()].filter((i) => i.token === k);
      if (k !== apiKey && list.length === 0) return envelope(401, "Unauthorized");
      const name = c.req.query("instanceName");
      const id = c.req.query("instanceId");
      if (name !== undefined || id !== undefined) {
        list = list.filter((i) => (name === undefined || i.name === name) && (id === undefined || i.id === id));
        if (list.length === 0) return envelope(404, [`Instance "${name ?? id}" not found`]);
      }
      if (v1) {
        if (name !== undefined && k === apiKey) return Response.json(itemV1(list[0]));
        return Response.json(list.map(itemV1));
      }
      return Response.json(list.map(rowV2));
    }),
  );

  app.get(
    "/instance/connectionState/:instance",
    api("connectionState", (c) => {
      const inst = guard(c);
      if (inst instanceof Response) return inst;
      return Response.json({ instance: { instanceName: inst.name, state: inst.state } });
    }),
  );

  app.get(
    "/instance/connect/:instance",
    api("connect", (c) => {
      const inst = guard(c);
      if (inst instanceof Response) return inst;
      if (inst.state === "open") return Response.json({ instance: { instanceName: inst.name, state: "open" } });
      if (inst.state === "close") startConnecting(inst);
      return Response.json(qrObject(inst));
    }),
  );

  const restart = api("restart", (c) => {
    const inst = guard(c);
    if (inst instanceof Response) return inst;
    if (v1) {
      if (inst.state === "open") open(inst);
      return Response.json({ instance: { instanceName: inst.name, state: inst.state } });
    }
    if (inst.state === "close") return Response.json({ error: true, message: "[object Object]" });
    if (inst.state === "connecting") return Response.json(qrObject(inst));
    open(inst);
    return Response.json({ instance: { instanceName: inst.name, state: "open" } });
  });
  if (v1) app.put("/instance/restart/:instance", restart);
  else app.post("/instance/restart/:instance", restart);

  app.delete(
    "/instance/logout/:instance",
    api("logout", (c) => {
      const inst = guard(c);
      if (inst instanceof Response) return inst;
      if (inst.state === "close") return envelope(400, [`The "${inst.name}" instance is not connected`]);
      terminalClose(inst, 401);
      return Response.json({ status: "SUCCESS", error: false, response: { message: "Instance logged out" } });
    }),
  );

  app.delete(
    "/instance/delete/:instance",
    api("delete", (c) => {
      const inst = guard(c);
      if (inst instanceof Response) return inst;
      removeInst(inst);
      return Response.json({ status: "SUCCESS", error: false, response: { message: "Instance deleted" } });
    }),
  );

  function eventsError(events: unknown[], path: string): Response | null {
    const bad = events.findIndex((e) => !(EVENT_CONFIG_NAMES as readonly unknown[]).includes(e));
    return bad >= 0
      ? envelope(400, [`${path}[${bad}] is not one of enum values: ${EVENT_CONFIG_NAMES.join(",")}`])
      : null;
  }

  function isHeaders(h: unknown): h is Record<string, string> {
    return !!h && typeof h === "object" && !Array.isArray(h) &&
      Object.values(h as Record<string, unknown>).every((v) => typeof v === "string");
  }

  app.post(
    "/webhook/set/:instance",
    api("setWebhook", async (c) => {
      const inst = guard(c);
      if (inst instanceof Response) return inst;
      const b = await body(c);
      if (b instanceof Response) return b;
      if (v1) {
        if (!isHttpUrl(b.url)) return envelope(400, ['Invalid "url" property']);
        const events = Array.isArray(b.events) ? b.events : [];
        const bad = eventsError(events, "events");
        if (bad) return bad;
        const enabled = b.enabled !== false;
        inst.webhook = webhookRow(inst, {
          url: b.url,
          enabled,
          events: !enabled ? [] : events.length ? events as string[] : [...EVENT_CONFIG_NAMES],
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
        const bad = eventsError(w.events, "webhook.events");
        if (bad) return bad;
      } else if (w.enabled) {
        return Response.json({
          status: 500,
          error: "Internal Server Error",
          response: { message: "Cannot read properties of undefined (reading 'length')" },
        }, { status: 500 });
      }
      const events = (w.events ?? []) as string[];
      inst.webhook = webhookRow(inst, {
        url: w.url,
        enabled: w.enabled,
        events: !w.enabled ? [] : events.length ? events : [...EVENT_CONFIG_NAMES],
        webhookByEvents: w.byEvents === true,
        webhookBase64: w.base64 === true,
        headers: isHeaders(w.headers) ? w.headers : null,
      });
      return Response.json(inst.webhook, { status: 201 });
    }),
  );

  app.get(
    "/webhook/find/:instance",
    api("findWebhook", (c) => {
      const inst = guard(c);
      if (inst instanceof Response) return inst;
      return Response.json(v1 ? webhookV1(inst.webhook) : inst.webhook);
    }),
  );

  app.post(
    "/settings/set/:instance",
    api("setSettings", async (c) => {
      const inst = guard(c);
      if (inst instanceof Response) return inst;
      const b = await body(c);
      if (b instanceof Response) return b;
      for (const k of v1 ? [] : SETTINGS_V2) {
        if (typeof b[k] !== "boolean") return envelope(400, [`instance requires property "${k}"`]);
      }
      inst.settings = { ...b };
      return Response.json({ settings: { instanceName: inst.name, settings: b } }, { status: 201 });
    }),
  );

  app.get(
    "/settings/find/:instance",
    api("findSettings", (c) => {
      const inst = guard(c);
      if (inst instanceof Response) return inst;
      if (v1) return Response.json(inst.settings ?? { reject_call: false, msg_call: "", groups_ignore: true });
      return Response.json(inst.settings);
    }),
  );

  app.post(
    "/message/sendText/:instance",
    api("sendText", async (c) => {
      const inst = guard(c);
      if (inst instanceof Response) return inst;
      const b = await body(c);
      if (b instanceof Response) return b;
      const text = v1 ? (b.textMessage as { text?: unknown } | undefined)?.text : b.text;
      if (typeof b.number !== "string") return envelope(400, ['instance requires property "number"']);
      if (typeof text !== "string") {
        return envelope(400, [`instance requires property "${v1 ? "textMessage" : "text"}"`]);
      }
      if (inst.state !== "open") return envelope(500, ["Error: Connection Closed"]);
      const digits = b.number.replace(/\D/g, "");
      if (digits.length < 8) {
        return envelope(400, [{ jid: `${digits}@s.whatsapp.net`, exists: false, number: b.number }]);
      }
      const message = {
        key: { remoteJid: `${digits}@s.whatsapp.net`, fromMe: true, id: crypto.randomUUID().replace(/-/g, "") },
        pushName: "",
        status: "PENDING",
        message: { conversation: text },
        messageType: "conversation",
        messageTimestamp: Math.floor(Date.now() / 1000),
        instanceId: inst.id,
        source: "unknown",
      };
      emit(inst, "send.message", message);
      return Response.json(message, { status: 201 });
    }),
  );

  // -- control ---------------------------------------------------------------------------------------------------

  function need(name: string): Inst {
    const inst = instances.get(name);
    if (!inst) throw new NotFound(`No instance "${name}" in the simulator`);
    return inst;
  }

  const control: SimulatorControl = {
    reset() {
      for (const i of instances.values()) stopQr(i);
      instances.clear();
      faults = [];
      latencyMs = 0;
      down = false;
      calls = {};
      total = 0;
      deliveries = [];
      lifetime.abort();
      lifetime = new AbortController();
    },
    seedInstance(name, opts = {}) {
      const old = instances.get(name);
      if (old) stopQr(old);
      const inst = newInst(name, opts.token ? { token: opts.token } : {});
      const state = opts.state ?? "close";
      inst.state = state;
      inst.dbStatus = state;
      if (state === "open") {
        inst.ownerJid = `55${randomDigits(11)}@s.whatsapp.net`;
        inst.profileName = `Sim ${name}`;
      }
      if (state === "connecting") inst.qrCount = 1;
      if (opts.webhookUrl) {
        inst.webhook = webhookRow(inst, { url: opts.webhookUrl, headers: opts.webhookHeaders ?? null });
      }
      instances.set(name, inst);
    },
    seedInstances(list) {
      for (const [name, opts] of list) control.seedInstance(name, opts);
    },
    setState(name, state, opts = {}) {
      const inst = need(name);
      if (!["open", "connecting", "close"].includes(state)) throw new BadInput(`Unknown state "${state}"`);
      stopQr(inst);
      inst.state = state;
      inst.dbStatus = state;
      inst.updatedAt = now();
      if (state === "open") {
        inst.ownerJid ??= `55${randomDigits(11)}@s.whatsapp.net`;
        inst.profileName ??= `Sim ${inst.name}`;
      }
      if (state === "close") {
        inst.disconnectionReasonCode = opts.statusReason ?? 401;
        inst.disconnectionAt = now();
      }
      connectionUpdate(inst, state, opts.statusReason ?? (state === "close" ? 401 : 200), state === "open");
    },
    scan(name) {
      const inst = need(name);
      if (inst.state === "close") startConnecting(inst);
      open(inst);
    },
    disconnect(name, statusReason = 401) {
      terminalClose(need(name), statusReason);
    },
    setLatency(ms) {
      latencyMs = Math.max(0, Number(ms) || 0);
    },
    fault(f) {
      const kinds: FaultKind[] = ["status500", "status401", "timeout", "malformed", "errorQuirk", "reset"];
      if (!kinds.includes(f.kind)) throw new BadInput(`Unknown fault kind "${f.kind}": use ${kinds.join(", ")}`);
      const route = f.route ?? "*";
      if (route !== "*" && !(ROUTE_NAMES as readonly string[]).includes(route)) {
        throw new BadInput(`Unknown route "${route}": use * or ${ROUTE_NAMES.join(", ")}`);
      }
      faults.push({ route, kind: f.kind, remaining: f.count ?? Infinity });
    },
    clearFaults() {
      faults = [];
    },
    setDown(d) {
      down = !!d;
    },
    stats() {
      return { calls: { ...calls }, total };
    },
    resetStats() {
      calls = {};
      total = 0;
    },
    instances() {
      return [...instances.values()].map((i) => ({
        name: i.name,
        state: i.state,
        token: i.token,
        webhook: i.webhook
          ? {
            url: i.webhook.url,
            headers: i.webhook.headers,
            events: i.webhook.events,
            enabled: i.webhook.enabled,
            byEvents: i.webhook.webhookByEvents,
          }
          : null,
      }));
    },
    deliveries() {
      return deliveries.slice();
    },
    drain() {
      return pending === 0 ? Promise.resolve() : new Promise<void>((r) => drainWaiters.push(r));
    },
  };

  // The control API over HTTP (never counted, delayed, faulted or taken down).
  app.get("/_control/:method", (c) => {
    const m = c.req.param("method");
    if (m === "stats") return c.json(control.stats());
    if (m === "instances") return c.json(control.instances());
    if (m === "deliveries") return c.json(control.deliveries());
    return c.json({ error: `No GET /_control/${m}: use stats, instances or deliveries` }, 404);
  });
  app.post("/_control/:method", async (c) => {
    const m = c.req.param("method") as keyof SimulatorControl;
    const fn = Object.hasOwn(control, m) ? control[m] as (...a: unknown[]) => unknown : undefined;
    if (!fn) return c.json({ error: `No control method '${m}'` }, 404);
    let args: unknown = [];
    const text = await c.req.text();
    if (text.trim()) {
      try {
        args = JSON.parse(text);
      } catch {
        return c.json({ error: "The body must be a JSON array of arguments" }, 400);
      }
    }
    if (!Array.isArray(args)) return c.json({ error: "The body must be a JSON array of arguments" }, 400);
    try {
      const result = await fn(...args);
      return c.json(result === undefined ? { ok: true } : result as object);
    } catch (e) {
      return c.json({ error: (e as Error).message }, e instanceof NotFound ? 404 : 400);
    }
  });

  // Express's 404 for unknown routes and wrong methods: "Cannot <METHOD> <url-with-query>".
  app.notFound((c) => {
    const u = new URL(c.req.url);
    return api("notFound", () => envelope(404, [`Cannot ${c.req.method} ${u.pathname}${u.search}`]))(c);
  });

  return {
    app,
    control,
    apiKey,
    setUrl(url: string) {
      self.url = url;
    },
    isDown: () => down,
    /** Stops timers, aborts deliveries and hanging requests. */
    stop() {
      if (closed) return;
      closed = true;
      for (const i of instances.values()) stopQr(i);
      for (const t of timers) clearTimeout(t);
      timers.clear();
      lifetime.abort();
    },
  };
}

class NotFound extends Error {}
class BadInput extends Error {}

/**
 * Starts the simulator on `options.port` (0 = any free port) and returns its URL, key and control. Served through
 * `node:http` so a reset or a down server really drops the TCP connection (the client sees a network error).
 */
export async function startSimulator(options: SimulatorOptions = {}): Promise<Simulator> {
  const sim = createSimulator(options);
  const hostname = options.hostname ?? "127.0.0.1";
  const sockets = new Set<Socket>();
  const server = http.createServer(async (req, res) => {
    const gone = new AbortController();
    res.on("close", () => gone.abort());
    try {
      if (sim.isDown() && !req.url?.startsWith("/_control/")) return void req.socket.destroy();
      const chunks: Uint8Array[] = [];
      for await (const chunk of req) chunks.push(chunk as Uint8Array);
      const headers = new Headers();
      for (const [k, v] of Object.entries(req.headers)) {
        if (v !== undefined) headers.set(k, Array.isArray(v) ? v.join(", ") : v);
      }
      const method = req.method ?? "GET";
      const request = new Request(`http://${hostname}${req.url ?? "/"}`, {
        method,
        headers,
        body: method === "GET" || method === "HEAD" || chunks.length === 0 ? undefined : Buffer.concat(chunks),
      });
      const response = await sim.app.fetch(request, { gone: gone.signal });
      if (RESETS.has(response)) return void req.socket.destroy();
      const body = Buffer.from(await response.arrayBuffer());
      res.writeHead(response.status, Object.fromEntries(response.headers));
      res.end(body);
    } catch (error) {
      if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify({ status: 500, error: "Internal Server Error", response: { message: [String(error)] } }));
    }
  });
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, hostname, () => resolve());
  });
  const url = `http://${hostname}:${(server.address() as AddressInfo).port}`;
  sim.setUrl(url);
  return {
    url,
    apiKey: sim.apiKey,
    control: sim.control,
    async close() {
      sim.stop();
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
