/**
 * @module
 * Request plumbing shared by the routes: the error envelope (§2), the connection-reset answer, body parsing, the
 * instance guard (404 → 401, §1), and the wrapper every API route goes through (count, down, latency, 2.4.0's
 * licence gate, injected faults).
 */
import type { Context } from "hono";
import { REASONS } from "./config.ts";
import { licenseExempt, licenseRequired } from "./shapes.ts";
import type { Ctx, Inst } from "./state.ts";
import type { RouteName } from "./types.ts";

export type Handler = (c: Context) => Response | Promise<Response>;

export function envelope(status: number, message: unknown): Response {
  return Response.json({ status, error: REASONS[status] ?? "Error", response: { message } }, { status });
}

/** A thrown TypeError or Boom: 500 with a string message (no `status` on the thrown value, §2). */
export function stringError(message: string, status = 500): Response {
  return Response.json(
    { status, error: "Internal Server Error", response: { message } },
    { status },
  );
}

/** What a handler reading `waInstances[name].<prop>` answers once the memory object is gone (delete clean-up). */
export const noMemory = (prop: string): Response =>
  stringError(`Cannot read properties of undefined (reading '${prop}')`);

/** Responses the HTTP bridge answers by destroying the socket (a connection reset, i.e. a network error). */
export const RESETS = new WeakSet<Response>();

export function resetResponse(): Response {
  const r = new Response(null, { status: 502 });
  RESETS.add(r);
  return r;
}

export const key = (c: Context): string => c.req.header("apikey") ?? "";

/** Aborted when the client gives up (the bridge passes its socket's close as `gone`). */
export const gone = (c: Context): AbortSignal | undefined => (c.env as { gone?: AbortSignal } | undefined)?.gone;

/** Parses the JSON body; malformed JSON → body-parser style 400 (string message, "Internal Server Error"). */
export async function body(c: Context): Promise<Record<string, unknown> | Response> {
  const text = await c.req.text();
  if (text.trim() === "") return {};
  try {
    const v = JSON.parse(text);
    return v && typeof v === "object" ? v : {};
  } catch (e) {
    return stringError((e as Error).message, 400);
  }
}

/**
 * Instance guard: 404 unless the name is in memory or has a row (a delete still finishing counts), then 401 unless
 * the global key or the instance's own token (and always 401 while an `intermittent401` scenario runs).
 */
export function guard(ctx: Ctx, c: Context): Inst | Response {
  const name = decodeURIComponent(c.req.param("instance") ?? "");
  const inst = ctx.store.get(name);
  if (!inst) return envelope(404, [`The "${name}" instance does not exist`]);
  const k = key(c);
  if ((k !== ctx.apiKey && k !== inst.token) || inst.auth401Until > Date.now()) return envelope(401, "Unauthorized");
  return inst;
}

/** An instance route: the guard, then `fn` with the instance. */
export function withInstance(ctx: Ctx, fn: (c: Context, inst: Inst) => Response | Promise<Response>): Handler {
  return (c) => {
    const inst = guard(ctx, c);
    return inst instanceof Response ? inst : fn(c, inst);
  };
}

/** An instance route with a JSON body: the guard, then the body, then `fn`. */
export function withBody(
  ctx: Ctx,
  fn: (c: Context, inst: Inst, b: Record<string, unknown>) => Response | Promise<Response>,
): Handler {
  return withInstance(ctx, async (c, inst) => {
    const b = await body(c);
    return b instanceof Response ? b : await fn(c, inst, b);
  });
}

/** Wraps a route: counts it, then server-wide behaviour (down, latency, licence gate, faults), then the handler. */
export function makeApi(ctx: Ctx) {
  const { rt } = ctx;
  return (route: RouteName | "notFound", handler: Handler): Handler => async (c) => {
    rt.calls[route] = (rt.calls[route] ?? 0) + 1;
    rt.total++;
    if (rt.down) return resetResponse();
    if (rt.latencyMs > 0) await ctx.clock.sleep(rt.latencyMs);
    if (rt.down) return resetResponse();
    if (ctx.cfg.v24 && !ctx.live.licensed && !licenseExempt(new URL(c.req.url).pathname)) return licenseRequired(ctx);
    const f = rt.faults.find((f) => f.remaining > 0 && (f.route === "*" || f.route === route));
    if (f) {
      f.remaining--;
      switch (f.kind) {
        case "status500":
          return envelope(500, [f.message ?? "Error: internal server error"]);
        case "status401":
          return envelope(401, "Unauthorized");
        case "malformed":
          return new Response('{"status":200,"response":{"mess', {
            status: 200,
            headers: { "content-type": "application/json" },
          });
        case "errorQuirk":
          if (ctx.cfg.v1 && route === "connect") return new Response(null, { status: 200 });
          return Response.json({ error: true, message: "[object Object]" });
        case "reset":
          return resetResponse();
        case "timeout":
          // Hang until the client gives up or the simulator stops.
          await ctx.clock.hang(gone(c));
          return resetResponse();
      }
    }
    return await handler(c);
  };
}
