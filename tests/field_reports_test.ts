// The bundle against situations reported on real Evolution servers (evolution-foundation/evolution-api issues), each
// reproduced by the simulator's scenario library with its realistic defaults on (2.3.7, compressed clock). Each test
// says what an operator sees and what the bundle does about it: diagnose names it, the repairs act on it or say
// who must. (The health check's view of the listing-says-open cases is issue 15's: it trusts the stored status.)
import assert from "node:assert/strict";
import { healthCheck } from "../shared/jobs/health_check.ts";
import { runJob } from "../shared/jobs/runner.ts";
import { diagnose } from "../shared/ops/diagnose.ts";
import { fixTenant, reconnectTenant } from "../shared/ops/fix.ts";
import { resetTenant } from "../shared/ops/reset.ts";
import { DEAD_SOCKET_ADVICE } from "../shared/evolution/lifecycle.ts";
import { createTenant, dropTenantsLike, liveNames, testSql, waitFor } from "./_helpers.ts";
import { auditOf, configOf, healthyTenant, type OpsFixture, opsFixture } from "./ops_fixture.ts";

const actor = "test:field-reports";
const TIME_SCALE = 0.05;

async function withFixture(fn: (f: OpsFixture) => Promise<void>, version: "2.3.7" | "2.4.0" = "2.3.7") {
  const f = await opsFixture({}, { version, timeScale: TIME_SCALE, licenseActivated: version !== "2.4.0" });
  try {
    await fn(f);
  } finally {
    await f.close();
    await dropTenantsLike("fr-");
  }
}

const liveState = (f: OpsFixture, name: string) => f.sim.control.instances().find((i) => i.name === name)?.state;

async function healthOf(f: OpsFixture, slug: string) {
  const run = await runJob(f.deps, healthCheck, {
    input: healthCheck.input.parse({ tenants: [slug] }),
    trigger: "test",
  });
  const issues = run.report.issues as { tenant: string; state: string; issue?: string; message?: string }[];
  return { run, tenant: issues.find((t) => t.tenant === slug) ?? { tenant: slug, state: "healthy" } };
}

/** The tenant's connection.update events the receiver stored, oldest first: [state, statusReason]. */
async function storedStates(slug: string) {
  return (await testSql()<{ state: string; reason: number | null }[]>`
    select data ->> 'state' as state, (data ->> 'statusReason')::int as reason from public.api_logs
    where tenant_slug = ${slug} and event = 'connection.update' order by id`).map((r) => [r.state, r.reason]);
}

Deno.test("#1153 / #2403 frozen instance: diagnose finds the dead socket; restarts are tried and a person is told to restart Evolution; reset changes nothing", async () => {
  await withFixture(async (f) => {
    const { slug, instance } = await healthyTenant(f, "fr-frozen");
    const configBefore = await configOf(slug);
    // What the operator sees: the manager lists the number as connected, no message goes out, no webhook comes in.
    f.sim.control.frozen(instance);
    const d = await diagnose(f.deps, slug);
    assert.deepEqual(d.problems, ["socket_dead"], JSON.stringify(d.connection));
    assert.equal(d.connection.evidence.state, "open", "connected as far as every read goes");
    assert.equal(d.connection.evidence.socket, "dead", "the liveness probe over the socket says otherwise");

    // reconnect: connect answers "open" and changes nothing, so the probe runs and the instance is restarted
    const rc = await reconnectTenant(f.deps, slug, { actor });
    assert.deepEqual([rc.ok, rc.socket, rc.advice], [false, "dead", DEAD_SOCKET_ADVICE], JSON.stringify(rc));
    assert.deepEqual(rc.steps.map((s) => `${s.step}:${s.result}`), ["connect:ok", "restart:ok"]);

    // fix: the same remedy, and the same honest answer
    const fx = await fixTenant(f.deps, slug, { actor });
    assert.equal(fx.result, "needs_human", JSON.stringify(fx));
    assert.deepEqual(fx.needsHuman, [{ problem: "socket_dead", advice: DEAD_SOCKET_ADVICE }]);

    // reset: the logout fails on the dead socket even after a restart: it stops there, nothing deleted
    const rs = await resetTenant(f.deps, slug, { actor, apply: true });
    assert.deepEqual(
      [rs.result, rs.failedStep, rs.advice],
      ["failed", "logout", DEAD_SOCKET_ADVICE],
      JSON.stringify(rs),
    );
    assert.ok(liveNames(f.sim).includes(instance), "the instance is still there");
    assert.deepEqual(await configOf(slug), configBefore, "and so is the integration row");
    assert.ok((await auditOf(slug)).some((a) => a.action === "reset.logout" && a.result === "failed"));

    // the reported remedy: restart the Evolution process; then diagnose is clean again
    await f.sim.control.restartServer({ downMs: 10 });
    await waitFor(
      "the process restart",
      async () => (await f.deps.evolution.probeSocket(instance)) === "live" || null,
      5000,
    );
    const healed = await diagnose(f.deps, slug);
    assert.equal(healed.connection.code, "ok", JSON.stringify(healed.connection));
    assert.equal(healed.connection.evidence.socket, "live");
  });
});

