// health-check on the real test database with the in-process Evolution simulator and the local Slack receiver.
// Most runs are scoped to this file's own tenants (health-check's `tenants` input). Platform alerts are raised and
// resolved only by full runs (`runAll`), which check every active tenant: the simulator is first given an open
// instance for every other tenant, so only this file's tenants can be down; the tests that raise platform alerts
// run in sequence here and leave them resolved. Tenant alerts fire after `alert_failure_threshold` bad runs in a row
// and resolve after `alert_success_threshold` good ones (read from the settings, not assumed).
import assert from "node:assert/strict";
import postgres from "postgres";
import { createTenant, testDeps, testSql, uniqueSlug } from "./_helpers.ts";
import { type Simulator, startSimulator } from "../dev/evolution_sim/app.ts";
import { type Receivers, startReceivers } from "../dev/receivers.ts";
import { resolveLeftoverPlatformAlerts } from "./health_fixture.ts";
import { buildDeps, type Deps } from "../shared/deps.ts";
import { healthCheck, runHealthCheck } from "../shared/jobs/health_check.ts";
import { runJob } from "../shared/jobs/runner.ts";

interface Fixture {
  sim: Simulator;
  rx: Receivers;
  deps: Deps;
  run(tenants: string[]): Promise<Record<string, unknown>>;
  /** A full run (every active tenant): the other tenants' instances are given to the simulator, open, first. */
  runAll(own: string[], deps?: Deps): Promise<Record<string, unknown>>;
  /** Slack messages that mention `needle` (a fingerprint or a slug), as their fallback text. */
  slack(needle: string): string[];
  /** Sets a maintenance setting until close(). */
  set(key: string, value: unknown): Promise<void>;
  close(): Promise<void>;
}

async function fixture(extraEnv: Record<string, string> = {}): Promise<Fixture> {
  await resolveLeftoverPlatformAlerts();
  const sim = await startSimulator({ port: 0 });
  const rx = await startReceivers();
  const deps = testDeps({
    env: {
      EVOLUTION_API_URL: sim.url,
      EVOLUTION_API_KEY: sim.apiKey,
      SLACK_WEBHOOK_URL: rx.slackUrl,
      ALERT_LOG: "false",
      ...extraEnv,
    },
  });
  const changed: string[] = [];
  return {
    sim,
    rx,
    deps,
    async run(tenants) {
      const out = await runHealthCheck(deps, { runId: crypto.randomUUID(), input: { tenants } });
      return { status: out.status, ...out.report };
    },
    async runAll(own, using = deps) {
      await seedOthers(sim, own);
      const out = await runHealthCheck(using, { runId: crypto.randomUUID(), input: {} });
      return { status: out.status, ...out.report };
    },
    slack: (needle) =>
      rx.control.received("slack").filter((m) => JSON.stringify(m.body).includes(needle)).map((m) =>
        String(m.body.text)
      ),
    async set(key, value) {
      await testSql()`update maintenance.settings set value = ${testSql().json(value as never)} where key = ${key}`;
      changed.push(key);
    },
    async close() {
      if (changed.length) await testSql()`update maintenance.settings set value = null where key = any (${changed})`;
      await sim.close();
      await rx.close();
    },
  };
}

/**
 * A second Evolution server with `n` tenants of its own (registered in the fleet registry, its tenants linked to it
 * as `whatsapp-ops migrate` does), each with an open instance. Its tenants are a population of their own for the
 * mass-disconnect rule, whatever other test files left on the default server.
 */
