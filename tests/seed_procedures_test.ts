// The seed's procedures, end to end, against the in-process Evolution simulator in 2.3.7 and in 1.8.6 mode, with the
// simulator's real defaults (deletion hold and clean-up, stored vs memory state, local date_time, QR counts, GET /
// latency; only its clocks compressed): health check, diagnose, fix, reconnect and reset. The repairs that move or
// delete instances (reset of a dead socket, migrate, the isolation fix, orphan clean-up) are in
// seed_procedures_repairs_test.ts. Each assertion is on what Evolution and the database hold afterwards.
import assert from "node:assert/strict";
import { createOpsApp } from "../shared/ops/app.ts";
import { runJob } from "../shared/jobs/runner.ts";
import { createTenant, dropTenantsLike, testSql } from "./_helpers.ts";
import { JOBS } from "./reliability/_jobs.ts";
import { auditOf, configOf, healthyTenant, opsCall, opsFixture } from "./ops_fixture.ts";
import { assertRightWebhook, instanceOf, SIM_OPTIONS } from "./_seed_procedures.ts";

for (const version of ["2.3.7", "1.8.6"] as const) {
  Deno.test(`seed procedures on Evolution ${version}: health check, diagnose, fix, reconnect, reset`, async (t) => {
    const f = await opsFixture({ ALERT_LOG: "false" }, { version, ...SIM_OPTIONS });
    const app = createOpsApp(f.deps);
    const sql = testSql();
    try {
      await t.step(
        `${version} health check: a healthy tenant is healthy, a closed instance is reported down`,
        async () => {
          const ok = await healthyTenant(f, "sp-hc-ok");
          const closed = await createTenant({ prefix: "sp-hc-closed" });
          await f.seedCorrect(closed.slug, "close");
          const missing = await createTenant({ prefix: "sp-hc-missing" });
          const run = await runJob(f.deps, JOBS["health-check"], {
            input: { tenants: [ok.slug, closed.slug, missing.slug] },
            trigger: "test",
          });
          assert.equal(run.status, "unhealthy", "a missing instance is a high issue (the seed's rule)");
          const services = run.report.services as Record<string, { status: string; version?: string }>;
          assert.equal(services.evolution_api.status, "healthy");
          assert.equal(services.evolution_api.version, version);
          const rows = await sql<{ tenant_slug: string; state: string; issue_code: string | null }[]>`
          select tenant_slug, state, issue_code from maintenance.tenant_health
          where tenant_slug in (${ok.slug}, ${closed.slug}, ${missing.slug}) order by tenant_slug`;
          assert.deepEqual(
            Object.fromEntries(rows.map((r) => [r.tenant_slug, `${r.state}:${r.issue_code}`])),
            {
              [ok.slug]: "healthy:null",
              [closed.slug]: "degraded:instance_disconnected",
              [missing.slug]: "unhealthy:instance_missing",
            },
          );
          const issues = run.report.issues as { tenant: string; issue: string }[];
          assert.deepEqual(issues.map((i) => i.tenant).sort(), [closed.slug, missing.slug].sort());
        },
      );

      await t.step(`${version} diagnose: missing instance → instance_not_found, healthy → ok`, async () => {
        const { slug } = await createTenant({ prefix: "sp-dg-missing" });
        const d = (await opsCall(app, f, "diagnose", { slug })).json;
        assert.equal(d.connection.code, "instance_not_found", JSON.stringify(d.connection));
        assert.deepEqual(d.problems, ["instance_not_found"]);
        assert.equal(d.healthy, false);
        const ok = await healthyTenant(f, "sp-dg-ok");
        const h = (await opsCall(app, f, "diagnose", { slug: ok.slug })).json;
        assert.equal(h.connection.code, "ok", JSON.stringify(h));
        assert.equal(h.healthy, true);
        assert.equal(h.connection.evidence.state, "open");
        assert.equal(h.connection.evidence.webhook.ok, true, "the seeded webhook is the one diagnose expects");
      });

      await t.step(`${version} fix: a missing instance is recreated with the tenant's webhook`, async () => {
        const { slug } = await createTenant({ prefix: "sp-fx-missing" });
        const r = (await opsCall(app, f, "fix", { slug })).json;
        assert.equal(r.result, "ok", JSON.stringify(r));
        assert.deepEqual(r.steps.map((s: { step: string; result: string }) => `${s.step}:${s.result}`), [
          "create_instance:ok",
        ]);
        const inst = instanceOf(f, slug);
        assert.equal(inst.phase, "active");
        await assertRightWebhook(f, version, slug, inst);
        const again = (await opsCall(app, f, "diagnose", { slug })).json;
        assert.deepEqual(again.problems, ["not_connected"], "only the scan is left (a new instance is not paired)");
      });

      await t.step(`${version} fix: a wrong instance webhook is corrected in place`, async () => {
        const { slug } = await createTenant({ prefix: "sp-fx-hook" });
        const name = `revalya-${slug}`;
        f.sim.control.seedInstance(name, { state: "open", webhookUrl: "https://evil.example/api/whatsapp/webhook/x" });
        const before = instanceOf(f, slug).token;
        const r = (await opsCall(app, f, "fix", { slug })).json;
        assert.equal(r.result, "ok", JSON.stringify(r));
        assert.deepEqual(r.diagnosis.problems, ["webhook_mismatch"]);
        assert.deepEqual(r.steps.map((s: { step: string }) => s.step), ["set_webhook"]);
        const inst = instanceOf(f, slug);
        await assertRightWebhook(f, version, slug, inst);
        assert.equal(inst.state, "open", "a webhook fix does not log the number out");
        assert.equal(inst.token, before, "the same instance, not a new one");
        assert.equal((await opsCall(app, f, "diagnose", { slug })).json.healthy, true);
      });

      await t.step(`${version} reconnect: a closed instance gets connect, answered with the QR, audited`, async () => {
        const { slug } = await createTenant({ prefix: "sp-rc" });
        await f.seedCorrect(slug, "close");
        const r = await opsCall(app, f, "reconnect", { slug });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.json.result, "ok", r.text);
        assert.equal(r.json.connect.kind, "qr", "an instance without a session answers a QR to scan");
        assert.match(String(r.json.connect.qr.code), /^2@/);
        assert.ok(r.json.connect.qr.count >= 1);
        assert.equal(instanceOf(f, slug).state, "connecting", "Evolution is waiting for the scan");
        const audit = await auditOf(slug);
        assert.deepEqual(audit.map((a) => `${a.action}:${a.result}`), ["reconnect.connect:ok"]);
        assert.equal((audit[0].after as { qr: boolean }).qr, true, "the audit says a QR was shown (not its payload)");
        assert.equal(r.json.budget.used, 1, "the reconnect spent the remediation budget");
        // the events it set off reach the tenant's receiver and are accepted there (the token is the right one)
        await f.sim.control.drain();
        const sent = f.sim.control.deliveries().filter((d) => d.instance === `revalya-${slug}`);
        assert.ok(sent.some((d) => d.event === "connection.update"), JSON.stringify(sent));
        assert.deepEqual([...new Set(sent.map((d) => d.status))], [200], JSON.stringify(sent));
        const [activity] = await sql<{ last_state: string }[]>`
          select last_state from maintenance.webhook_activity where tenant_slug = ${slug}`;
        assert.equal(activity?.last_state, "connecting", "the receiver recorded the tenant's new state");
      });

      await t.step(`${version} reset: one new instance with the right webhook, the old one gone, audited`, async () => {
        const { slug, instance } = await healthyTenant(f, "sp-rs");
        const old = instanceOf(f, slug);
        const r = (await opsCall(app, f, "reset", { slug, confirm: slug, apply: true })).json;
        assert.equal(r.result, "ok", JSON.stringify(r));
        assert.deepEqual(r.steps.map((s: { step: string; result: string }) => `${s.step}:${s.result}`), [
          "logout:ok",
          "delete_instance:ok",
          "create_instance:ok",
          "replace_config:ok",
        ]);
        const same = f.sim.control.instances().filter((i) => i.name === instance);
        assert.equal(same.length, 1, "exactly one instance of that name");
        const inst = same[0];
        assert.equal(inst.phase, "active");
        assert.notEqual(inst.token, old.token, "a new instance: the old one is gone");
        assert.equal(inst.state, "close", "new and unpaired");
        await assertRightWebhook(f, version, slug, inst);
        const c = (await configOf(slug))!;
        assert.equal(c.instance_name, instance);
        assert.match(String(c.webhook_url), new RegExp(`/api/whatsapp/webhook/${slug}$`));
        const audit = (await auditOf(slug)).filter((a) => a.action.startsWith("reset."));
        assert.deepEqual(audit.map((a) => `${a.action}:${a.result}:${a.dry_run}`), [
          "reset.logout:ok:false",
          "reset.delete_instance:ok:false",
          "reset.create_instance:ok:false",
          "reset.replace_config:ok:false",
        ]);
        assert.equal((audit[0].after as { loggedOut: boolean }).loggedOut, true);
        assert.equal((audit[1].after as { deleted: boolean }).deleted, true);
        const d = (await opsCall(app, f, "diagnose", { slug })).json;
        assert.deepEqual(d.problems, ["not_connected"], "after the reset only the scan is left");
      });
    } finally {
      await f.close();
      await dropTenantsLike("sp-");
    }
  });
}
