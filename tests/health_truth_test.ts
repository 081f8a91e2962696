// health-check against how a real Evolution server behaves (the simulator's real defaults): a listing that says
// "open" for a reconnect loop, a dead socket or a silent tenant is not taken at its word; probes are bounded per
// run; opt-in self-healing repairs what a restart can, audited.
import assert from "node:assert/strict";
import { testSql, waitFor } from "./_helpers.ts";
import { healthFixture } from "./health_fixture.ts";

async function healthOf(slug: string) {
  const [h] = await testSql()<
    {
      state: string;
      issue_code: string | null;
      flags: string[];
      flapping: boolean;
      flap_percent: string | null;
      socket_state: string | null;
      live_state: string | null;
      details: Record<string, unknown>;
    }[]
  >`select state, issue_code, flags, flapping, flap_percent, socket_state, live_state, details
    from maintenance.tenant_health where tenant_slug = ${slug}`;
  return h;
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("a reconnect loop the listing calls open is seen within 2 runs, as flapping or as not connected", async () => {
  const f = await healthFixture();
  try {
    const cycling = await f.tenant("ht-loop");
    const stuck = await f.tenant("ht-stuck");
    const calm = await f.tenant("ht-calm");
    const scope = [cycling.slug, stuck.slug, calm.slug];
    await f.run(scope);
    // memory cycles close → connecting → open …; the stored status stays open; only connecting/open webhooks
    f.sim.control.reconnectLoop(cycling.instance, { opens: true, cycles: 50 });
    // #1502: every reconnect times out; the listing still says open
    f.sim.control.connectingLoop(stuck.instance);
    await pause(1500);
    await f.sim.control.drain();
    await f.run(scope);
    await pause(500);
    await f.sim.control.drain();
    const r2 = await f.run(scope);
    assert.equal(f.sim.control.instances().find((i) => i.name === cycling.instance)?.dbStatus, "open");
    const c = await healthOf(cycling.slug);
    assert.equal(c.flapping, true, `the loop is flapping: ${c.flap_percent}% ${JSON.stringify(c.details)}`);
    assert.equal(c.state, "degraded", `${c.issue_code} ${JSON.stringify(c.details)}`);
    const s = await healthOf(stuck.slug);
    assert.deepEqual([s.state, s.issue_code], ["degraded", "instance_disconnected"], JSON.stringify(s.details));
    assert.notEqual(s.live_state, "open", "its in-memory state was read, not the listing's open");
    assert.deepEqual([(await healthOf(calm.slug)).state], ["healthy"]);
    assert.ok((r2.tenants as { flapping: string[] }).flapping.includes(cycling.slug));
  } finally {
    await f.close();
  }
});

Deno.test("a reconnect loop raises ONE alert within 2 runs, and a stuck reconnect one, each told once", async () => {
  const f = await healthFixture();
  try {
    const cycling = await f.tenant("ht-aloop");
    const stuck = await f.tenant("ht-astuck");
    const calm = await f.tenant("ht-acalm");
    const scope = [cycling.slug, stuck.slug, calm.slug];
    await f.run(scope);
    f.sim.control.reconnectLoop(cycling.instance, { opens: true, cycles: 50 });
    f.sim.control.connectingLoop(stuck.instance);
    const told = (slug: string) => f.slack(`:${slug}`);
    for (let run = 1; run <= 2; run++) {
      await pause(run === 1 ? 1500 : 500);
      await f.sim.control.drain();
      await f.run(scope);
    }
    assert.deepEqual(told(cycling.slug).map((m) => m.replace(/\(\d+(\.\d+)?% state change\)/, "(…)")), [
      `🟠 [FIRING] ${cycling.slug}: WhatsApp keeps disconnecting and reconnecting (…)`,
    ], "the loop: one flapping alert, no alert per change");
    assert.equal(told(stuck.slug).length, 1, `the stuck reconnect: one alert (${told(stuck.slug)})`);
    assert.match(told(stuck.slug)[0], /\[FIRING\].*not connected/);
    for (let run = 3; run <= 5; run++) {
      await pause(200);
      await f.sim.control.drain();
      await f.run(scope);
    }
    assert.equal(told(cycling.slug).length, 1, "told once: nothing more while it loops on");
    assert.equal(told(stuck.slug).length, 1, "nor about the stuck one");
    assert.deepEqual(told(calm.slug), [], "nothing about the calm tenant");
  } finally {
    await f.close();
  }
});

Deno.test("a tenant flapping down/up for 10 runs costs at most 3 notifications, the flap's end included", async () => {
  const f = await healthFixture();
  try {
    const t = await f.tenant("ht-flap10");
    await f.run([t.slug]);
    const told = () => f.slack(`:${t.slug}`);
    for (let run = 1; run <= 10; run++) {
      // down one run (a terminal close that is not a logout), up the next
      if (run % 2) f.sim.control.setState(t.instance, "close", { statusReason: 403 });
      else f.sim.control.setState(t.instance, "open");
      await f.sim.control.drain();
      await f.run([t.slug]);
    }
    const during = told().length;
    assert.ok(during <= 3, `10 runs of flapping: ${during} notification(s) ${JSON.stringify(told())}`);
    assert.equal((await healthOf(t.slug)).flapping, true, "it is flapping");
    // stable again: the flap detection's hysteresis lets go once the changes have left its samples
    let runs = 0;
    while ((await healthOf(t.slug)).flapping && runs < 40) {
      await f.run([t.slug]);
      runs++;
    }
    assert.equal((await healthOf(t.slug)).flapping, false, `flapping ended after ${runs} stable runs`);
    await f.run([t.slug]);
    await f.run([t.slug]);
    const all = told();
    assert.ok(all.length <= 3, `the whole episode: ${all.length} notification(s) ${JSON.stringify(all)}`);
    assert.deepEqual(all.map((m) => m.match(/\[(FIRING|RESOLVED)\]/)?.[1]), ["FIRING", "RESOLVED"]);
    assert.ok(all.every((m) => /keeps disconnecting and reconnecting/.test(m)), "both about the flapping alert");
    console.log(
      `flapping down/up for 10 runs: ${during} notification(s) during, ${all.length} for the whole ` +
        `episode (flapping ended after ${runs} stable runs)`,
    );
  } finally {
    await f.close();
  }
});

Deno.test("a dead socket is found within the socket rotation, and with self-healing on healed by one restart, audited", async () => {
  const f = await healthFixture();
  try {
    const tenants = await Promise.all([1, 2, 3].map(() => f.tenant("ht-sock")));
    const scope = tenants.map((t) => t.slug);
    const victim = tenants[1];
    // a 15-minute rotation: three runs, each probing a third of the open instances, the least recently probed first
    await f.set("health_check_socket_rotation", "15 minutes");
    f.sim.control.killSocket(victim.instance, { healable: true });
    let foundAt = 0;
    for (let run = 1; run <= 3 && !foundAt; run++) {
      const r = await f.run(scope);
      assert.equal((r.evolutionCalls as { socketProbe: number }).socketProbe, 1, "one probe per run: the quota");
      if ((await healthOf(victim.slug)).issue_code === "socket_dead") foundAt = run;
    }
    assert.ok(foundAt >= 1 && foundAt <= 3, "found within the rotation (3 runs)");
    const dead = await healthOf(victim.slug);
    assert.deepEqual([dead.state, dead.socket_state], ["unhealthy", "dead"]);
    assert.match(String(dead.details.text), /npm run ops -- fix /);

    // self-healing off (the default): nothing was restarted
    const audit = () =>
      testSql()<{ action: string; result: string }[]>`
        select action, result from maintenance.actions_audit where tenant_slug = ${victim.slug} order by id`;
    assert.equal((await audit()).length, 0);
    await f.set("health_check_self_heal", true);
    const healedRun = await f.run(scope);
    const heal = healedRun.selfHeal as { tenant: string; action: string; result: string }[];
    assert.deepEqual(heal.map((h) => [h.tenant, h.action, h.result]), [[victim.slug, "restart", "ok"]]);
    const after = await healthOf(victim.slug);
    assert.deepEqual([after.state, after.socket_state], ["healthy", "live"]);
    assert.deepEqual((after.details.healed as { by: string }).by, "restart");
    assert.deepEqual((await audit()).map((a) => `${a.action}:${a.result}`), ["heal.restart:ok"]);
    await f.run(scope);
    assert.equal((await audit()).length, 1, "a healthy socket is not restarted again");
    assert.equal(await f.deps.evolution.probeSocket(victim.instance), "live");
  } finally {
    await f.close();
  }
});

Deno.test("silence is a hint only: a quiet tenant whose probe answers is not a zombie; one that never sent an event and fails it is", async () => {
  const f = await healthFixture();
  try {
    const quiet = await f.tenant("ht-quiet");
    const mute = await f.tenant("ht-mute");
    const scope = [quiet.slug, mute.slug];
    await f.run(scope);
    // quiet: its usual rate is an event every ~40 minutes, and none for 3 days; mute: open for 2 days, no event ever
    await testSql()`
      insert into maintenance.webhook_activity (tenant_slug, last_event_at, first_event_at, events_total)
      values (${quiet.slug}, now() - interval '3 days', now() - interval '30 days', 1000)
      on conflict (tenant_slug) do update set last_event_at = excluded.last_event_at,
        first_event_at = excluded.first_event_at, events_total = excluded.events_total`;
    await testSql()`delete from maintenance.webhook_activity where tenant_slug = ${mute.slug}`;
    await testSql()`update maintenance.tenant_health set since = now() - interval '2 days'
      where tenant_slug = any (${scope})`;
    f.sim.control.killSocket(mute.instance, { healable: false });
    const r = await f.run(scope);
    const q = await healthOf(quiet.slug);
    assert.deepEqual([q.state, q.flags, q.socket_state], ["healthy", [], "live"], "probed, answered: not a zombie");
    const m = await healthOf(mute.slug);
    assert.deepEqual([m.state, m.issue_code, m.socket_state], ["unhealthy", "socket_dead", "dead"]);
    assert.deepEqual((r.tenants as { zombies: string[] }).zombies, [mute.slug]);
  } finally {
    await f.close();
  }
});

Deno.test("a 1.8 server has no liveness probe: a silent tenant there stays a suspicion (zombie_suspected)", async () => {
  const f = await healthFixture({ version: "1.8.6" });
  try {
    const t = await f.tenant("ht-v18");
    await f.run([t.slug]);
    await testSql()`delete from maintenance.webhook_activity where tenant_slug = ${t.slug}`;
    await testSql()`update maintenance.tenant_health set since = now() - interval '2 days' where tenant_slug = ${t.slug}`;
    const r = await f.run([t.slug]);
    const h = await healthOf(t.slug);
    assert.deepEqual([h.state, h.issue_code, h.socket_state], ["degraded", "zombie_suspected", "unknown"]);
    assert.equal((r.evolutionCalls as { socketProbe: number }).socketProbe, 0, "no probe call is made on 1.8");
  } finally {
    await f.close();
  }
});

Deno.test("a logged-out (401) instance is named as such, never self-healed, and its alert carries the fix command", async () => {
  const f = await healthFixture();
  try {
    const t = await f.tenant("ht-401");
    await f.set("health_check_self_heal", true);
    await f.run([t.slug]);
    f.sim.control.setState(t.instance, "close"); // a logout: 401
    for (let i = 0; i < 3; i++) await f.run([t.slug]);
    const h = await healthOf(t.slug);
    assert.deepEqual([h.state, h.issue_code], ["degraded", "logged_out"]);
    const [{ n }] = await testSql()<{ n: number }[]>`
      select count(*)::int as n from maintenance.actions_audit where tenant_slug = ${t.slug}`;
    assert.equal(n, 0, "a person must scan a QR code: nothing is attempted");
    await waitFor("the alert", () => Promise.resolve(f.slack(`logged_out:${t.slug}`).length > 0 || null), 5000);
    const [alert] = f.rx.control.received("slack").filter((m) =>
      JSON.stringify(m.body).includes(`logged_out:${t.slug}`)
    );
    assert.match(JSON.stringify(alert.body), new RegExp(`npm run ops -- reconnect ${t.slug}`));
  } finally {
    await f.close();
  }
});

Deno.test("with self-healing on, a transient close of a paired number is reconnected once; the budget bounds the calls", async () => {
  const f = await healthFixture();
  try {
    const t = await f.tenant("ht-drop");
    const others = await Promise.all([1, 2, 3, 4, 5, 6].map(() => f.tenant("ht-budget", "connecting")));
    await f.set("health_check_self_heal", true);
    await f.run([t.slug]);
    f.sim.control.staleConnected(t.instance); // #1398: memory close, listing open, no close sent
    await f.set("health_check_state_rotation", "5 minutes"); // every open instance is read each run
    const r = await f.run([t.slug]);
    const heal = r.selfHeal as { tenant: string; action: string; result: string }[];
    assert.deepEqual(heal.map((h) => [h.action, h.result]), [["reconnect", "ok"]], JSON.stringify(r.selfHeal));
    assert.equal((await healthOf(t.slug)).state, "healthy");

    // the probe budget caps a run's calls; what it leaves unasked is counted
    await f.set("health_check_probe_budget", 3);
    f.sim.control.resetStats();
    const capped = await f.run(others.map((o) => o.slug));
    const calls = capped.evolutionCalls as { connectionState: number; overBudget: number };
    assert.deepEqual([calls.connectionState, calls.overBudget], [3, 3]);
    assert.equal(f.sim.control.stats().calls.connectionState, 3);
  } finally {
    await f.close();
  }
});
