/**
 * @module
 * The simulator's settings per version (the contract, /work/shared/evolution-contract.md, and docs/EVOLUTION.md):
 * accepted event names, terminal close reasons, the webhook retry policy and every timing, resolved from the options.
 */
import { EVENT_CONFIG_NAMES, EVENT_CONFIG_NAMES_V18 } from "../../shared/evolution/events.ts";
import type { OutboundMode, SimulatorOptions, SimVersion } from "./types.ts";

export const SIM_VERSIONS: readonly SimVersion[] = ["2.3.7", "2.4.0", "1.8.6"];

/** How a webhook delivery is retried. */
export interface RetryPolicy {
  /** Attempts in all. */
  attempts: number;
  /** The wait before retry `n` (1 = the first retry). */
  delayMs(n: number): number;
  /** Statuses that end the delivery at once (2.x: 400, 401, 403, 404, 422; 1.8 retries everything). */
  noRetry: ReadonlySet<number>;
  /** Per-attempt timeout; null = none (1.8, axios' default). */
  timeoutMs: number | null;
}

/** The resolved settings; the `live` part can be changed by controls, and `reset()` restores it. */
export interface Config {
  version: SimVersion;
  v1: boolean;
  v24: boolean;
  /** Config names accepted in `events` (anything else is a 400). */
  events: readonly string[];
  /** Close reasons after which Evolution does not reconnect. */
  terminal: ReadonlySet<number>;
  retry: RetryPolicy;
  qrLimit: number;
  qrPerSocket: number;
  qrIntervalMs: number;
  firstQrMs: number;
  openMs: number;
  reconnectMs: number;
  connectTimeoutMs: number;
  connectWaitMs: number;
  createQrWaitMs: number;
  restartWaitMs: number;
  loopOpenForMs: number;
  scenarioMs: number;
  bootMs: number;
  infoCacheMs: number;
  infoLatencyMs: number;
  tcpConnectTimeoutMs: number;
  listBaseMs: number;
  listPerRowMs: number;
  timeScale: number;
  start: LiveSettings;
}

/** Settings a control may change while the simulator runs. */
export interface LiveSettings {
  cleanupDelayMs: number;
  utcOffsetMinutes: number;
  outbound: OutboundMode;
  outboundMs: number;
  licensed: boolean;
}

export const REASONS: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  500: "Internal Server Error",
};
export const INTEGRATIONS = new Set(["WHATSAPP-BAILEYS", "WHATSAPP-BUSINESS", "EVOLUTION"]);
export const SETTINGS_V2 = [
  "rejectCall",
  "groupsIgnore",
  "alwaysOnline",
  "readMessages",
  "readStatus",
  "syncFullHistory",
];
export const SETTINGS_V1 = [
  "reject_call",
  "groups_ignore",
  "always_online",
  "read_messages",
  "read_status",
  "sync_full_history",
];
export const PNG =
  "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==";
/** `whatsappWebVersion` of `GET /`: fetched from web.whatsapp.com, or Baileys' bundled one when that fails. */
export const WA_WEB_VERSION = "2.3000.1025190524";
export const WA_WEB_VERSION_BUNDLED = "2.3000.1023204200";

/** 2.x: min(5·2^(n−1), 300) s ± 20 %, never under 5 s (`retryWebhookRequest`, webhook.controller.ts@2.3.6). */
function backoffV2(scale: number) {
  return (n: number) => {
    const base = Math.min(5 * 2 ** (n - 1), 300);
    const jittered = Math.max(5, base + base * 0.2 * (Math.random() * 2 - 1));
    return jittered * 1000 * scale;
  };
}

function retryPolicy(o: SimulatorOptions, v1: boolean, scale: number): RetryPolicy {
  const explicit = o.webhookRetryDelaysMs;
  const timeoutMs = o.webhookTimeoutMs !== undefined ? o.webhookTimeoutMs : v1 ? null : 30_000 * scale;
  const noRetry = new Set(v1 ? [] : [400, 401, 403, 404, 422]);
  if (explicit) {
    return { attempts: explicit.length + 1, delayMs: (n) => explicit[n - 1] ?? 0, noRetry, timeoutMs };
  }
  // 1.8 branch: 10 attempts, a fixed 30 s apart (`retryWebhookRequest`, channel.service.ts@v1.8).
  return { attempts: 10, delayMs: v1 ? () => 30_000 * scale : backoffV2(scale), noRetry, timeoutMs };
}

/** Resolves the options into the settings of one simulator. */
export function resolveConfig(o: SimulatorOptions): Config {
  const version = o.version ?? "2.3.7";
  if (!SIM_VERSIONS.includes(version)) throw new Error(`Unknown version "${version}": use ${SIM_VERSIONS.join(", ")}`);
  const v1 = version.startsWith("1.");
  const v24 = version === "2.4.0";
  const scale = o.timeScale ?? 1;
  if (!(scale > 0)) throw new Error("timeScale must be > 0");
  const t = (given: number | undefined, real: number) => given ?? real * scale;
  // 2.4.0-rc2 adds 408 to the terminal reasons (PR #2612 would undo it); 1.8 stops only on 401.
  const terminal = new Set(v1 ? [401] : v24 ? [401, 402, 403, 406, 408] : [401, 402, 403, 406]);
  const events = v1
    ? EVENT_CONFIG_NAMES_V18
    : v24
    ? [...EVENT_CONFIG_NAMES, "MESSAGING_HISTORY_SET"]
    : EVENT_CONFIG_NAMES;
  return {
    version,
    v1,
    v24,
    events,
    terminal,
    retry: retryPolicy(o, v1, scale),
    qrLimit: o.qrLimit ?? 30,
    qrPerSocket: Math.max(1, o.qrPerSocket ?? 6),
    qrIntervalMs: t(o.qrIntervalMs, 45_000),
    firstQrMs: t(o.firstQrMs, 1_000),
    openMs: t(o.openMs, 1_500),
    reconnectMs: t(o.reconnectMs, v24 ? 3_000 : 100),
    connectTimeoutMs: t(o.connectTimeoutMs, v1 ? 20_000 : 30_000),
    connectWaitMs: t(o.connectWaitMs, v1 ? 5_000 : 2_000),
    createQrWaitMs: t(o.createQrWaitMs, 5_000),
    restartWaitMs: 2_000 * scale,
    loopOpenForMs: 2_000 * scale,
    scenarioMs: 60_000 * scale,
    bootMs: 3_000 * scale,
    infoCacheMs: 3_600_000 * scale,
    infoLatencyMs: o.infoLatencyMs ?? 150,
    tcpConnectTimeoutMs: o.tcpConnectTimeoutMs ?? 127_000,
    listBaseMs: o.listLatency?.baseMs ?? 10,
    listPerRowMs: o.listLatency?.perRowMs ?? 0.25,
    timeScale: scale,
    start: {
      cleanupDelayMs: t(o.cleanupDelayMs, v1 ? 50 : 300),
      utcOffsetMinutes: o.utcOffsetMinutes ?? -180,
      outbound: "ok",
      outboundMs: o.infoLatencyMs ?? 150,
      licensed: o.licenseActivated ?? false,
    },
  };
}
