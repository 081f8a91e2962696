// The fanned-out health check (issue 16 item 4) on the real stack: with `health_check_shard_tenants` set low, a
// full scheduled run becomes a coordinator that queues one pg_net call per shard (per server, ceil(tenants / shard
// size) parts) to health-check through the functions router; each shard runs once and records its tenants; the
// tick has one overall result; server B down raises evolution_down:B from B's own shard; a shard that cannot run
// (its lease held) is reported missed by the next tick.
import assert from "node:assert/strict";
import { createTenant, followScheduledCall, testDeps, testSql, uniqueSlug, waitFor } from "./_helpers.ts";
import { type Simulator, startSimulator } from "../dev/evolution_sim/app.ts";
import { healthCheck } from "../shared/jobs/health_check.ts";
import { runJob } from "../shared/jobs/runner.ts";

const sql = () => testSql();

interface Server {
  name: string;
  sim: Simulator;
  slugs: string[];
  ids: string[];
}

async function server(prefix: string, n: number): Promise<Server> {
  const sim = await startSimulator({ port: 0 });
  const name = uniqueSlug(prefix);
  await sql()`select * from maintenance.register_evolution_server(${name}, ${sim.url}, ${sim.apiKey})`;
  const tenants = await Promise.all(Array.from({ length: n }, () => createTenant({ prefix })));
  for (const t of tenants) {
    await sql()`select * from maintenance.link_tenant_server(${t.tenantId}, ${sim.url}, null, null, 'operator')`;
    sim.control.seedInstance(`revalya-${t.slug}`, { state: "open" });
  }
  return { name, sim, slugs: tenants.map((t) => t.slug), ids: tenants.map((t) => t.tenantId) };
}

type ShardRow = { server: string; part: number; parts: number; state: string; run_id: string | null; status: string };

async function shardsOf(tick: string): Promise<ShardRow[]> {
  return await sql()<ShardRow[]>`
    select server, part, parts, state, run_id::text as run_id, status from maintenance.health_shards
    where tick_id = ${tick} order by server, part`;
}

/** Every shard of the tick done (or, for those named, skipped on their held lease). */
async function settled(tick: string, held: Array<{ server: string; part: number }> = []): Promise<ShardRow[]> {
  return await waitFor(`the shards of tick ${tick}`, async () => {
    const rows = await shardsOf(tick);
    const open = rows.filter((r) =>
      r.state !== "done" && !held.some((h) => h.server === r.server && h.part === r.part)
    );
    if (open.length) return null;
    for (const h of held) {
      const [s] = await sql()<{ n: number }[]>`
        select count(*)::int as n from maintenance.job_runs where job = 'health-check' and status = 'skipped'
          and input -> 'shard' ->> 'tick' = ${tick} and input -> 'shard' ->> 'server' = ${h.server}
          and (input -> 'shard' ->> 'part')::int = ${h.part}`;
      if (!s.n) return null;
    }
    return rows;
  }, 90_000);
}

/** One scheduled tick, as pg_cron makes it: maintenance.invoke_function through pg_net to the functions router. */
async function scheduledTick(): Promise<{ tick: string; report: Record<string, unknown> }> {
  const [{ id }] = await sql()<{ id: string }[]>`select maintenance.invoke_function('health-check', '{}') as id`;
  const { run, runId } = await followScheduledCall(id, "health-check");
  const report = run.report as Record<string, unknown>;
  assert.equal(report.scope, "fanout", JSON.stringify(report).slice(0, 500));
  return { tick: runId, report };
}

