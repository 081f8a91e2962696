/**
 * @module
 * The control API for tests (README, "Evolution simulator"): seeding, state changes, Baileys closes, reconnect
 * loops, dead sockets, a process restart, server-wide knobs and faults, stats and the delivery log; in process
 * (`Simulator.control`) and over HTTP (`/_control/*`, never counted, delayed, faulted, gated or taken down).
 */
import type { Hono } from "hono";
import {
  endSocket,
  opened,
  pairNow,
  resumeSocket,
  settle,
  socketClosed,
  startSocket,
  terminalClose,
} from "./machine.ts";
import { outboundMs } from "./routes_server.ts";
import { scenarios } from "./scenarios.ts";
import {
  BadInput,
  type Ctx,
  defaultSettingsV2,
  disconnectionObject,
  type Inst,
  need,
  newInst,
  NotFound,
  profilePicUrl,
  randomJid,
  usedCounts,
  webhookRow,
  writeRow,
} from "./state.ts";
import { FAULT_KINDS, ROUTE_NAMES, type SeedOptions, type SimState, type SimulatorControl } from "./types.ts";
import type { Webhooks } from "./webhooks.ts";

const STATES: readonly SimState[] = ["open", "connecting", "close"];
const DAY = 86_400_000;

function seed(ctx: Ctx, name: string, opts: SeedOptions): Inst {
  const { cfg } = ctx;
  const state = opts.state ?? "close";
  const dbStatus = opts.dbStatus ?? state;
  if (!STATES.includes(state) || !STATES.includes(dbStatus)) throw new BadInput(`Unknown state "${state}"`);
  if (opts.deadSocket && state !== "open") throw new BadInput("A dead socket needs state open");
  const events = opts.webhookEvents ?? [...cfg.events];
  const bad = events.find((e) => !cfg.events.includes(e));
  if (bad) throw new BadInput(`"${bad}" is not an event name of ${cfg.version}`);
  const inst = newInst(name, opts.token ? { token: opts.token } : {});
  inst.state = state;
  inst.dbStatus = dbStatus;
  inst.creds = opts.creds ?? state === "open";
  inst.settings = cfg.v1 ? null : defaultSettingsV2();
  if (inst.creds || state === "open") {
    inst.ownerJid = randomJid();
    inst.profileName = `Sim ${name}`;
    inst.profilePicUrl = profilePicUrl();
    inst.counts = usedCounts(name);
    inst.createdAt = new Date(Date.now() - 90 * DAY).toISOString();
  }
  const last = opts.lastDisconnect !== undefined
    ? opts.lastDisconnect
    : state === "open"
    ? { reasonCode: 401, at: new Date(Date.now() - 30 * DAY).toISOString() }
    : null;
  if (last) {
    const at = last.at ?? new Date().toISOString();
    inst.disconnectionReasonCode = last.reasonCode;
    inst.disconnectionAt = at;
    inst.disconnectionObject = disconnectionObject(last.reasonCode, at, last.reasonCode === 401);
  }
  inst.qrCount = opts.qrCount ?? (state === "connecting" && !inst.creds ? 1 : 0);
  if (inst.qrCount > 0) inst.qrCode = `2@seeded,${name},${inst.qrCount}`;
  if (opts.webhookUrl) {
    inst.webhook = webhookRow(inst, { url: opts.webhookUrl, headers: opts.webhookHeaders ?? null, events });
  }
  if (opts.deadSocket) inst.dead = opts.deadSocket === "unhealable" ? "unhealable" : "healable";
  if (state === "connecting") resumeSocket(ctx, inst);
  return inst;
}

