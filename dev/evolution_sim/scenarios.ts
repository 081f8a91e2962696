/**
 * @module
 * The scenario library: each control puts one instance into a situation reported against the real server
 * (evolution-foundation/evolution-api issues; README, "Scenario library", says what an operator sees).
 */
import { burstToLimit, endSocket, settle, socketClosed, startSocket, terminalClose } from "./machine.ts";
import { BadInput, type Ctx, type Inst, need } from "./state.ts";
import type { SimulatorControl } from "./types.ts";

function needOpen(ctx: Ctx, name: string): Inst {
  const inst = need(ctx, name);
  if (inst.state !== "open") throw new BadInput(`Instance "${name}" is not open`);
  return inst;
}

type Scenarios = Pick<
  SimulatorControl,
  "frozen" | "staleConnected" | "stream515Then401" | "intermittent401" | "connectingLoop" | "qrLimit"
>;

export function scenarios(ctx: Ctx): Scenarios {
  const { cfg, clock } = ctx;
  /** The QR is scanned once shown; the 515 that follows, the reconnect, `openForMs` open, then the 401. */
  async function pairThenLogout(inst: Inst, openForMs: number): Promise<void> {
    await settle(ctx, inst, (i) => i.socketQrs > 0 || i.state === "close", cfg.firstQrMs + 1_000);
    if (inst.socketQrs === 0) throw new BadInput(`Instance "${inst.name}" showed no QR code to scan`);
    inst.creds = true;
    socketClosed(ctx, inst, 515);
    await settle(ctx, inst, (i) => i.state === "open", cfg.reconnectMs + cfg.openMs + 1_000);
    await clock.sleep(openForMs);
    if (ctx.store.get(inst.name) === inst && inst.state === "open") terminalClose(ctx, inst, 401);
  }

  const self: Scenarios = {
    /**
     * #1153, #2403 (also #1113): listed and connectionState `open`, but the socket is gone and nothing comes out:
     * no webhook at all, probe and sends fail with Connection Closed, logout 500 (1.8: SUCCESS, nothing happens),
     * delete 400 `[object Object]` (2.3.7), restart answers `open` and changes nothing. Only `restartServer()` heals.
     */
    frozen(name) {
      const inst = needOpen(ctx, name);
      inst.dead = "unhealable";
      inst.frozen = true;
    },
    /**
     * #1398: the connection dropped (transiently, so no `close` webhook) and the reconnect died: connectionState
     * `close`, the listing still `open`; restart answers the 200 `[object Object]` quirk; connect reconnects.
     */
    staleConnected(name) {
      const inst = needOpen(ctx, name);
      endSocket(inst);
      inst.loop = null;
      inst.state = "close";
    },
    /**
     * #2498: a fresh pairing (QR shown, then scanned) gets stream error 515, reconnects (connecting, open), and a
     * 401 logs it out `openForMs` later: status.instance, logout.instance, connection.update close 401.
     */
    stream515Then401(name, opts = {}) {
      const inst = need(ctx, name);
      if (inst.creds) throw new BadInput(`Instance "${name}" already has a session: it needs a fresh pairing`);
      if (inst.state === "close") startSocket(ctx, inst, true);
      return pairThenLogout(inst, opts.openForMs ?? cfg.loopOpenForMs);
    },
    /**
     * #2356: every route naming the instance answers 401 "Unauthorized", whatever the key, for `durationMs`
     * (default 60 s × timeScale), then works again. Other instances are not affected.
     */
    intermittent401(name, opts = {}) {
      const inst = need(ctx, name);
      inst.auth401Until = Date.now() + (opts.durationMs ?? cfg.scenarioMs);
    },
    /**
     * #1502 (also #1442): the instance keeps falling back to `connecting`: each new socket times out
     * (`connectTimeoutMs`, 408) and reconnects; only `connection.update{connecting}` webhooks, the listing stays
     * `open`. (2.4.0 treats 408 as terminal, so there the first timeout logs the instance out.)
     */
    connectingLoop(name, opts = {}) {
      const inst = need(ctx, name);
      if (!inst.creds) throw new BadInput(`Instance "${name}" has no session`);
      const cycles = Math.max(1, opts.cycles ?? Infinity);
      inst.loop = { opens: false, reason: 428, remaining: cycles - 1, openForMs: cfg.loopOpenForMs };
      socketClosed(ctx, inst, 428);
    },
    /**
     * Drives a pairing to QRCODE_LIMIT at once, from the accumulated count: QR codes (with Baileys' 408
     * reconnects), then the limit message and `refused` 428; memory `close`, the listing stays `connecting`, and
     * nothing else follows. Returns how many QR codes were shown.
     */
    qrLimit(name) {
      const inst = need(ctx, name);
      if (inst.creds) throw new BadInput(`Instance "${name}" has a session: it shows no QR codes`);
      return burstToLimit(ctx, inst);
    },
  };
  return self;
}