async function otherServer(prefix: string, n: number) {
  const sim = await startSimulator({ port: 0 });
  const sql = testSql();
  const name = uniqueSlug(prefix);
  await sql`select * from maintenance.register_evolution_server(${name}, ${sim.url}, ${sim.apiKey})`;
  const tenants = await Promise.all(Array.from({ length: n }, () => createTenant({ prefix })));
  for (const t of tenants) {
    await sql`select * from maintenance.link_tenant_server(${t.tenantId}, ${sim.url}, null, null, 'operator')`;
    sim.control.seedInstance(`revalya-${t.slug}`, { state: "open" });
  }
  return {
    sim,
    tenants,
    slugs: tenants.map((t) => t.slug),
    /** The fingerprint of this server's mass_disconnect incident: keyed by its registry name. */
    incident: `mass_disconnect:${name}`,
    /** A terminal close that is not a logout (403), or open again. */
    set(slug: string, state: "open" | "close") {
      if (state === "open") sim.control.setState(`revalya-${slug}`, "open");
      else sim.control.setState(`revalya-${slug}`, "close", { statusReason: 403 });
    },
    async close() {
      await dropTenants(tenants.map((t) => t.slug));
      await sql`select maintenance.remove_evolution_server(${name})`;
      await sim.close();
    },
  };
}

async function dropTenants(slugs: string[]) {
  await testSql()`delete from public.tenants where slug = any (${slugs}::text[])`;
}

/** Gives the simulator an open instance for every active tenant on the default server that is not the test's own. */
async function seedOthers(sim: Simulator, own: string[]) {
  const rows = await testSql()<{ name: string }[]>`
    select coalesce(ti.config ->> 'instance_name', 'revalya-' || t.slug) as name
    from public.tenants t join public.tenant_integrations ti on ti.tenant_id = t.id and ti.integration_type = 'whatsapp'
    where coalesce(t.is_active, true) and ti.is_active and ti.config ->> 'evolution_api_url' is null
      and not exists (select 1 from maintenance.tenant_servers ts join maintenance.evolution_servers s
                      on s.id = ts.server_id where ts.tenant_id = t.id and s.name <> 'default')
      and t.slug <> all (${own}::text[])`;
  const known = new Set(sim.control.instances().map((i) => i.name));
  for (const { name } of rows) if (!known.has(name)) sim.control.seedInstance(name, { state: "open" });
}

/** The alert policy's thresholds as the database has them. */
async function thresholds(): Promise<{ failure: number; success: number }> {
  const [t] = await testSql()<{ failure: number; success: number }[]>`
    select (maintenance.setting('alert_failure_threshold') #>> '{}')::int as failure,
           (maintenance.setting('alert_success_threshold') #>> '{}')::int as success`;
  return t;
}

const firing = (messages: string[]) => messages.filter((m) => m.includes("[FIRING]"));
const resolved = (messages: string[]) => messages.filter((m) => m.includes("[RESOLVED]"));

Deno.test("healthCheck() notifies once when a tenant's instance goes close, across several runs, and once when it reopens", async () => {
  const f = await fixture();
  const { slug } = await createTenant({ prefix: "hc-close" });
  const fp = `instance_disconnected:${slug}`;
  try {
    f.sim.control.seedInstance(`revalya-${slug}`, { state: "open" });
    const r1 = await f.run([slug]);
    assert.equal(r1.status, "healthy");
    // a terminal close that is not a logout (403: the account is blocked); a 401 would be `logged_out`
    f.sim.control.setState(`revalya-${slug}`, "close", { statusReason: 403 });
    for (let i = 0; i < 3; i++) {
      const r = await f.run([slug]);
      assert.equal(r.status, "degraded");
    }
    assert.deepEqual(f.slack(fp), [`🟠 [FIRING] ${slug}: WhatsApp not connected (close)`]);
    const [h] = await testSql()`
      select state, issue_code, consecutive, since < last_checked_at as kept_since
      from maintenance.tenant_health where tenant_slug = ${slug}`;
    assert.deepEqual({ ...h }, {
      state: "degraded",
      issue_code: "instance_disconnected",
      consecutive: 3,
      kept_since: true,
    });

    f.sim.control.setState(`revalya-${slug}`, "open");
    await f.run([slug]);
    await f.run([slug]);
    const messages = f.slack(fp);
    assert.equal(messages.filter((m) => m.includes("[FIRING]")).length, 1, "still one firing notification");
    assert.equal(messages.filter((m) => m.includes("[RESOLVED]")).length, 1, "and exactly one resolved");
    const history = await testSql()`
      select from_state, to_state from maintenance.tenant_health_history where tenant_slug = ${slug} order by id`;
    assert.deepEqual(history.map((x) => [x.from_state, x.to_state]), [
      [null, "healthy"],
      ["healthy", "degraded"],
      ["degraded", "healthy"],
    ]);
  } finally {
    await dropTenants([slug]);
    await f.close();
  }
});