/** A new memory object from the row (a process restart): count 0, no socket, no scenario. */
function reload(ctx: Ctx, old: Inst): Inst | null {
  if (!old.hasRow || old.phase === "cleanup") return null; // its clean-up was running and finishes
  const inst = newInst(old.name, {
    ...Object.fromEntries(
      ([
        "id",
        "token",
        "integration",
        "number",
        "dbStatus",
        "ownerJid",
        "profileName",
        "profilePicUrl",
        "creds",
        "webhook",
        "settings",
        "settingId",
        "createdAt",
        "updatedAt",
        "disconnectionReasonCode",
        "disconnectionAt",
        "disconnectionObject",
        "counts",
        "knownNumbers",
      ] as const).map((k) => [k, old[k]]),
    ),
  });
  // 1.8 (DEL_TEMP_INSTANCES) deletes instances with no session; 2.3.7 reconnects those stored open/connecting.
  if (ctx.cfg.v1 && !inst.creds) return null;
  if (ctx.cfg.v1 || inst.dbStatus !== "close") startSocket(ctx, inst, true);
  return inst;
}

export function makeControl(ctx: Ctx, hooks: Webhooks): SimulatorControl {
  const { cfg, rt, store, clock } = ctx;
  const control: SimulatorControl = {
    reset() {
      for (const i of store.values()) endSocket(i);
      store.clear();
      Object.assign(rt, { faults: [], latencyMs: 0, down: false, calls: {}, total: 0, infoFetchedAt: null });
      hooks.abortAll(true);
      clock.renew();
      Object.assign(ctx.live, cfg.start);
    },
    seedInstance(name, opts = {}) {
      const old = store.get(name);
      if (old) endSocket(old);
      store.set(name, seed(ctx, name, opts));
    },
    seedInstances(list) {
      for (const [name, opts] of list) control.seedInstance(name, opts);
    },
    setState(name, state, opts = {}) {
      const inst = need(ctx, name);
      if (!STATES.includes(state)) throw new BadInput(`Unknown state "${state}"`);
      if (state === "close") {
        const reason = opts.statusReason ?? 401;
        if (!cfg.terminal.has(reason)) {
          throw new BadInput(
            `${reason} is not a terminal close on ${cfg.version}: use disconnect() for a transient one`,
          );
        }
        return terminalClose(ctx, inst, reason);
      }
      endSocket(inst);
      inst.loop = null;
      inst.dead = false;
      if (state === "open") {
        inst.creds = true;
        return opened(ctx, inst);
      }
      // A socket stuck connecting: no QR, no open.
      inst.state = "connecting";
      writeRow(inst, { dbStatus: "connecting" });
      void ctx.emit(inst, "connection.update", {
        instance: inst.name,
        state: "connecting",
        statusReason: opts.statusReason ?? 200,
      });
    },
    scan(name) {
      const inst = need(ctx, name);
      if (inst.creds) throw new BadInput(`Instance "${name}" already has a session: there is no QR to scan`);
      pairNow(ctx, inst);
    },
    enterPairingCode(name, code) {
      const inst = need(ctx, name);
      if (inst.creds) throw new BadInput(`Instance "${name}" already has a session: there is no code to enter`);
      if (!inst.pairingCode || inst.state !== "connecting") {
        throw new BadInput(`Instance "${name}" shows no pairing code: connect it with ?number=<digits> first`);
      }
      const typed = typeof code === "string" ? code.replace(/-/g, "").toUpperCase() : "";
      if (typed !== inst.pairingCode) throw new BadInput(`Wrong pairing code for instance "${name}"`);
      pairNow(ctx, inst);
    },
    // Not async: a bad argument throws at once (a caller that does not await still sees it).
    disconnect(name, statusReason = 401) {
      const inst = need(ctx, name);
      if (inst.state === "close" && !inst.socket) throw new BadInput(`Instance "${name}" has no socket to close`);
      if (cfg.terminal.has(statusReason)) return Promise.resolve(terminalClose(ctx, inst, statusReason));
      socketClosed(ctx, inst, statusReason);
      const maxMs = cfg.reconnectMs + cfg.openMs + cfg.firstQrMs + 1_000;
      return settle(ctx, inst, (i) => i.state === "open" || i.socketQrs > 0 || !i.socket, maxMs);
    },
    reconnectLoop(name, opts = {}) {
      const inst = need(ctx, name);
      if (!inst.creds) throw new BadInput(`Instance "${name}" has no session: a reconnect would only show QR codes`);
      const reason = opts.reason ?? 428;
      if (cfg.terminal.has(reason)) throw new BadInput(`${reason} is terminal on ${cfg.version}`);
      const cycles = Math.max(1, opts.cycles ?? Infinity);
      inst.loop = {
        opens: opts.opens ?? true,
        reason,
        remaining: cycles - 1,
        openForMs: opts.openForMs ?? cfg.loopOpenForMs,
      };
      socketClosed(ctx, inst, reason);
    },
    stopLoop(name) {
      const inst = need(ctx, name);
      inst.loop = null;
      if (inst.state !== "open" && inst.creds) startSocket(ctx, inst, false);
    },
    killSocket(name, opts = {}) {
      const inst = need(ctx, name);
      if (inst.state !== "open") throw new BadInput(`Instance "${name}" is not open`);
      inst.dead = opts.healable === false ? "unhealable" : "healable";
    },
    async restartServer(opts = {}) {
      rt.down = true;
      hooks.abortAll(false);
      for (const i of store.values()) endSocket(i);
      await clock.sleep(opts.downMs ?? cfg.bootMs);
      for (const [name, old] of [...store]) {
        const inst = reload(ctx, old);
        if (inst) store.set(name, inst);
        else store.delete(name);
      }
      rt.infoFetchedAt = null;
      rt.down = false;
    },
    activateLicense() {
      ctx.live.licensed = true;
    },
    setCleanupDelay(ms) {
      ctx.live.cleanupDelayMs = Math.max(0, Number(ms) || 0);
    },
    setUtcOffset(minutes) {
      if (typeof minutes !== "number" || !Number.isFinite(minutes)) throw new BadInput("minutes must be a number");
      ctx.live.utcOffsetMinutes = minutes;
    },
    setOutbound(mode, ms) {
      if (!["ok", "slow", "refused", "dropped"].includes(mode)) {
        throw new BadInput(`Unknown outbound mode "${mode}": use ok, slow, refused, dropped`);
      }
      ctx.live.outbound = mode;
      ctx.live.outboundMs = outboundMs(ctx, mode, ms);
    },
    setLatency(ms) {
      rt.latencyMs = Math.max(0, Number(ms) || 0);
    },
    fault(f) {
      if (!FAULT_KINDS.includes(f.kind)) {
        throw new BadInput(`Unknown fault kind "${f.kind}": use ${FAULT_KINDS.join(", ")}`);
      }
      const route = f.route ?? "*";
      if (route !== "*" && !(ROUTE_NAMES as readonly string[]).includes(route)) {
        throw new BadInput(`Unknown route "${route}": use * or ${ROUTE_NAMES.join(", ")}`);
      }
      rt.faults.push({
        route,
        kind: f.kind,
        remaining: f.count ?? Infinity,
        ...(typeof f.message === "string" ? { message: f.message } : {}),
      });
    },
    clearFaults() {
      rt.faults = [];
    },
    setDown(d) {
      rt.down = !!d;
    },
    stats() {
      return { calls: { ...rt.calls }, total: rt.total };
    },
    resetStats() {
      rt.calls = {};
      rt.total = 0;
    },
    instances() {
      return [...store.values()].map((i) => ({
        name: i.name,
        state: i.inMemory ? i.state : null,
        dbStatus: i.hasRow ? (cfg.v1 ? i.state : i.dbStatus) : null,
        phase: i.phase,
        token: i.token,
        qrCount: i.qrCount,
        deadSocket: i.dead,
        frozen: i.frozen,
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
      return hooks.deliveries();
    },
    drain() {
      return hooks.drain();
    },
    ...scenarios(ctx),
  };
  return control;
}

/** The control API over HTTP: `GET /_control/stats|instances|deliveries`, `POST /_control/<method>` `[args…]`. */
export function controlRoutes(app: Hono, control: SimulatorControl): void {
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
      return c.json(result === undefined ? { ok: true } : typeof result === "object" ? result as object : { result });
    } catch (e) {
      return c.json({ error: (e as Error).message }, e instanceof NotFound ? 404 : 400);
    }
  });
}
