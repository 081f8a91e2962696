/**
 * @module
 * The buffer through which every Evolution call is logged to `public.api_logs` (`service='whatsapp'`, `event` =
 * operation): rows are written in batches (one multi-row insert), so logging never slows nor fails the caller.
 * One buffer is shared by a client and the clients it makes for other servers.
 */
import type { Sql } from "../db.ts";
import { errorMessage } from "../errors.ts";
import type { EvolutionOperation } from "./types.ts";

/** How `api_logs` rows are buffered. */
export interface LogOptions {
  /** Rows written per insert; a full batch is written at once (default 200). */
  batchSize?: number;
  /** Longest time a row waits in the buffer (default 1,000 ms). */
  intervalMs?: number;
  /** Rows kept while the database is unreachable; older ones are dropped beyond this (default 10,000). */
  maxBuffered?: number;
}

/** One api_logs row of an Evolution call. */
export interface LogRow {
  created_at: string;
  tenant_slug: string | null;
  event: EvolutionOperation;
  status: "success" | "error";
  error_type: string | null;
  response_time: number;
  data: Record<string, unknown>;
}

/** The api_logs buffer, shared by a client and the clients made by `withCredentials`. */
export class LogSink {
  #rows: LogRow[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #chain: Promise<void> = Promise.resolve();
  #dropped = 0;
  readonly #sql: Sql | undefined;
  readonly #batchSize: number;
  readonly #intervalMs: number;
  readonly #maxBuffered: number;

  constructor(sql: Sql | undefined, options: LogOptions) {
    this.#sql = sql;
    this.#batchSize = options.batchSize ?? 200;
    this.#intervalMs = options.intervalMs ?? 1000;
    this.#maxBuffered = options.maxBuffered ?? 10_000;
  }

  push(row: LogRow) {
    if (!this.#sql) return;
    this.#rows.push(row);
    if (this.#rows.length > this.#maxBuffered) {
      const extra = this.#rows.length - this.#maxBuffered;
      this.#rows.splice(0, extra);
      this.#dropped += extra;
    }
    if (this.#rows.length >= this.#batchSize) void this.flush();
    else if (this.#timer === undefined) {
      const timer = setTimeout(() => {
        this.#timer = undefined;
        void this.flush();
      }, this.#intervalMs);
      this.#timer = timer;
      Deno.unrefTimer(timer as unknown as number); // a pending flush never keeps the process (or a test) alive
    }
  }

  /** Writes everything buffered (in batches), and waits for writes already under way. Never throws. */
  flush(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const sql = this.#sql;
    if (!sql || this.#rows.length === 0) return this.#chain;
    const rows = this.#rows.splice(0);
    this.#chain = this.#chain.then(async () => {
      for (let i = 0; i < rows.length; i += this.#batchSize) {
        const batch = rows.slice(i, i + this.#batchSize);
        try {
          await sql`
            insert into public.api_logs (created_at, tenant_slug, service, event, status, error_type, response_time,
              data)
            select r.created_at, r.tenant_slug, 'whatsapp', r.event, r.status, r.error_type, r.response_time, r.data
            from jsonb_to_recordset(${sql.json(batch as never)}) as r(created_at timestamptz, tenant_slug text,
              event text, status text, error_type text, response_time integer, data jsonb)`;
        } catch (error) {
          this.#dropped += batch.length;
          console.error(JSON.stringify({
            level: "warn",
            msg: "Cannot write Evolution call logs to api_logs; rows dropped",
            rows: batch.length,
            droppedTotal: this.#dropped,
            error: errorMessage(error),
          }));
        }
      }
    });
    return this.#chain;
  }
}
