/**
 * @module
 * The simulator's public types: versions, states, route names, options, the control surface (README, "Evolution
 * simulator"). Re-exported by `app.ts`, the package entry.
 */

/** The server versions the simulator can play: 2.3.7 (default), the 2.4.0 release candidate, 1.8.6. */
export type SimVersion = "2.3.7" | "2.4.0" | "1.8.6";
/** Memory states of an instance (`connectionState`), and the stored `connectionStatus` of its row. */
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
  "fetchBusinessProfile",
  "whatsappNumbers",
  "health",
  "license",
] as const;
export type RouteName = typeof ROUTE_NAMES[number];
/** Injectable faults. */
export const FAULT_KINDS = ["status500", "status401", "timeout", "malformed", "errorQuirk", "reset"] as const;
export type FaultKind = typeof FAULT_KINDS[number];
/** What the outside version lookup of `GET /` meets (2.3.x on every call, 2.4.0 once an hour). */
export type OutboundMode = "ok" | "slow" | "refused" | "dropped";
/** The names of the scenario controls (real reports, see README). */
export const SCENARIO_NAMES = [
  "frozen",
  "staleConnected",
  "stream515Then401",
  "intermittent401",
  "connectingLoop",
  "qrLimit",
] as const;
export type ScenarioName = typeof SCENARIO_NAMES[number];

