// The seed's repairs that delete or move instances, end to end, against the in-process Evolution simulator in 2.3.7
// and 1.8.6 mode with its real defaults (a deleted name stays taken until remove.instance is delivered and cleaned
// up; only the clocks are compressed): reset of a tenant whose socket died, migrate to a second server of the same
// version, the isolation audit's fix, and the orphan clean-up. The other procedures: seed_procedures_test.ts.
import assert from "node:assert/strict";
import { startSimulator } from "../dev/evolution_sim/app.ts";
import { createOpsApp } from "../shared/ops/app.ts";
import { runJob } from "../shared/jobs/runner.ts";
import type { Violation } from "../shared/jobs/isolation_audit.ts";
import { deleteInstance, logoutInstance, SocketStillDead } from "../shared/evolution/lifecycle.ts";
import { createTenant, dropTenantsLike, forgetServers, liveNames, stack, testSql, uniqueSlug } from "./_helpers.ts";
import { JOBS } from "./reliability/_jobs.ts";
import { auditOf, configOf, healthyTenant, opsCall, opsFixture } from "./ops_fixture.ts";
import { assertRightWebhook, instanceOf, SIM_OPTIONS } from "./_seed_procedures.ts";

type Audit = Awaited<ReturnType<typeof auditOf>>[number];
const after = (a: Audit | undefined) => (a?.after ?? {}) as Record<string, unknown>;

Deno.test("reset of a tenant whose WhatsApp socket died ends ok with one working instance, the restart audited", async (t) => {
  for (const version of ["2.3.7", "1.8.6"] as const) {
    const f = await opsFixture({ ALERT_LOG: "false" }, { version, ...SIM_OPTIONS });
    const app = createOpsApp(f.deps);
    try {
      await t.step(`${version}: killSocket, then reset --apply`, async () => {
        const { slug, instance } = await healthyTenant(f, "sp-dead");
        const old = instanceOf(f, slug);
        f.sim.control.killSocket(instance); // healable: a restart of the instance brings a new socket
        assert.equal(instanceOf(f, slug).deadSocket, "healable");
        assert.equal(await f.deps.evolution.connectionState(instance), "open", "reads still say open");
        const r = (await opsCall(app, f, "reset", { slug, confirm: slug, apply: true })).json;
        assert.equal(r.result, "ok", JSON.stringify(r));
        assert.deepEqual(r.steps.map((s: { step: string; result: string }) => `${s.step}:${s.result}`), [
          "logout:ok",
          "delete_instance:ok",
          "create_instance:ok",
          "replace_config:ok",
        ]);
        const inst = instanceOf(f, slug);
        assert.notEqual(inst.token, old.token, "a new instance replaced the dead one");
        assert.equal(inst.deadSocket, false);
        assert.equal(inst.state, "close", "new, unpaired");
        const connect = await f.deps.evolution.connect(instance);
        assert.equal(connect.kind, "qr", "a working instance: connect shows a QR to scan");
        await assertRightWebhook(f, version, slug, inst);
        const audit = (await auditOf(slug)).filter((a) => a.action.startsWith("reset."));
        assert.deepEqual(audit.map((a) => `${a.action}:${a.result}`), [
          "reset.logout:ok",
          "reset.delete_instance:ok",
          "reset.create_instance:ok",
          "reset.replace_config:ok",
        ]);
        const logout = after(audit[0]);
        if (version === "2.3.7") {
          // 2.3.7 awaits Baileys' logout: 500 "Connection Closed"; the instance is restarted, then logged out.
          const recovery = logout.recovery as { restarted: boolean; probe: string; waitedMs: number };
          assert.deepEqual([recovery?.restarted, recovery?.probe], [true, "live"], JSON.stringify(logout));
          assert.equal(typeof recovery.waitedMs, "number", "how long the new socket took is recorded");
          assert.equal(logout.loggedOut, true, "the logout went through on the new socket");
          assert.equal(f.sim.control.stats().calls.restart, 1, "one restart reached Evolution");
        } else {
          // 1.8 has no socket probe and does not await the Baileys logout: it answers SUCCESS on a dead socket and
          // its delete goes on regardless, so the reset needs no restart (and cannot tell the socket was dead).
          assert.equal(logout.loggedOut, true);
          assert.equal(logout.recovery, undefined, "no restart on 1.8");
          assert.equal(f.sim.control.stats().calls.restart ?? 0, 0);
        }
        assert.equal(after(audit[1]).deleted, true);
      });
    } finally {
      await f.close();
      await dropTenantsLike("sp-");
    }
  }
});

