// whatsapp-ops migrate away from a server that cannot be reached: rolled back by default, kept on the new server with
// leaveOldIfUnreachable (needs_human), never a lost instance.
import assert from "node:assert/strict";
import { startSimulator } from "../dev/evolution_sim/app.ts";
import { createOpsApp } from "../shared/ops/app.ts";
import { configOf, healthyTenant, opsCall, opsFixture, snapshot } from "./ops_fixture.ts";
import { forgetServers, testSql } from "./_helpers.ts";

Deno.test("migrate: an unreachable old server rolls back unless leaveOldIfUnreachable, which keeps the new server", async (t) => {
  const f = await opsFixture();
  const target = await startSimulator({ port: 0 });
  const app = createOpsApp(f.deps);
  const body = (slug: string, extra: Record<string, unknown> = {}) => ({
    slug,
    apiUrl: target.url,
    apiKey: target.apiKey,
    apply: true,
    ...extra,
  });
  try {
    await t.step("default: the old server drops the connection while retiring → rolled back, as before", async () => {
      const { slug, instance } = await healthyTenant(f, "mg-dead-a");
      const before = await snapshot(f, slug);
      f.sim.control.fault({ route: "delete", kind: "reset" });
      const r = await opsCall(app, f, "migrate", body(slug));
      f.sim.control.clearFaults();
      assert.equal(r.json.result, "rolled_back", r.text);
      assert.equal(r.json.failedStep, "retire_old_instance");
      assert.deepEqual(await snapshot(f, slug), before, "config and old instance as before");
      assert.ok(!target.control.instances().some((i) => i.name === instance), "nothing left on the new server");
    });

    await t.step(
      "leaveOldIfUnreachable: the tenant stays on the new server, and the answer says what to do",
      async () => {
        const { slug, instance } = await healthyTenant(f, "mg-dead-b");
        f.sim.control.fault({ route: "delete", kind: "reset" });
        const r = await opsCall(app, f, "migrate", body(slug, { leaveOldIfUnreachable: true }));
        f.sim.control.clearFaults();
        assert.equal(r.json.ok, false);
        assert.equal(r.json.result, "needs_human", r.text);
        assert.equal(r.json.failedStep, "retire_old_instance");
        assert.match(r.json.error, /could not be reached/);
        assert.equal((await configOf(slug))!.evolution_api_url, target.url, "the config points at the new server");
        assert.ok(target.control.instances().some((i) => i.name === instance), "the instance exists on the new server");
        assert.ok(!r.text.includes(target.apiKey), "the key is not in the answer");
        const [{ n }] = await testSql()<{ n: number }[]>`
        select count(*)::int as n from maintenance.actions_audit
        where tenant_slug = ${slug} and action = 'migrate.retire_old_instance' and result = 'failed'`;
        assert.equal(n, 1, "the failed retirement is in the audit trail");
      },
    );

    await t.step("a server error (not unreachable) still rolls back, even with the option", async () => {
      const { slug } = await healthyTenant(f, "mg-dead-c");
      const before = await snapshot(f, slug);
      f.sim.control.fault({ route: "delete", kind: "status500" });
      const r = await opsCall(app, f, "migrate", body(slug, { leaveOldIfUnreachable: true }));
      f.sim.control.clearFaults();
      assert.equal(r.json.result, "rolled_back", r.text);
      assert.deepEqual(await snapshot(f, slug), before);
    });
  } finally {
    await forgetServers(target.url);
    await target.close();
    await f.close();
  }
});
