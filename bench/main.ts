/**
 * `npm run bench`: each benchmark runs our way and the seed's way in the same run, on the same data, on a throwaway
 * stack (Postgres + pg_cron, functions, pg_net worker, Evolution simulator) that is removed at the end, even on
 * failure. Prints a table; `-- --json` prints ONE JSON object (progress goes to stderr).
 *
 *   npm run bench                          full sizes (~5-10 min): 500/5,000 tenants, 5 M / 10 M rows, 20,000 events
 *   npm run bench -- --quick               small sizes, under a minute in all
 *   npm run --silent bench -- --json       one JSON object on stdout (--silent: no npm banner)
 *   npm run bench -- --only=health,weekly  some of: health, weekly, purge, webhook, status, scheduled, fleet
 *   npm run bench -- --only=fleet          one health-check invocation at 5,000 / 20,000 / 50,000 tenants on 1 and
 *                                          25 servers: wall, CPU, peak RSS (not part of the default run)
 *   npm run bench -- --keep                leave the bench stack running (.local/bench-<base>/stack.json)
 *   npm run bench -- --only=weekly --rows=50000000
 *                                          the recent rows of the weekly report's (and the purge's) data, instead
 *                                          of 5 M (full) or 100,000 (quick)
 *   CANAIS_PORT_BASE=56500 npm run bench   ports base+1..3 (default 55900)
 */
import postgres from "postgres";
import { destroy, profileFromEnv, type StackInfo, start } from "../dev/stack.ts";
import { type BenchContext, installBenchSql, type Target } from "./harness.ts";
import { type Dataset, dropDataset, generateDataset, loadDataset } from "./data.ts";
import { benchHealthCheck } from "./health_check.ts";
import { benchWeeklyReport } from "./weekly_report.ts";
import { benchPurge } from "./purge.ts";
import { benchWebhook } from "./webhook.ts";
import { benchStatusPage } from "./status_page.ts";
import { benchScheduled } from "./scheduled.ts";
import { benchFleet } from "./fleet.ts";

/** Sizes of one bench run. */
export interface BenchSizes {
  health: { sizes: number[]; latencyMs: number };
  data: { tenants: number; recentRows: number };
  webhook: { events: number; tenants: number; concurrency: number };
  scheduled: { latencyMs: number; runs: number };
  /** `--only=fleet` (absent: the quick sizes). */
  fleet?: { sizes: number[]; servers: number[] };
}

/** The issue's sizes. */
export const FULL: BenchSizes = {
  health: { sizes: [500, 5000], latencyMs: 50 },
  data: { tenants: 2000, recentRows: 5_000_000 },
  webhook: { events: 20_000, tenants: 200, concurrency: 16 },
  scheduled: { latencyMs: 2000, runs: 5 },
  fleet: { sizes: [5000, 20_000, 50_000], servers: [1, 25] },
};

/** Under a minute in all. */
export const QUICK: BenchSizes = {
  health: { sizes: [50, 500], latencyMs: 50 },
  data: { tenants: 200, recentRows: 100_000 },
  webhook: { events: 2_000, tenants: 50, concurrency: 16 },
  scheduled: { latencyMs: 500, runs: 3 },
  fleet: { sizes: [500, 2000], servers: [1, 25] },
};

const ALL = ["health", "weekly", "purge", "webhook", "status", "scheduled", "fleet"] as const;
type BenchName = typeof ALL[number];
/** What runs without --only: `fleet` (up to 50,000 tenants, a few minutes) only when asked for. */
const DEFAULT: BenchName[] = ["health", "weekly", "purge", "webhook", "status", "scheduled"];