Deno.test("logoutInstance() and deleteInstance() of a socket a restart cannot end: one restart, then SocketStillDead", async () => {
  const f = await opsFixture({ ALERT_LOG: "false" }, { version: "2.3.7", ...SIM_OPTIONS });
  try {
    const { slug, instance } = await healthyTenant(f, "sp-stuck");
    f.sim.control.killSocket(instance, { healable: false }); // only a restart of the Evolution process ends it
    await assert.rejects(logoutInstance(f.deps.evolution, instance, { recoveryTimeoutMs: 300 }), (e: Error) => {
      assert.ok(e instanceof SocketStillDead, String(e));
      assert.match(e.message, /still dead after a restart of the instance \(state open, probe dead, \d+ ms\)/);
      assert.match(e.message, /restart the Evolution process/);
      return true;
    });
    await assert.rejects(deleteInstance(f.deps.evolution, instance, { recoveryTimeoutMs: 300 }), SocketStillDead);
    assert.equal(f.sim.control.stats().calls.restart, 2, "one restart per call");
    const inst = instanceOf(f, slug);
    assert.deepEqual([inst.state, inst.deadSocket], ["open", "unhealable"], "nothing logged out, nothing deleted");
  } finally {
    await f.close();
    await dropTenantsLike("sp-");
  }
});

