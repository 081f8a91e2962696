/**
 * @module
 * One health-check invocation in a fresh process, as an Edge Function isolate runs it, for `bench/fleet.ts`: the
 * `health-check` job through `runJob` (every active tenant), then one JSON line: wall time, CPU time (user + system)
 * and peak RSS of the run itself (the kernel's high-water mark, reset just before the run: `/proc/self/clear_refs`),
 * the process's RSS before it, and the run's status and calls.
 *
 *   deno run -A bench/fleet_child.ts <config env as JSON> <stream|whole|shard|coordinator> [server [parts]]
 *
 * `whole`: the listing is read as before this branch (`fetchInstances()`: the whole body, then `JSON.parse`), to
 * compare with today's single-run check; `stream` is the job as it is (`listInstances()`); `shard` is one shard of a
 * fanned-out run: the tenants of `server` in part 0 of `parts` (default 1), as its coordinator's pg_net call would ask;
 * `coordinator` is the scheduled run of a fleet above `health_check_shard_tenants`: it plans and queues the shards.
 */
import process from "node:process";
import { loadConfig } from "../shared/config.ts";
import { createSql } from "../shared/db.ts";
import { buildDeps } from "../shared/deps.ts";
import { createNotifier } from "../shared/alerts/notify.ts";
import { EvolutionClient } from "../shared/evolution/client.ts";
import { healthCheck } from "../shared/jobs/health_check.ts";
import { runJob } from "../shared/jobs/runner.ts";

const [envJson, mode, shardServer, shardParts] = Deno.args;
if (mode === "whole") {
  EvolutionClient.prototype.listInstances = async function (this: EvolutionClient) {
    const all = await this.fetchInstances();
    return Object.assign(all, { total: all.length });
  };
}
const config = loadConfig(JSON.parse(envJson));
const sql = createSql(config.dbUrl);
const deps = buildDeps(config, { sql, notify: createNotifier(config, { sql, channels: [] }) });

function statusKb(field: string): number {
  const m = Deno.readTextFileSync("/proc/self/status").match(new RegExp(`^${field}:\\s+(\\d+) kB`, "m"));
  return m ? Number(m[1]) : NaN;
}

await sql`select 1`; // the connection is up before the clock starts (a warm isolate has its pool)
const baseRssMb = statusKb("VmRSS") / 1024;
Deno.writeTextFileSync("/proc/self/clear_refs", "5"); // the peak restarts from now
const cpu0 = process.cpuUsage();
const t0 = performance.now();
const parts = Number(shardParts ?? 1);
const input = mode === "shard" ? { shard: { tick: crypto.randomUUID(), server: shardServer, part: 0, parts } } : {};
const res = await runJob(deps, healthCheck, { input, trigger: "bench" });
const wallMs = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
const peakRssMb = statusKb("VmHWM") / 1024;
const report = res.report as {
  evolutionCalls?: Record<string, number>;
  tenants?: { checked: number };
  fanout?: { shards?: number; queued?: number };
};
console.log(JSON.stringify({
  wallMs: Math.round(wallMs),
  cpuMs: Math.round((cpu.user + cpu.system) / 1000),
  peakRssMb: Math.round(peakRssMb),
  baseRssMb: Math.round(baseRssMb),
  status: res.status,
  checked: report.tenants?.checked ?? null,
  calls: report.evolutionCalls ?? null,
  fanout: report.fanout ?? null,
  error: (res.report as { error?: string }).error ?? null,
  issues: ((res.report as { issues?: unknown[] }).issues ?? []).slice(0, 2),
  serversDown: ((res.report as { servers?: Array<{ name: string; state: string }> }).servers ?? [])
    .filter((x) => x.state !== "healthy").map((x) => x.name),
  servers: ((res.report as { servers?: Array<{ name: string; tenants: number; instances: number | null }> }).servers ??
    []).map((x) => `${x.name}:${x.tenants}/${x.instances}`),
}));
await sql.end();
Deno.exit(0);