/** Runs the selected benchmarks on a context; returns the JSON object's sections. */
export async function runBenchmarks(
  ctx: BenchContext,
  sizes: BenchSizes,
  options: { only?: BenchName[]; fullSize: boolean },
): Promise<Record<string, unknown>> {
  const only = new Set(options.only ?? DEFAULT);
  const out: Record<string, unknown> = {};
  const guard = async (key: string, fn: () => Promise<unknown>) => {
    try {
      out[key] = await fn();
    } catch (error) {
      ctx.log(`${key} failed: ${error instanceof Error ? error.stack ?? error.message : error}`);
      out[key] = { error: error instanceof Error ? error.message : String(error) };
    }
  };
  await installBenchSql(ctx.sql);

  if (only.has("health")) {
    await guard("healthCheck", () => benchHealthCheck(ctx, { ...sizes.health }));
  }
  if (only.has("fleet")) {
    await guard("fleet", () => benchFleet(ctx, sizes.fleet ?? QUICK.fleet!));
  }
  if (only.has("status")) {
    // as many tenants as the largest health-check size (5,000 in the full run)
    await guard("statusPage", () => benchStatusPage(ctx, { tenants: Math.max(...sizes.health.sizes) }));
  }
  if (only.has("scheduled")) {
    await guard("scheduled", () => benchScheduled(ctx, sizes.scheduled));
  }
  let data: Dataset | null = null;
  if (only.has("weekly") || only.has("purge") || only.has("webhook")) {
    const withRows = only.has("weekly") || only.has("purge");
    data = await generateDataset(ctx, {
      tenants: sizes.data.tenants,
      recentRows: withRows ? sizes.data.recentRows : 0,
      withExpired: only.has("purge"),
    });
    ctx.log(`data: generated in ${(data.generateMs / 1000).toFixed(1)} s`);
  }
  if (data && only.has("weekly")) {
    const d = data;
    await guard("weeklyReport", async () => {
      const load = await loadDataset(ctx, d, d.recentSince);
      return { ...(await benchWeeklyReport(ctx, d, { fullSize: options.fullSize })), loadMs: load.ms };
    });
  }
  if (data && only.has("webhook")) {
    const d = data;
    await guard("webhook", () =>
      benchWebhook(ctx, {
        ...sizes.webhook,
        tenants: Math.min(sizes.webhook.tenants, d.tenants),
        prefix: d.prefix,
        fullSize: options.fullSize,
      }));
  }
  if (data && only.has("purge")) {
    const d = data;
    await guard("purge", () => benchPurge(ctx, d, { fullSize: options.fullSize }));
  }
  if (data) await dropDataset(ctx, data);
  return out;
}

async function machine(info: StackInfo) {
  const sql = postgres(info.dbUrl, { max: 1, onnotice: () => {} });
  try {
    const [{ version }] = await sql<{ version: string }[]>`select version()`;
    const settings = await sql<{ name: string; setting: string }[]>`
      select name, current_setting(name) as setting from pg_settings
      where name in ('shared_buffers', 'work_mem', 'fsync', 'synchronous_commit', 'max_wal_size')`;
    return {
      nproc: navigator.hardwareConcurrency,
      memoryGiB: Math.round(Deno.systemMemoryInfo().total / 2 ** 30 * 10) / 10,
      os: `${Deno.build.os} ${Deno.osRelease()}`,
      deno: Deno.version.deno,
      postgres: version.split(" ").slice(0, 2).join(" "),
      postgresSettings: Object.fromEntries(
        settings.map((s) => [s.name, s.setting]),
      ),
    };
  } finally {
    await sql.end();
  }
}

const fmt = (v: unknown): string => {
  if (v === null || v === undefined) return "—";
  if (typeof v === "number") return v.toLocaleString("en");
  return String(v);
};

