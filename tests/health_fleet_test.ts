// health-check across a fleet of simulated Evolution servers registered in maintenance.evolution_servers, tenants
// linked to them (maintenance.tenant_servers): one listing per server, a server that is down is its own platform
// alert (evolution_down:<name>) that silences exactly its tenants' alerts, the other servers' tenants are judged as
// usual, it resolves when the server is back; mass disconnects are keyed by the server's name; the run report and
// maintenance.dashboard_servers show every server. Full runs check every active tenant: the default simulator is
// first given an open instance for every other tenant on the default server, and each assertion is about this
// file's own servers, tenants and fingerprints.
import assert from "node:assert/strict";
import { createTenant, testDeps, testSql, uniqueSlug } from "./_helpers.ts";
import { type Simulator, startSimulator } from "../dev/evolution_sim/app.ts";
import { type Receivers, startReceivers } from "../dev/receivers.ts";
import type { Deps } from "../shared/deps.ts";
import { healthCheck, runHealthCheck } from "../shared/jobs/health_check.ts";
import { runJob } from "../shared/jobs/runner.ts";
import { loadStatus } from "../shared/status_page/data.ts";
import { statusJson } from "../shared/status_page/json.ts";
import { renderPage } from "../shared/status_page/render.ts";
import { renderSvg } from "../shared/status_page/svg.ts";

const sql = () => testSql();

interface Fleet {
  home: Simulator;
  rx: Receivers;
  deps: Deps;
  /** Registers a server (a simulator of its own) with `n` tenants linked to it, each with an open instance. */
  server(prefix: string, n: number): Promise<FleetServer>;
  /** A full run: every active tenant (the default server's other tenants are given open instances first). */
  runAll(): Promise<Record<string, unknown>>;
  run(tenants: string[]): Promise<Record<string, unknown>>;
  slack(needle: string): string[];
  close(): Promise<void>;
}

interface FleetServer {
  name: string;
  sim: Simulator;
  slugs: string[];
  ids: string[];
  set(slug: string, state: "open" | "close"): void;
}

async function fleet(): Promise<Fleet> {
  const home = await startSimulator({ port: 0 });
  const rx = await startReceivers();
  const deps = testDeps({
    env: {
      EVOLUTION_API_URL: home.url,
      EVOLUTION_API_KEY: home.apiKey,
      SLACK_WEBHOOK_URL: rx.slackUrl,
      ALERT_LOG: "false",
    },
  });
  const servers: FleetServer[] = [];
  const seedHome = async () => {
    const rows = await sql()<{ name: string }[]>`
      select coalesce(ti.config ->> 'instance_name', 'revalya-' || t.slug) as name
      from public.tenants t
      join public.tenant_integrations ti on ti.tenant_id = t.id and ti.integration_type = 'whatsapp'
      where coalesce(t.is_active, true) and ti.is_active and ti.config ->> 'evolution_api_url' is null
        and not exists (select 1 from maintenance.tenant_servers ts join maintenance.evolution_servers s
                        on s.id = ts.server_id where ts.tenant_id = t.id and s.name <> 'default')`;
    const known = new Set(home.control.instances().map((i) => i.name));
    for (const { name } of rows) if (!known.has(name)) home.control.seedInstance(name, { state: "open" });
  };
  return {
    home,
    rx,
    deps,
    async server(prefix, n) {
      const sim = await startSimulator({ port: 0 });
      const name = uniqueSlug(prefix);
      await sql()`select * from maintenance.register_evolution_server(${name}, ${sim.url}, ${sim.apiKey})`;
      const tenants = await Promise.all(Array.from({ length: n }, () => createTenant({ prefix })));
      for (const t of tenants) {
        await sql()`select * from maintenance.link_tenant_server(${t.tenantId}, ${sim.url}, null, null, 'operator')`;
        sim.control.seedInstance(`revalya-${t.slug}`, { state: "open" });
      }
      const s: FleetServer = {
        name,
        sim,
        slugs: tenants.map((t) => t.slug),
        ids: tenants.map((t) => t.tenantId),
        set(slug, state) {
          if (state === "open") sim.control.setState(`revalya-${slug}`, "open");
          else sim.control.setState(`revalya-${slug}`, "close", { statusReason: 403 });
        },
      };
      servers.push(s);
      return s;
    },
    async runAll() {
      await seedHome();
      // through the runner: the run is recorded in job_runs, where maintenance.dashboard_servers reads it
      const out = await runJob(deps, healthCheck, { input: {}, trigger: "test" });
      assert.notEqual(out.status, "skipped", "no other run holds the lease");
      return { status: out.status, ...out.report };
    },
    async run(tenants) {
      const out = await runHealthCheck(deps, { runId: crypto.randomUUID(), input: { tenants } });
      return { status: out.status, ...out.report };
    },
    slack: (needle) =>
      rx.control.received("slack").filter((m) => JSON.stringify(m.body).includes(needle)).map((m) =>
        String(m.body.text)
      ),
    async close() {
      const slugs = servers.flatMap((s) => s.slugs);
      await sql()`delete from public.tenants where slug = any (${slugs}::text[])`;
      for (const s of servers) {
        await sql()`select maintenance.remove_evolution_server(${s.name})`.catch(() => {});
        await sql()`delete from maintenance.alerts where fingerprint like ${"%:" + s.name}`.catch(() => {});
      }
      // a full run without them resolves what they left (and leaves the next test a clean slate)
      await runHealthCheck(deps, { runId: crypto.randomUUID(), input: {} }).catch(() => {});
      for (const s of servers) await s.sim.close();
      await home.close();
      await rx.close();
    },
  };
}

