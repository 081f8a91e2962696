/**
 * @module
 * The one postgres.js client per process. `prepare: false` so it works behind Supabase's transaction pooler.
 */
import postgres from "postgres";

/** The tagged-template SQL client type used across the bundle. */
export type Sql = postgres.Sql;

/**
 * Connections one isolate may open. Supabase counts every isolate's connections against the project's limit
 * (the smallest computes allow 60 direct connections, and isolates come and go); two lets a job overlap a query
 * with a write (an audit row, a log flush) without one isolate taking a share that grows with its concurrency.
 */
export const MAX_CONNECTIONS_PER_ISOLATE = 2;

/** Creates the process's SQL client (at most {@link MAX_CONNECTIONS_PER_ISOLATE} connections). */
export function createSql(dbUrl: string, options: { max?: number; application?: string } = {}): Sql {
  return postgres(dbUrl, {
    prepare: false,
    max: Math.min(options.max ?? MAX_CONNECTIONS_PER_ISOLATE, MAX_CONNECTIONS_PER_ISOLATE),
    idle_timeout: 20,
    connect_timeout: 5,
    onnotice: () => {},
    connection: { application_name: options.application ?? "canais-maintenance" },
  });
}

/** SQLSTATE of a database error, or undefined. Map errors by this, never by message text. */
export function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown })?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}

const CONNECTION_LOST = new Set([
  "ECONNRESET",
  "EPIPE",
  "ECONNREFUSED",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "57P01", // terminated by an administrator (pg_terminate_backend, a restart)
  "57P02",
  "57P03",
]);

/** True when `error` says the connection to the database was lost (not a problem with the statement). */
export function isConnectionLost(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return typeof code === "string" && (CONNECTION_LOST.has(code) || /^08[0-9A-Z]{3}$/.test(code));
}

/**
 * Runs an idempotent database call again when the connection it got was found dead (a pooler or database restart,
 * `pg_terminate_backend`): postgres.js only notices a killed idle connection when it next uses it, every idle
 * connection of the pool may be dead, and a fresh connection may meet the same restart, so up to `attempts` tries
 * (default: two per pooled connection, and one more), the later ones after a short pause (10 ms, 20 ms, …) that lets
 * the client see the closed sockets.
 */
export async function retryOnConnectionLoss<T>(
  fn: () => Promise<T>,
  attempts = 2 * MAX_CONNECTIONS_PER_ISOLATE + 1,
): Promise<T> {
  for (let i = 1;; i++) {
    try {
      return await fn();
    } catch (error) {
      if (i >= attempts || !isConnectionLost(error)) throw error;
      if (i > 1) await new Promise((r) => setTimeout(r, 10 * (i - 1)));
    }
  }
}
