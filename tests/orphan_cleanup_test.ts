// orphan-cleanup against the simulator and the real database: the grace period across runs, nothing deleted when
// Evolution or the database fails, never an unprefixed instance or a live tenant's one.
import assert from "node:assert/strict";
import { orphanCleanup, runOrphanCleanup } from "../shared/jobs/orphan_cleanup.ts";
import { runJob } from "../shared/jobs/runner.ts";
import { createSql } from "../shared/db.ts";
import { buildDeps } from "../shared/deps.ts";
import { createTenant, liveNames, testSql } from "./_helpers.ts";
import { auditOf, healthyTenant, opsFixture, uniqueSlug } from "./ops_fixture.ts";

type Orphan = { instance: string; eligible: boolean; result?: string; tenantExists: boolean };

Deno.test("orphanCleanup() deletes an orphan only after the grace period across runs, and nothing when Evolution fails", async () => {
  const f = await opsFixture();
  try {
    const sql = testSql();
    const orphanSlug = uniqueSlug("orph");
    const orphan = `revalya-${orphanSlug}`;
    const foreign = `other-${uniqueSlug("orph")}`;
    const live = await healthyTenant(f, "orph-live");
    const noRow = await createTenant({ prefix: "orph-norow", integration: false });
    const noRowInstance = await f.seedCorrect(noRow.slug);
    f.sim.control.seedInstance(orphan, { state: "close" });
    f.sim.control.seedInstance(foreign, { state: "open" });
    const names = () => liveNames(f.sim);
    const all = [orphan, foreign, live.instance, noRowInstance].sort();
    const run = (input: Record<string, unknown> = {}) =>
      runJob(f.deps, orphanCleanup, { input: orphanCleanup.input.parse(input), trigger: "test" });
    const orphansOf = (r: { report: Record<string, unknown> }) =>
      (r.report.orphans as Orphan[]).sort((a, b) => a.instance.localeCompare(b.instance));

    const first = await run();
    assert.equal(first.status, "ok", JSON.stringify(first.report));
    assert.deepEqual(
      orphansOf(first).map((o) => [o.instance, o.eligible, o.tenantExists]),
      [[orphan, false, false], [noRowInstance, false, true]].sort((a, b) => String(a[0]).localeCompare(String(b[0]))),
      "first run: the orphan and the row-less tenant's instance are sighted; the unprefixed one is not ours",
    );
    assert.deepEqual(names(), all, "the first sighting deletes nothing");

    const second = await run();
    assert.deepEqual(names(), all, "a second run inside the grace period deletes nothing");
    assert.equal((second.report.deleted as string[]).length, 0);

    // Move the first sighting back beyond the grace period instead of waiting a day.
    await sql`update maintenance.orphan_sightings set first_seen_at = now() - interval '25 hours'
      where instance_name in (${orphan}, ${noRowInstance})`;

    f.sim.control.fault({ route: "fetchInstances", kind: "status500" });
    const failing = await run();
    assert.equal(failing.status, "error", "a run whose listing failed is an error");
    assert.match(String(failing.report.error), /server_error/);
    assert.deepEqual(names(), all, "Evolution failing: nothing deleted");
    f.sim.control.clearFaults();

    f.sim.control.fault({ route: "delete", kind: "status500" });
    const deleteFails = await run();
    assert.equal(deleteFails.status, "error");
    assert.deepEqual(names(), all, "a failing delete deletes nothing and is reported");
    f.sim.control.clearFaults();

    const dry = await run({ apply: false });
    assert.equal(dry.dryRun, true);
    const planned = orphansOf(dry).find((o) => o.instance === orphan)!;
    assert.deepEqual([planned.eligible, planned.result], [true, "planned"], "past the grace: a dry run plans it");
    assert.deepEqual(names(), all, "apply:false deletes nothing");

    f.sim.control.setCleanupDelay(600_000); // Evolution keeps the deleted name listed (a slow remove.instance)
    const applied = await run();
    assert.equal(applied.status, "ok", JSON.stringify(applied.report));
    assert.deepEqual(applied.report.deleted, [orphan], "only the orphan past its grace period is deleted");
    assert.deepEqual(names(), [foreign, live.instance, noRowInstance].sort(), "unprefixed and live instances stay");
    const kept = orphansOf(applied).find((o) => o.instance === noRowInstance)!;
    assert.equal(
      kept.result,
      "kept",
      "a live tenant's instance without its row is never deleted (fix recreates the row)",
    );

    const [{ n }] = await sql<{ n: number }[]>`
      select count(*)::int as n from maintenance.orphan_sightings where instance_name = ${orphan}`;
    assert.equal(n, 0, "the deleted orphan's sighting is gone");
    // Evolution still lists it while its clean-up runs: the next run says so, and neither sights nor deletes it again.
    assert.ok(f.sim.control.instances().some((i) => i.name === orphan), "still listed by Evolution");
    const deletesBefore = f.sim.control.stats().calls.delete ?? 0;
    const during = await run();
    assert.deepEqual((during.report.beingRemoved as { instance: string }[]).map((r) => r.instance), [orphan]);
    assert.ok(!orphansOf(during).some((o) => o.instance === orphan), "not an orphan again");
    assert.equal(f.sim.control.stats().calls.delete ?? 0, deletesBefore, "no second delete");
    const [{ again }] = await sql<{ again: number }[]>`
      select count(*)::int as again from maintenance.orphan_sightings where instance_name = ${orphan}`;
    assert.equal(again, 0, "not sighted again");
    f.sim.control.setCleanupDelay(300);
    const audit = await sql<{ result: string; dry_run: boolean }[]>`
      select result, dry_run from maintenance.actions_audit
      where action = 'orphan.delete_instance' and before ->> 'instance' = ${orphan} order by id`;
    assert.deepEqual(audit.map((a) => a.result), ["failed", "planned", "ok"], "failed, planned and done: all audited");
    assert.equal((await auditOf(live.slug)).length, 0, "the live tenant has no action recorded");
  } finally {
    await f.close();
  }
});