const firing = (messages: string[]) => messages.filter((m) => m.includes("[FIRING]"));
const resolved = (messages: string[]) => messages.filter((m) => m.includes("[RESOLVED]"));

async function alertsOf(slugs: string[]) {
  const rows = await sql()<{ fingerprint: string; inhibited_by: string | null }[]>`
    select fingerprint, inhibited_by from maintenance.alerts
    where status = 'firing' and tenant_slug = any (${slugs}::text[]) order by fingerprint`;
  return byFingerprint(rows.map((r) => ({ ...r })));
}

function byFingerprint<T extends { fingerprint: string }>(rows: T[]): T[] {
  return rows.sort((x, y) => (x.fingerprint < y.fingerprint ? -1 : x.fingerprint > y.fingerprint ? 1 : 0));
}

async function failureThreshold(): Promise<number> {
  const [t] = await sql()<{ n: number }[]>`select (maintenance.setting('alert_failure_threshold') #>> '{}')::int as n`;
  return t.n;
}

type ServerRow = { name: string; state: string; tenants: number; instances: number | null; version: string | null };

Deno.test("healthCheck() with server B down raises one evolution_down:B, inhibits exactly B's tenants' alerts, leaves A's alone, and resolves when B is back", async () => {
  const f = await fleet();
  try {
    const a = await f.server("hf-a", 3);
    const b = await f.server("hf-b", 3);
    const failure = await failureThreshold();
    const [a0, a1, a2] = a.slugs;
    const [b0] = b.slugs;

    a.sim.control.resetStats();
    b.sim.control.resetStats();
    const ok = await f.runAll();
    assert.equal(a.sim.control.stats().calls.fetchInstances, 1, "one listing of A");
    assert.equal(b.sim.control.stats().calls.fetchInstances, 1, "one listing of B");
    const rows = ok.servers as ServerRow[];
    for (const s of [a, b]) {
      const row = rows.find((r) => r.name === s.name);
      assert.deepEqual(
        row && { state: row.state, tenants: row.tenants, instances: row.instances, version: row.version },
        { state: "healthy", tenants: 3, instances: 3, version: "2.3.7" },
        `${s.name} in the run report`,
      );
    }
    assert.deepEqual(await alertsOf([...a.slugs, ...b.slugs]), [], "all healthy");

    // one tenant of each server down long enough for its own alert to fire
    a.set(a0, "close");
    b.set(b0, "close");
    for (let i = 0; i < failure; i++) await f.runAll();
    assert.equal(firing(f.slack(`instance_disconnected:${a0}`)).length, 1);
    assert.equal(firing(f.slack(`instance_disconnected:${b0}`)).length, 1);

    // B goes down: one platform alert, B's tenants' alerts silenced, A's judged as usual
    b.sim.control.setDown(true);
    const scoped = await f.run([...a.slugs, ...b.slugs]);
    assert.equal((scoped.alerts as { platformEvaluated: boolean }).platformEvaluated, false);
    assert.deepEqual(f.slack(`evolution_down:${b.name}`), [], "a scoped run raises no platform alert");
    a.set(a1, "close"); // A's tenants still page, B's outage or not
    for (let i = 0; i < failure + 1; i++) {
      const r = await f.runAll();
      const services = r.services as Record<string, { status: string }>;
      assert.equal(services.evolution_api.status, "healthy", "the default server is not blamed");
      const row = (r.servers as ServerRow[]).find((x) => x.name === b.name)!;
      assert.equal(row.state, "unhealthy");
      assert.equal((r.servers as ServerRow[]).find((x) => x.name === a.name)!.state, "healthy");
    }
    const down = `evolution_down:${b.name}`;
    assert.equal(firing(f.slack(down)).length, 1, "one evolution_down:B, notified once");
    assert.deepEqual(f.slack(`evolution_down:${a.name}`), [], "nothing for A");
    const [{ n: defaultDown }] = await sql()<{ n: number }[]>`
      select count(*)::int as n from maintenance.alerts where fingerprint = 'evolution_down' and status = 'firing'`;
    assert.equal(defaultDown, 0, "nor for the default server");
    const [platform] = await sql()<{ labels: Record<string, string>; details: Record<string, unknown> }[]>`
      select labels, details from maintenance.alerts where fingerprint = ${down} and status = 'firing'`;
    assert.equal(platform.labels.server, b.name);
    assert.equal(platform.details.tenants, 3);

    const bAlerts = await alertsOf(b.slugs);
    assert.deepEqual(
      bAlerts,
      byFingerprint([
        { fingerprint: `evolution_unreachable:${b.slugs[0]}`, inhibited_by: down },
        { fingerprint: `evolution_unreachable:${b.slugs[1]}`, inhibited_by: down },
        { fingerprint: `evolution_unreachable:${b.slugs[2]}`, inhibited_by: down },
        { fingerprint: `instance_disconnected:${b0}`, inhibited_by: down },
      ]),
      "every tenant of B is recorded unreachable, and every alert of B's tenants is inhibited by B's alert",
    );
    for (const s of b.slugs) {
      assert.equal(f.slack(`evolution_unreachable:${s}`).length, 0, `no notification for ${s}`);
    }
    assert.deepEqual(
      await alertsOf(a.slugs),
      byFingerprint([a0, a1].map((s) => ({ fingerprint: `instance_disconnected:${s}`, inhibited_by: null }))),
      "A's alerts are not inhibited",
    );
    assert.equal(firing(f.slack(`instance_disconnected:${a1}`)).length, 1, "A's tenant down meanwhile is told");
    assert.deepEqual(f.slack(`:${a2}`), [], "A's healthy tenant: nothing");
    const [{ n: bMass }] = await sql()<{ n: number }[]>`
      select count(*)::int as n from maintenance.alerts
      where status = 'firing' and kind = 'mass_disconnect' and details -> 'tenantIds' ?| ${b.ids}::text[]`;
    assert.equal(bMass, 0, "B's outage is not a mass disconnect: its tenants were not seen");
    const [dash] = await sql()<{ state: string; down_alert: string | null; tenants_unreachable: number }[]>`
      select state, down_alert, tenants_unreachable from maintenance.dashboard_servers where name = ${b.name}`;
    assert.deepEqual({ ...dash }, { state: "unhealthy", down_alert: down, tenants_unreachable: 3 });
    // the status page's servers block, in its three formats
    const asOf = new Date();
    const data = await loadStatus(sql(), { asOf, limit: 10 });
    const json = statusJson(data, { asOf, limit: 10 });
    const jb = json.servers.find((x) => x.name === b.name)!;
    assert.deepEqual(
      { state: jb.state, tenants: jb.tenants, downAlert: jb.downAlert, notHealthy: jb.tenantsNotHealthy },
      { state: "unhealthy", tenants: 3, downAlert: down, notHealthy: 3 },
    );
    assert.equal(json.servers.find((x) => x.name === a.name)!.state, "healthy");
    assert.equal(json.servers[0].name, "default", "the default server first");
    const page = String(await renderPage(data, { asOf, limit: 10 }));
    assert.match(page, new RegExp(`<tr class="server" data-server="${b.name}" data-state="unhealthy">`));
    assert.match(page, new RegExp(`<tr class="server" data-server="${a.name}" data-state="healthy">`));
    const board = renderSvg(data, { asOf, limit: 10 });
    assert.match(board, new RegExp(`class="server" data-server="${b.name}" data-state="unhealthy"`));

    // B is back
    b.sim.control.setDown(false);
    const back = await f.runAll();
    assert.equal((back.servers as ServerRow[]).find((x) => x.name === b.name)!.state, "healthy");
    assert.equal(resolved(f.slack(down)).length, 1, "resolved once when B is back");
    assert.deepEqual(
      await alertsOf(b.slugs),
      [{ fingerprint: `instance_disconnected:${b0}`, inhibited_by: null }],
      "the unreachable alerts resolve with B's; the alert of B's tenant still down is no longer inhibited",
    );
    for (const s of b.slugs) {
      assert.equal(f.slack(`evolution_unreachable:${s}`).length, 0, `never a notification for ${s}`);
    }
    assert.equal(f.slack(`instance_disconnected:${b0}`).length, 1, "told once before B went down, not again");
    const [dashBack] = await sql()<{ state: string; down_alert: string | null }[]>`
      select state, down_alert from maintenance.dashboard_servers where name = ${b.name}`;
    assert.deepEqual({ ...dashBack }, { state: "healthy", down_alert: null });
  } finally {
    await f.close();
  }
});

