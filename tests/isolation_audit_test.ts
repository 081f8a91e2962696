// isolation-audit against the simulator and the real database: a fixture with one violation of each kind is
// reported exactly in a dry run (nothing changes), fixed by apply (each step audited), and clean on the next run.
import assert from "node:assert/strict";
import { isolationAudit, type Violation } from "../shared/jobs/isolation_audit.ts";
import { runJob } from "../shared/jobs/runner.ts";
import { createTenant, liveNames, stack, testSql } from "./_helpers.ts";
import { auditOf, configOf, healthyTenant, opsFixture, snapshot, uniqueSlug } from "./ops_fixture.ts";

Deno.test("isolationAudit() reports one violation of each kind exactly, fixes them on apply, and is clean after", async () => {
  const f = await opsFixture();
  try {
    const sql = testSql();
    const base = stack().webhookBaseUrl;
    const hookOf = (slug: string) => `${base}/api/whatsapp/webhook/${slug}`;
    // a clean tenant, whose instance another tenant's row wrongly names
    const clean = await healthyTenant(f, "iso-clean");
    // invalid_prefix: the row names an unprefixed instance (which exists)
    const pfx = await createTenant({
      prefix: "iso-pfx",
      config: { instance_name: `other-${uniqueSlug("iso")}`, webhook_url: "", environment: "test" },
    });
    const pfxCfg = (await configOf(pfx.slug))!;
    await sql`update public.tenant_integrations set config = config || ${
      sql.json({ webhook_url: hookOf(pfx.slug) })
    } where id = ${pfx.integrationId}`;
    f.sim.control.seedInstance(String(pfxCfg.instance_name), { state: "open" });
    // slug_mismatch: the row names the clean tenant's instance
    const mis = await createTenant({
      prefix: "iso-mis",
      config: { instance_name: clean.instance, webhook_url: "", environment: "test" },
    });
    await sql`update public.tenant_integrations set config = config || ${
      sql.json({ webhook_url: hookOf(mis.slug) })
    } where id = ${mis.integrationId}`;
    // webhook_url_mismatch: the stored URL is wrong (the instance itself is right)
    const url = await healthyTenant(f, "iso-url");
    await sql`update public.tenant_integrations set config = config || '{"webhook_url":"https://evil.example/hook"}'
      where id = ${url.integrationId}`;
    // unknown_tenant_instance: a prefixed instance named for no tenant
    const ghostSlug = uniqueSlug("iso-ghost");
    f.sim.control.seedInstance(`revalya-${ghostSlug}`, { state: "close" });
    // instance_webhook_mismatch: the instance delivers to the clean tenant's webhook, without a token
    const hook = await createTenant({ prefix: "iso-hook" });
    f.sim.control.seedInstance(`revalya-${hook.slug}`, { state: "open", webhookUrl: hookOf(clean.slug) });
    // cross_tenant_attempts: the receiver rejected an event for this tenant in the last hour
    const cross = await healthyTenant(f, "iso-cross");
    await sql`insert into public.api_logs (tenant_slug, service, event, status, error_type, created_at, data)
      values (${cross.slug}, 'whatsapp', 'webhook', 'error', 'cross_tenant', now() - interval '1 hour',
        ${sql.json({ instance: `revalya-${hook.slug}` })})`;

    const tenants = [clean.slug, pfx.slug, mis.slug, url.slug, ghostSlug, hook.slug, cross.slug];
    const run = (apply: boolean) =>
      runJob(f.deps, isolationAudit, { input: isolationAudit.input.parse({ apply, tenants }), trigger: "test" });
    const instancesBefore = f.sim.control.instances();
    const configsBefore = await Promise.all(tenants.map(configOf));

    // 1. Dry run: exactly one violation of each kind, with its fix; nothing changed.
    const dry = await run(false);
    assert.equal(dry.status, "degraded", JSON.stringify(dry.report));
    assert.equal(dry.dryRun, true);
    const vs = dry.report.violations as Violation[];
    const key = (v: Violation) => `${v.kind}:${v.tenant ?? v.instance}`;
    assert.deepEqual(vs.map(key).sort(), [
      `cross_tenant_attempts:${cross.slug}`,
      `instance_webhook_mismatch:${hook.slug}`,
      `invalid_prefix:${pfx.slug}`,
      `slug_mismatch:${mis.slug}`,
      `unknown_tenant_instance:revalya-${ghostSlug}`,
      `webhook_url_mismatch:${url.slug}`,
    ]);
    const byKind = Object.fromEntries(vs.map((v) => [v.kind, v]));
    assert.deepEqual(byKind.invalid_prefix.fix.map((s) => s.action), [
      "create_instance",
      "update_config",
      "delete_instance",
    ]);
    assert.deepEqual(byKind.slug_mismatch.fix.map((s) => s.action), ["create_instance", "update_config"]);
    assert.match(String(byKind.slug_mismatch.notes), /belongs to tenant/, "another tenant's instance is never deleted");
    assert.deepEqual(byKind.unknown_tenant_instance.fix.map((s) => s.action), ["delete_instance"]);
    assert.deepEqual(byKind.instance_webhook_mismatch.evidence?.routesTo, clean.slug, "cross-tenant routing named");
    assert.deepEqual(byKind.instance_webhook_mismatch.fix.map((s) => s.action), ["set_webhook"]);
    assert.ok(vs.every((v) => v.fixText.length === v.fix.length), "every step is spelled out");
    assert.deepEqual(f.sim.control.instances(), instancesBefore, "a dry run changes nothing on Evolution");
    assert.deepEqual(await Promise.all(tenants.map(configOf)), configsBefore, "nor in the database");
    assert.ok((await auditOf(pfx.slug)).every((a) => a.result === "planned" && a.dry_run), "plans are audited");

    // 2. Apply (Evolution keeping deleted names listed for a while, as it does while its clean-up runs).
    f.sim.control.setCleanupDelay(600_000);
    const applied = await run(true);
    assert.equal(applied.status, "ok", JSON.stringify(applied.report));
    assert.equal(applied.report.fixed, 6);
    const names = liveNames(f.sim);
    assert.ok(names.includes(`revalya-${pfx.slug}`) && names.includes(`revalya-${mis.slug}`), "right instances made");
    assert.ok(!names.includes(String(pfxCfg.instance_name)), "the wrongly named instance is gone");
    assert.ok(!names.includes(`revalya-${ghostSlug}`), "the unknown tenant's instance is gone");
    assert.ok(names.includes(clean.instance), "the clean tenant's instance is kept");
    for (const s of [pfx.slug, mis.slug, url.slug]) {
      const c = (await configOf(s))!;
      assert.equal(c.instance_name, `revalya-${s}`);
      assert.equal(c.webhook_url, hookOf(s));
    }
    const fixed = f.sim.control.instances().find((i) => i.name === `revalya-${hook.slug}`)!;
    const expected = await f.deps.evolution.expectedWebhook(hook.slug);
    assert.equal(fixed.webhook?.url, expected.url);
    assert.deepEqual(fixed.webhook?.headers, expected.headers, "the token header is set");
    assert.equal(fixed.state, "open", "a webhook fix does not log the number out");
    assert.deepEqual((await snapshot(f, clean.slug)).config, configsBefore[0], "the clean tenant's row is untouched");
    const steps = await auditOf(pfx.slug);
    assert.deepEqual(
      steps.filter((a) => !a.dry_run).map((a) => `${a.action}:${a.result}`),
      ["isolation.create_instance:ok", "isolation.update_config:ok", "isolation.delete_instance:ok"],
    );

    // 3. Clean on the next run.
    const again = await run(false);
    assert.equal(again.status, "ok", JSON.stringify(again.report));
    assert.equal(again.report.violationCount, 0, JSON.stringify(again.report.violations));
    const evo = again.report.evolution as { beingRemoved: { instance: string }[] };
    assert.ok(
      evo.beingRemoved.some((r) => r.instance === `revalya-${ghostSlug}`),
      "the deleted instance Evolution still lists is reported as being removed, not as a violation",
    );
    f.sim.control.setCleanupDelay(300);
  } finally {
    await f.close();
  }
});