Deno.test("#2403 dead socket a restart heals: fix restarts the instance, the probe says it lives, audited", async () => {
  await withFixture(async (f) => {
    const { slug, instance } = await healthyTenant(f, "fr-dead");
    f.sim.control.killSocket(instance, { healable: true });
    assert.deepEqual((await diagnose(f.deps, slug)).problems, ["socket_dead"]);
    const fx = await fixTenant(f.deps, slug, { actor });
    assert.equal(fx.result, "ok", JSON.stringify(fx));
    const step = fx.steps.find((s) => s.step === "reconnect")!;
    assert.deepEqual(step.detail, { restarted: true, state: "open", socket: "live" });
    assert.equal(await f.deps.evolution.probeSocket(instance), "live");
    assert.ok((await auditOf(slug)).some((a) => a.action === "fix.reconnect" && a.result === "ok"));
  });
});

Deno.test("#1398 status stays connected after the connection dropped: diagnose reads the live state, fix reconnects", async () => {
  await withFixture(async (f) => {
    const { slug, instance } = await healthyTenant(f, "fr-stale");
    // What the operator sees: the manager says connected (the stored status); messages do not arrive.
    f.sim.control.staleConnected(instance);
    const d = await diagnose(f.deps, slug);
    assert.deepEqual(d.problems, ["not_connected"], JSON.stringify(d.connection));
    assert.deepEqual(d.connection.evidence.stateSources, { live: "close", listed: "open" });
    const fx = await fixTenant(f.deps, slug, { actor });
    assert.equal(fx.result, "ok", JSON.stringify(fx));
    await waitFor("the reconnect", () => Promise.resolve(liveState(f, instance) === "open" || null), 5000);
    assert.deepEqual((await diagnose(f.deps, slug)).problems, []);
  });
});

Deno.test("#2498 stream error 515 then 401 logs a freshly paired number out: the bundle records why, alerts, and offers a new QR", async () => {
  await withFixture(async (f) => {
    const t = await createTenant({ prefix: "fr-515" });
    const instance = await f.seedCorrect(t.slug, "close");
    const qr = await reconnectTenant(f.deps, t.slug, { actor });
    assert.equal(qr.connect?.kind, "qr", "the operator gets a QR code to scan");
    // What the operator sees: the number pairs, works for a moment, and is logged out ("device removed").
    await f.sim.control.stream515Then401(instance, { openForMs: 100 });
    await f.sim.control.drain();
    await waitFor(
      "the 401 close stored",
      async () => (await storedStates(t.slug)).some(([s, r]) => s === "close" && r === 401) || null,
      5000,
    );
    // 515 is a transient restart (connecting, open: no close); the 401 is terminal (close, written to the listing)
    const states = await storedStates(t.slug);
    assert.deepEqual(states.at(-1), ["close", 401], JSON.stringify(states));
    assert.ok(
      !states.slice(0, -1).some(([s]) => s === "close"),
      `the 515 restart sent no close: ${JSON.stringify(states)}`,
    );
    // pairing (connecting), scanned, 515: reconnect (connecting, open), then the 401
    assert.deepEqual(states.map(([s]) => s), ["connecting", "connecting", "open", "close"], JSON.stringify(states));
    // the health check names it: logged out, a person must scan a new QR code (the alert carries the command)
    const { tenant } = await healthOf(f, t.slug);
    assert.deepEqual([tenant.state, tenant.issue], ["degraded", "logged_out"], JSON.stringify(tenant));
    const [h] = await testSql()<{ text: string }[]>`
      select details ->> 'text' as text from maintenance.tenant_health where tenant_slug = ${t.slug}`;
    assert.match(h.text, new RegExp(`scan a new QR code: npm run ops -- reconnect ${t.slug}`));
    const d = await diagnose(f.deps, t.slug);
    assert.ok(d.problems.includes("not_connected"));
    assert.deepEqual(d.disconnection.evidence.reasons, { "401": 1 }, "the logout's reason is on record");
    const again = await reconnectTenant(f.deps, t.slug, { actor });
    assert.equal(again.connect?.kind, "qr", "a logged-out number needs a new scan: reconnect answers the QR");
  });
});