Deno.test("healthCheck() alerts a tenant only after alert_failure_threshold bad runs in a row, and resolves it only after alert_success_threshold good ones", async () => {
  const f = await fixture();
  const { slug } = await createTenant({ prefix: "hc-thr" });
  const inst = `revalya-${slug}`;
  const mine = () => f.slack(`:${slug}`);
  try {
    const { failure, success } = await thresholds();
    assert.ok(
      failure >= 2 && success >= 2,
      "the policy's defaults: a one-run blip never pages, nor a one-run recovery",
    );
    // the thresholds alone: this many changes in a few runs is flapping (29 % state change), tested on its own
    await f.set("flap_high_threshold", 100);
    const close = () => f.sim.control.setState(inst, "close", { statusReason: 403 });
    f.sim.control.seedInstance(inst, { state: "open" });
    await f.run([slug]);
    close();
    await f.run([slug]);
    f.sim.control.setState(inst, "open");
    await f.run([slug]);
    assert.deepEqual(mine(), [], "down for one run, then back: nothing");

    close();
    for (let i = 1; i < failure; i++) await f.run([slug]);
    assert.deepEqual(mine(), [], `down for ${failure - 1} run(s): still nothing`);
    await f.run([slug]);
    assert.equal(firing(mine()).length, 1, `down for ${failure} runs: one FIRING`);

    f.sim.control.setState(inst, "open");
    for (let i = 1; i < success; i++) await f.run([slug]);
    close();
    await f.run([slug]);
    assert.equal(mine().length, 1, "back for fewer than the success threshold, then down again: nothing new");
    const [a] = await testSql()`select count(*)::int as n from maintenance.alerts where tenant_slug = ${slug}`;
    assert.equal(a.n, 1, "it is the same alert, still firing");

    f.sim.control.setState(inst, "open");
    for (let i = 1; i < success; i++) await f.run([slug]);
    assert.deepEqual(resolved(mine()), [], `back for ${success - 1} run(s): not resolved yet`);
    await f.run([slug]);
    assert.equal(resolved(mine()).length, 1, `back for ${success} runs: one RESOLVED`);
    assert.equal(mine().length, 2, "two notifications in all");
  } finally {
    await dropTenants([slug]);
    await f.close();
  }
});

Deno.test("healthCheck() applies the seed's rules: missing → unhealthy, no or inactive integration → healthy, connecting → asks connectionState", async () => {
  const f = await fixture();
  const missing = await createTenant({ prefix: "hc-missing" });
  const none = await createTenant({ prefix: "hc-none", integration: false });
  const off = await createTenant({ prefix: "hc-off" });
  const connecting = await createTenant({ prefix: "hc-conn" });
  const slugs = [missing.slug, none.slug, off.slug, connecting.slug];
  try {
    await testSql()`update public.tenant_integrations set is_active = false where id = ${off.integrationId}`;
    f.sim.control.seedInstance(`revalya-${connecting.slug}`, { state: "connecting" });
    f.sim.control.resetStats();
    const { failure } = await thresholds();
    const r = await f.run(slugs);
    assert.equal(r.status, "unhealthy", "a missing instance is a critical issue");
    const rows = await testSql()`
      select tenant_slug, state, issue_code, severity from maintenance.tenant_health
      where tenant_slug = any (${slugs}::text[]) order by tenant_slug`;
    const by = Object.fromEntries(rows.map((x) => [x.tenant_slug, [x.state, x.issue_code, x.severity]]));
    assert.deepEqual(by[missing.slug], ["unhealthy", "instance_missing", "high"]);
    assert.deepEqual(by[none.slug], ["healthy", null, null]);
    assert.deepEqual(by[off.slug], ["healthy", null, null]);
    assert.deepEqual(by[connecting.slug], ["degraded", "instance_disconnected", "medium"]);
    const calls = f.sim.control.stats().calls;
    assert.equal(calls.fetchInstances, 1);
    assert.equal(calls.connectionState, 1, "only the instance listed as connecting is asked again");
    // the alert fires once the tenant has been bad for alert_failure_threshold runs in a row
    for (let i = 1; i < failure; i++) {
      assert.deepEqual(f.slack(`instance_missing:${missing.slug}`), [], `nothing after ${i} run(s)`);
      await f.run(slugs);
    }
    assert.deepEqual(f.slack(`instance_missing:${missing.slug}`).length, 1);
    const [alert] = await testSql()`
      select severity from maintenance.alerts where fingerprint = ${`instance_missing:${missing.slug}`}`;
    assert.equal(alert.severity, "critical", "high maps to critical");
  } finally {
    await dropTenants(slugs);
    await f.close();
  }
});

