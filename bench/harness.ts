/**
 * @module
 * What every benchmark shares: the context it runs in (a stack's database, functions and simulator), the
 * bench-only SQL helpers (`bench/sql/bench.sql`), timing and percentiles, targets, a concurrent writer that
 * records each insert's latency, and the simulator's HTTP control.
 */
import postgres from "postgres";
import { configEnv, type StackInfo } from "../dev/stack.ts";
import { type Config, loadConfig } from "../shared/config.ts";

/** Where a benchmark runs. */
export interface BenchContext {
  info: StackInfo;
  /** A client on the stack's database for setup and measurements. */
  sql: postgres.Sql;
  /** The end of the generated data's period (the report's "now"; the purge's "now"). */
  until: Date;
  /**
   * True on the bench's own throwaway stack: a benchmark may clear tables, reload api_logs wholesale and run jobs
   * unscoped. False on a shared database (the test stack): it only touches its own tenants and period.
   */
  exclusive: boolean;
  /** Progress lines (stderr). */
  log: (line: string) => void;
}

/** A target and whether it was met (`met: null` when this run's size is not the one the target is set for). */
export interface Target {
  name: string;
  target: string;
  value: number | null;
  met: boolean | null;
}

/** Milliseconds since `t0`, to 0.1 ms. */
export function since(t0: number): number {
  return round(performance.now() - t0, 1);
}

/** `x` rounded to `digits` decimals. */
export function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

/** Nearest-rank percentile of `values` (p in 0..100), null when empty. */
export function percentile(values: number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return round(sorted[rank - 1], 2);
}

/** The median of a few timings. */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return round(sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2, 1);
}

/** How many times better `ours` is than `seed`: seed/ours for times (lower is better), ours/seed for rates. */
export function ratio(ours: number | null, seed: number | null, better: "lower" | "higher" = "lower"): number | null {
  if (ours === null || seed === null || ours <= 0 || seed <= 0) return null;
  return round(better === "lower" ? seed / ours : ours / seed, 2);
}

/** A target on a value; `applies` false (another size than the target's) gives `met: null`. */
export function target(
  name: string,
  value: number | null,
  check: { max?: number; min?: number; text: string; applies?: boolean },
): Target {
  const applies = check.applies ?? true;
  let met: boolean | null = null;
  if (applies && value !== null) {
    met = (check.max === undefined || value <= check.max) && (check.min === undefined || value >= check.min);
  }
  return { name, target: check.text, value, met };
}

/** Creates the `bench` schema helpers on the context's database (idempotent). */
export async function installBenchSql(sql: postgres.Sql): Promise<void> {
  await sql.file(new URL("./sql/bench.sql", import.meta.url).pathname);
}

/** The job configuration for the context's stack (Evolution: the stack's simulator). */
export function benchConfig(info: StackInfo, overrides: Record<string, string> = {}): Config {
  return loadConfig({ ...configEnv(info), ...overrides });
}

/** The Evolution simulator's control API over HTTP (`POST /_control/<method>`, `GET /_control/stats`). */
export function simulatorControl(evolutionUrl: string) {
  async function call(method: string, args: unknown[]): Promise<unknown> {
    const res = await fetch(`${evolutionUrl}/_control/${method}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(args),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`simulator control ${method} answered ${res.status}: ${text.slice(0, 200)}`);
    return text ? JSON.parse(text) : null;
  }
  return {
    seedInstances: (list: Array<[string, { state?: "open" | "connecting" | "close" }]>) =>
      call("seedInstances", [list]),
    setLatency: (ms: number) => call("setLatency", [ms]),
    resetStats: () => call("resetStats", []),
    reset: () => call("reset", []),
    async stats(): Promise<{ calls: Record<string, number>; total: number }> {
      const res = await fetch(`${evolutionUrl}/_control/stats`);
      if (!res.ok) throw new Error(`simulator stats answered ${res.status}`);
      return await res.json();
    },
  };
}

/** A running concurrent writer: inserts back to back on its own connection until stopped. */
export interface Writer {
  /** Starts a measurement window: latencies recorded from now on go to a new list. */
  mark(): void;
  /** Stops the writer; returns each window's latencies (ms) and length (ms), in order, and the errors seen. */
  stop(): Promise<{ windows: number[][]; windowMs: number[]; errors: string[] }>;
}

/**
 * Starts a writer on its own connection that records webhook events the way the receiver does
 * (`maintenance.record_webhook_event`: receipt, api_logs row, tenant activity, one statement), back to back,
 * timing each insert.
 */
export function startWriter(dbUrl: string, options: { slug: string; instancePrefix?: string }): Writer {
  const sql = postgres(dbUrl, { max: 1, prepare: false, onnotice: () => {} });
  const windows: number[][] = [[]];
  const starts: number[] = [performance.now()];
  const errors: string[] = [];
  let stopping = false;
  const instance = `${options.instancePrefix ?? "revalya-"}${options.slug}`;
  const loop = (async () => {
    let i = 0;
    while (!stopping) {
      i++;
      const payload = { instance, state: i % 2 ? "open" : "close", seq: i, run: crypto.randomUUID() };
      const t0 = performance.now();
      try {
        await sql`select maintenance.record_webhook_event(${options.slug}, ${instance}, 'connection.update',
          now(), ${sql.json(payload)}, true)`;
        windows[windows.length - 1].push(performance.now() - t0);
      } catch (error) {
        errors.push(error instanceof Error ? error.message : String(error));
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  })();
  return {
    mark() {
      windows.push([]);
      starts.push(performance.now());
    },
    async stop() {
      stopping = true;
      starts.push(performance.now());
      await loop;
      await sql.end();
      const windowMs = windows.map((_, i) => starts[i + 1] - starts[i]);
      return { windows, windowMs, errors: [...new Set(errors)].slice(0, 5) };
    },
  };
}

/** Writer figures of one window: inserts, inserts per second, latency p50/p99/max (ms). */
export function writerFigures(latencies: number[], windowMs: number) {
  return {
    inserts: latencies.length,
    perSec: windowMs > 0 ? Math.round(latencies.length / (windowMs / 1000)) : null,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    max: latencies.length ? round(Math.max(...latencies), 2) : null,
  };
}
