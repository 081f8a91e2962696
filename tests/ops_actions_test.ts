// whatsapp-ops fix / reconnect / reset / migrate against the simulator and the real database: what changes, what
// is recorded, the remediation budget, the per-tenant lease, the real rollback of migrate, and neighbours untouched.
import assert from "node:assert/strict";
import { startSimulator } from "../dev/evolution_sim/app.ts";
import { createOpsApp } from "../shared/ops/app.ts";
import { createTenant, forgetServers, liveNames, testSql } from "./_helpers.ts";
import { auditOf, configOf, healthyTenant, opsCall, opsFixture, snapshot } from "./ops_fixture.ts";

Deno.test("fix repairs what the diagnosis found, within the remediation budget; neighbours untouched", async (t) => {
  const f = await opsFixture();
  const app = createOpsApp(f.deps);
  try {
    const neighbour = await healthyTenant(f, "fx-nb");
    const before = await snapshot(f, neighbour.slug);
    await t.step("instance_not_found → the instance is created with the tenant's webhook and token", async () => {
      const { slug } = await createTenant({ prefix: "fx-inst" });
      const plan = await opsCall(app, f, "fix", { slug, apply: false });
      assert.equal(plan.json.result, "planned");
      assert.equal(
        f.sim.control.instances().some((i) => i.name === `revalya-${slug}`),
        false,
        "a plan changes nothing",
      );
      const r = await opsCall(app, f, "fix", { slug });
      assert.equal(r.status, 200);
      assert.equal(r.json.result, "ok", JSON.stringify(r.json));
      const inst = f.sim.control.instances().find((i) => i.name === `revalya-${slug}`)!;
      assert.deepEqual(inst.webhook?.headers, (await f.deps.evolution.expectedWebhook(slug)).headers);
      assert.deepEqual((await auditOf(slug)).map((a) => `${a.action}:${a.result}`), [
        "fix.create_instance:planned",
        "fix.create_instance:ok",
      ]);
    });
    await t.step("config_missing → the row is recreated as the seed's saveInstanceConfig", async () => {
      const { slug } = await createTenant({ prefix: "fx-cfg", integration: false });
      await f.seedCorrect(slug);
      const r = await opsCall(app, f, "fix", { slug });
      assert.equal(r.json.result, "ok", JSON.stringify(r.json));
      const c = (await configOf(slug))!;
      assert.equal(c.instance_name, `revalya-${slug}`);
      assert.match(String(c.webhook_url), new RegExp(`/api/whatsapp/webhook/${slug}$`));
    });
    await t.step("invalid_api_key → nothing changed, reported as needing a human", async () => {
      const { slug } = await createTenant({ prefix: "fx-key" });
      const wrong = await opsFixture({ EVOLUTION_API_KEY: "not-the-key" });
      try {
        const r = await opsCall(createOpsApp(wrong.deps), wrong, "fix", { slug });
        assert.equal(r.json.result, "needs_human");
        assert.equal(r.json.needsHuman[0].problem, "invalid_api_key");
        assert.equal(r.json.steps.length, 0);
      } finally {
        await wrong.close();
      }
    });
    await t.step("not_connected → reconnect, at most 3 per hour; then skipped and reconnect answers 429", async () => {
      const { slug, instance } = await healthyTenant(f, "fx-loop");
      const results = [];
      for (let i = 0; i < 4; i++) {
        f.sim.control.setState(instance, "close");
        results.push((await opsCall(app, f, "fix", { slug })).json);
      }
      assert.deepEqual(results.map((r) => r.result), ["ok", "ok", "ok", "budget_exhausted"]);
      assert.equal(results[3].budget.remaining, 0);
      assert.ok(results[3].budget.resetsAt, "the budget says when the next attempt is allowed");
      assert.equal(f.sim.control.stats().calls.connect, 3, "exactly three connects reached Evolution");
      const r = await opsCall(app, f, "reconnect", { slug });
      assert.equal(r.status, 429);
      assert.equal(r.json.error.code, "remediation_budget_exhausted");
      const audit = await auditOf(slug);
      assert.deepEqual(audit.map((a) => a.result).filter((x) => x !== "ok"), ["skipped", "refused"]);
    });
    await t.step("reconnect answers the QR code to scan", async () => {
      const { slug, instance } = await healthyTenant(f, "fx-rc");
      f.sim.control.setState(instance, "close");
      const r = await opsCall(app, f, "reconnect", { slug });
      assert.equal(r.status, 200);
      assert.equal(r.json.connect.kind, "qr");
      assert.equal(r.json.budget.used, 1);
    });
    assert.deepEqual(await snapshot(f, neighbour.slug), before, "the neighbour is exactly as before");
  } finally {
    await f.close();
  }
});

