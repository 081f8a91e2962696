/**
 * @module
 * Group commit for the webhook receiver: the accepted events of concurrent requests are written in ONE statement
 * (`maintenance.record_webhook_events`, a jsonb array in, one `is_new` per event out, in order) instead of one
 * `maintenance.record_webhook_event` call each.
 *
 * No timer: an event is written at once when fewer than `maxInFlight` statements of this recorder are in flight (a
 * lone event costs what it did before, one call of the single-event function); otherwise the events that arrive wait
 * for one to end and then go together in the next statement (at most {@link BATCH_MAX_EVENTS} events or {@link BATCH_MAX_BYTES} of
 * request bodies per statement; more makes more statements). So the batch grows with the load by itself and an idle
 * receiver adds no wait. Each caller's promise settles only after the statement holding its event has returned,
 * i.e. committed (each statement is its own transaction), so an answered 200 is on disk as far as Postgres says.
 *
 * A batch that fails (other than by a lost connection, which is retried on a new one as before: the receipts make a
 * redelivery a no-op) is written again one event per call, so one bad event fails alone and the others are recorded.
 */
import { retryOnConnectionLoss, type Sql } from "../db.ts";

/** Events per statement at most. */
export const BATCH_MAX_EVENTS = 256;
/** Request-body bytes per statement at most (an event alone may be larger: the receiver caps a body at 1 MB). */
export const BATCH_MAX_BYTES = 2 * 1024 * 1024;

/** One accepted event, as `maintenance.record_webhook_event` takes it. */
export interface WebhookEvent {
  slug: string;
  instance: string;
  event: string;
  /** The envelope's date_time (dedup key only), or null. */
  at: Date | null;
  /** What api_logs.data gets (store only), or null. */
  payload: unknown;
  /** Whether the event gets a receipt and an api_logs row (connection and lifecycle events). */
  store: boolean;
  /** Its request body's size, for the per-statement cap. */
  bytes: number;
}

/** Options of a recorder (tests and the bench set them; the receiver uses the defaults). */
export interface RecorderOptions {
  maxEvents?: number;
  maxBytes?: number;
  /** Statements of this recorder in flight at once (default 2, the pool's size: one commits while the next runs). */
  maxInFlight?: number;
  /** false: every event in its own statement, as before batching (the bench's comparison). */
  batching?: boolean;
}

/** Counters of a recorder. */
export interface RecorderStats {
  statements: number;
  batched: number;
  fallbacks: number;
  largest: number;
}

interface Pending {
  event: WebhookEvent;
  resolve: (isNew: boolean) => void;
  reject: (error: unknown) => void;
}

/** A recorder: `record(event)` resolves to `is_new` once the event's statement has committed. */
export interface Recorder {
  record(event: WebhookEvent): Promise<boolean>;
  stats: RecorderStats;
}

/** Creates a recorder writing through `sql`. */
export function createRecorder(sql: Sql, options: RecorderOptions = {}): Recorder {
  const maxEvents = options.batching === false ? 1 : Math.max(1, options.maxEvents ?? BATCH_MAX_EVENTS);
  const maxBytes = options.maxBytes ?? BATCH_MAX_BYTES;
  const maxInFlight = options.batching === false ? Infinity : Math.max(1, options.maxInFlight ?? 2);
  const queue: Pending[] = [];
  let head = 0;
  let inFlight = 0;
  let scheduled = false;
  const stats: RecorderStats = { statements: 0, batched: 0, fallbacks: 0, largest: 0 };

  const take = (): Pending[] => {
    const batch: Pending[] = [];
    let bytes = 0;
    while (head < queue.length && batch.length < maxEvents) {
      const next = queue[head];
      if (batch.length > 0 && bytes + next.event.bytes > maxBytes) break;
      bytes += next.event.bytes;
      batch.push(next);
      head++;
    }
    if (head === queue.length) {
      queue.length = 0;
      head = 0;
    }
    return batch;
  };

  const pump = () => {
    scheduled = false;
    while (inFlight < maxInFlight && head < queue.length) {
      const batch = take();
      inFlight++;
      write(batch).finally(() => {
        inFlight--;
        pump();
      });
    }
  };

  const write = async (batch: Pending[]) => {
    stats.statements++;
    stats.largest = Math.max(stats.largest, batch.length);
    if (batch.length === 1) return await writeOne(batch[0]);
    stats.batched += batch.length;
    let results: boolean[];
    try {
      results = await writeMany(sql, batch.map((p) => p.event));
    } catch {
      // isolate the bad event(s): each one alone, its own answer
      stats.fallbacks++;
      await Promise.all(batch.map(writeOne));
      return;
    }
    batch.forEach((p, i) => p.resolve(results[i]));
  };

  const writeOne = async (p: Pending) => {
    try {
      p.resolve(await writeSingle(sql, p.event));
    } catch (error) {
      p.reject(error);
    }
  };

  return {
    stats,
    record(event) {
      return new Promise<boolean>((resolve, reject) => {
        queue.push({ event, resolve, reject });
        // the events of the same turn go together; nothing waits for a timer
        if (!scheduled && inFlight < maxInFlight) {
          scheduled = true;
          queueMicrotask(pump);
        }
      });
    },
  };
}

/** One event, one call of `maintenance.record_webhook_event` (idempotent: retried once on a new connection). */
export async function writeSingle(sql: Sql, e: WebhookEvent): Promise<boolean> {
  const [row] = await retryOnConnectionLoss(() =>
    sql<{ is_new: boolean }[]>`
      select maintenance.record_webhook_event(${e.slug}, ${e.instance}, ${e.event}, ${e.at},
        ${e.payload === null ? null : sql.json(e.payload as never)}, ${e.store}) as is_new`
  );
  return row.is_new;
}

/** Events in one call of `maintenance.record_webhook_events`; `is_new` per event, in order. */
export async function writeMany(sql: Sql, events: WebhookEvent[]): Promise<boolean[]> {
  const arg = events.map((e) => ({
    slug: e.slug,
    instance: e.instance,
    event: e.event,
    at: e.at ? e.at.toISOString() : null,
    payload: e.payload,
    store: e.store,
  }));
  const rows = await retryOnConnectionLoss(() =>
    sql<{ ord: number; is_new: boolean }[]>`
      select ord, is_new from maintenance.record_webhook_events(${sql.json(arg as never)}) order by ord`
  );
  if (rows.length !== events.length) {
    throw new Error(`record_webhook_events returned ${rows.length} rows for ${events.length} events`);
  }
  return rows.map((r) => r.is_new);
}