Deno.test("healthCheck() with Evolution down raises one platform alert and no per-tenant alerts", async () => {
  const f = await fixture();
  const tenants = await Promise.all([1, 2, 3, 4, 5, 6].map(() => createTenant({ prefix: "hc-evo" })));
  const slugs = tenants.map((t) => t.slug);
  try {
    for (const s of slugs) f.sim.control.seedInstance(`revalya-${s}`, { state: "open" });
    assert.equal((await f.run(slugs)).status, "healthy");
    f.sim.control.setDown(true);
    const scoped = await f.run(slugs);
    assert.equal(scoped.status, "unhealthy", "a scoped run still says what it sees");
    assert.equal((scoped.alerts as { platformEvaluated: boolean }).platformEvaluated, false);
    assert.deepEqual(f.slack("evolution_down"), [], "but raises no platform alert: that is a full run's call");
    for (let i = 0; i < 3; i++) {
      const r = await f.runAll(slugs);
      assert.equal(r.status, "unhealthy");
      assert.equal((r.services as Record<string, { status: string }>).evolution_api.status, "unhealthy");
    }
    assert.equal(firing(f.slack("evolution_down")).length, 1, "one platform alert");
    for (const s of slugs) assert.deepEqual(f.slack(s), [], `no notification about ${s}`);
    const open = await testSql()`
      select fingerprint, inhibited_by from maintenance.alerts
      where status = 'firing' and tenant_slug = any (${slugs}::text[]) order by fingerprint`;
    assert.deepEqual(
      open.map((x) => ({ ...x })),
      [...slugs].sort().map((s) => ({ fingerprint: `evolution_unreachable:${s}`, inhibited_by: "evolution_down" })),
      "no tenant alert is told: each tenant is recorded unreachable, inhibited by the outage",
    );
    const [{ n }] = await testSql()`
      select count(*)::int as n from maintenance.alerts where status = 'firing' and kind = 'mass_disconnect'
        and details -> 'tenantIds' ?| ${tenants.map((t) => t.tenantId)}::text[]`;
    assert.equal(n, 0, "nor a mass_disconnect: the outage explains it");

    f.sim.control.setDown(false);
    assert.equal((await f.run(slugs)).status, "healthy");
    const [still] = await testSql()`select status from maintenance.alerts where fingerprint = 'evolution_down'
      order by id desc limit 1`;
    assert.equal(still.status, "firing", "a scoped run does not resolve a platform alert either");
    await f.runAll(slugs);
    assert.equal(resolved(f.slack("evolution_down")).length, 1);
    for (const s of slugs) assert.deepEqual(f.slack(s), [], `still no notification about ${s}`);
    const [{ left }] = await testSql()`
      select count(*)::int as left from maintenance.alerts where status = 'firing' and tenant_slug = any (${slugs}::text[])`;
    assert.equal(left, 0, "the unreachable alerts resolve with the outage");
  } finally {
    f.sim.control.setDown(false);
    await f.runAll(slugs).catch(() => {});
    await dropTenants(slugs);
    await f.close();
  }
});

