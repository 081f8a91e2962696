/**
 * @module
 * The one postgres.js client per process. `prepare: false` so it works behind Supabase's transaction pooler.
 */
import postgres from "postgres";

/** The tagged-template SQL client type used across the bundle. */
export type Sql = postgres.Sql;

/** Creates the process's SQL client. */
export function createSql(dbUrl: string, options: { max?: number; application?: string } = {}): Sql {
  return postgres(dbUrl, {
    prepare: false,
    max: options.max ?? 5,
    idle_timeout: 20,
    connect_timeout: 10,
    onnotice: () => {},
    connection: { application_name: options.application ?? "canais-maintenance" },
  });
}

/** SQLSTATE of a database error, or undefined. Map errors by this, never by message text. */
export function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown })?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code) ? code : undefined;
}