for (const version of ["2.3.7", "1.8.6"] as const) {
  Deno.test(`seed repairs on Evolution ${version}: migrate, isolation audit + fix, orphan clean-up`, async (t) => {
    const f = await opsFixture({ ALERT_LOG: "false" }, { version, ...SIM_OPTIONS });
    const app = createOpsApp(f.deps);
    const sql = testSql();
    try {
      await t.step(`${version} migrate to a second ${version} server`, async () => {
        const target = await startSimulator({ port: 0, version, ...SIM_OPTIONS });
        try {
          const { slug, instance } = await healthyTenant(f, "sp-mg");
          const r = (await opsCall(app, f, "migrate", {
            slug,
            apiUrl: target.url,
            apiKey: target.apiKey,
            apply: true,
          })).json;
          assert.equal(r.result, "ok", JSON.stringify(r));
          assert.deepEqual(r.steps.map((s: { step: string; result: string }) => `${s.step}:${s.result}`), [
            "backup:ok",
            "check_new_server:ok",
            "create_on_new_server:ok",
            "verify_new_instance:ok",
            "save_config:ok",
            "retire_old_instance:ok",
          ]);
          await assertRightWebhook(f, version, slug, instanceOf(f, slug, target));
          assert.ok(!liveNames(f.sim).includes(instance), "the old instance is deleted");
          const c = (await configOf(slug))!;
          assert.equal(c.evolution_api_url, target.url);
          const d = (await opsCall(app, f, "diagnose", { slug })).json;
          assert.equal(d.connection.evidence.evolutionUrl, target.url, "later actions go to the new server");
          assert.deepEqual(d.problems, ["not_connected"], "on the new server only the scan is left");
          const hc = await runJob(f.deps, JOBS["health-check"], { input: { tenants: [slug] }, trigger: "test" });
          const [h] = await sql<{ issue_code: string }[]>`
            select issue_code from maintenance.tenant_health where tenant_slug = ${slug}`;
          assert.equal(h.issue_code, "instance_disconnected", `health-check lists the new server: ${hc.status}`);
          const audit = (await auditOf(slug)).filter((a) => !a.dry_run).map((a) => `${a.action}:${a.result}`);
          assert.ok(audit.includes("migrate.retire_old_instance:ok"), audit.join());
        } finally {
          await forgetServers(target.url);
          await target.close();
        }
      });

      await t.step(`${version} isolation audit: a wrong webhook and an unknown tenant's instance, fixed`, async () => {
        const base = stack().webhookBaseUrl;
        const clean = await healthyTenant(f, "sp-iso-clean");
        const hook = await createTenant({ prefix: "sp-iso-hook" });
        const hookName = `revalya-${hook.slug}`;
        f.sim.control.seedInstance(hookName, {
          state: "open",
          webhookUrl: `${base}/api/whatsapp/webhook/${clean.slug}`,
        });
        const ghostSlug = uniqueSlug("sp-iso-ghost");
        const ghost = `revalya-${ghostSlug}`;
        f.sim.control.seedInstance(ghost, { state: "open" });
        // Evolution's own clean-up of a deleted row grows with its message tables: from here on it takes a minute.
        f.sim.control.setCleanupDelay(60_000);
        const tenants = [clean.slug, hook.slug, ghostSlug];
        const run = (apply: boolean) =>
          runJob(f.deps, JOBS["isolation-audit"], {
            input: JOBS["isolation-audit"].input.parse({ apply, tenants }),
            trigger: "test",
          });
        const applied = await run(true);
        assert.equal(applied.status, "ok", JSON.stringify(applied.report));
        const vs = applied.report.violations as Violation[];
        assert.deepEqual(vs.map((v) => `${v.kind}:${v.tenant ?? v.instance}`).sort(), [
          `instance_webhook_mismatch:${hook.slug}`,
          `unknown_tenant_instance:${ghost}`,
        ]);
        assert.equal((vs[0].evidence ?? {}).routesTo ?? (vs[1].evidence ?? {}).routesTo, clean.slug);
        assert.equal(applied.report.fixed, 2);
        const fixed = instanceOf(f, hook.slug);
        await assertRightWebhook(f, version, hook.slug, fixed);
        assert.equal(fixed.state, "open", "a webhook fix does not log the number out");
        assert.ok(!liveNames(f.sim).includes(ghost), "the unknown tenant's instance is deleted");
        assert.ok(liveNames(f.sim).includes(clean.instance), "the clean tenant's instance is kept");

        const again = await run(false);
        assert.equal(again.status, "ok", JSON.stringify(again.report));
        assert.equal(again.report.violationCount, 0, JSON.stringify(again.report.violations));
        const removing = (again.report.evolution as { beingRemoved: { instance: string }[] }).beingRemoved;
        if (version === "2.3.7") {
          assert.deepEqual(
            removing.map((x) => x.instance),
            [ghost],
            "listed while Evolution cleans up: reported apart",
          );
        } else {
          // 1.8 lists its memory, which a delete drops at once: the deleted instance is not listed at all.
          assert.ok(!f.sim.control.instances().some((i) => i.name === ghost && i.state !== null));
          assert.deepEqual(removing, []);
        }
        const [{ n }] = await sql<{ n: number }[]>`
          select count(*)::int as n from maintenance.actions_audit
          where action = 'isolation.delete_instance' and result = 'ok' and before ->> 'instance' = ${ghost}`;
        assert.equal(n, 1, "the deletion is audited once");
      });

      await t.step(`${version} orphan clean-up: deleted once, past its grace period, audited`, async () => {
        const orphan = `revalya-${uniqueSlug("sp-orph")}`;
        f.sim.control.seedInstance(orphan, { state: "close" });
        const run = () =>
          runJob(f.deps, JOBS["orphan-cleanup"], { input: JOBS["orphan-cleanup"].input.parse({}), trigger: "test" });
        const deletes = () => f.sim.control.stats().calls.delete ?? 0;
        const first = await run();
        assert.equal(first.status, "ok", JSON.stringify(first.report));
        assert.deepEqual(first.report.deleted, [], "a first sighting deletes nothing");
        assert.ok(liveNames(f.sim).includes(orphan));
        await sql`update maintenance.orphan_sightings set first_seen_at = now() - interval '25 hours'
          where instance_name = ${orphan}`;
        const before = deletes();
        const second = await run();
        assert.equal(second.status, "ok", JSON.stringify(second.report));
        assert.deepEqual(second.report.deleted, [orphan], "past the grace period, seen twice: deleted");
        assert.ok(!liveNames(f.sim).includes(orphan));
        const third = await run();
        assert.deepEqual(third.report.deleted, []);
        const removing = (third.report.beingRemoved as { instance: string }[]).map((x) => x.instance);
        // 2.3.7 lists the row until its (here, minute-long) clean-up ends; 1.8 lists memory, dropped at the delete
        assert.equal(removing.includes(orphan), version === "2.3.7", JSON.stringify(removing));
        assert.equal(deletes(), before + 1, "deleted once: one delete reached Evolution");
        const audit = await sql<{ result: string; dry_run: boolean }[]>`
          select result, dry_run from maintenance.actions_audit
          where action = 'orphan.delete_instance' and before ->> 'instance' = ${orphan} order by id`;
        assert.deepEqual(audit.map((a) => `${a.result}:${a.dry_run}`), ["ok:false"]);
      });
    } finally {
      await f.close();
      await dropTenantsLike("sp-");
    }
  });
}
