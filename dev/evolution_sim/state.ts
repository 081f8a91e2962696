/**
 * @module
 * The simulator's state: an instance is a memory object (Evolution's `waInstances[name]`: the live state, the QR
 * count, the socket) and a database row (`connectionStatus`, owner, disconnection fields, Setting, `_count`); the two
 * are kept apart because Evolution writes the row only at some transitions (contract §3.3, §5.3). Also the
 * shared context every module works on, and the realistic filler data of rows.
 */
import type { Clock } from "./clock.ts";
import type { Config, LiveSettings } from "./config.ts";
import type { FaultKind, SimPhase, SimState } from "./types.ts";

export interface WebhookRow {
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

/** A running reconnect loop (`reconnectLoop`, `connectingLoop`). */
export interface Loop {
  opens: boolean;
  reason: number;
  remaining: number;
  openForMs: number;
}

export interface Inst {
  id: string;
  name: string;
  token: string;
  integration: string;
  number: string | null;
  phase: SimPhase;
  /** The memory object exists (dropped when the `remove.instance` delivery is over; at once on 1.8). */
  inMemory: boolean;
  /** The database row exists (deleted by the clean-up after a delete). */
  hasRow: boolean;
  /** Memory state: what connectionState answers. */
  state: SimState;
  /** Stored `connectionStatus`: what fetchInstances answers (2.x). */
  dbStatus: SimState;
  ownerJid: string | null;
  profileName: string | null;
  profilePicUrl: string | null;
  /** A paired session is stored: a new socket opens instead of showing QR codes. */
  creds: boolean;
  /** QR codes since the memory object was made or the limit was last reached (never reset by a connect). */
  qrCount: number;
  qrCode: string | null;
  /**
   * The number a connect asked a pairing code for (`?number=`, or create's `number` with `qrcode: true`): each QR
   * event then also requests a pairing code for it (Baileys `requestPairingCode`), until the next connect.
   */
  pairingNumber: string | null;
  /** The current pairing code (8 characters of Baileys' Crockford alphabet), null without a pairing number. */
  pairingCode: string | null;
  /** QR codes shown by the current socket (Baileys closes it with 408 after `qrPerSocket`). */
  socketQrs: number;
  /** Set at the QR limit: every later socket event is dropped until a new connect. */
  endSession: boolean;
  /** The current socket's (or pending reconnect's) timers; aborting it stops them. */
  socket: AbortController | null;
  loop: Loop | null;
  dead: false | "healable" | "unhealable";
  /** No webhook goes out for this instance (the "frozen" reports). */
  frozen: boolean;
  /** Until this time (ms) every route naming this instance answers 401. */
  auth401Until: number;
  webhook: WebhookRow | null;
  settings: Record<string, unknown> | null;
  settingId: string;
  createdAt: string;
  updatedAt: string;
  disconnectionReasonCode: number | null;
  disconnectionAt: string | null;
  disconnectionObject: string | null;
  counts: { Message: number; Contact: number; Chat: number };
  /** Numbers in the on-WhatsApp cache (DATABASE_SAVE_IS_ON_WHATSAPP, on in the official image). */
  knownNumbers: Set<string>;
}

/** Server-wide runtime state (faults, latency, down, stats). */
export interface Runtime {
  faults: Array<{ route: string; kind: FaultKind; remaining: number; message?: string }>;
  latencyMs: number;
  down: boolean;
  calls: Record<string, number>;
  total: number;
  /** 2.4.0 caches the WhatsApp Web version for an hour: when it was last fetched. */
  infoFetchedAt: number | null;
}

/** What every module of the simulator works on. */
export interface Ctx {
  cfg: Config;
  live: LiveSettings;
  clock: Clock;
  store: Map<string, Inst>;
  rt: Runtime;
  apiKey: string;
  /** 2.4.0: the licence `instance_id` of this server. */
  serverId: string;
  self: { url: string; serverUrl?: string };
  /** Sends an event to the instance's webhook; resolves when the delivery (retries included) is over. */
  emit(inst: Inst, event: string, data: unknown): Promise<void>;
}

export const isoNow = (): string => new Date().toISOString();

export function randomDigits(n: number): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) => String(b % 10)).join("");
}

function randomChars(n: number, alphabet: string): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(n)), (b) => alphabet[b % alphabet.length]).join("");
}

/** A pairing code as Baileys makes one: 8 characters of the Crockford alphabet (no 0, O, I, U), e.g. `7KQ2XMBN`. */
export const pairingCode = (): string => randomChars(8, "123456789ABCDEFGHJKLMNPQRSTVWXYZ");