Deno.test("reset: refused without the right confirm (nothing changes), planned by default, applied on request", async () => {
  const f = await opsFixture();
  const app = createOpsApp(f.deps);
  const sql = testSql();
  try {
    const { slug, instance, integrationId } = await healthyTenant(f, "rs");
    const neighbour = await healthyTenant(f, "rs-nb");
    const nbBefore = await snapshot(f, neighbour.slug);
    const counts = async () => {
      const [r] = await sql<{ rows: number; audit: number }[]>`
        select (select count(*)::int from public.tenant_integrations) as rows,
               (select count(*)::int from maintenance.actions_audit where result <> 'refused') as audit`;
      return { ...r, instances: f.sim.control.instances().length, calls: f.sim.control.stats().total };
    };
    const before = await counts();
    const tenantBefore = await snapshot(f, slug);
    for (const confirm of [undefined, slug.slice(0, -1), slug.toUpperCase()]) {
      const r = await opsCall(app, f, "reset", { slug, confirm, apply: true });
      assert.equal(r.status, 400);
      assert.equal(r.json.error.code, "confirm_mismatch");
      assert.match(r.json.error.message, /'confirm' must equal the tenant slug/);
    }
    assert.deepEqual(await counts(), before, "no row, instance, call or action");
    assert.deepEqual(await snapshot(f, slug), tenantBefore);
    assert.equal((await auditOf(slug)).filter((a) => a.result === "refused").length, 3, "the refusals are recorded");

    const dry = await opsCall(app, f, "reset", { slug, confirm: slug });
    assert.equal(dry.json.result, "planned");
    assert.equal(dry.json.plan.length, 4);
    assert.deepEqual(await snapshot(f, slug), tenantBefore, "a dry run changes nothing");

    await sql`update public.tenant_integrations set config = config || '{"environment":"staging"}'
      where id = ${integrationId}`;
    const r = await opsCall(app, f, "reset", { slug, confirm: slug, apply: true });
    assert.equal(r.json.result, "ok", JSON.stringify(r.json));
    assert.deepEqual(r.json.steps.map((s: { step: string }) => s.step), [
      "logout",
      "delete_instance",
      "create_instance",
      "replace_config",
    ]);
    const inst = f.sim.control.instances().find((i) => i.name === instance)!;
    assert.equal(inst.state, "close", "a new, unpaired instance");
    const c = (await configOf(slug))!;
    assert.deepEqual(Object.keys(c).sort(), ["environment", "instance_name", "webhook_url"]);
    assert.equal(c.environment, "staging", "the environment is kept");
    const [{ n }] = await sql<{ n: number }[]>`
      select count(*)::int as n from public.tenant_integrations ti join public.tenants t on t.id = ti.tenant_id
      where t.slug = ${slug}`;
    assert.equal(n, 1);
    assert.deepEqual(await snapshot(f, neighbour.slug), nbBefore, "the neighbour is exactly as before");
  } finally {
    await f.close();
  }
});