Deno.test("a full scheduled health check of a fleet above the shard size fans out per server and part through pg_net", async () => {
  const [{ n: others }] = await sql()<{ n: number }[]>`
    select count(*)::int as n from public.tenants where coalesce(is_active, true)`;
  // small enough that A and B each take two parts, large enough that the other tenants take a handful of shards
  const shardSize = Math.max(3, Math.ceil(others / 6));
  const [{ enabled }] = await sql()<{ enabled: boolean }[]>`
    select enabled from maintenance.scheduled_jobs where job = 'health-check'`;
  // the stack's own schedule stays out of the way (its coordinator would mark this test's shards missed)
  await sql()`update maintenance.scheduled_jobs set enabled = false where job = 'health-check'`;
  await waitFor("no other health-check run", async () => {
    const [r] = await sql()<{ n: number }[]>`
      select count(*)::int as n from maintenance.job_leases where job like 'health-check%' and expires_at > now()`;
    return r.n === 0 || null;
  }, 60_000);
  const servers: Server[] = [];
  let heldLease: string | null = null;
  try {
    const a = await server("fo-a", shardSize + 1);
    servers.push(a);
    const b = await server("fo-b", shardSize + 1);
    servers.push(b);
    await sql()`update maintenance.settings set value = ${
      sql().json(shardSize)
    } where key = 'health_check_shard_tenants'`;

    // 1. a tick: each shard runs once, both servers' tenants are recorded, one overall result
    const t1 = await scheduledTick();
    const rows1 = await settled(t1.tick);
    for (const s of [a, b]) {
      const mine = rows1.filter((r) => r.server === s.name);
      assert.deepEqual(mine.map((r) => [r.part, r.parts]), [[0, 2], [1, 2]], `${s.name} is planned in two parts`);
    }
    const runs = await sql()<{ server: string; part: number; n: number }[]>`
      select input -> 'shard' ->> 'server' as server, (input -> 'shard' ->> 'part')::int as part, count(*)::int as n
      from maintenance.job_runs where job = 'health-check' and input -> 'shard' ->> 'tick' = ${t1.tick}
      group by 1, 2`;
    assert.equal(runs.length, rows1.length, "every planned shard ran");
    assert.ok(runs.every((r) => r.n === 1), "each shard ran once");
    const shardRuns = rows1.map((r) => r.run_id);
    const recorded = await sql()<{ tenant_id: string; state: string }[]>`
      select tenant_id::text, state from maintenance.tenant_health
      where tenant_id = any (${[...a.ids, ...b.ids]}::uuid[]) and last_run_id::text = any (${shardRuns}::text[])`;
    assert.equal(recorded.length, a.ids.length + b.ids.length, "every tenant of A and B was checked by a shard");
    assert.ok(recorded.every((r) => r.state === "healthy"));
    const [status1] = await sql()<{ planned: number; done: number; missed: number; pending: number }[]>`
      select planned, done, missed, pending from maintenance.health_tick_status where tick_id = ${t1.tick}`;
    assert.deepEqual({ ...status1 }, { planned: rows1.length, done: rows1.length, missed: 0, pending: 0 });
    // the job's last run, as the status page and the dead-man check read it, is the tick (not one of its shards)
    const [job1] = await sql()<{ last_run_at: Date; last_run_status: string }[]>`
      select last_run_at, last_run_status from maintenance.job_health() where job = 'health-check'`;
    const [coord1] = await sql()<
      { started_at: Date }[]
    >`select started_at from maintenance.job_runs where id = ${t1.tick}`;
    const [tick1] = await sql()<{ status: string }[]>`
      select status from maintenance.health_tick_status where tick_id = ${t1.tick}`;
    assert.equal(job1.last_run_at.getTime(), coord1.started_at.getTime(), "the last run is the coordinator's");
    assert.equal(job1.last_run_status, tick1.status, "with the tick's overall status");
    // each server's row on the dashboard is its shard's view; a part keeps its own rows but counts the whole listing
    const dash1 = await sql()<{ name: string; state: string; checked_by_run: string; instances_listed: number }[]>`
      select name, state, checked_by_run::text, instances_listed from maintenance.dashboard_servers
      where name = any (${[a.name, b.name]}::text[]) order by name`;
    assert.deepEqual(dash1.map((d) => [d.name, d.state, d.instances_listed]), [
      [a.name, "healthy", a.ids.length],
      [b.name, "healthy", b.ids.length],
    ]);
    for (const d of dash1) {
      assert.ok(
        rows1.some((r) => r.server === d.name && r.run_id === d.checked_by_run),
        `${d.name}: seen by its shard`,
      );
    }

    // 2. server B down: evolution_down:B, raised by B's own shard (part 0)
    await b.sim.close();
    const t2 = await scheduledTick();
    const rows2 = await settled(t2.tick);
    const [down] = await sql()<{ last_run_id: string }[]>`
      select last_run_id::text from maintenance.alerts where status = 'firing' and fingerprint = ${
      "evolution_down:" + b.name
    }`;
    assert.ok(down, "evolution_down:B fires");
    const bPart0 = rows2.find((r) => r.server === b.name && r.part === 0)!;
    assert.equal(down.last_run_id, bPart0.run_id, "raised by B's shard");
    const [aDown] = await sql()<{ n: number }[]>`
      select count(*)::int as n from maintenance.alerts where status = 'firing' and fingerprint = ${
      "evolution_down:" + a.name
    }`;
    assert.equal(aDown.n, 0, "A is not down");
    const [status2] = await sql()<{ status: string }[]>`
      select status from maintenance.health_tick_status where tick_id = ${t2.tick}`;
    assert.equal(status2.status, "unhealthy", "the tick's result is its worst shard's");
    const [dashB] = await sql()<{ state: string; checked_by_run: string; down_alert: string }[]>`
      select state, checked_by_run::text, down_alert from maintenance.dashboard_servers where name = ${b.name}`;
    assert.equal(dashB.state, "unhealthy", "the dashboard shows B down, from this tick's shard");
    assert.ok(rows2.some((r) => r.server === b.name && r.run_id === dashB.checked_by_run));
    assert.equal(dashB.down_alert, `evolution_down:${b.name}`);
    const [job2] = await sql()<{ last_run_status: string }[]>`
      select last_run_status from maintenance.job_health() where job = 'health-check'`;
    assert.equal(job2.last_run_status, "unhealthy", "the status page's job row is the tick's result");

    // 3. A's part 1 cannot run (its lease is held): the next tick reports it missed, once
    heldLease = `health-check:shard:${a.name}:1`;
    await sql()`
      insert into maintenance.job_leases (job, run_id, acquired_at, expires_at)
      values (${heldLease}, gen_random_uuid(), now(), now() + interval '10 minutes')`;
    const t3 = await scheduledTick();
    await settled(t3.tick, [{ server: a.name, part: 1 }]);
    await sql()`delete from maintenance.job_leases where job = ${heldLease}`;
    heldLease = null;
    const t4 = await scheduledTick();
    const missed = (t4.report.fanout as { missed: Array<{ tick: string; server: string; part: number }> }).missed;
    assert.deepEqual(missed.map((m) => ({ ...m })), [{ tick: t3.tick, server: a.name, part: 1, parts: 2 }]);
    assert.equal(t4.report.overall_status === "healthy", false, "a missed shard is not healthy");
    const [status3] = await sql()<{ missed: number; status: string }[]>`
      select missed, status from maintenance.health_tick_status where tick_id = ${t3.tick}`;
    assert.equal(status3.missed, 1);
    assert.notEqual(status3.status, "healthy");
    const [coord4] = await sql()<
      { started_at: Date }[]
    >`select started_at from maintenance.job_runs where id = ${t4.tick}`;
    const [job3] = await sql()<{ last_run_status: string; last_run_error: string }[]>`
      select last_run_status, last_run_error from maintenance.job_health(${new Date(coord4.started_at.getTime() - 1)})
      where job = 'health-check'`;
    assert.equal(job3.last_run_status, status3.status, "the missed tick, as the job's last run before the next");
    assert.match(job3.last_run_error, /^1 of \d+ shard\(s\) of this tick missed$/);
    await settled(t4.tick);
    // told once: the tick after does not report it again
    const t5 = await runJob(testDeps(), healthCheck, { input: {}, trigger: "test" });
    assert.equal((t5.report.fanout as { missed: unknown[] }).missed.length, 0);
    await settled(t5.runId);
  } finally {
    if (heldLease) await sql()`delete from maintenance.job_leases where job = ${heldLease}`;
    await sql()`update maintenance.settings set value = null where key = 'health_check_shard_tenants'`;
    await sql()`update maintenance.scheduled_jobs set enabled = ${enabled} where job = 'health-check'`;
    const slugs = servers.flatMap((s) => s.slugs);
    await sql()`delete from public.tenants where slug = any (${slugs}::text[])`;
    for (const s of servers) {
      await sql()`select maintenance.remove_evolution_server(${s.name})`.catch(() => {});
      await sql()`delete from maintenance.alerts where fingerprint like ${"%:" + s.name}`.catch(() => {});
    }
    for (const s of servers) await s.sim.close().catch(() => {});
  }
});
