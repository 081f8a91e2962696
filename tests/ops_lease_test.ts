// Tenant operation leases are renewed while the operation runs: with a short lease (setting tenant_lease_seconds)
// and a slow Evolution (the simulator's latency), a migrate and a reset that outlive their lease keep it; a lease
// taken over mid-operation stops the operation before its next step, which says so, and nothing is rolled back
// beside the new holder.
import assert from "node:assert/strict";
import { startSimulator } from "../dev/evolution_sim/app.ts";
import { createOpsApp } from "../shared/ops/app.ts";
import { forgetServers, liveNames, testSql, waitFor } from "./_helpers.ts";
import { auditOf, configOf, healthyTenant, opsCall, opsFixture } from "./ops_fixture.ts";

const LEASE_SECONDS = 2;
const LATENCY_MS = 600; // every Evolution call: an operation of a few calls outlives the lease

/** Sets the lease length for the duration of `fn` (restored after). */
async function withShortLease(fn: () => Promise<void>) {
  const sql = testSql();
  await sql`update maintenance.settings set value = ${sql.json(LEASE_SECONDS)} where key = 'tenant_lease_seconds'`;
  try {
    await fn();
  } finally {
    await sql`update maintenance.settings set value = null where key = 'tenant_lease_seconds'`;
  }
}

/** The tenant's lease row as it is now: whether it is live (not run out) and how old it is, or null (none). */
async function leaseNow(slug: string) {
  const [r] = await testSql()<{ action: string; live: boolean; age_ms: number }[]>`
    select action, expires_at > clock_timestamp() as live,
      (extract(epoch from clock_timestamp() - acquired_at) * 1000)::int as age_ms
    from maintenance.tenant_operation_leases where tenant_slug = ${slug}`;
  return r ?? null;
}

/** Takes the tenant's lease over, as an operation that found it run out would. */
async function takeOver(slug: string): Promise<string> {
  const op = crypto.randomUUID();
  await testSql()`update maintenance.tenant_operation_leases
    set operation_id = ${op}, action = 'fix', actor = 'test:thief', acquired_at = now(), expires_at = now() + interval '1 minute'
    where tenant_slug = ${slug}`;
  return op;
}

Deno.test("a slow migrate keeps its tenant's lease past the lease's length (renewed), and releases it at the end", async () => {
  const f = await opsFixture();
  const target = await startSimulator({ port: 0 });
  const app = createOpsApp(f.deps);
  try {
    await withShortLease(async () => {
      const { slug, instance } = await healthyTenant(f, "lease-mig");
      f.sim.control.setLatency(LATENCY_MS);
      target.control.setLatency(LATENCY_MS);
      const started = performance.now();
      const running = opsCall(app, f, "migrate", { slug, apiUrl: target.url, apiKey: target.apiKey, apply: true });
      let done = false;
      running.finally(() => (done = true));
      const seen: { action: string; live: boolean; age_ms: number }[] = [];
      while (!done) {
        const row = await leaseNow(slug);
        if (row) seen.push(row);
        await new Promise((r) => setTimeout(r, 150));
      }
      const r = await running;
      const tookMs = performance.now() - started;
      assert.equal(r.json.result, "ok", JSON.stringify(r.json));
      assert.ok(tookMs > LEASE_SECONDS * 1000, `the migration outlived its lease (${Math.round(tookMs)} ms)`);
      assert.deepEqual(seen.filter((x) => !x.live || x.action !== "migrate"), [], "its lease never ran out meanwhile");
      assert.ok(seen.some((x) => x.age_ms > LEASE_SECONDS * 1000), "it was held past its length: renewed");
      assert.ok(target.control.instances().some((i) => i.name === instance), "moved");
      const [{ n }] = await testSql()<{ n: number }[]>`
        select count(*)::int as n from maintenance.tenant_operation_leases where tenant_slug = ${slug}`;
      assert.equal(n, 0, "no lease row left behind");
    });
  } finally {
    f.sim.control.setLatency(0);
    await forgetServers(target.url);
    await target.close();
    await f.close();
  }
});