Deno.test("runOrphanCleanup() deletes nothing when the database fails in the run", async () => {
  const f = await opsFixture();
  const dead = createSql("postgresql://postgres:postgres@127.0.0.1:1/postgres", { max: 1 });
  try {
    const orphan = `revalya-${uniqueSlug("orph-db")}`;
    f.sim.control.seedInstance(orphan, { state: "close" });
    const deps = buildDeps(f.deps.config, { sql: dead, evolution: f.deps.evolution });
    await assert.rejects(
      runOrphanCleanup(deps, { runId: crypto.randomUUID(), input: orphanCleanup.input.parse({ graceHours: 0 }) }),
      "the run fails (the runner records it as error)",
    );
    assert.ok(f.sim.control.instances().some((i) => i.name === orphan), "the orphan is still there");
    assert.equal(f.sim.control.stats().calls.delete ?? 0, 0, "no delete was attempted");
  } finally {
    await dead.end({ timeout: 0 });
    await f.close();
  }
});

Deno.test("orphan-cleanup rejects a bad graceHours with a 400 naming the field", async () => {
  const { callFunction } = await import("./_helpers.ts");
  const r = await callFunction("orphan-cleanup", { graceHours: -1 });
  assert.equal(r.status, 400);
  assert.match(r.text, /graceHours/);
});

Deno.test("orphanCleanup() keeps the instances of tenants with legacy slugs, naming the tenant, and deletes a true orphan of that format", async () => {
  const f = await opsFixture();
  const sql = testSql();
  const tag = crypto.randomUUID().slice(0, 8);
  const legacy = [`Legacy_Co_${tag}`, `ACME.${tag}`, `dots.co.${tag}`];
  const ghost = `revalya-Ghost_${tag}`;
  try {
    for (const slug of legacy) {
      await createTenant({ slug, integration: false });
      f.sim.control.seedInstance(`revalya-${slug}`, { state: "open" });
    }
    f.sim.control.seedInstance(ghost, { state: "close" });
    const run = () =>
      runJob(f.deps, orphanCleanup, { input: orphanCleanup.input.parse({ graceHours: 0 }), trigger: "test" });
    await run();
    const second = await run(); // a second sighting past a zero grace: what may go, goes
    assert.equal(second.status, "ok", JSON.stringify(second.report));
    assert.deepEqual(second.report.deleted, [ghost], "only the instance no tenant owns");
    const orphans = second.report.orphans as (Orphan & { action: string })[];
    for (const slug of legacy) {
      const o = orphans.find((x) => x.instance === `revalya-${slug}`)!;
      assert.deepEqual([o.tenantExists, o.eligible, o.result], [true, false, "kept"], slug);
      assert.equal(
        o.action,
        `keep: tenant '${slug}' exists without its integration row; run 'ops fix ${slug}' (config_missing)`,
      );
    }
    const names = liveNames(f.sim);
    for (const slug of legacy) assert.ok(names.includes(`revalya-${slug}`), `${slug}'s instance is kept`);
  } finally {
    await sql`delete from public.tenants where slug = any (${legacy})`;
    await f.close();
  }
});