Deno.test("healthCheck() turns many tenants of one server going down in one run into one mass_disconnect incident", async () => {
  const f = await fixture();
  const srv = await otherServer("hc-mass", 12);
  const { slugs } = srv;
  try {
    await f.runAll(slugs);
    for (const s of slugs.slice(0, 10)) srv.set(s, "close");
    await f.runAll(slugs);
    await f.runAll(slugs); // long enough for their own alerts to fire: they are inhibited
    assert.equal(firing(f.slack(srv.incident)).length, 1);
    const [{ n }] = await testSql()`
      select count(*)::int as n from maintenance.alerts where status = 'firing' and tenant_slug = any (${slugs}::text[])
        and inhibited_by = ${srv.incident}`;
    assert.equal(n, 10, "the tenants' own alerts are silenced by it");
    const [{ d }] = await testSql()`
      select count(*)::int as d from maintenance.alerts where status = 'firing' and fingerprint = 'mass_disconnect'`;
    assert.equal(d, 0, "the default server has no incident: its tenants are fine");
    for (const s of slugs) assert.deepEqual(f.slack(`:${s}`), [], `no per-tenant notification for ${s}`);
    for (const s of slugs.slice(0, 10)) srv.set(s, "open");
    await f.runAll(slugs);
    assert.equal(resolved(f.slack(srv.incident)).length, 1, "resolved once everyone is back");
    await f.runAll(slugs);
    assert.equal(firing(f.slack(srv.incident)).length, 1, "not raised again by the same outage");
    for (const s of slugs) assert.deepEqual(f.slack(`:${s}`), [], `inhibited alerts resolve silently (${s})`);
  } finally {
    await srv.close();
    await f.runAll([]).catch(() => {});
    await f.close();
  }
});

Deno.test("healthCheck() turns a rolling outage (4 of 20 tenants down per run, others back, for 5 runs) into one incident and no tenant alert", async () => {
  const f = await fixture();
  const srv = await otherServer("hc-roll", 20);
  const { slugs } = srv;
  try {
    await f.runAll(slugs);
    for (let run = 0; run < 5; run++) {
      const down = slugs.slice(run * 4, run * 4 + 4);
      for (const s of slugs) srv.set(s, down.includes(s) ? "close" : "open");
      const r = await f.runAll(slugs);
      const alerts = r.alerts as { platform: string[] };
      assert.equal(alerts.platform.includes(srv.incident), run >= 2, `run ${run + 1}: ${(run + 1) * 4} went down`);
    }
    for (const s of slugs) srv.set(s, "open");
    await f.runAll(slugs);
    const incident = f.slack(srv.incident);
    assert.equal(firing(incident).length, 1, "exactly one incident notification");
    assert.equal(resolved(incident).length, 1, "and one when it is over");
    for (const s of slugs) assert.deepEqual(f.slack(`:${s}`), [], `no notification about ${s}`);
    const [{ n }] = await testSql()`
      select count(*)::int as n from maintenance.alerts where tenant_slug = any (${slugs}::text[])`;
    assert.equal(n, 0, "no tenant alert was even raised: each was down for one run");
    await f.runAll(slugs);
    assert.equal(firing(f.slack(srv.incident)).length, 1, "the window does not raise it again");
    console.log(
      `rolling outage, 4 of 20 down per run for 5 runs: ${incident.length} notification(s), ` +
        `${firing(incident).length} incident, ${slugs.reduce((k, s) => k + f.slack(`:${s}`).length, 0)} tenant ` +
        `notification(s)`,
    );
  } finally {
    await srv.close();
    await f.runAll([]).catch(() => {});
    await f.close();
  }
});

Deno.test("healthCheck() scoped to some tenants raises no platform alert, however many of them are down", async () => {
  const f = await fixture();
  const tenants = await Promise.all(Array.from({ length: 6 }, () => createTenant({ prefix: "hc-scope" })));
  const slugs = tenants.map((t) => t.slug);
  try {
    for (const s of slugs) f.sim.control.seedInstance(`revalya-${s}`, { state: "open" });
    await f.run(slugs);
    for (const s of slugs) f.sim.control.setState(`revalya-${s}`, "close", { statusReason: 403 });
    const { failure } = await thresholds();
    for (let i = 0; i < failure; i++) await f.run(slugs);
    const platform = await testSql()`
      select fingerprint from maintenance.alerts where status = 'firing' and scope = 'platform'
        and (kind = 'mass_disconnect' and details -> 'tenantIds' ?| ${tenants.map((t) => t.tenantId)}::text[])`;
    assert.deepEqual(platform.map((x) => x.fingerprint), [], "no mass_disconnect from a scoped run");
    assert.deepEqual(f.slack("mass_disconnect"), []);
    for (const s of slugs) {
      assert.equal(firing(f.slack(`:${s}`)).length, 1, `but each tenant's own alert fires (${s})`);
    }
  } finally {
    await dropTenants(slugs);
    await f.close();
  }
});