Deno.test("a reset whose lease is taken over stops before its next step (the delete), says so, and leaves the lease to its holder", async () => {
  const f = await opsFixture();
  const app = createOpsApp(f.deps);
  try {
    await withShortLease(async () => {
      const { slug, instance } = await healthyTenant(f, "lease-rs");
      const configBefore = await configOf(slug);
      f.sim.control.setLatency(LATENCY_MS);
      const running = opsCall(app, f, "reset", { slug, confirm: slug, apply: true });
      // while the logout is at Evolution, another operation takes the lease over
      await waitFor(
        "the logout to reach Evolution",
        () => Promise.resolve((f.sim.control.stats().calls.logout ?? 0) > 0),
      );
      const thief = await takeOver(slug);
      const r = await running;
      f.sim.control.setLatency(0);
      assert.equal(r.json.ok, false);
      assert.equal(r.json.result, "failed", JSON.stringify(r.json));
      assert.equal(r.json.failedStep, "delete_instance");
      assert.match(r.json.error, /not started: the lease on '.*' was lost: another operation \(fix by test:thief\)/);
      assert.equal(f.sim.control.stats().calls.delete ?? 0, 0, "no delete reached Evolution");
      assert.ok(liveNames(f.sim).includes(instance), "the instance is still there");
      assert.deepEqual(await configOf(slug), configBefore, "the row is untouched");
      const audit = await auditOf(slug);
      const skipped = audit.find((a) => a.action === "reset.delete_instance");
      assert.equal(skipped?.result, "skipped", "the step not started is recorded, with why");
      assert.match(String(skipped?.error), /lease .* was lost/);
      assert.ok(!audit.some((a) => a.action === "reset.create_instance"), "nothing after it ran");
      const [lease] = await testSql()<{ operation_id: string }[]>`
        select operation_id from maintenance.tenant_operation_leases where tenant_slug = ${slug}`;
      assert.equal(lease?.operation_id, thief, "the reset's end did not release the new holder's lease");
      await testSql()`select maintenance.release_tenant_lease(${slug}, ${thief})`;
    });
  } finally {
    f.sim.control.setLatency(0);
    await f.close();
  }
});

Deno.test("a migrate whose lease is taken over after creating the new instance stops, rolls nothing back and says what is left", async () => {
  const f = await opsFixture();
  const target = await startSimulator({ port: 0 });
  const app = createOpsApp(f.deps);
  try {
    await withShortLease(async () => {
      const { slug, instance } = await healthyTenant(f, "lease-mg");
      const configBefore = await configOf(slug);
      target.control.setLatency(LATENCY_MS);
      const running = opsCall(app, f, "migrate", { slug, apiUrl: target.url, apiKey: target.apiKey, apply: true });
      await waitFor(
        "the create to reach the new server",
        () => Promise.resolve((target.control.stats().calls.create ?? 0) > 0),
      );
      const thief = await takeOver(slug);
      const r = await running;
      target.control.setLatency(0);
      assert.equal(r.json.result, "needs_human", JSON.stringify(r.json));
      assert.equal(r.json.failedStep, "verify_new_instance");
      assert.match(r.json.error, /lease .* was lost/);
      assert.match(r.json.error, /Not rolled back.*was created on/);
      assert.deepEqual(r.json.rollback, []);
      assert.ok(target.control.instances().some((i) => i.name === instance), "the new instance is left, as said");
      assert.ok(liveNames(f.sim).includes(instance), "the old one too");
      assert.deepEqual(await configOf(slug), configBefore, "the config was not saved");
      await testSql()`select maintenance.release_tenant_lease(${slug}, ${thief})`;
    });
  } finally {
    target.control.setLatency(0);
    await forgetServers(target.url);
    await target.close();
    await f.close();
  }
});

Deno.test("maintenance.renew_tenant_lease() extends only its holder's lease, and names the holder to one that lost it", async () => {
  const sql = testSql();
  const slug = `lease-sql-${crypto.randomUUID().slice(0, 8)}`;
  const [a, b] = [crypto.randomUUID(), crypto.randomUUID()];
  try {
    await sql`select * from maintenance.acquire_tenant_lease(${slug}, ${a}, 'reset', 'test:a', 1)`;
    const [mine] = await sql`select * from maintenance.renew_tenant_lease(${slug}, ${a}, 60)`;
    assert.equal(mine.renewed, true);
    assert.ok(new Date(mine.expires_at).getTime() - Date.now() > 50_000, "extended by the seconds asked");
    const [other] = await sql`select * from maintenance.renew_tenant_lease(${slug}, ${b}, 60)`;
    assert.deepEqual([other.renewed, other.holder_operation_id, other.holder_action], [false, a, "reset"]);
    // a run-out lease nobody took over is still its holder's to renew; once taken over, it is not
    await sql`update maintenance.tenant_operation_leases set expires_at = now() - interval '1 second'
      where tenant_slug = ${slug}`;
    assert.equal((await sql`select * from maintenance.renew_tenant_lease(${slug}, ${a}, 60)`)[0].renewed, true);
    await sql`update maintenance.tenant_operation_leases set expires_at = now() - interval '1 second'
      where tenant_slug = ${slug}`;
    assert.equal(
      (await sql`select * from maintenance.acquire_tenant_lease(${slug}, ${b}, 'fix', 'test:b', 60)`)[0]
        .acquired,
      true,
    );
    const [lost] = await sql`select * from maintenance.renew_tenant_lease(${slug}, ${a}, 60)`;
    assert.deepEqual([lost.renewed, lost.holder_operation_id, lost.holder_actor], [false, b, "test:b"]);
    await sql`select maintenance.release_tenant_lease(${slug}, ${b})`;
    const [gone] = await sql`select * from maintenance.renew_tenant_lease(${slug}, ${a}, 60)`;
    assert.deepEqual([gone.renewed, gone.holder_operation_id], [false, null], "released: nobody holds it");
    await assert.rejects(sql`select * from maintenance.renew_tenant_lease(${slug}, ${a}, 0)`, { code: "22023" });
  } finally {
    await sql`delete from maintenance.tenant_operation_leases where tenant_slug = ${slug}`;
  }
});