/** The human-readable table of a result object. */
export function renderTable(result: Record<string, unknown>): string {
  const rows: string[][] = [["benchmark", "size", "ours", "seed", "ratio (× better)", "targets"]];
  const lines: string[] = [];
  const targets = (s: { targets?: Target[] }) =>
    (s.targets ?? []).map((t) => `${t.met === null ? "n/a" : t.met ? "met" : "MISSED"}: ${t.name} (${fmt(t.value)})`)
      .join("; ");
  // deno-lint-ignore no-explicit-any
  const get = (k: string) => result[k] as any;
  const h = get("healthCheck");
  if (h?.error) rows.push(["health-check", "", `error: ${h.error}`, "", "", ""]);
  else if (h) {
    for (const s of h.sizes) {
      rows.push([
        "health-check",
        `${fmt(s.tenants)} tenants, ${h.latencyMs} ms/call`,
        `${fmt(s.ours)} ms`,
        `${fmt(s.seed)} ms${s.seedEstimated ? " (estimated)" : ""}`,
        fmt(s.ratio),
        "",
      ]);
      lines.push(
        `health-check ${s.tenants}: Evolution calls ours ${JSON.stringify(s.evolutionCalls.ours)}, seed ${
          s.evolutionCalls.seed ? JSON.stringify(s.evolutionCalls.seed) : "(estimated: 1 connectionState per tenant)"
        }; ours first run ${s.oursFirstRun} ms`,
      );
    }
    rows[rows.length - 1][5] = targets(h);
  }
  const w = get("weeklyReport");
  if (w?.error) rows.push(["weekly report", "", `error: ${w.error}`, "", "", ""]);
  else if (w) {
    rows.push([
      "weekly report (7 d)",
      `${fmt(w.size.rows)} rows / ${fmt(w.size.tenants)} tenants (${fmt(w.size.windowRows)} in window)`,
      `${fmt(w.ours)} ms`,
      `${fmt(w.seed)} ms`,
      fmt(w.ratio),
      targets(w),
    ]);
    lines.push(
      `weekly report: agree: ${w.agree}${
        w.mismatches.length ? ` (${w.mismatches.join("; ")})` : ""
      }; ours = usage_report ${fmt(w.oursParts.usageReportMs)} ms + performance_metrics ${
        fmt(w.oursParts.performanceMetricsMs)
      } ms; seed fetched ${fmt(w.seedRowsFetched)} rows in ${fmt(w.seedPages)} pages`,
    );
    if (w.fromRollups) {
      const r = w.fromRollups;
      lines.push(
        `weekly report from rollups: ${fmt(r.ms)} ms (raw scan side by side ${fmt(r.rawAgainMs)} ms, ${
          fmt(r.ratio)
        }×); identical: ${r.identical}; performance_metrics ${fmt(r.performanceMetricsMs)} ms; refresh of the window ${
          fmt(r.refreshMs)
        } ms (${fmt(r.rollupRows)} hour rows, ${fmt(r.histogramElements)} histogram elements)`,
      );
    }
  }
  const p = get("purge");
  if (p?.error) rows.push(["retention purge", "", `error: ${p.error}`, "", "", ""]);
  else if (p) {
    rows.push([
      "retention purge",
      `${fmt(p.size.rows)} rows, ${fmt(p.size.expired)} expired`,
      `${fmt(p.ours.rowsPerSec)} rows/s (${p.seconds.ours} s)`,
      `${fmt(p.seed.rowsPerSec)} rows/s (${p.seconds.seed} s)`,
      fmt(p.ratio),
      targets(p),
    ]);
    lines.push(
      `purge: concurrent writer (inserts/s, p50/p99 ms): during ours ${fmt(p.writer.ours.perSec)}/s, ${
        fmt(p.writer.ours.p50)
      }/${fmt(p.writer.ours.p99)}; during the seed's ${fmt(p.writer.seed.perSec)}/s, ${fmt(p.writer.seed.p50)}/${
        fmt(p.writer.seed.p99)
      }; idle before ${fmt(p.writer.baselineBeforeOurs.perSec)}/s, ${fmt(p.writer.baselineBeforeOurs.p50)}/${
        fmt(p.writer.baselineBeforeOurs.p99)
      }. Deleted: ours ${fmt(p.ours.deleted)} in ${fmt(p.ours.batches)} batches (kept ${
        fmt(p.keptLatestStates)
      } latest states), seed ${fmt(p.seed.deleted)}`,
    );
    const rt = p.retention;
    if (rt?.partitioned) {
      lines.push(
        `retention: partitioned ${fmt(rt.partitioned.ms)} ms, WAL ${fmt(rt.partitioned.walMB)} MB, writer p99 ${
          fmt(rt.partitioned.writer.p99)
        } ms; batched ${fmt(rt.batched.ms)} ms, ${fmt(rt.batched.walMB)} MB, p99 ${
          fmt(rt.batched.writerP99)
        } ms; one DELETE ${fmt(rt.singleDelete.ms)} ms, ${fmt(rt.singleDelete.walMB)} MB, p99 ${
          fmt(rt.singleDelete.writerP99)
        } ms (time ×${fmt(rt.timeRatio)}, WAL ×${fmt(rt.walRatio)})`,
      );
    }
  }
  const k = get("webhook");
  if (k?.error) rows.push(["webhook ingestion", "", `error: ${k.error}`, "", "", ""]);
  else if (k) {
    rows.push([
      "webhook ingestion",
      `${fmt(k.size.events)} events, concurrency ${k.size.concurrency}`,
      `${fmt(k.ours.eventsPerSec)} ev/s, p50 ${fmt(k.ours.p50)} / p99 ${fmt(k.ours.p99)} ms`,
      `simplest receiver: ${fmt(k.baseline?.eventsPerSec)} ev/s, p50 ${fmt(k.baseline?.p50)} / p99 ${
        fmt(k.baseline?.p99)
      } ms`,
      fmt(k.ratio),
      targets(k),
    ]);
    lines.push(
      `webhook: ${fmt(k.ours.rows)} rows for ${fmt(k.size.events)} events: ${fmt(k.ours.lost)} lost; baseline ${
        fmt(k.baseline?.lost)
      } lost; ours one statement per event ${fmt(k.perEvent?.eventsPerSec)} ev/s (p99 ${
        fmt(k.perEvent?.p99)
      } ms); ours behind the stack's router ${fmt(k.router?.eventsPerSec)} ev/s (p99 ${fmt(k.router?.p99)} ms)`,
    );
  }
  const sp = get("statusPage");
  if (sp?.error) rows.push(["status page", "", `error: ${sp.error}`, "", "", ""]);
  else if (sp) {
    rows.push([
      "status page",
      `${fmt(sp.size.tenants)} tenants, ${fmt(sp.size.stateChanges)} state changes`,
      `${fmt(sp.ours.pageMs)} ms (200 shown, ${sp.ours.statements} statements)`,
      `${fmt(sp.naive.ms)} ms (one history query per tenant)`,
      fmt(sp.ratio),
      targets(sp),
    ]);
    lines.push(
      `status page: ${fmt(sp.ours.pageBytes)} bytes; 2,000 shown ${fmt(sp.ours.page2000Ms)} ms (${
        fmt(sp.ours.page2000Bytes)
      } bytes); search ${fmt(sp.ours.searchMs)} ms`,
    );
  }
  const fl = get("fleet");
  if (fl?.error) rows.push(["fleet health-check", "", `error: ${fl.error}`, "", "", ""]);
  else if (fl) {
    for (const c of fl.cases) {
      rows.push([
        "fleet health-check (1 invocation)",
        `${fmt(c.tenants)} tenants on ${c.servers} server(s), ${c.listingBytesPerRow} B/row`,
        `${fmt(c.ours.wallMs)} ms, CPU ${fmt(c.ours.cpuMs)} ms, peak RSS ${fmt(c.ours.peakRssMb)} MB`,
        `whole listing: ${fmt(c.whole.wallMs)} ms, CPU ${fmt(c.whole.cpuMs)} ms, peak RSS ${fmt(c.whole.peakRssMb)} MB`,
        fmt(
          c.whole.peakRssMb && c.ours.peakRssMb ? Math.round((c.whole.peakRssMb / c.ours.peakRssMb) * 100) / 100 : null,
        ),
        "",
      ]);
    }
  }
  const sc = get("scheduled");
  if (sc?.error) rows.push(["scheduled call", "", `error: ${sc.error}`, "", "", ""]);
  else if (sc) {
    rows.push([
      "request behind a scheduled call",
      `job ~${fmt(2 * sc.size.simulatorLatencyMs)} ms, ${fmt(sc.size.runs)} runs`,
      `${fmt(sc.ours)} ms (202 after ${fmt(sc.answer.oursMs)} ms)`,
      `${fmt(sc.seed)} ms (answer after ${fmt(sc.answer.seedMs)} ms)`,
      fmt(sc.ratio),
      targets(sc),
    ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  const table = rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c])).join(" | ").trimEnd());
  table.splice(1, 0, widths.map((n) => "-".repeat(n)).join("-|-"));
  return [...table, "", ...lines].join("\n");
}