Deno.test("healthCheck() resolves supabase_down on the next full run once SUPABASE_URL is no longer set", async () => {
  const f = await fixture({ SUPABASE_URL: "http://127.0.0.1:1" });
  const unset = testDeps({
    env: {
      EVOLUTION_API_URL: f.sim.url,
      EVOLUTION_API_KEY: f.sim.apiKey,
      SLACK_WEBHOOK_URL: f.rx.slackUrl,
      ALERT_LOG: "false",
    },
  });
  try {
    const r = await f.runAll([]);
    assert.equal((r.services as Record<string, { status: string }>).supabase.status, "unhealthy");
    assert.equal(firing(f.slack("supabase_down")).length, 1);
    await runHealthCheck(unset, { runId: crypto.randomUUID(), input: { tenants: ["hc-none-such"] } });
    const [open] = await testSql()`select status from maintenance.alerts where fingerprint = 'supabase_down'
      order by id desc limit 1`;
    assert.equal(open.status, "firing", "a scoped run leaves it alone");
    const r2 = await f.runAll([], unset);
    assert.equal((r2.services as Record<string, { status: string }>).supabase.status, "skipped");
    const [row] = await testSql()`select status, resolve_reason from maintenance.alerts
      where fingerprint = 'supabase_down' order by id desc limit 1`;
    assert.deepEqual({ ...row }, { status: "resolved", resolve_reason: "check no longer configured" });
    assert.equal(resolved(f.slack("supabase_down")).length, 1);
  } finally {
    await f.runAll([], unset).catch(() => {});
    await f.close();
  }
});

Deno.test("healthCheck() flags a tenant whose connection dropped more than 3 times in 2 hours as frequent_disconnections", async () => {
  const f = await fixture();
  const { slug } = await createTenant({ prefix: "hc-flap" });
  try {
    f.sim.control.seedInstance(`revalya-${slug}`, { state: "open" });
    // a drop is an open connection going connecting (a transient drop: Evolution sends no close) or close. The
    // tenant was checked once before these rows are written with earlier times, so they are no new flap samples:
    // this is frequent_disconnections alone, not flapping
    const first = await f.run([slug]);
    assert.deepEqual((first.tenants as Record<string, unknown>).frequentDisconnections, []);
    await testSql()`
      insert into public.api_logs (created_at, tenant_slug, service, event, status, data)
      select now() - make_interval(mins => g * 20 + o.m), ${slug}, 'whatsapp', 'connection.update', 'success',
        jsonb_build_object('state', o.state, 'statusReason', 200)
      from generate_series(1, 4) g, (values (0, 'connecting'), (1, 'open')) o(m, state)`;
    const r = await f.run([slug]);
    assert.deepEqual((r.tenants as Record<string, unknown>).frequentDisconnections, [slug]);
    assert.deepEqual(
      (r.tenants as Record<string, unknown>).flapping,
      [],
      "4 drops seen by earlier checks are not flapping",
    );
    const { failure } = await thresholds();
    for (let i = 1; i < failure; i++) await f.run([slug]);
    assert.equal(f.slack(`frequent_disconnections:${slug}`).length, 1);
    const [h] = await testSql()`select issue, details ->> 'drops' as drops from maintenance.tenant_health
      where tenant_slug = ${slug}`;
    assert.deepEqual({ ...h }, { issue: "WhatsApp dropped its connection 4 times in 02:00:00", drops: "4" });
  } finally {
    await testSql()`delete from public.api_logs where tenant_slug = ${slug}`;
    await dropTenants([slug]);
    await f.close();
  }
});

