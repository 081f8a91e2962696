// whatsapp-ops diagnose: each seed code produced by a scenario set up in the simulator (and, for disconnections,
// by real connection.update webhooks through the test stack's receiver), with its evidence.
import assert from "node:assert/strict";
import { createOpsApp } from "../shared/ops/app.ts";
import { createTenant, testSql, waitFor } from "./_helpers.ts";
import { healthyTenant, opsCall, opsFixture } from "./ops_fixture.ts";

Deno.test("diagnose produces each seed connection code from a simulator scenario", async (t) => {
  const f = await opsFixture();
  const app = createOpsApp(f.deps);
  const diag = async (slug: string, deps = f) =>
    (await opsCall(createOpsApp(deps.deps), deps, "diagnose", { slug })).json;
  try {
    await t.step("ok: row, open instance, right webhook", async () => {
      const ok = await healthyTenant(f, "dg-ok");
      const d = await diag(ok.slug);
      assert.equal(d.connection.code, "ok", JSON.stringify(d));
      assert.equal(d.healthy, true);
      assert.equal(d.connection.evidence.state, "open");
      assert.equal(d.connection.evidence.webhook.ok, true);
    });
    await t.step("instance_not_found: the row exists, the instance does not", async () => {
      const { slug } = await createTenant({ prefix: "dg-noinst" });
      const d = await diag(slug);
      assert.equal(d.connection.code, "instance_not_found");
      assert.deepEqual(d.problems, ["instance_not_found"]);
    });
    await t.step("config_missing: the instance exists, the row does not", async () => {
      const { slug } = await createTenant({ prefix: "dg-nocfg", integration: false });
      await f.seedCorrect(slug);
      const d = await diag(slug);
      assert.equal(d.connection.code, "config_missing");
      assert.equal(d.connection.evidence.config, null);
    });
    await t.step("invalid_api_key: the server refuses the key (even for a missing instance)", async () => {
      const { slug } = await createTenant({ prefix: "dg-key" });
      const wrong = await opsFixture({ EVOLUTION_API_KEY: "definitely-not-the-key" });
      try {
        const d = await diag(slug, wrong);
        assert.equal(d.connection.code, "invalid_api_key", JSON.stringify(d.connection));
        assert.match(d.connection.evidence.evolutionError, /unauthorized 401/);
      } finally {
        await wrong.close();
      }
    });
    await t.step("api_unreachable: the server refuses connections", async () => {
      const { slug } = await createTenant({ prefix: "dg-down" });
      f.sim.control.setDown(true);
      try {
        const d = await diag(slug);
        assert.equal(d.connection.code, "api_unreachable", JSON.stringify(d.connection));
        assert.equal(d.disconnection.code, "api_unstable", "an unreachable server is also unstable");
      } finally {
        f.sim.control.setDown(false);
      }
    });
    await t.step("unknown: everything is in place but the instance is not open", async () => {
      const { slug } = await createTenant({ prefix: "dg-closed" });
      await f.seedCorrect(slug, "close");
      const d = await diag(slug);
      assert.equal(d.connection.code, "unknown");
      assert.deepEqual(d.problems, ["not_connected"]);
      assert.equal(d.connection.evidence.state, "close");
    });
    await t.step("unknown tenant → 404, bad slug → 400 naming the field", async () => {
      const r = await opsCall(app, f, "diagnose", { slug: "no-such-tenant-x1" });
      assert.equal(r.status, 404);
      const bad = await opsCall(app, f, "diagnose", { slug: "../etc" });
      assert.equal(bad.status, 400);
      assert.match(bad.json.error.message, /'slug'/);
    });
  } finally {
    await f.close();
  }
});

