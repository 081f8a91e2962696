/**
 * @module
 * The receivers bench/webhook.ts compares, each in its own process, served the same way (`Deno.serve`, as a
 * function's entrypoint serves its app) with the same postgres.js client (shared/db.ts: at most 2 connections,
 * `prepare: false`):
 *
 * - `ours`: the real `whatsapp-webhook` app (shared/webhook/app.ts), group commit on;
 * - `per-event`: the same app with one statement per event (`maintenance.record_webhook_event`), as before batching;
 * - `baseline`: the simplest receiver: per request one plain `insert into public.api_logs` of the envelope's event;
 *   no token, no envelope checks, no dedup, no receipt, no activity.
 *
 *   WEBHOOK_RECEIVER=ours|per-event|baseline WEBHOOK_RECEIVER_PORT=<port> SUPABASE_DB_URL=… (+ the functions'
 *   environment for ours) deno run -A bench/webhook_receiver.ts
 */
import { createSql } from "../shared/db.ts";
import { loadConfig } from "../shared/config.ts";
import { buildDeps } from "../shared/deps.ts";
import { createWebhookApp } from "../shared/webhook/app.ts";

const mode = Deno.env.get("WEBHOOK_RECEIVER");
const port = Number(Deno.env.get("WEBHOOK_RECEIVER_PORT"));
const serve = (handler: (req: Request) => Response | Promise<Response>) =>
  Deno.serve({ hostname: "127.0.0.1", port, onListen: () => console.log(`${mode} on :${port}`) }, handler);

// the bench holds our stdin open: when it ends (the bench done, killed or interrupted), so do we
(async () => {
  for await (const _ of Deno.stdin.readable) { /* nothing is ever sent */ }
  Deno.exit(0);
})();

if (mode === "ours" || mode === "per-event") {
  const app = createWebhookApp(buildDeps(loadConfig()), { batching: mode === "ours" });
  serve(app.fetch);
} else if (mode === "baseline") {
  const sql = createSql(Deno.env.get("SUPABASE_DB_URL")!, { application: "bench-webhook-baseline" });
  serve(async (req) => {
    const m = new URL(req.url).pathname.match(/\/api\/whatsapp\/webhook\/([a-z0-9-]+)$/);
    if (req.method !== "POST" || !m) return new Response("not found", { status: 404 });
    let body: { event?: string; data?: unknown };
    try {
      body = await req.json();
    } catch {
      return new Response("bad json", { status: 400 });
    }
    await sql`insert into public.api_logs (tenant_slug, service, event, status, data)
      values (${m[1]}, 'whatsapp', ${body.event ?? null}, 'success', ${sql.json((body.data ?? null) as never)})`;
    return Response.json({ ok: true });
  });
} else {
  throw new Error(`WEBHOOK_RECEIVER must be ours, per-event or baseline, not '${mode}'`);
}
