/**
 * @module
 * Contract-faithful Evolution API simulator (dev and tests only): the package entry. It plays Evolution 2.3.7 (by
 * default), the 2.4.0 release candidate or 1.8.6 as /work/shared/evolution-contract.md and docs/EVOLUTION.md
 * describe it, never kinder than the real server: a deleted name stays taken until the `remove.instance` delivery
 * and the clean-up end, the stored status is apart from the memory state, transient closes reconnect silently, dead
 * sockets, an accumulating QR count, local `date_time`, the version's retry policy and event list, 2.4.0's licence
 * gate, full-size rows and realistic latencies. README ("Evolution simulator") lists the options and controls.
 *
 * Modules: types (public types), config (per-version settings), clock (timers, local time), state (instances),
 * machine (state machine, delete pipeline), webhooks (delivery), shapes (bodies), http (plumbing), routes_* (per
 * resource), control and scenarios (the control API), and this file (wiring, node:http bridge).
 */
import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { Buffer } from "node:buffer";
import { Hono } from "hono";
import { Clock } from "./clock.ts";
import { resolveConfig } from "./config.ts";
import { controlRoutes, makeControl } from "./control.ts";
import { envelope, makeApi, RESETS } from "./http.ts";
import { endSocket } from "./machine.ts";
import { chatRoutes } from "./routes_chat.ts";
import { configRoutes } from "./routes_config.ts";
import { instanceRoutes } from "./routes_instance.ts";
import { serverRoutes } from "./routes_server.ts";
import type { Ctx, Inst } from "./state.ts";
import type { Simulator, SimulatorOptions } from "./types.ts";
import { Webhooks } from "./webhooks.ts";

export * from "./types.ts";

/** Builds the simulator's Hono app and control without listening (used by {@link startSimulator}). */
export function createSimulator(options: SimulatorOptions & { url?: string } = {}) {
  const cfg = resolveConfig(options);
  const base: Omit<Ctx, "emit"> = {
    cfg,
    live: { ...cfg.start },
    clock: new Clock(),
    store: new Map<string, Inst>(),
    rt: { faults: [], latencyMs: 0, down: false, calls: {}, total: 0, infoFetchedAt: null },
    apiKey: options.apiKey ?? `sim_${crypto.randomUUID().replace(/-/g, "")}`,
    serverId: crypto.randomUUID(),
    self: { url: options.url ?? "", serverUrl: options.serverUrl },
  };
  const hooks = new Webhooks(base);
  const ctx: Ctx = { ...base, emit: (inst, event, data) => hooks.emit(inst, event, data) };
  const control = makeControl(ctx, hooks);
  const api = makeApi(ctx);
  let stopped = false;

  const app = new Hono();
  // The control API comes first: it is never counted, delayed, faulted, gated or taken down.
  controlRoutes(app, control);
  serverRoutes(app, ctx, api);
  instanceRoutes(app, ctx, api);
  configRoutes(app, ctx, api);
  chatRoutes(app, ctx, api);
  // Express's 404 for unknown routes and wrong methods: "Cannot <METHOD> <url-with-query>".
  app.notFound((c) => {
    const u = new URL(c.req.url);
    return api("notFound", () => envelope(404, [`Cannot ${c.req.method} ${u.pathname}${u.search}`]))(c);
  });

  return {
    app,
    control,
    apiKey: ctx.apiKey,
    setUrl(url: string) {
      ctx.self.url = url;
    },
    isDown: () => ctx.rt.down,
    /** Stops timers, aborts deliveries and hanging requests. */
    stop() {
      if (stopped) return;
      stopped = true;
      for (const i of ctx.store.values()) endSocket(i);
      hooks.abortAll(false);
      ctx.clock.stop();
    },
  };
}

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
