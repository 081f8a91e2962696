/**
 * @module
 * `npm run bench -- --only=fleet`: one scheduled health-check invocation at fleet scale, measured the way an Edge
 * Function is limited: wall time, CPU time and peak RSS of the run, each invocation in a fresh process
 * (`bench/fleet_child.ts`). Tenants 5,000 / 20,000 / 50,000 (quick: 500 / 2,000), on 1 server or spread over 25
 * (every tenant linked to its server in the registry), the servers a stand-in fleet in a process of its own
 * (`bench/fleet_listing_server.ts`: 2.x rows of about 1.3 KB, every instance open).
 *
 *   ours:  the job as it is: one listing per server read as a stream (`listInstances`), one probe budget per run
 *   whole: the same job with the listing read whole (`fetchInstances`: the body as text, then `JSON.parse`), as the
 *          single-run check was before this branch
 *
 * Each size first runs one warm-up invocation (first sight of the tenants writes every tenant's health row); then
 * one invocation of each mode. The seed's method (one `connectionState` per tenant, in sequence) is not run here: it
 * is linear, and the health-check benchmark measures its cost per tenant (bench/RESULTS.md).
 */
import { configEnv } from "../dev/stack.ts";
import type { BenchContext } from "./harness.ts";

/** Options of the fleet benchmark. */
export interface FleetBenchOptions {
  sizes: number[];
  servers: number[];
}

/** One invocation's figures (what `fleet_child.ts` prints). */
export interface Invocation {
  wallMs: number;
  cpuMs: number;
  peakRssMb: number;
  baseRssMb: number;
  status: string;
  checked: number | null;
  calls: Record<string, number> | null;
  error: string | null;
  issues?: unknown[];
  serversDown?: string[];
  servers?: string[];
}

/** One size × server count. */
export interface FleetCase {
  tenants: number;
  servers: number;
  listingBytesPerRow: number;
  warmUp: Invocation;
  ours: Invocation;
  whole: Invocation;
  /** On 25 servers: one shard invocation of the fan-out, the tenants of one server (`bench-s1`). */
  shard?: Invocation;
  /** On 1 server above the shard size: part 0 of `parts` (the coordinator's split of one large server). */
  part?: Invocation & { parts: number };
  /** The fan-out's coordinator (`health_check_shard_tenants` at its default): plan, tick, one pg_net call per shard. */
  coordinator?: Invocation;
}

const PREFIX = "bf-";

async function child(
  envJson: string,
  mode: "stream" | "whole" | "shard" | "coordinator",
  server?: string,
  parts?: number,
): Promise<Invocation> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--no-check",
      new URL("./fleet_child.ts", import.meta.url).pathname,
      envJson,
      mode,
      ...(server ? [server] : []),
      ...(parts ? [String(parts)] : []),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim().split("\n").pop() ?? "";
  if (!out.success || !text.startsWith("{")) {
    throw new Error(`fleet_child (${mode}) failed: ${new TextDecoder().decode(out.stderr).slice(-2000)}`);
  }
  return JSON.parse(text);
}

/** `health_check_shard_tenants`' default: the bench's parts and coordinator use it. */
const SHARD_TENANTS = 5000;

/**
 * One coordinator invocation: the fan-out on (the setting's default) and its shard calls sent to a port that answers
 * 404 at once (the Vault's `project_url` pointed there for the run, then restored), so that no shard runs on the
 * stack's functions meanwhile: what is measured is the coordinator alone, pg_net's queue included.
 */