Deno.test("#2356 one instance answers 401 for minutes with the right key: not a wrong key, nothing changed, then it recovers", async () => {
  await withFixture(async (f) => {
    const { slug, instance } = await healthyTenant(f, "fr-401");
    const other = await healthyTenant(f, "fr-401-other");
    const configBefore = await configOf(slug);
    f.sim.control.intermittent401(instance, { durationMs: 1500 });
    // What the operator sees: "Unauthorized" for this one number while the others work.
    const d = await diagnose(f.deps, slug);
    assert.ok(d.problems.includes("instance_unauthorized"), JSON.stringify(d.connection));
    assert.ok(!d.problems.includes("invalid_api_key"), "the key is not blamed: the same key listed the instance");
    assert.equal(d.connection.code, "unknown");
    const fx = await fixTenant(f.deps, slug, { actor });
    assert.equal(fx.result, "needs_human");
    assert.equal(fx.needsHuman[0].problem, "instance_unauthorized");
    assert.deepEqual(fx.steps, [], "nothing changed");
    assert.deepEqual(await configOf(slug), configBefore);
    assert.deepEqual((await diagnose(f.deps, other.slug)).problems, [], "other tenants are not affected");
    await waitFor("the recovery", async () => (await diagnose(f.deps, slug)).connection.code === "ok" || null, 5000);
  });
});

Deno.test("#1502 instance keeps falling back to connecting: diagnose sees it behind the listing's open; reset and a new scan end it", async () => {
  await withFixture(async (f) => {
    const { slug, instance } = await healthyTenant(f, "fr-loop");
    f.sim.control.connectingLoop(instance);
    await waitFor("the loop", () => Promise.resolve(liveState(f, instance) !== "open" || null), 2000);
    // What the operator sees: the manager says connected; the phone does not; the webhook shows only "connecting".
    const d = await diagnose(f.deps, slug);
    assert.deepEqual(d.problems, ["not_connected"], JSON.stringify(d.connection));
    const sources = d.connection.evidence.stateSources as { live: string; listed: string };
    assert.equal(sources.listed, "open");
    assert.ok(["connecting", "close"].includes(sources.live), sources.live);
    // the only fix reported: disconnect and reconnect with a new scan, which is reset
    const rs = await resetTenant(f.deps, slug, { actor, apply: true });
    assert.equal(rs.result, "ok", JSON.stringify(rs));
    assert.deepEqual(liveNames(f.sim).filter((n) => n === instance), [instance], "one instance, the new one");
    const qr = await reconnectTenant(f.deps, slug, { actor });
    assert.equal(qr.connect?.kind, "qr", "a QR code to scan");
  });
});

Deno.test("QR limit: the pairing stops with no terminal event; health check and diagnose see it, reconnect starts a new pairing", async () => {
  await withFixture(async (f) => {
    const t = await createTenant({ prefix: "fr-qr" });
    const instance = await f.seedCorrect(t.slug, "close");
    const shown = f.sim.control.qrLimit(instance);
    assert.ok(shown > 0);
    await waitFor("the QR limit", () => Promise.resolve(liveState(f, instance) === "close" || null), 2000);
    // What the operator sees: the QR stops refreshing; the manager says "connecting" forever.
    const { tenant } = await healthOf(f, t.slug);
    assert.deepEqual([tenant.state, tenant.issue], ["degraded", "instance_disconnected"], JSON.stringify(tenant));
    assert.match(String(tenant.message), /not connected \(close\)/, "asked live: the listing said connecting");
    const d = await diagnose(f.deps, t.slug);
    assert.deepEqual(d.connection.evidence.stateSources, { live: "close", listed: "connecting" });
    const rc = await reconnectTenant(f.deps, t.slug, { actor });
    assert.equal(rc.connect?.kind, "qr", JSON.stringify(rc.connect));
  });
});

Deno.test("2.4.0 before activation: 503 LICENSE_REQUIRED is named as such, by the health check and by diagnose", async () => {
  await withFixture(async (f) => {
    const { slug } = await healthyTenant(f, "fr-licence");
    const { run } = await healthOf(f, slug);
    const evolution = (run.report.services as Record<string, { status: string; code?: string; error?: string }>)
      .evolution_api;
    assert.deepEqual([evolution.status, evolution.code], ["unhealthy", "license_required"], JSON.stringify(evolution));
    assert.match(String(evolution.error), /not activated .*LICENSE_REQUIRED/);
    const d = await diagnose(f.deps, slug);
    assert.match(JSON.stringify(d.connection.evidence), /LICENSE_REQUIRED/);
  }, "2.4.0");
});
