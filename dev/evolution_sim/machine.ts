/**
 * @module
 * The connection state machine (contract §5): sockets that show QR codes or open, transient closes that reconnect
 * silently (memory only), terminal closes (status.instance, logout.instance, row `close`, connection.update close),
 * the accumulating QR count and its limit, reconnect loops, and the delete pipeline (§3.8).
 */
import { PNG } from "./config.ts";
import {
  type Ctx,
  disconnectionObject,
  type Inst,
  isoNow,
  pairingCode,
  profilePicUrl,
  randomDigits,
  randomJid,
  writeRow,
} from "./state.ts";
import type { SimState } from "./types.ts";

export function ownerData(inst: Inst) {
  return { wuid: inst.ownerJid, profileName: inst.profileName, profilePictureUrl: inst.profilePicUrl };
}

export function connectionUpdate(ctx: Ctx, inst: Inst, state: string, statusReason: number, withOwner = false) {
  const data: Record<string, unknown> = { instance: inst.name, state, statusReason };
  // 1.8 puts the owner keys on connecting/open/close; 2.x only on open (and on refused once it has an owner).
  if (withOwner || (ctx.cfg.v1 && state !== "refused")) Object.assign(data, ownerData(inst));
  void ctx.emit(inst, "connection.update", data);
}

/** The QR object of connect/create: `{count:0}` until a code exists. */
export function qrObject(inst: Inst) {
  return inst.qrCode
    ? { pairingCode: inst.pairingCode, code: inst.qrCode, base64: PNG, count: inst.qrCount }
    : { count: inst.qrCount };
}

function newSocket(inst: Inst): AbortSignal {
  inst.socket?.abort();
  const ac = new AbortController();
  inst.socket = ac;
  return ac.signal;
}

export function endSocket(inst: Inst): void {
  inst.socket?.abort();
  inst.socket = null;
}

/**
 * A new Baileys socket (`connectToWhatsapp`): memory `connecting` + `connection.update{connecting}`; a paired
 * session opens after `openMs`, otherwise QR codes follow. `fresh` (a connect or create) clears `endSession`.
 */
export function startSocket(ctx: Ctx, inst: Inst, fresh: boolean): void {
  const { cfg, clock } = ctx;
  if (fresh) inst.endSession = false;
  const signal = newSocket(inst);
  inst.socketQrs = 0;
  inst.dead = false;
  inst.state = "connecting";
  connectionUpdate(ctx, inst, "connecting", 200);
  if (!inst.creds) return clock.after(cfg.firstQrMs, () => qrTick(ctx, inst, signal), signal);
  const loop = inst.loop;
  if (loop && !loop.opens && loop.remaining > 0) {
    loop.remaining--;
    return clock.after(cfg.connectTimeoutMs, () => socketClosed(ctx, inst, 408), signal);
  }
  if (loop && !loop.opens) inst.loop = null;
  clock.after(cfg.openMs, () => opened(ctx, inst), signal);
}

function qrTick(ctx: Ctx, inst: Inst, signal: AbortSignal): void {
  // Baileys runs out of QR refs and closes the socket (timed out, 408); Evolution reconnects.
  if (inst.socketQrs >= ctx.cfg.qrPerSocket) return socketClosed(ctx, inst, 408);
  if (!newQr(ctx, inst)) return;
  inst.socketQrs++;
  ctx.clock.after(ctx.cfg.qrIntervalMs, () => qrTick(ctx, inst, signal), signal);
}

/** One more QR code, or the limit (checked before the increment: the 31st code with QRCODE_LIMIT 30). */
export function newQr(ctx: Ctx, inst: Inst): boolean {
  if (inst.endSession) return false;
  if (inst.qrCount >= ctx.cfg.qrLimit) {
    limitReached(ctx, inst);
    return false;
  }
  inst.qrCount++;
  inst.qrCode = `2@${randomDigits(24)},${inst.name},${inst.qrCount}`;
  // a connect that named a number asks Baileys for a pairing code on every QR event (a new code each time)
  inst.pairingCode = inst.pairingNumber ? pairingCode() : null;
  writeRow(inst, { dbStatus: "connecting" });
  void ctx.emit(inst, "qrcode.updated", {
    qrcode: { instance: inst.name, pairingCode: inst.pairingCode, code: inst.qrCode, base64: PNG },
  });
  return true;
}