Deno.test("isolationAudit() reports the database side and an error, and applies nothing, when Evolution is down", async () => {
  const f = await opsFixture();
  try {
    const t = await healthyTenant(f, "iso-down");
    await testSql()`update public.tenant_integrations set config = config || '{"webhook_url":"https://x.example/h"}'
      where id = ${t.integrationId}`;
    f.sim.control.setDown(true);
    const r = await runJob(f.deps, isolationAudit, {
      input: isolationAudit.input.parse({ apply: true, tenants: [t.slug] }),
      trigger: "test",
    });
    assert.equal(r.status, "error");
    assert.match(String((r.report.evolution as { error: string }).error), /unreachable/);
    assert.deepEqual((r.report.violations as Violation[]).map((v) => v.kind), ["webhook_url_mismatch"]);
  } finally {
    f.sim.control.setDown(false);
    await f.close();
  }
});

Deno.test("isolationAudit() never deletes the instance of an existing tenant whatever its slug's format (legacy slugs)", async (t) => {
  const f = await opsFixture();
  const sql = testSql();
  const tag = crypto.randomUUID().slice(0, 8);
  // Slugs the bundle would refuse today, as an older application stored them: upper case, underscores, dots.
  const legacy = [`Legacy_Co_${tag}`, `ACME.${tag}`, `dots.co.${tag}`];
  const ghost = `revalya-Ghost_${tag}`; // the same format, but no tenant: an unknown instance all the same
  const made: string[] = [];
  try {
    for (const slug of legacy) {
      await createTenant({ slug, integration: false }); // the issue's case: no row names the instance
      made.push(slug);
      f.sim.control.seedInstance(`revalya-${slug}`, { state: "open" });
    }
    f.sim.control.seedInstance(ghost, { state: "close" });

    await t.step(
      "an unscoped run (the schedule's) plans no deletion of theirs and lists them as unchecked",
      async () => {
        // a dry run: the plan is what apply executes, and an unscoped apply would touch every tenant of the database
        const r = await runJob(f.deps, isolationAudit, { input: isolationAudit.input.parse({}), trigger: "test" });
        const ours = (r.report.violations as Violation[]).filter((v) =>
          v.instance === ghost || legacy.some((s) => v.instance === `revalya-${s}`)
        );
        assert.deepEqual(ours.map((v) => `${v.kind}:${v.instance}`), [`unknown_tenant_instance:${ghost}`]);
        const deletes = (r.report.violations as Violation[]).flatMap((v) => v.fix)
          .filter((s) => s.action === "delete_instance").map((s) => (s as { instance: string }).instance);
        for (const slug of legacy) assert.ok(!deletes.includes(`revalya-${slug}`), `${slug}'s instance is kept`);
        const unchecked = (r.report.evolution as { unchecked: { instance: string; tenant: string }[] }).unchecked;
        assert.deepEqual(
          unchecked.map((u) => [u.instance, u.tenant]).sort(),
          legacy.map((s) => [`revalya-${s}`, s]).sort(),
          "each is reported with its tenant: kept, its webhook not checked",
        );
      },
    );

    await t.step("a row naming a legacy tenant's instance: fixed without deleting that instance", async () => {
      const other = await createTenant({
        prefix: "iso-legacy",
        config: { instance_name: `revalya-${legacy[0]}`, webhook_url: "", environment: "test" },
      });
      made.push(other.slug);
      const r = await runJob(f.deps, isolationAudit, {
        input: isolationAudit.input.parse({ apply: true, tenants: [other.slug] }),
        trigger: "test",
      });
      const v = (r.report.violations as Violation[]).find((x) => x.tenant === other.slug)!;
      assert.equal(v.kind, "slug_mismatch");
      assert.deepEqual(v.fix.map((s) => s.action), ["create_instance", "update_config"], JSON.stringify(v.fixText));
      assert.match(String(v.notes), new RegExp(`belongs to tenant '${legacy[0].replace(".", "\\.")}'`));
      assert.equal(v.evidence?.currentInstanceTenant, legacy[0]);
      const names = liveNames(f.sim);
      assert.ok(names.includes(`revalya-${legacy[0]}`), "the legacy tenant's instance is still there");
      assert.ok(names.includes(`revalya-${other.slug}`), "the row's own instance was made");
      assert.equal((await configOf(other.slug))?.instance_name, `revalya-${other.slug}`);
    });
  } finally {
    await sql`delete from public.tenants where slug = any (${made})`;
    await f.close();
  }
});
