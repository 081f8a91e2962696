/**
 * @module
 * Helpers of the simulator's own tests (tests/evolution_sim_*_test.ts): a scripted webhook receiver, a simulator
 * with compressed clocks, raw HTTP calls, the HTTP control API and polling.
 */
import assert from "node:assert/strict";
import { type Simulator, type SimulatorOptions, type SimVersion, startSimulator } from "../dev/evolution_sim/app.ts";

export interface Received {
  path: string;
  headers: Headers;
  body: Record<string, unknown>;
  /** performance.now() when it arrived. */
  at: number;
}

/** What the receiver answers for one POST: a status (then 200 when the script runs out), maybe after a wait. */
export type Script = number[] | ((got: Received, nth: number) => number | Promise<number>);

/** A local webhook endpoint that records what it gets and answers with the scripted statuses (then 200). */
export function receiver(script: Script = []) {
  const got: Received[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    const r = { path: new URL(req.url).pathname, headers: req.headers, body: await req.json(), at: performance.now() };
    got.push(r);
    const status = Array.isArray(script) ? script.shift() ?? 200 : await script(r, got.length);
    return new Response(null, { status });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    got,
    /** `[event, data.state ?? null]` of everything received so far. */
    events: () => got.map((g) => [g.body.event, (g.body.data as { state?: string } | null)?.state ?? null]),
    close: () => server.shutdown(),
  };
}

/** A simulator whose own clocks run 100× faster (realistic behaviour, compressed time). */
export async function sim(version: SimVersion = "2.3.7", extra: SimulatorOptions = {}): Promise<Simulator> {
  return await startSimulator({ version, timeScale: 0.01, ...extra });
}

export async function call(url: string, method: string, path: string, key: string | null, body?: unknown) {
  const headers: Record<string, string> = {};
  if (key !== null) headers.apikey = key;
  if (body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(url + path, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  // deno-lint-ignore no-explicit-any
  return { status: res.status, body: text ? JSON.parse(text) : null as any };
}

/** Runs `fn` and returns its result with the time it took (ms). */
export async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t0 = performance.now();
  const result = await fn();
  return [result, performance.now() - t0];
}

/** The HTTP control API: `POST /_control/<method>` with the arguments. */
export async function control(s: Simulator, method: string, ...args: unknown[]) {
  const res = await fetch(`${s.url}/_control/${method}`, { method: "POST", body: JSON.stringify(args) });
  return { status: res.status, body: await res.json() };
}

/** Asserts a control call over HTTP succeeds and returns its answer. */
export async function ok(s: Simulator, method: string, ...args: unknown[]) {
  const r = await control(s, method, ...args);
  assert.equal(r.status, 200, `${method}: ${JSON.stringify(r.body)}`);
  return r.body;
}

/** Polls until `pred` holds (or fails after `ms`). */
export async function until(pred: () => boolean | Promise<boolean>, ms = 3000, what = "the condition"): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The usual calls of one instance, with the global key, in the shapes of `version`. */
export function api(s: Simulator, name: string, version: SimVersion = "2.3.7") {
  const k = s.apiKey;
  const v1 = version === "1.8.6";
  return {
    state: () => call(s.url, "GET", `/instance/connectionState/${name}`, k),
    /** The listing's entry for the instance, with `connectionStatus` (1.8: the item's `status`). */
    stored: async (): Promise<Record<string, unknown> | undefined> => {
      const list = (await call(s.url, "GET", "/instance/fetchInstances", k)).body as Array<Record<string, unknown>>;
      if (!v1) return list.find((r) => r.name === name);
      const item = list.map((r) => r.instance as Record<string, unknown>).find((r) => r.instanceName === name);
      return item && { ...item, connectionStatus: item.status };
    },
    one: () => call(s.url, "GET", `/instance/fetchInstances?instanceName=${name}`, k),
    connect: () => call(s.url, "GET", `/instance/connect/${name}`, k),
    restart: () => call(s.url, v1 ? "PUT" : "POST", `/instance/restart/${name}`, k),
    logout: () => call(s.url, "DELETE", `/instance/logout/${name}`, k),
    remove: () => call(s.url, "DELETE", `/instance/delete/${name}`, k),
    probe: () => call(s.url, "POST", `/chat/fetchBusinessProfile/${name}`, k, {}),
    send: (number: string) =>
      call(
        s.url,
        "POST",
        `/message/sendText/${name}`,
        k,
        v1 ? { number, textMessage: { text: "hi" } } : {
          number,
          text: "hi",
        },
      ),
    create: (extra: Record<string, unknown> = {}) =>
      call(s.url, "POST", "/instance/create", k, {
        instanceName: name,
        ...(v1 ? {} : { integration: "WHATSAPP-BAILEYS" }),
        ...extra,
      }),
  };
}

export const VERSIONS: readonly SimVersion[] = ["2.3.7", "2.4.0", "1.8.6"];