/** QR limit: refused + `no.connection` (memory close, count 0); the row stays `connecting`, nothing else is sent. */
function limitReached(ctx: Ctx, inst: Inst): void {
  void ctx.emit(inst, "qrcode.updated", { message: "QR code limit reached, please login again", statusCode: 500 });
  const data: Record<string, unknown> = { instance: inst.name, state: "refused", statusReason: 428 };
  if (!ctx.cfg.v1 && inst.ownerJid) Object.assign(data, ownerData(inst));
  void ctx.emit(inst, "connection.update", data);
  inst.endSession = true;
  endSocket(inst);
  inst.state = "close";
  inst.qrCount = 0;
  inst.qrCode = null;
  inst.pairingCode = null;
  inst.socketQrs = 0;
}

/** The socket opened: memory and row `open`, owner fields stored, `connection.update{open}`. */
export function opened(ctx: Ctx, inst: Inst): void {
  inst.creds = true;
  inst.socketQrs = 0;
  inst.ownerJid ??= randomJid();
  inst.profileName ??= `Sim ${inst.name}`;
  inst.profilePicUrl ??= profilePicUrl();
  inst.state = "open";
  writeRow(inst, { dbStatus: "open" });
  connectionUpdate(ctx, inst, "open", 200, true);
  const loop = inst.loop;
  if (loop?.opens) {
    if (loop.remaining <= 0) inst.loop = null;
    else {
      loop.remaining--;
      ctx.clock.after(loop.openForMs, () => {
        if (inst.loop === loop) socketClosed(ctx, inst, loop.reason);
      }, inst.socket?.signal);
    }
  }
}

/**
 * Baileys reports a close (`null`: no status code, e.g. `end(new Error('restart'))`). Terminal reasons log out;
 * the others leave memory `close` with no webhook and no row write, then a new socket comes after `reconnectMs`.
 */
export function socketClosed(ctx: Ctx, inst: Inst, reason: number | null): void {
  if (!inst.inMemory) return;
  if (inst.endSession) {
    endSocket(inst);
    inst.state = "close";
    return;
  }
  if (reason !== null && ctx.cfg.terminal.has(reason)) return terminalClose(ctx, inst, reason);
  const firstEver = !inst.creds && inst.qrCount === 0 && inst.socketQrs === 0;
  inst.state = "close";
  const signal = newSocket(inst);
  // 2.4.0-rc2: a first connection that closes before any QR is not reconnected.
  if (ctx.cfg.v24 && firstEver) return endSocket(inst);
  ctx.clock.after(ctx.cfg.reconnectMs, () => startSocket(ctx, inst, false), signal);
}

/** A terminal close (401 logout, 403 ban, 402, 406; 1.8: 401 only), in Evolution's order. */
export function terminalClose(ctx: Ctx, inst: Inst, reason: number, logout = false): void {
  endSocket(inst);
  inst.loop = null;
  const at = isoNow();
  const object = disconnectionObject(reason, at, logout);
  inst.state = "close";
  inst.creds = false;
  inst.dead = false;
  inst.socketQrs = 0;
  void ctx.emit(
    inst,
    "status.instance",
    ctx.cfg.v1 ? { instance: inst.name, status: "closed" } : {
      instance: inst.name,
      status: "closed",
      disconnectionAt: at,
      disconnectionReasonCode: reason,
      disconnectionObject: object,
    },
  );
  writeRow(inst, {
    dbStatus: "close",
    disconnectionReasonCode: reason,
    disconnectionAt: at,
    disconnectionObject: object,
  });
  if (!ctx.cfg.v1) void ctx.emit(inst, "logout.instance", null);
  connectionUpdate(ctx, inst, "close", reason);
}