Deno.test("healthCheck() with 1,000 tenants makes ONE fetchInstances call", async () => {
  const f = await fixture();
  const prefix = `hc-k-${crypto.randomUUID().slice(0, 6)}`;
  const slugs = Array.from({ length: 1000 }, (_, i) => `${prefix}-${i}`);
  try {
    await testSql()`
      with t as (insert into public.tenants (slug) select unnest(${slugs}::text[]) returning id, slug)
      insert into public.tenant_integrations (tenant_id, integration_type, config)
      select id, 'whatsapp', jsonb_build_object('instance_name', 'revalya-' || slug) from t`;
    f.sim.control.seedInstances(
      slugs.map((s, i) => [`revalya-${s}`, { state: i % 100 === 0 ? "connecting" : "open" }] as [string, never]),
    );
    f.sim.control.resetStats();
    const r = await f.run(slugs);
    const calls = f.sim.control.stats().calls;
    assert.equal(calls.fetchInstances, 1, "one listing for 1,000 tenants");
    // the 10 listed as connecting, plus this run's share of the hourly rotation of the 990 open ones (12 runs an
    // hour); then this run's share of the 6-hourly liveness probes (72 runs) of those open in memory
    assert.equal(calls.connectionState, 10 + Math.ceil(990 / 12), "connectionState: must-reads + rotation share");
    assert.equal(calls.fetchBusinessProfile, Math.ceil(990 / 72), "liveness probes: the rotation's share");
    const ev = r.evolutionCalls as Record<string, number>;
    assert.deepEqual([ev.connectionState, ev.socketProbe, ev.overBudget], [93, 14, 0]);
    assert.equal((r.tenants as Record<string, number>).checked, 1000);
    const [{ n }] = await testSql()`
      select count(*)::int as n from maintenance.tenant_health where tenant_slug like ${prefix + "-%"}`;
    assert.equal(n, 1000);
  } finally {
    await dropTenants(slugs);
    await f.close();
  }
});

Deno.test("healthCheck() dead-man: a scheduled job that stopped running raises one missed_run alert, resolved when it is gone", async () => {
  const f = await fixture();
  const job = `dm-${crypto.randomUUID().slice(0, 8)}`;
  const { slug } = await createTenant({ prefix: "hc-dm", integration: false });
  const sql = testSql();
  try {
    // a job of the registry table (pg_cron follows it), scheduled a day ago
    await sql`insert into maintenance.scheduled_jobs (job, schedule, created_at)
      values (${job}, '0 * * * *', now() - interval '1 day')`;
    await sql`
      insert into maintenance.job_runs (job, status, started_at, finished_at, trigger)
      values (${job}, 'ok', now() - interval '3 hours', now() - interval '3 hours', 'cron'),
             (${job}, 'error', now() - interval '2 hours', now() - interval '2 hours', 'cron')`;
    await sql`update maintenance.job_runs set error = 'Evolution timed out' where job = ${job} and status = 'error'`;
    const scoped = await f.run([slug]);
    const missed = (scoped.deadman as { missed: Array<{ job: string; cause: string }> }).missed.find((m) =>
      m.job === job
    );
    assert.ok(missed, "the job is reported missed, by a scoped run too");
    assert.match(missed.cause, /the last run failed: Evolution timed out/);
    assert.deepEqual(f.slack(`missed_run:${job}`), [], "but only a full run raises the alert");
    await f.runAll([slug]);
    await f.runAll([slug]);
    assert.equal(f.slack(`missed_run:${job}`).filter((m) => m.includes("[FIRING]")).length, 1, "notified once");
    const [alert] = await sql`select status, severity from maintenance.alerts where fingerprint = ${
      "missed_run:" + job
    }`;
    assert.deepEqual({ ...alert }, { status: "firing", severity: "warning" });

    await sql`delete from maintenance.scheduled_jobs where job = ${job}`; // unscheduled: pg_cron drops it too
    await f.runAll([slug]);
    assert.equal(f.slack(`missed_run:${job}`).filter((m) => m.includes("[RESOLVED]")).length, 1);
  } finally {
    await sql`delete from maintenance.scheduled_jobs where job = ${job}`;
    await sql`delete from maintenance.job_runs where job = ${job}`;
    await dropTenants([slug]);
    await f.close();
  }
});