if (import.meta.main) {
  const args = Deno.args;
  const usage = `usage: npm run bench -- [--quick] [--json] [--only=${ALL.join(",")}] [--keep] [--durable] [--rows=N]
  (--rows=N: N recent api_logs rows for weekly and purge, 1,000 to 200,000,000)
  (--durable: Postgres with fsync and synchronous commit on, as on Supabase; default off like the dev stack)
  (use \`npm run --silent bench -- --json\` for stdout with the JSON object alone: npm prints a banner otherwise)`;
  if (args.includes("--help") || args.includes("-h")) {
    console.log(usage);
    Deno.exit(0);
  }
  const valueFlags = ["--only=", "--rows="];
  /** The text after `name` (e.g. `--rows=`) of the first argument that has it, or undefined. */
  const valueOf = (name: string) => args.find((a) => a.startsWith(name))?.slice(name.length);
  const bad = args.filter((a) =>
    !["--quick", "--json", "--keep", "--durable"].includes(a) && !valueFlags.some((f) => a.startsWith(f))
  );
  if (bad.length) {
    console.error(`Unknown argument: ${bad.join(" ")}\n${usage}`);
    Deno.exit(2);
  }
  const json = args.includes("--json");
  const quick = args.includes("--quick");
  const keep = args.includes("--keep");
  const onlyArg = valueOf("--only=");
  const only = onlyArg ? onlyArg.split(",").map((s) => s.trim()) as BenchName[] : undefined;
  const unknown = (only ?? []).filter((n) => !ALL.includes(n));
  if (unknown.length) {
    console.error(`Unknown benchmark in --only: ${unknown.join(", ")} (expected some of ${ALL.join(", ")})`);
    Deno.exit(2);
  }
  const rowsArg = valueOf("--rows=");
  const rows = rowsArg === undefined ? undefined : Number(rowsArg);
  if (rows !== undefined && !(Number.isInteger(rows) && rows >= 1000 && rows <= 200_000_000)) {
    console.error(`--rows must be a whole number from 1000 to 200000000: got ${rowsArg}`);
    Deno.exit(2);
  }
  const env = Deno.env.toObject();
  const profile = profileFromEnv({
    ...env,
    CANAIS_PROFILE: "bench",
    CANAIS_PORT_BASE: env.CANAIS_PORT_BASE ?? "55900",
    CANAIS_DURABLE: args.includes("--durable") ? "1" : env.CANAIS_DURABLE ?? "",
  });
  const log = (line: string) => console.error(`[bench] ${line}`);
  let cleaning = false;
  const cleanup = async () => {
    if (cleaning || keep) return;
    cleaning = true;
    log("removing the bench stack");
    await destroy(profile);
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    Deno.addSignalListener(signal, () => {
      cleanup().finally(() => Deno.exit(130));
    });
  }
  let code = 0;
  const t0 = performance.now();
  try {
    log(`starting a throwaway stack (${profile.name}: db :${profile.dbPort}, functions :${profile.functionsPort})`);
    const info = await start(profile, { fresh: true, log: (s) => log(s) });
    const sql = postgres(info.dbUrl, { max: 2, prepare: false, onnotice: () => {} });
    try {
      const ctx: BenchContext = {
        info,
        sql,
        until: new Date(Math.floor(Date.now() / 1000) * 1000),
        exclusive: true,
        log,
      };
      const base = quick ? QUICK : FULL;
      const sizes = rows === undefined ? base : { ...base, data: { ...base.data, recentRows: rows } };
      const sections = await runBenchmarks(ctx, sizes, { only, fullSize: !quick });
      const result = {
        mode: quick ? "quick" : "full",
        startedAt: new Date(Date.now() - (performance.now() - t0)).toISOString(),
        ...sections,
        machine: await machine(info),
        totalSeconds: Math.round((performance.now() - t0) / 100) / 10,
      };
      if (Object.values(sections).some((s) => (s as { error?: string })?.error)) code = 1;
      if (json) console.log(JSON.stringify(result, null, 2));
      else {
        console.log(renderTable(result));
        console.log(`\n${result.mode} run, ${result.totalSeconds} s; machine ${JSON.stringify(result.machine)}`);
      }
    } finally {
      await sql.end();
    }
  } catch (error) {
    log(`failed: ${error instanceof Error ? error.stack ?? error.message : error}`);
    code = 1;
  } finally {
    await cleanup();
  }
  Deno.exit(code);
}