Deno.test("healthCheck() keys a registered server's mass disconnect by its name", async () => {
  const f = await fleet();
  try {
    const c = await f.server("hf-mass", 8);
    await f.runAll();
    for (const s of c.slugs.slice(0, 6)) c.set(s, "close");
    await f.runAll();
    const incident = `mass_disconnect:${c.name}`;
    assert.equal(firing(f.slack(incident)).length, 1, "one incident, named by the server");
    const [row] = await sql()<{ labels: Record<string, string> }[]>`
      select labels from maintenance.alerts where fingerprint = ${incident} and status = 'firing'`;
    assert.equal(row.labels.server, c.name);
    for (const s of c.slugs.slice(0, 6)) c.set(s, "open");
    await f.runAll();
    assert.equal(resolved(f.slack(incident)).length, 1);
  } finally {
    await f.close();
  }
});

Deno.test("healthCheck() skips a disabled server: not asked, its tenants unreachable, no alert", async () => {
  const f = await fleet();
  try {
    const d = await f.server("hf-off", 2);
    await sql()`update maintenance.evolution_servers set enabled = false where name = ${d.name}`;
    d.sim.control.resetStats();
    const r = await f.run(d.slugs);
    assert.equal(d.sim.control.stats().total, 0, "the disabled server is not asked");
    const row = (r.servers as ServerRow[]).find((x) => x.name === d.name)!;
    assert.equal(row.state, "skipped");
    const health = await sql()<{ issue_code: string }[]>`
      select issue_code from maintenance.tenant_health where tenant_slug = any (${d.slugs}::text[])`;
    assert.deepEqual(health.map((h) => h.issue_code), ["evolution_unreachable", "evolution_unreachable"]);
    await f.runAll();
    assert.deepEqual(await alertsOf(d.slugs), [], "no alert for a server out of service");
    assert.deepEqual(f.slack(d.name), []);
  } finally {
    await f.close();
  }
});
