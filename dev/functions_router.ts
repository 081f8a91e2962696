/**
 * Dev-only stand-in for the Supabase edge runtime: serves every `supabase/functions/<name>/index.ts` at
 * `/functions/v1/<name>` on one port. Each entrypoint is imported as is; its `Deno.serve(handler)` call is
 * captured instead of opening a port, so the very same code runs here and on Supabase. A function whose
 * entrypoint fails to boot answers 503 with the boot error (as the edge runtime does), the others keep serving.
 * `EdgeRuntime.waitUntil` is provided as on Supabase.
 */
import { fromFileUrl, toFileUrl } from "./paths.ts";

type Handler = (req: Request, info?: unknown) => Response | Promise<Response>;

const port = Number(Deno.env.get("FUNCTIONS_PORT") ?? "54321");
const root = fromFileUrl(new URL("../supabase/functions/", import.meta.url));
const handlers = new Map<string, Handler>();
const bootErrors = new Map<string, string>();

// What the edge runtime gives a function besides Deno: `EdgeRuntime.waitUntil(promise)` keeps work going after the
// answer has gone out. Here the process stays up anyway; the promises are tracked so a stop (SIGTERM) lets them
// finish first (for a few seconds, as the runtime lets background work finish before an isolate goes away).
const background = new Set<Promise<unknown>>();
(globalThis as { EdgeRuntime?: unknown }).EdgeRuntime = {
  waitUntil(promise: Promise<unknown>) {
    const tracked = Promise.resolve(promise).catch(() => {}).finally(() => background.delete(tracked));
    background.add(tracked);
  },
};
Deno.addSignalListener("SIGTERM", async () => {
  if (background.size) {
    await Promise.race([Promise.all(background), new Promise((r) => setTimeout(r, 4000))]);
  }
  Deno.exit(0);
});

const realServe = Deno.serve;
let loading = "";
// deno-lint-ignore no-explicit-any
(Deno as any).serve = (...args: any[]) => {
  const handler: Handler = typeof args[0] === "function"
    ? args[0]
    : typeof args[1] === "function"
    ? args[1]
    : args[0].handler;
  handlers.set(loading, handler);
  const finished = new Promise<void>(() => {});
  return {
    finished,
    addr: { hostname: "127.0.0.1", port, transport: "tcp" },
    shutdown: () => Promise.resolve(),
    ref() {},
    unref() {},
  };
};
for await (const entry of Deno.readDir(root)) {
  if (!entry.isDirectory || entry.name.startsWith("_")) continue;
  const index = `${root}${entry.name}/index.ts`;
  try {
    await Deno.stat(index);
  } catch {
    continue;
  }
  loading = entry.name;
  try {
    await import(toFileUrl(index).href);
    if (!handlers.has(entry.name)) bootErrors.set(entry.name, "the entrypoint did not call Deno.serve");
  } catch (error) {
    bootErrors.set(entry.name, error instanceof Error ? `${error.name}: ${error.message}` : String(error));
    console.error(JSON.stringify({ level: "error", fn: entry.name, msg: "boot error", error: String(error) }));
  }
}
Deno.serve = realServe;

const json = (body: unknown, status: number) =>
  new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

realServe({
  hostname: "127.0.0.1",
  port,
  onListen: () => console.log(`functions on :${port}: ${[...handlers.keys()].join(", ")}`),
}, async (req, info) => {
  const url = new URL(req.url);
  if (url.pathname === "/_stack/health") {
    return json({ ok: true, functions: [...handlers.keys()].sort(), bootErrors: Object.fromEntries(bootErrors) }, 200);
  }
  const m = url.pathname.match(/^\/functions\/v1\/([a-z0-9][a-z0-9_-]*)(\/.*)?$/);
  if (!m) return json({ error: { code: "not_found", message: `No function at ${url.pathname}`, details: null } }, 404);
  const [, name, rest = ""] = m;
  const handler = handlers.get(name);
  if (!handler) {
    const boot = bootErrors.get(name);
    return boot
      ? json({ code: "BOOT_ERROR", message: `Function '${name}' failed to start: ${boot}` }, 503)
      : json({ error: { code: "not_found", message: `No function named '${name}'`, details: null } }, 404);
  }
  url.pathname = `/${name}${rest}`;
  const forwarded = new Request(url, req);
  try {
    return await handler(forwarded, info);
  } catch (error) {
    console.error(JSON.stringify({ level: "error", fn: name, msg: "uncaught", error: String(error) }));
    return json({ code: "WORKER_ERROR", message: "Function raised an uncaught exception" }, 500);
  }
});