/** A Prisma cuid-like id (Setting rows). */
export const cuid = (): string => `c${randomChars(24, "abcdefghijklmnopqrstuvwxyz0123456789")}`;

export const randomJid = (): string => `55${randomDigits(11)}@s.whatsapp.net`;

/** A WhatsApp CDN profile picture URL of the real length (~200 characters). */
export function profilePicUrl(): string {
  const b64 = randomChars(38, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-");
  return `https://pps.whatsapp.net/v/t61.24694-24/${randomDigits(9)}_${randomDigits(15)}_${
    randomDigits(16)
  }_n.jpg?ccb=11-4&oh=01_Q5Aa1g${b64}&oe=${randomChars(8, "0123456789ABCDEF")}&_nc_sid=5e03e0&_nc_cat=${
    randomDigits(3)
  }`;
}

/** Baileys' `lastDisconnect` as Evolution stores it (`JSON.stringify(lastDisconnect)`, a few hundred bytes). */
export function disconnectionObject(reason: number, at: string, logout = false): string {
  const phrase: Record<number, string> = { 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden" };
  const message = logout ? "Intentional Logout" : reason === 401 ? "Stream Errored (conflict)" : "Stream Errored";
  const data = logout ? null : {
    tag: "stream:error",
    attrs: { code: String(reason) },
    content: [{ tag: reason === 401 ? "conflict" : "error", attrs: { type: "device_removed" } }],
  };
  return JSON.stringify({
    error: {
      data,
      isBoom: true,
      isServer: false,
      output: {
        statusCode: reason,
        payload: { statusCode: reason, error: phrase[reason] ?? "Not Acceptable", message },
        headers: {},
      },
    },
    date: at,
  });
}

/** Message/contact/chat counts of a number that has been in use (stable per name). */
export function usedCounts(name: string): Inst["counts"] {
  let h = 2166136261;
  for (const ch of name) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  return { Message: 200 + (h % 19_800), Contact: 50 + (h % 1_950), Chat: 20 + (h % 780) };
}

export function newInst(name: string, init: Partial<Inst> = {}): Inst {
  const t = isoNow();
  return {
    id: crypto.randomUUID(),
    name,
    token: crypto.randomUUID().toUpperCase(),
    integration: "WHATSAPP-BAILEYS",
    number: null,
    phase: "active",
    inMemory: true,
    hasRow: true,
    state: "close",
    dbStatus: "close",
    ownerJid: null,
    profileName: null,
    profilePicUrl: null,
    creds: false,
    qrCount: 0,
    qrCode: null,
    pairingNumber: null,
    pairingCode: null,
    socketQrs: 0,
    endSession: false,
    socket: null,
    loop: null,
    dead: false,
    frozen: false,
    auth401Until: 0,
    webhook: null,
    settings: null,
    settingId: cuid(),
    createdAt: t,
    updatedAt: t,
    disconnectionReasonCode: null,
    disconnectionAt: null,
    disconnectionObject: null,
    counts: { Message: 0, Contact: 0, Chat: 0 },
    knownNumbers: new Set(),
    ...init,
  };
}

/** The default Setting row of a create (v2). */
export function defaultSettingsV2(): Record<string, unknown> {
  return {
    rejectCall: false,
    msgCall: "",
    groupsIgnore: false,
    alwaysOnline: false,
    readMessages: false,
    readStatus: false,
    syncFullHistory: false,
    wavoipToken: "",
  };
}

export function webhookRow(inst: Inst, w: Partial<WebhookRow> & { url: string; events: string[] }): WebhookRow {
  const t = isoNow();
  return {
    id: inst.webhook?.id ?? cuid(),
    headers: null,
    enabled: true,
    webhookByEvents: false,
    webhookBase64: false,
    createdAt: inst.webhook?.createdAt ?? t,
    updatedAt: t,
    instanceId: inst.id,
    ...w,
  };
}

/** Writes the row (2.x); the row's `updatedAt` moves with it. */
export function writeRow(inst: Inst, fields: Partial<Inst>): void {
  if (!inst.hasRow) return;
  Object.assign(inst, fields);
  inst.updatedAt = isoNow();
}

export class NotFound extends Error {}
export class BadInput extends Error {}

/** The instance a control names (in memory). */
export function need(ctx: Ctx, name: string): Inst {
  const inst = ctx.store.get(name);
  if (!inst) throw new NotFound(`No instance "${name}" in the simulator`);
  if (!inst.inMemory) throw new BadInput(`Instance "${name}" is being deleted (only its row is left)`);
  return inst;
}