/** Options of {@link startSimulator} / {@link createSimulator}. Durations are in ms. */
export interface SimulatorOptions {
  /** Port to listen on (0 = any free port). Default 0. */
  port?: number;
  hostname?: string;
  /** The global API key. Default: a random one. */
  apiKey?: string;
  version?: SimVersion;
  /**
   * Multiplies every default duration of the server's own clocks: webhook retry delays and attempt timeout, QR
   * interval, socket timings (first QR, open, reconnect, connect timeout), the waits of connect/create/restart, the
   * delete clean-up, loops, scenario periods, 2.4.0's version cache. Not latencies (`GET /`, listing, `setLatency`,
   * the TCP connect timeout). Explicit options below are taken as given. Default 1.
   */
  timeScale?: number;
  /** Delays between webhook delivery attempts (length = number of retries; no jitter). Default: the version's policy. */
  webhookRetryDelaysMs?: number[];
  /** Per-attempt timeout of a webhook delivery (null: none). Default 30,000 (2.x), none (1.8). */
  webhookTimeoutMs?: number | null;
  /** A new QR code every this many ms while pairing (Baileys `qrTimeout`). Default 45,000. */
  qrIntervalMs?: number;
  /** QRCODE_LIMIT: the QR that would be number limit+1 gives `refused`. Default 30. */
  qrLimit?: number;
  /** QR codes one socket shows before Baileys closes it (408) and Evolution reconnects. Default 6. */
  qrPerSocket?: number;
  /** From socket start to the first QR. Default 1,000. */
  firstQrMs?: number;
  /** From socket start to `open` for a paired session. Default 1,500. */
  openMs?: number;
  /** From a transient close to the new socket (`connecting`). Default 100 (2.4.0: 3,000). */
  reconnectMs?: number;
  /** A socket that never opens is closed (408) after this. Default 30,000 (1.8: 20,000). */
  connectTimeoutMs?: number;
  /** `GET /instance/connect` waits this long after starting a socket. Default 2,000 (1.8: 5,000). */
  connectWaitMs?: number;
  /** `POST /instance/create` with `qrcode:true` waits this long for a QR. Default 5,000. */
  createQrWaitMs?: number;
  /** After the `remove.instance` delivery (2.x) or at once (1.8), the row goes after this. Default 300 (1.8: 50). */
  cleanupDelayMs?: number;
  /** `date_time` = the server's local wall time + "Z": the offset from UTC in minutes. Default -180 (Sao Paulo). */
  utcOffsetMinutes?: number;
  /** The outside round trip of `GET /`'s version lookup (2.3.x, 2.4.0). Default 150. */
  infoLatencyMs?: number;
  /** OS TCP connect timeout, waited twice by `GET /` when outbound traffic is dropped. Default 127,000. */
  tcpConnectTimeoutMs?: number;
  /** fetchInstances answers after base + perRow × rows. Default {baseMs: 10, perRowMs: 0.25}. */
  listLatency?: { baseMs?: number; perRowMs?: number };
  /** 2.4.0: start with the licence activated. Default false (every business route answers 503). */
  licenseActivated?: boolean;
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

/** Where an instance is in its life: live, waiting for its `remove.instance` delivery, or only a row being cleaned. */
export type SimPhase = "active" | "removing" | "cleanup";

/** An instance as the control API shows it. */
export interface SimInstanceView {
  name: string;
  /** The memory state (`connectionState`); null once the memory object is gone (delete clean-up). */
  state: SimState | null;
  /** The row's `connectionStatus` (fetchInstances); null once the row is gone. 1.8 has no such field: = state. */
  dbStatus: SimState | null;
  phase: SimPhase;
  token: string;
  qrCount: number;
  deadSocket: false | "healable" | "unhealable";
  frozen: boolean;
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
  /** Memory state. Default "close". "connecting" = pairing in progress (QR timer running). */
  state?: SimState;
  /** The row's stored status (2.x). Default: = state. */
  dbStatus?: SimState;
  webhookUrl?: string;
  webhookHeaders?: Record<string, string>;
  /** The webhook's events. Default: every name of the version's list. */
  webhookEvents?: string[];
  token?: string;
  /** QR codes already counted (toward the limit). Default 0 (1 when pairing). */
  qrCount?: number;
  /** A paired session exists (a reconnect opens instead of showing QRs). Default: state is "open". */
  creds?: boolean;
  /** The socket is dead although memory says open (2.3.7 zombie); "unhealable": restart cannot heal it. */
  deadSocket?: boolean | "unhealable";
  /** The row's last terminal disconnection. Default: an open instance has one from an earlier logout (401). */
  lastDisconnect?: { reasonCode: number; at?: string } | null;
}

/** Options of `reconnectLoop`. */
export interface LoopOptions {
  /** Each reconnect opens (close → connecting → open …); false: it never opens (connecting ↔ close). Default true. */
  opens?: boolean;
  /** The transient close reason of each drop. Default 428. */
  reason?: number;
  /** How many drops, then the loop ends (open). Default: until `stopLoop`. */
  cycles?: number;
  /** How long each open lasts before the next drop. Default 2,000 (× timeScale). */
  openForMs?: number;
}

/** The simulator's control surface (also at `POST /_control/<method>` with a JSON array of arguments). */
export interface SimulatorControl {
  reset(): void;
  seedInstance(name: string, opts?: SeedOptions): void;
  /** Many `seedInstance` calls at once: `[[name, opts?], …]`. */
  seedInstances(list: Array<[string, SeedOptions?]>): void;
  /** open / connecting (stuck: no QR) / close (terminal: the reason must be terminal for the version, default 401). */
  setState(name: string, state: SimState, opts?: { statusReason?: number }): void;
  scan(name: string): void;
  /**
   * The owner types the pairing code on the phone (WhatsApp > Linked devices > Link with phone number): it must be
   * the code the instance shows now (after a connect with `?number=`); then as a scan: 515, connecting, open.
   */
  enterPairingCode(name: string, code: string): void;
  /** A Baileys close: terminal reasons log out; transient ones reconnect (resolves when the reconnect is done). */
  disconnect(name: string, statusReason?: number): Promise<void>;
  reconnectLoop(name: string, opts?: LoopOptions): void;
  stopLoop(name: string): void;
  killSocket(name: string, opts?: { healable?: boolean }): void;
  /** The Evolution process restarts: down for a moment, then every instance reloaded from its row. */
  restartServer(opts?: { downMs?: number }): Promise<void>;
  activateLicense(): void;
  setCleanupDelay(ms: number): void;
  setUtcOffset(minutes: number): void;
  setOutbound(mode: OutboundMode, ms?: number): void;
  setLatency(ms: number): void;
  /** `message`: what a `status500` says (Evolution's `response.message`; default "Error: internal server error"). */
  fault(f: { route?: string; kind: FaultKind; count?: number; message?: string }): void;
  clearFaults(): void;
  setDown(down: boolean): void;
  stats(): { calls: Record<string, number>; total: number };
  resetStats(): void;
  instances(): SimInstanceView[];
  deliveries(): Delivery[];
  /** Resolves when no webhook delivery (or retry) is pending. */
  drain(): Promise<void>;
  // The scenario library (README).
  frozen(name: string): void;
  staleConnected(name: string): void;
  stream515Then401(name: string, opts?: { openForMs?: number }): Promise<void>;
  intermittent401(name: string, opts?: { durationMs?: number }): void;
  connectingLoop(name: string, opts?: { cycles?: number }): void;
  qrLimit(name: string): number;
}

/** A running simulator. */
export interface Simulator {
  url: string;
  apiKey: string;
  control: SimulatorControl;
  close(): Promise<void>;
}