Deno.test("reset keeps is_active and every config key it does not own; the plan shows the row before and after", async (t) => {
  const f = await opsFixture();
  const target = await startSimulator({ port: 0 });
  const app = createOpsApp(f.deps);
  const sql = testSql();
  const rowOf = async (integrationId: string | null) =>
    (await sql<{ id: string; is_active: boolean; config: Record<string, unknown> }[]>`
      select id, is_active, config from public.tenant_integrations where id = ${integrationId}`)[0];
  const custom = { app_flags: { beta: true, tags: ["a", "b"] }, notes: "kept by reset", environment: "staging" };
  try {
    for (const active of [false, true]) {
      await t.step(`${active ? "an enabled" : "a disabled"} integration with a key reset does not own`, async () => {
        const { slug, instance, integrationId } = await healthyTenant(f, active ? "rs-on" : "rs-off");
        await sql`update public.tenant_integrations set is_active = ${active},
          config = config || ${sql.json(custom)} where id = ${integrationId}`;
        const before = await rowOf(integrationId);

        const dry = await opsCall(app, f, "reset", { slug, confirm: slug });
        assert.equal(dry.json.result, "planned", JSON.stringify(dry.json));
        assert.deepEqual(dry.json.integration.before, { isActive: active, config: before.config });
        assert.deepEqual(dry.json.integration.after, { isActive: active, config: before.config }, "nothing to change");
        assert.equal(dry.json.integration.written, false);
        assert.match(dry.json.plan.at(-1), new RegExp(`is_active stays ${active}`));
        assert.deepEqual(await rowOf(integrationId), before, "a dry run changes nothing");

        // the row's own keys drifted: reset rewrites them, and only them
        await sql`update public.tenant_integrations set config = config || '{"instance_name":"old","webhook_url":""}'
          where id = ${integrationId}`;
        const drifted = await rowOf(integrationId);
        const dry2 = await opsCall(app, f, "reset", { slug, confirm: slug });
        assert.deepEqual(dry2.json.integration.before.config, drifted.config);
        assert.deepEqual(dry2.json.integration.after, { isActive: active, config: before.config });

        const r = await opsCall(app, f, "reset", { slug, confirm: slug, apply: true });
        assert.equal(r.json.result, "ok", JSON.stringify(r.json));
        const after = await rowOf(integrationId);
        assert.equal(after.id, integrationId, "the row is updated in place");
        assert.equal(after.is_active, active, "is_active is kept");
        assert.deepEqual(after.config, before.config, "every key it does not own is kept, its own are right again");
        assert.deepEqual(r.json.integration, {
          before: dry2.json.integration.before,
          after: dry2.json.integration.after,
          written: true,
        });
        assert.equal(f.sim.control.instances().find((i) => i.name === instance)?.state, "close", "a new instance");
      });
    }

    await t.step("a migrated tenant keeps its server (evolution_api_url, the key's secret id)", async () => {
      const { slug, instance, integrationId } = await healthyTenant(f, "rs-mig");
      const moved = await opsCall(app, f, "migrate", { slug, apiUrl: target.url, apiKey: target.apiKey, apply: true });
      assert.equal(moved.json.result, "ok", JSON.stringify(moved.json));
      await sql`update public.tenant_integrations set config = config || '{"custom":1}' where id = ${integrationId}`;
      const before = await rowOf(integrationId);
      assert.equal(before.config.evolution_api_url, target.url);
      const r = await opsCall(app, f, "reset", { slug, confirm: slug, apply: true });
      assert.equal(r.json.result, "ok", JSON.stringify(r.json));
      const after = await rowOf(integrationId);
      assert.deepEqual(after.config, before.config, "server URL, key secret id and the custom key are kept");
      assert.ok(target.control.instances().some((i) => i.name === instance), "recreated on the tenant's server");
      assert.ok(!liveNames(f.sim).includes(instance), "not on the default server");
      const d = await opsCall(app, f, "diagnose", { slug });
      assert.equal(d.json.connection.evidence.evolutionUrl, target.url, "later actions still use its server");
    });
  } finally {
    await forgetServers(target.url);
    await target.close();
    await f.close();
  }
});

Deno.test("a second changing action on a tenant gets 409 while one runs", async () => {
  const f = await opsFixture();
  const app = createOpsApp(f.deps);
  try {
    const { slug } = await healthyTenant(f, "lk");
    const op = crypto.randomUUID();
    await testSql()`select * from maintenance.acquire_tenant_lease(${slug}, ${op}, 'migrate', 'test', 60)`;
    for (const [action, body] of [["fix", {}], ["reset", { confirm: slug, apply: true }], ["reconnect", {}]] as const) {
      const r = await opsCall(app, f, action, { slug, ...body });
      assert.equal(r.status, 409, action);
      assert.equal(r.json.error.code, "operation_in_progress");
      assert.equal(r.json.error.details.action, "migrate");
    }
    await testSql()`select maintenance.release_tenant_lease(${slug}, ${op})`;
    // two at once: exactly one wins
    f.sim.control.setLatency(200);
    const both = await Promise.all([1, 2].map(() => opsCall(app, f, "reset", { slug, confirm: slug, apply: true })));
    f.sim.control.setLatency(0);
    assert.deepEqual(both.map((r) => r.status).sort(), [200, 409]);
  } finally {
    await f.close();
  }
});

