/**
 * @module
 * The simplest webhook receiver, the bench's baseline for webhook ingestion: `Deno.serve` (as the functions are
 * served), the same postgres.js client as every function (shared/db.ts: at most 2 connections, `prepare: false`),
 * and per request one plain `insert into public.api_logs` of the envelope's event: no token, no envelope checks, no
 * dedup, no receipt, no activity. Run as its own process by bench/webhook.ts:
 *
 *   WEBHOOK_BASELINE_PORT=<port> SUPABASE_DB_URL=<url> deno run -A bench/webhook_baseline.ts
 */
import { createSql } from "../shared/db.ts";

const sql = createSql(Deno.env.get("SUPABASE_DB_URL")!, { application: "bench-webhook-baseline" });
const port = Number(Deno.env.get("WEBHOOK_BASELINE_PORT"));

Deno.serve({ hostname: "127.0.0.1", port, onListen: () => console.log(`baseline on :${port}`) }, async (req) => {
  const m = new URL(req.url).pathname.match(/^\/api\/whatsapp\/webhook\/([a-z0-9-]+)/);
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
