/**
 * Dev-only pg_net worker: sends the requests queued by the stand-in `net.http_*` functions, only after their
 * transaction committed (LISTEN is delivered at commit; uncommitted rows are invisible), honours each request's
 * timeout, and writes `net._http_response` as pg_net does. Polls every second as well, so nothing queued while it
 * was down is lost.
 */
import postgres from "postgres";

const dbUrl = Deno.env.get("SUPABASE_DB_URL") ?? "postgresql://postgres:postgres@127.0.0.1:54322/postgres";
const MAX_IN_FLIGHT = 64;
const sql = postgres(dbUrl, {
  max: 4,
  prepare: false,
  onnotice: () => {},
  connection: { application_name: "pg_net_standin" },
});

interface Queued {
  id: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  body: Uint8Array | null;
  timeout_milliseconds: number;
}

let inFlight = 0;
let draining = false;
let again = false;

async function send(req: Queued): Promise<void> {
  const started = Date.now();
  let row: Record<string, unknown>;
  try {
    const res = await fetch(req.url, {
      method: req.method,
      headers: req.headers,
      body: req.body ? new Uint8Array(req.body) : undefined,
      signal: AbortSignal.timeout(req.timeout_milliseconds),
    });
    const content = await res.text();
    row = {
      id: req.id,
      status_code: res.status,
      content_type: res.headers.get("content-type"),
      headers: Object.fromEntries(res.headers),
      content,
      timed_out: false,
      error_msg: null,
    };
  } catch (error) {
    const timedOut = error instanceof DOMException && error.name === "TimeoutError";
    row = {
      id: req.id,
      status_code: null,
      content_type: null,
      headers: null,
      content: null,
      timed_out: timedOut,
      error_msg: timedOut
        ? `Timeout of ${req.timeout_milliseconds} ms reached. Total time: ${Date.now() - started} ms`
        : String((error as Error).message ?? error),
    };
  }
  await sql`insert into net._http_response ${sql(row as never)}`.catch((e) =>
    console.error(JSON.stringify({ level: "error", msg: "cannot store response", id: req.id, error: String(e) }))
  );
}

async function drain(): Promise<void> {
  if (draining) {
    again = true;
    return;
  }
  draining = true;
  try {
    do {
      again = false;
      const room = MAX_IN_FLIGHT - inFlight;
      if (room <= 0) break;
      const rows = await sql<Queued[]>`
        delete from net.http_request_queue
        where id in (select id from net.http_request_queue order by id limit ${room} for update skip locked)
        returning id, method::text as method, url, headers, body, timeout_milliseconds`;
      for (const r of rows) {
        inFlight++;
        send(r).finally(() => {
          inFlight--;
          drain();
        });
      }
      if (rows.length === room) again = true;
    } while (again);
  } catch (error) {
    console.error(JSON.stringify({ level: "error", msg: "drain failed", error: String(error) }));
  } finally {
    draining = false;
  }
}

async function listen(): Promise<void> {
  for (;;) {
    try {
      await sql.listen("pg_net_standin", () => drain(), () => drain());
      return;
    } catch (error) {
      console.error(JSON.stringify({ level: "warn", msg: "listen failed, retrying", error: String(error) }));
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

await listen();
setInterval(drain, 1000);
console.log("pg_net stand-in worker listening");