/** A seeded socket already running: a pairing that has shown its first QR, or a reconnect that will open. */
export function resumeSocket(ctx: Ctx, inst: Inst): void {
  const signal = newSocket(inst);
  if (inst.creds) return ctx.clock.after(ctx.cfg.openMs, () => opened(ctx, inst), signal);
  inst.socketQrs = 1;
  ctx.clock.after(ctx.cfg.qrIntervalMs, () => qrTick(ctx, inst, signal), signal);
}

/**
 * A completed scan: the pairing needs a QR on screen (shown now if the socket has none yet); Baileys then closes
 * with 515 (restart required), and the reconnect opens at once: connecting, then open.
 */
export function pairNow(ctx: Ctx, inst: Inst): void {
  if (inst.state === "close") startSocket(ctx, inst, true);
  if (inst.socketQrs === 0 && !newQr(ctx, inst)) return;
  inst.creds = true;
  inst.state = "close";
  startSocket(ctx, inst, false);
  endSocket(inst);
  opened(ctx, inst);
}

/** `POST /instance/restart` on open/connecting: `ws.close()` + `end()`; an ended socket cannot be ended again. */
export function restartSocket(ctx: Ctx, inst: Inst): void {
  if (inst.dead === "unhealable") return;
  inst.dead = false;
  socketClosed(ctx, inst, null);
}

/** The QR codes a pairing shows until the limit, at once (Baileys' 408 reconnects included); returns how many. */
export function burstToLimit(ctx: Ctx, inst: Inst): number {
  if (inst.state === "close") startSocket(ctx, inst, true);
  let shown = 0;
  while (!inst.endSession && inst.state !== "close") {
    if (inst.socketQrs >= ctx.cfg.qrPerSocket) {
      socketClosed(ctx, inst, 408);
      if (!inst.socket) break; // terminal (2.4.0's 408) or not reconnected
      startSocket(ctx, inst, false);
    }
    if (!newQr(ctx, inst)) break;
    inst.socketQrs++;
    shown++;
  }
  return shown;
}

/** Resolves once `pred` holds for the instance (polled), or after `maxMs`. */
export async function settle(ctx: Ctx, inst: Inst, pred: (i: Inst) => boolean, maxMs: number): Promise<void> {
  const until = Date.now() + maxMs;
  while (!pred(inst) && Date.now() < until && !ctx.clock.signal.aborted) await ctx.clock.sleep(5);
}

function dropMemory(inst: Inst): void {
  endSocket(inst);
  inst.loop = null;
  inst.inMemory = false;
  inst.phase = "cleanup";
}

function cleanRowLater(ctx: Ctx, inst: Inst): void {
  ctx.clock.after(ctx.live.cleanupDelayMs, () => {
    if (ctx.store.get(inst.name) !== inst) return;
    inst.hasRow = false;
    ctx.store.delete(inst.name);
  });
}

/**
 * After the delete's logout: `instance.delete`, then (2.x) the awaited `remove.instance` delivery, retries
 * included; only then is the memory object dropped and the row cleaned (`close`, then gone after
 * `cleanupDelayMs`). 1.8 drops the memory object at once. The name stays taken until the row is gone.
 */
export function startRemoval(ctx: Ctx, inst: Inst): void {
  void ctx.emit(inst, "instance.delete", { instanceName: inst.name, instanceId: inst.id });
  if (ctx.cfg.v1) {
    dropMemory(inst);
    return cleanRowLater(ctx, inst);
  }
  inst.phase = "removing";
  void ctx.emit(inst, "remove.instance", null).then(() => {
    if (ctx.store.get(inst.name) !== inst || !inst.inMemory) return; // reset, server restart, or already done
    dropMemory(inst);
    writeRow(inst, { dbStatus: "close" });
    cleanRowLater(ctx, inst);
  });
}

/** Memory state as connectionState shows it, or undefined once the memory object is gone. */
export const memoryState = (inst: Inst): SimState | undefined => (inst.inMemory ? inst.state : undefined);