Deno.test("health-check: two concurrent runs give one run and one skipped", async () => {
  const f = await fixture();
  const { slug } = await createTenant({ prefix: "hc-lease" });
  try {
    f.sim.control.seedInstance(`revalya-${slug}`, { state: "open" });
    f.sim.control.setLatency(300); // the first run holds the lease while the second one arrives
    const [a, b] = await Promise.all([
      runJob(f.deps, healthCheck, { input: { tenants: [slug] }, trigger: "test" }),
      runJob(f.deps, healthCheck, { input: { tenants: [slug] }, trigger: "test" }),
    ]);
    const skipped = [a, b].filter((x) => x.status === "skipped");
    const ran = [a, b].filter((x) => x.status !== "skipped");
    assert.equal(skipped.length, 1);
    assert.equal(ran.length, 1);
    assert.equal(skipped[0].report.runningRunId, ran[0].runId);
    const rows = await testSql()`
      select id, status from maintenance.job_runs where id = any (${[a.runId, b.runId]}::uuid[]) order by status`;
    assert.deepEqual(rows.map((x) => x.status).sort(), [ran[0].status, "skipped"].sort());
  } finally {
    f.sim.control.setLatency(0);
    await dropTenants([slug]);
    await f.close();
  }
});

Deno.test("healthCheck() alert notifications survive a Slack outage: delivered on a later run, exactly once", async () => {
  const f = await fixture();
  const { slug } = await createTenant({ prefix: "hc-slack" });
  const fp = `instance_missing:${slug}`;
  try {
    const { failure } = await thresholds();
    for (let i = 1; i < failure; i++) await f.run([slug]); // no instance: bad, not yet alerted
    f.rx.control.failNext("slack", 2); // the first try and its in-process retry
    await f.run([slug]); // instance_missing fires, Slack fails
    assert.deepEqual(f.slack(fp), []);
    const [row] = await testSql()`
      select o.status, o.last_error from maintenance.notification_outbox o join maintenance.alerts a on a.id = o.alert_id
      where a.fingerprint = ${fp} and o.channel = 'slack'`;
    assert.equal(row.status, "pending");
    await testSql()`
      update maintenance.notification_outbox o set next_attempt_at = now() from maintenance.alerts a
      where a.id = o.alert_id and a.fingerprint = ${fp}`; // the backoff has elapsed
    await f.run([slug]);
    await f.run([slug]);
    assert.equal(f.slack(fp).length, 1, "delivered once, not lost, not twice");
  } finally {
    await dropTenants([slug]);
    await f.close();
  }
});

Deno.test("health-check with the database down alerts directly, once, and says when it is back", async () => {
  const f = await fixture();
  const dead = postgres("postgresql://postgres:postgres@127.0.0.1:1/postgres", {
    max: 1,
    connect_timeout: 2,
    onnotice: () => {},
  });
  try {
    const down = buildDeps(f.deps.config, { sql: dead, evolution: f.deps.evolution });
    const scoped = await runJob(down, healthCheck, { input: { tenants: ["hc-none-such"] }, trigger: "test" });
    assert.equal(scoped.status, "error");
    assert.deepEqual(f.slack("database_down"), [], "a scoped run alerts nothing");
    const r1 = await runJob(down, healthCheck, { input: {}, trigger: "test" });
    assert.equal(r1.status, "error");
    assert.match(String(r1.report.error), /database is unavailable/);
    await runJob(down, healthCheck, { input: {}, trigger: "test" });
    const fired = f.slack("database_down").filter((m) => m.includes("[FIRING]"));
    assert.equal(fired.length, 1, "notified once, not on every run");
    await f.run(["hc-none-such"]);
    assert.deepEqual(resolved(f.slack("database_down")), [], "a scoped run does not say it is back");
    await f.runAll([]); // the database is back: the next full run says so
    assert.equal(f.slack("database_down").filter((m) => m.includes("[RESOLVED]")).length, 1);
  } finally {
    await dead.end();
    await f.close();
  }
});
