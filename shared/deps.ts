/**
 * @module
 * The dependencies every job and route receives, built once per process from the configuration. Tests build
 * their own (real local Postgres, the Evolution simulator) and pass them the same way.
 */
import type { Config } from "./config.ts";
import { createSql, type Sql } from "./db.ts";
import { EvolutionClient } from "./evolution/client.ts";
import { createNotifier, type Notifier } from "./alerts/notify.ts";

/** What a job or route needs from the outside world. */
export interface Deps {
  config: Config;
  sql: Sql;
  evolution: EvolutionClient;
  notify: Notifier;
  now: () => Date;
}

/** Builds the process's dependencies from the parsed configuration. */
export function buildDeps(config: Config, overrides: Partial<Deps> = {}): Deps {
  const sql = overrides.sql ?? createSql(config.dbUrl);
  return {
    config,
    sql,
    evolution: overrides.evolution ?? new EvolutionClient(config, { sql }),
    notify: overrides.notify ?? createNotifier(config, { sql }),
    now: overrides.now ?? (() => new Date()),
  };
}