Deno.test("migrate: a new server failing mid-way leaves the tenant exactly as before and says where; success moves it", async (t) => {
  const f = await opsFixture();
  const target = await startSimulator({ port: 0 });
  const app = createOpsApp(f.deps);
  const sql = testSql();
  const secretRows = async (slug: string) =>
    (await sql<
      { n: number }[]
    >`select count(*)::int as n from vault.secrets where name like ${`evolution_api_key/${slug}/%`}`)[0].n;
  const leaks = async (key: string) =>
    (await sql<{ n: number }[]>`
      select ((select count(*) from maintenance.actions_audit where before::text like ${`%${key}%`}
                or after::text like ${`%${key}%`} or coalesce(error, '') like ${`%${key}%`})
            + (select count(*) from public.api_logs where data::text like ${`%${key}%`}))::int as n`)[0].n;
  try {
    const neighbour = await healthyTenant(f, "mg-nb");
    const nbBefore = await snapshot(f, neighbour.slug);
    const body = (slug: string, apply = true) => ({ slug, apiUrl: target.url, apiKey: target.apiKey, apply });

    await t.step("the new server fails after the instance is created → rolled back, exactly as before", async () => {
      const { slug, instance } = await healthyTenant(f, "mg-fail");
      const before = await snapshot(f, slug);
      target.control.fault({ route: "findWebhook", kind: "status500" });
      const r = await opsCall(app, f, "migrate", body(slug));
      target.control.clearFaults();
      assert.equal(r.json.ok, false);
      assert.equal(r.json.result, "rolled_back", JSON.stringify(r.json));
      assert.equal(r.json.failedStep, "verify_new_instance");
      assert.deepEqual(r.json.rollback.map((s: { step: string; result: string }) => `${s.step}:${s.result}`), [
        "rollback.delete_new_instance:rolled_back",
      ]);
      assert.deepEqual(await snapshot(f, slug), before, "config and old instance (state, webhook) as before");
      assert.equal(f.sim.control.instances().find((i) => i.name === instance)?.state, "open");
      assert.equal(target.control.instances().length, 0, "nothing left on the new server");
      assert.equal(await secretRows(slug), 0, "no key stored");
      assert.ok(!r.text.includes(target.apiKey), "the key is not in the response");
    });

    await t.step("retiring the old instance fails → config restored, key dropped, new instance deleted", async () => {
      const { slug } = await healthyTenant(f, "mg-retire");
      const before = await snapshot(f, slug);
      f.sim.control.fault({ route: "delete", kind: "status500" });
      const r = await opsCall(app, f, "migrate", body(slug));
      f.sim.control.clearFaults();
      assert.equal(r.json.result, "rolled_back", JSON.stringify(r.json));
      assert.equal(r.json.failedStep, "retire_old_instance");
      assert.deepEqual(
        r.json.rollback.map((s: { step: string }) => s.step),
        ["rollback.restore_config", "rollback.drop_new_key", "rollback.delete_new_instance", "rollback.old_instance"],
      );
      assert.deepEqual(await snapshot(f, slug), before, "config and old instance exactly as before");
      assert.equal(target.control.instances().length, 0);
      assert.equal(await secretRows(slug), 0);
    });

    await t.step("a wrong key for the new server: the check fails, nothing is created", async () => {
      const { slug } = await healthyTenant(f, "mg-key");
      const before = await snapshot(f, slug);
      const r = await opsCall(app, f, "migrate", { ...body(slug), apiKey: "wrong-key-for-target" });
      assert.equal(r.json.result, "failed");
      assert.equal(r.json.failedStep, "check_new_server");
      assert.deepEqual(await snapshot(f, slug), before);
    });

    await t.step("dry run checks the new server and changes nothing; apply moves the tenant", async () => {
      const { slug, instance } = await healthyTenant(f, "mg-ok");
      const dry = await opsCall(app, f, "migrate", body(slug, false));
      assert.equal(dry.json.result, "planned", JSON.stringify(dry.json));
      assert.equal(target.control.instances().length, 0);
      const r = await opsCall(app, f, "migrate", body(slug));
      assert.equal(r.json.result, "ok", JSON.stringify(r.json));
      assert.ok(!liveNames(f.sim).includes(instance), "retired on the old server");
      const moved = target.control.instances().find((i) => i.name === instance)!;
      assert.equal(moved.webhook?.url, (await f.deps.evolution.expectedWebhook(slug)).url);
      const c = (await configOf(slug))!;
      assert.equal(c.evolution_api_url, target.url);
      assert.match(String(c.evolution_api_key_secret_id), /^[0-9a-f-]{36}$/);
      assert.equal(await secretRows(slug), 1, "the key is in Vault");
      const d = await opsCall(app, f, "diagnose", { slug });
      assert.equal(d.json.connection.evidence.evolutionUrl, target.url, "later actions use the tenant's new server");
      assert.equal(d.json.connection.evidence.instance.name, instance);
    });

    await f.deps.evolution.flushLogs();
    assert.equal(await leaks(target.apiKey), 0, "the key is in no audit row and no api_logs row");
    assert.deepEqual(await snapshot(f, neighbour.slug), nbBefore, "the neighbour is exactly as before");
    const bad = await opsCall(app, f, "migrate", { slug: neighbour.slug, apiUrl: "ftp://x", apiKey: "" });
    assert.equal(bad.status, 400);
    assert.match(bad.json.error.message, /'apiUrl'/);
    assert.match(bad.json.error.message, /'apiKey'/);
  } finally {
    await forgetServers(target.url);
    await target.close();
    await f.close();
  }
});