Deno.test("diagnose produces the disconnection and performance codes from simulator scenarios", async (t) => {
  const f = await opsFixture();
  try {
    const diag = async (slug: string) => (await opsCall(createOpsApp(f.deps), f, "diagnose", { slug })).json;
    await t.step(
      "frequent_disconnections: 4 logouts in 2 h, delivered by the simulator to the real receiver",
      async () => {
        const { slug, instance } = await healthyTenant(f, "dg-flap");
        // a disconnection is a connection that was open: the record starts with the tenant connected
        f.sim.control.setState(instance, "open");
        await new Promise((r) => setTimeout(r, 5));
        for (let i = 0; i < 4; i++) {
          f.sim.control.disconnect(instance, 401);
          f.sim.control.setState(instance, "open");
          // distinct event times: the receiver drops identical events (instance, time, payload) as redeliveries
          await new Promise((r) => setTimeout(r, 5));
        }
        await f.sim.control.drain();
        const d = await diag(slug);
        assert.equal(d.disconnection.code, "frequent_disconnections", JSON.stringify(d.disconnection));
        assert.equal(d.disconnection.evidence.closes, 4);
        assert.deepEqual(d.disconnection.evidence.reasons, { "401": 4 });
        assert.equal(d.disconnection.evidence.terminalCloses, 4, "each drop was a logout");
      },
    );
    await t.step("api_unstable: GET / fails while the instance answers", async () => {
      const { slug } = await healthyTenant(f, "dg-unstable");
      f.sim.control.fault({ route: "info", kind: "status500" });
      try {
        const d = await diag(slug);
        assert.equal(d.connection.code, "ok");
        assert.equal(d.disconnection.code, "api_unstable", JSON.stringify(d.disconnection));
      } finally {
        f.sim.control.clearFaults();
      }
    });
    await t.step("slow_api: the tenant's calls took over 5 s on average", async () => {
      const { slug, instance } = await healthyTenant(f, "dg-slow");
      f.sim.control.setLatency(5100);
      try {
        await Promise.all([1, 2, 3].map(() => f.deps.evolution.connectionState(instance)));
      } finally {
        f.sim.control.setLatency(0);
      }
      await f.deps.evolution.flushLogs();
      const d = await diag(slug);
      assert.equal(d.performance.code, "slow_api", JSON.stringify(d.performance));
      assert.ok(d.performance.evidence.avgResponseMs > 5000);
    });
    await t.step("high_error_rate: most of the tenant's calls failed", async () => {
      const { slug, instance } = await healthyTenant(f, "dg-errors");
      f.sim.control.fault({ route: "connectionState", kind: "status500" });
      await Promise.all([1, 2, 3].map(() => f.deps.evolution.connectionState(instance).catch(() => null)));
      f.sim.control.clearFaults();
      await f.deps.evolution.connectionState(instance);
      await f.deps.evolution.flushLogs();
      const d = await diag(slug);
      assert.equal(d.performance.code, "high_error_rate", JSON.stringify(d.performance));
      assert.equal(d.performance.evidence.successRate, 25);
      assert.deepEqual(d.performance.evidence.errorsByType, { server_error: 3 });
    });
    await t.step("normal: too few calls to judge", async () => {
      const { slug } = await healthyTenant(f, "dg-quiet");
      const d = await diag(slug);
      assert.equal(d.performance.code, "normal");
      assert.match(d.performance.evidence.note, /too few/);
    });
  } finally {
    await f.close();
  }
});

Deno.test("diagnose counts transient drops (connecting then open, no close) as frequent_disconnections", async () => {
  // Evolution reconnects a transient close at once and sends no close: only connecting, then open (reconnectLoop)
  const f = await opsFixture({}, { openMs: 20, reconnectMs: 20 });
  try {
    const { slug, instance } = await healthyTenant(f, "dg-drops");
    f.sim.control.setState(instance, "open");
    await f.sim.control.drain();
    f.sim.control.reconnectLoop(instance, { cycles: 4, openForMs: 30 });
    const states = async () =>
      (await testSql()<{ state: string }[]>`
        select data ->> 'state' as state from public.api_logs
        where tenant_slug = ${slug} and event = 'connection.update' order by id`).map((r) => r.state);
    await waitFor("four reconnects delivered", async () => ((await states()).length >= 9 ? true : null), 10_000);
    await f.sim.control.drain();
    assert.deepEqual(await states(), ["open", ...Array(4).fill(["connecting", "open"]).flat()]);
    const d = (await opsCall(createOpsApp(f.deps), f, "diagnose", { slug })).json;
    assert.equal(d.connection.code, "ok", "the instance is open again");
    assert.equal(d.disconnection.code, "frequent_disconnections", JSON.stringify(d.disconnection));
    assert.equal(d.disconnection.evidence.closes, 4, "four drops, though Evolution sent no close");
    assert.equal(d.disconnection.evidence.terminalCloses, 0);
    assert.deepEqual(d.disconnection.evidence.reasons, { "200": 4 }, "a transient drop carries connecting's 200");
    assert.deepEqual(d.problems, ["frequent_disconnections"]);
  } finally {
    await f.close();
  }
});