async function coordinatorRun(sql: BenchContext["sql"], envJson: string, port: number): Promise<Invocation> {
  const [{ url }] = await sql<{ url: string }[]>`
    select decrypted_secret as url from vault.decrypted_secrets where name = 'project_url'`;
  await sql`update maintenance.settings set value = null where key = 'health_check_shard_tenants'`;
  await sql`select vault.update_secret(id, ${`http://127.0.0.1:${port}/nowhere`}) from vault.secrets
    where name = 'project_url'`;
  try {
    return await child(envJson, "coordinator");
  } finally {
    await sql`select vault.update_secret(id, ${url}) from vault.secrets where name = 'project_url'`;
    await sql`update maintenance.settings set value = '0'::jsonb where key = 'health_check_shard_tenants'`;
    await sql`delete from maintenance.health_ticks`;
  }
}

/** Runs the benchmark (on the bench's own stack: it removes every tenant first); returns the section `fleet`. */
export async function benchFleet(ctx: BenchContext, options: FleetBenchOptions) {
  const { sql, info, log } = ctx;
  if (!ctx.exclusive) throw new Error("the fleet benchmark needs the bench's own stack (it checks every tenant)");
  const env = configEnv(info);
  const instancePrefix = "revalya-";
  const apiKey = `bench-fleet-${crypto.randomUUID()}`;
  const port = Number(new URL(info.evolutionUrl).port) + 37;
  const cases: FleetCase[] = [];
  const clear = async () => {
    await sql`delete from public.tenants`;
    for (
      const { name } of await sql<{ name: string }[]>`
      select name from maintenance.evolution_servers where name <> 'default'`
    ) {
      await sql`select maintenance.remove_evolution_server(${name})`;
    }
    await sql`delete from maintenance.alerts`;
  };
  // the single-run figures are of one invocation checking everything: no fan-out (the shard is measured apart)
  await sql`update maintenance.settings set value = '0'::jsonb where key = 'health_check_shard_tenants'`;
  try {
    for (const servers of options.servers) {
      for (const tenants of options.sizes) {
        log(`fleet: ${tenants} tenants on ${servers} server(s)`);
        await clear();
        await sql`select bench.create_tenants(${PREFIX}, 0, ${tenants}, ${instancePrefix}, ${info.webhookBaseUrl})`;
        const proc = new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            "--no-check",
            new URL("./fleet_listing_server.ts", import.meta.url).pathname,
            String(port),
            String(servers),
            String(tenants),
            `${instancePrefix}${PREFIX}`,
            apiKey,
          ],
          stdout: "piped",
          stderr: "inherit",
        }).spawn();
        try {
          const reader = proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
          let line = "";
          while (!line.includes("\n")) {
            const { value, done } = await reader.read();
            if (done) throw new Error("the listing server stopped before it was ready");
            line += value;
          }
          reader.releaseLock();
          proc.stdout.cancel().catch(() => {});
          const ready = JSON.parse(line.split("\n")[0]) as { bytes: number; perRow: number };
          const base = `http://127.0.0.1:${port}`;
          for (let k = 1; k < servers; k++) {
            await sql`select * from maintenance.register_evolution_server(${`bench-s${k}`}, ${`${base}/s${k}`},
              ${apiKey}, 100000)`;
          }
          if (servers > 1) {
            await sql`
              insert into maintenance.tenant_servers (tenant_id, server_id, placed_by)
              select t.id, s.id, 'operator'
              from public.tenants t
              join maintenance.evolution_servers s
                on s.name = 'bench-s' || (substring(t.slug from ${PREFIX.length + 1}::int)::int % ${servers}::int)
              where t.slug like ${PREFIX + "%"}`;
          }
          await sql`analyze public.tenants, public.tenant_integrations, maintenance.tenant_servers`;
          const envJson = JSON.stringify({ ...env, EVOLUTION_API_URL: `${base}/s0`, EVOLUTION_API_KEY: apiKey });
          const warmUp = await child(envJson, "stream");
          const ours = await child(envJson, "stream");
          const whole = await child(envJson, "whole");
          const shard = servers > 1 ? await child(envJson, "shard", "bench-s1") : undefined;
          const parts = Math.ceil(tenants / SHARD_TENANTS);
          const part = servers === 1 && parts > 1
            ? { ...await child(envJson, "shard", "default", parts), parts }
            : undefined;
          const coordinator = tenants > SHARD_TENANTS ? await coordinatorRun(sql, envJson, port) : undefined;
          const measured = [["warm-up", warmUp], ["ours", ours], ["whole", whole]] as Array<[string, Invocation]>;
          if (shard) measured.push(["shard", shard]);
          if (part) measured.push([`part 0 of ${parts}`, part]);
          if (coordinator) measured.push(["coordinator", coordinator]);
          for (const [label, r] of measured) {
            log(
              `  ${label}: ${r.wallMs} ms wall, ${r.cpuMs} ms CPU, peak RSS ${r.peakRssMb} MB (base ${r.baseRssMb} MB), ` +
                `${r.status}, ${r.checked} checked${r.error ? `, error ${r.error}` : ""}` +
                (r.status === "healthy"
                  ? ""
                  : `; ${JSON.stringify({ issues: r.issues, down: r.serversDown, servers: r.servers })}`),
            );
          }
          cases.push({
            tenants,
            servers,
            listingBytesPerRow: ready.perRow,
            warmUp,
            ours,
            whole,
            ...(shard ? { shard } : {}),
            ...(part ? { part } : {}),
            ...(coordinator ? { coordinator } : {}),
          });
        } finally {
          try {
            proc.kill("SIGTERM");
          } catch { /* already gone */ }
          await proc.status;
        }
      }
    }
  } finally {
    await clear().catch(() => {});
    await sql`update maintenance.settings set value = null where key = 'health_check_shard_tenants'`.catch(() => {});
  }
  return { cases };
}
