// isolation-audit and orphan-cleanup on a fleet of simulated Evolution servers (issue 16): the default server A (the
// fixture's simulator) and two registered ones, B and C. Each fix acts on the tenant's own server and nowhere else; a
// missing instance is created on the tenant's server, or on the placement's for a tenant with no server; a tenant's
// instance on another server is reported as wrong-server and removed only as a duplicate of a live one; orphans are
// sighted and deleted per server; a server that is down is reported, and nothing of its tenants is deleted anywhere.
import assert from "node:assert/strict";
import { type Simulator, startSimulator } from "../dev/evolution_sim/app.ts";
import { isolationAudit, type Violation } from "../shared/jobs/isolation_audit.ts";
import { type MisplacedInstance, orphanCleanup, type OrphanReport } from "../shared/jobs/orphan_cleanup.ts";
import { runJob } from "../shared/jobs/runner.ts";
import { createTenant, dropTenantsLike, forgetServers, liveNames, stack, testSql, uniqueSlug } from "./_helpers.ts";
import { auditOf, configOf, type OpsFixture, opsFixture } from "./ops_fixture.ts";

const sql = () => testSql();

interface FleetFixture {
  f: OpsFixture;
  /** The default server (A). */
  a: Simulator;
  b: Simulator;
  c: Simulator;
  bName: string;
  cName: string;
  /** Seeds the tenant's correct instance (its webhook and token) on `sim`. */
  seed(sim: Simulator, slug: string, state?: "open" | "close"): Promise<string>;
  /** Links a tenant to the server of `sim`, as an operator would. */
  link(tenantId: string, sim: Simulator): Promise<void>;
  audit(input: Record<string, unknown>): ReturnType<typeof runJob>;
  orphans(input?: Record<string, unknown>): ReturnType<typeof runJob>;
  close(): Promise<void>;
}

/** A, plus B and C registered (capacity 100 each). Every tenant made here has a slug starting with "fa-". */
async function fleetFixture(): Promise<FleetFixture> {
  const f = await opsFixture({ ALERT_LOG: "false" });
  const b = await startSimulator({ port: 0, webhookRetryDelaysMs: [50, 100] });
  const c = await startSimulator({ port: 0, webhookRetryDelaysMs: [50, 100] });
  const bName = uniqueSlug("fa-b");
  const cName = uniqueSlug("fa-c");
  for (const [name, s] of [[bName, b], [cName, c]] as const) {
    await sql()`select * from maintenance.register_evolution_server(${name}, ${s.url}, ${s.apiKey}, 100)`;
  }
  return {
    f,
    a: f.sim,
    b,
    c,
    bName,
    cName,
    async seed(sim, slug, state = "open") {
      const name = `revalya-${slug}`;
      const hook = await f.deps.evolution.expectedWebhook(slug);
      sim.control.seedInstance(name, { state, webhookUrl: hook.url, webhookHeaders: hook.headers });
      return name;
    },
    async link(tenantId, sim) {
      await sql()`select * from maintenance.link_tenant_server(${tenantId}, ${sim.url}, null, null, 'operator')`;
    },
    audit: (input) => runJob(f.deps, isolationAudit, { input: isolationAudit.input.parse(input), trigger: "test" }),
    orphans: (input = {}) =>
      runJob(f.deps, orphanCleanup, { input: orphanCleanup.input.parse(input), trigger: "test" }),
    async close() {
      await dropTenantsLike("fa-");
      await forgetServers(b.url, c.url);
      await b.close();
      await c.close();
      await f.close();
    },
  };
}

/** Runs `fn` with every server but `keep` draining (placement sees only those), then restores every flag. */
async function onlyPlacing<T>(keep: string[], fn: () => Promise<T>): Promise<T> {
  const saved = await sql()<{ name: string; draining: boolean }[]>`
    select name, draining from maintenance.evolution_servers`;
  await sql()`update maintenance.evolution_servers set draining = true where not (name = any (${keep}::text[]))`;
  try {
    return await fn();
  } finally {
    for (const s of saved) {
      await sql()`update maintenance.evolution_servers set draining = ${s.draining} where name = ${s.name}`;
    }
  }
}

/** The server a tenant is linked to, and how it got there (null: no link). */
async function linkOf(slug: string) {
  const [row] = await sql()<{ name: string; placed_by: string }[]>`
    select s.name, ts.placed_by from maintenance.tenant_servers ts
    join maintenance.evolution_servers s on s.id = ts.server_id
    join public.tenants t on t.id = ts.tenant_id where t.slug = ${slug}`;
  return row ? { ...row } : null;
}

/** The error a run stored in maintenance.job_runs. */
async function storedError(runId: string) {
  const [row] = await sql()<{ error: string | null }[]>`select error from maintenance.job_runs where id = ${runId}`;
  return row?.error ?? null;
}

const violationsOf = (r: { report: Record<string, unknown> }) => r.report.violations as Violation[];
const find = (r: { report: Record<string, unknown> }, kind: string, tenant: string) =>
  violationsOf(r).find((v) => v.kind === kind && v.tenant === tenant);

Deno.test("isolationAudit() fixes a tenant on server B on B and nowhere else, and creates a missing instance on its server", async (t) => {
  const x = await fleetFixture();
  const base = stack().webhookBaseUrl;
  try {
    const other = await createTenant({ prefix: "fa-other" });
    await x.link(other.tenantId, x.b);
    await x.seed(x.b, other.slug);
    // on B, an instance delivering to the other tenant's webhook, without the token
    const hooked = await createTenant({ prefix: "fa-hook" });
    await x.link(hooked.tenantId, x.b);
    const hookedName = `revalya-${hooked.slug}`;
    x.b.control.seedInstance(hookedName, { state: "open", webhookUrl: `${base}/api/whatsapp/webhook/${other.slug}` });
    // on B, a row naming an unprefixed instance (which B has): its right instance is missing
    const wrongName = `other-${uniqueSlug("fa")}`;
    const missSlug = uniqueSlug("fa-miss");
    const missing = await createTenant({
      slug: missSlug,
      config: { instance_name: wrongName, webhook_url: `${base}/api/whatsapp/webhook/${missSlug}`, environment: "t" },
    });
    await x.link(missing.tenantId, x.b);
    x.b.control.seedInstance(wrongName, { state: "open" });
    // no server yet, and no instance: placed (on C, the only server taking tenants here), linked, created there
    const newSlug = uniqueSlug("fa-new");
    const placed = await createTenant({
      slug: newSlug,
      config: {
        instance_name: `other-${uniqueSlug("fa")}`,
        webhook_url: `${base}/api/whatsapp/webhook/${newSlug}`,
        environment: "test",
      },
    });
    const tenants = [other.slug, hooked.slug, missing.slug, placed.slug];

    const dry = await onlyPlacing([x.cName], () => x.audit({ tenants }));
    await t.step("the dry run names the server of each finding and of each step", () => {
      assert.equal(dry.status, "degraded", JSON.stringify(dry.report));
      const hook = find(dry, "instance_webhook_mismatch", hooked.slug)!;
      assert.equal(hook.server, x.bName);
      assert.equal(hook.evidence?.routesTo, other.slug);
      assert.deepEqual(hook.fix.map((s) => [s.action, (s as { server?: string }).server]), [["set_webhook", x.bName]]);
      const miss = find(dry, "invalid_prefix", missing.slug)!;
      assert.equal(miss.server, x.bName);
      assert.deepEqual(miss.fix.map((s) => [s.action, (s as { server?: string }).server ?? null]), [
        ["create_instance", x.bName],
        ["update_config", null],
        ["delete_instance", x.bName],
      ]);
      const place = find(dry, "invalid_prefix", placed.slug)!;
      assert.deepEqual(
        place.fix.filter((s) => s.action === "create_instance"),
        [{
          action: "create_instance",
          tenant: placed.slug,
          instance: `revalya-${placed.slug}`,
          server: x.cName,
          placement: true,
        }],
        "a tenant with no server: the create goes through placement",
      );
      assert.match(place.fixText[0], new RegExp(`least-loaded server .*now '${x.cName}'`));
      const servers = (dry.report.evolution as { servers: { name: string; listed: boolean }[] }).servers;
      for (const n of ["default", x.bName, x.cName]) {
        assert.ok(servers.some((s) => s.name === n && s.listed), `${n} is listed: ${JSON.stringify(servers)}`);
      }
    });

    for (const s of [x.a, x.b, x.c]) s.control.resetStats();
    const before = { a: liveNames(x.a), c: liveNames(x.c) };
    const applied = await onlyPlacing([x.cName], () => x.audit({ tenants, apply: true }));
    await t.step("apply: each fix on the tenant's server, and nothing on the others", async () => {
      assert.equal(applied.status, "ok", JSON.stringify(applied.report));
      assert.equal(applied.report.fixed, 3);
      const fixed = x.b.control.instances().find((i) => i.name === hookedName)!;
      const expected = await x.f.deps.evolution.expectedWebhook(hooked.slug);
      assert.equal(fixed.webhook?.url, expected.url, "the webhook is fixed on B");
      assert.deepEqual(fixed.webhook?.headers, expected.headers, "with the token header");
      assert.equal(fixed.state, "open", "in place: the number is not logged out");
      const onB = liveNames(x.b);
      assert.ok(onB.includes(`revalya-${missing.slug}`), "the missing instance is created on B");
      assert.ok(!onB.includes(wrongName), "the wrongly named one is deleted on B");
      assert.deepEqual(await linkOf(missing.slug), { name: x.bName, placed_by: "operator" }, "its link is unchanged");
      assert.equal((await configOf(missing.slug))?.instance_name, `revalya-${missing.slug}`);
      assert.deepEqual(liveNames(x.a), before.a, "nothing created or deleted on the default server");
      assert.deepEqual(
        liveNames(x.c),
        [...before.c, `revalya-${placed.slug}`].sort(),
        "on C only the placed tenant's instance",
      );
      assert.deepEqual(await linkOf(placed.slug), { name: x.cName, placed_by: "placement" }, "linked to C");
      const cfg = (await configOf(placed.slug))!;
      assert.equal(cfg.instance_name, `revalya-${placed.slug}`);
      assert.equal(cfg.evolution_api_url, x.c.url, "the legacy keys, as fix writes them");
      for (const s of [x.a, x.c]) {
        const calls = s.control.stats().calls;
        assert.equal(calls.setWebhook ?? 0, 0, "no webhook set elsewhere");
        assert.equal(calls.delete ?? 0, 0, "no delete elsewhere");
      }
      assert.equal(x.a.control.stats().calls.create ?? 0, 0, "no create on the default server");
      const steps = (await auditOf(missing.slug)).filter((a) => !a.dry_run)
        .map((a) => `${a.action}:${a.result}:${(a.after as { server?: string }).server ?? "-"}`);
      assert.deepEqual(steps, [
        `isolation.create_instance:ok:${x.bName}`,
        "isolation.update_config:ok:-",
        `isolation.delete_instance:ok:-`,
      ]);
      const [del] = await sql()<{ server: string }[]>`
        select before ->> 'server' as server from maintenance.actions_audit
        where action = 'isolation.delete_instance' and tenant_slug = ${missing.slug} and not dry_run`;
      assert.equal(del.server, x.bName, "the delete's audit row names its server");
    });

    await t.step("the next run is clean", async () => {
      const again = await x.audit({ tenants });
      assert.equal(again.status, "ok", JSON.stringify(again.report.violations));
      assert.equal(again.report.violationCount, 0);
    });
  } finally {
    await x.close();
  }
});

Deno.test("isolationAudit() reports a tenant's instance on another server as wrong-server: kept unless a duplicate of a live one", async (t) => {
  const x = await fleetFixture();
  try {
    // T1 is on B, but its only instance is on A: perhaps its live one, so it is reported and kept
    const only = await createTenant({ prefix: "fa-only" });
    await x.link(only.tenantId, x.b);
    const onlyName = await x.seed(x.a, only.slug, "open");
    // T2 is on B and has its instance there (open); a copy on A (close) is a duplicate to remove
    const dup = await createTenant({ prefix: "fa-dup" });
    await x.link(dup.tenantId, x.b);
    const dupName = await x.seed(x.b, dup.slug, "open");
    await x.seed(x.a, dup.slug, "close");
    // T3 is on B, whose instance there is not paired, while the copy on A is connected: kept
    const live = await createTenant({ prefix: "fa-live" });
    await x.link(live.tenantId, x.b);
    const liveName = await x.seed(x.b, live.slug, "close");
    await x.seed(x.a, live.slug, "open");
    // T4 has no server (the default one): its row names a working unprefixed instance on A, while its right instance
    // is on B: nothing is created, and the row and the working instance are left as they are
    const awaySlug = uniqueSlug("fa-away");
    const working = `other-${uniqueSlug("fa")}`;
    const away = await createTenant({
      slug: awaySlug,
      config: {
        instance_name: working,
        webhook_url: `${stack().webhookBaseUrl}/api/whatsapp/webhook/${awaySlug}`,
        environment: "test",
      },
    });
    x.a.control.seedInstance(working, { state: "open" });
    const awayName = await x.seed(x.b, away.slug, "close");
    const tenants = [only.slug, dup.slug, live.slug, away.slug];

    const dry = await x.audit({ tenants });
    await t.step("a dry run reports them all and plans only the duplicate's delete", () => {
      const kinds = violationsOf(dry).map((v) => `${v.kind}:${v.tenant}:${v.server}`).sort();
      assert.deepEqual(kinds, [
        `invalid_prefix:${away.slug}:default`,
        `wrong_server_instance:${away.slug}:${x.bName}`,
        `wrong_server_instance:${dup.slug}:default`,
        `wrong_server_instance:${live.slug}:default`,
        `wrong_server_instance:${only.slug}:default`,
      ]);
      const naming = find(dry, "invalid_prefix", away.slug)!;
      assert.deepEqual(naming.fix, [], "no second instance, and the row keeps naming the working one");
      assert.match(String(naming.notes), new RegExp(`is on server\\(s\\) '${x.bName}'.*not created again`));
      assert.match(String(naming.notes), /the row is left as it is/);
      const v1 = find(dry, "wrong_server_instance", only.slug)!;
      assert.deepEqual(v1.expected, { server: x.bName });
      assert.deepEqual(v1.fix, [], "no automatic fix");
      assert.match(String(v1.notes), /may be the tenant's live instance: kept/);
      assert.equal(v1.evidence?.onTenantServer, null);
      const v2 = find(dry, "wrong_server_instance", dup.slug)!;
      assert.deepEqual(v2.fix, [{
        action: "delete_instance",
        tenant: dup.slug,
        instance: dupName,
        server: "default",
        duplicateOf: x.bName,
      }]);
      assert.deepEqual(v2.evidence?.onTenantServer, { state: "open" });
      const v3 = find(dry, "wrong_server_instance", live.slug)!;
      assert.deepEqual(v3.fix, []);
      assert.match(String(v3.notes), /connected \(open\).*kept, so the number is not logged out/);
      assert.equal(dry.report.needsHuman, 4);
    });
    await t.step("the dry run changed nothing; its plans are audited", async () => {
      assert.ok(liveNames(x.a).includes(dupName) && liveNames(x.a).includes(onlyName));
      const plans = await auditOf(dup.slug);
      assert.deepEqual(plans.map((a) => `${a.action}:${a.result}:${a.dry_run}`), [
        "isolation.wrong_server_instance:planned:true",
      ]);
    });

    x.a.control.setCleanupDelay(600_000); // Evolution keeps the deleted name listed for a while
    const applied = await x.audit({ tenants, apply: true });
    await t.step("apply deletes only the duplicate, on A; the others are kept and said to need a human", async () => {
      assert.equal(applied.status, "degraded", JSON.stringify(applied.report));
      assert.match(String(await storedError(applied.runId)), /4 finding\(s\) need a human/);
      assert.equal(applied.report.fixed, 1);
      assert.ok(!liveNames(x.a).includes(dupName), "the duplicate on A is deleted");
      assert.ok(liveNames(x.b).includes(dupName), "the tenant's own instance on B is kept");
      assert.ok(liveNames(x.a).includes(onlyName), "T1's only instance is kept");
      assert.ok(liveNames(x.a).includes(liveName) && liveNames(x.b).includes(liveName), "T3's both are kept");
      const [row] = await sql()<{ result: string; server: string; dup: string; state: string }[]>`
        select result, before ->> 'server' as server, after ->> 'duplicateOf' as dup,
          after ->> 'tenantServerState' as state
        from maintenance.actions_audit
        where action = 'isolation.delete_instance' and tenant_slug = ${dup.slug} and not dry_run`;
      assert.deepEqual({ ...row }, { result: "ok", server: "default", dup: x.bName, state: "open" });
      assert.equal(x.b.control.stats().calls.delete ?? 0, 0, "no delete on B");
      assert.ok(liveNames(x.a).includes(working) && liveNames(x.b).includes(awayName), "T4's instances are kept");
      assert.equal((await configOf(away.slug))?.instance_name, working, "T4's row is unchanged");
      assert.equal(x.a.control.stats().calls.create ?? 0, 0, "nothing created on A");
    });
    await t.step("the next run: the deleted copy A still lists is being removed, not found again", async () => {
      const again = await x.audit({ tenants });
      assert.ok(!violationsOf(again).some((v) => v.tenant === dup.slug), JSON.stringify(violationsOf(again)));
      const removing = (again.report.evolution as { beingRemoved: { instance: string; server: string }[] })
        .beingRemoved;
      assert.deepEqual(removing.map((r) => [r.instance, r.server]), [[dupName, "default"]]);
    });
  } finally {
    x.a.control.setCleanupDelay(300);
    await x.close();
  }
});

Deno.test("orphanCleanup() sights and deletes orphans per server, after their grace there only; a misplaced instance is reported, never deleted", async (t) => {
  const x = await fleetFixture();
  try {
    const orphan = `revalya-${uniqueSlug("fa-orph")}`;
    x.a.control.seedInstance(orphan, { state: "close" }); // the same name on A and on B
    x.b.control.seedInstance(orphan, { state: "close" });
    const moved = await createTenant({ prefix: "fa-moved" });
    await x.link(moved.tenantId, x.b);
    const movedName = await x.seed(x.a, moved.slug); // on A, while the tenant is on B
    const orphansOf = (r: { report: Record<string, unknown> }) =>
      (r.report.orphans as OrphanReport[]).filter((o) => o.instance === orphan)
        .map((o) => [o.server, o.result]).sort();

    const first = await x.orphans();
    await t.step("first run: one sighting on each server, nothing deleted", () => {
      assert.equal(first.status, "ok", JSON.stringify(first.report));
      assert.deepEqual(orphansOf(first), [["default", "waiting"], [x.bName, "waiting"]].sort());
      const mis = (first.report.misplaced as MisplacedInstance[]).filter((m) => m.tenant === moved.slug);
      assert.deepEqual(mis.map((m) => [m.instance, m.server, m.tenantServer, m.onTenantServer]), [
        [movedName, "default", x.bName, false],
      ]);
      assert.ok(!(first.report.orphans as OrphanReport[]).some((o) => o.instance === movedName), "not an orphan");
    });

    await sql()`update maintenance.orphan_sightings set first_seen_at = now() - interval '25 hours'
      where instance_name = ${orphan} and server = ${x.bName}`;
    const second = await x.orphans();
    await t.step("past B's grace only: deleted on B, A's still waits", () => {
      assert.equal(second.status, "ok", JSON.stringify(second.report));
      assert.deepEqual(second.report.deleted, [orphan]);
      assert.deepEqual(orphansOf(second), [["default", "waiting"], [x.bName, "deleted"]].sort());
      const servers = second.report.servers as { name: string; deleted: string[] }[];
      assert.deepEqual(servers.find((s) => s.name === x.bName)?.deleted, [orphan]);
      assert.deepEqual(servers.find((s) => s.name === "default")?.deleted, []);
      assert.ok(!liveNames(x.b).includes(orphan), "gone from B");
      assert.ok(liveNames(x.a).includes(orphan), "still on A");
    });
    await t.step("the deletion is audited with its server", async () => {
      const rows = await sql()<{ server: string; result: string }[]>`
        select before ->> 'server' as server, result from maintenance.actions_audit
        where action = 'orphan.delete_instance' and before ->> 'instance' = ${orphan} order by id`;
      assert.deepEqual(rows.map((r) => [r.server, r.result]), [[x.bName, "ok"]]);
    });

    await t.step("a misplaced instance is never deleted, even with no grace at all", async () => {
      const r = await x.orphans({ graceHours: 0 });
      assert.deepEqual(r.report.deleted, [orphan], "A's orphan goes after its own two sightings");
      const again = await x.orphans({ graceHours: 0 });
      assert.deepEqual(again.report.deleted, []);
      assert.ok(liveNames(x.a).includes(movedName), "the moved tenant's instance on A is kept");
      const mis = (again.report.misplaced as MisplacedInstance[]).find((m) => m.instance === movedName)!;
      assert.match(mis.action, new RegExp(`tenant '${moved.slug}' on server 'default', while the tenant is on`));
    });
  } finally {
    await x.close();
  }
});

Deno.test("server B down: both jobs say so, delete nothing of B's tenants anywhere, and handle A's findings", async (t) => {
  const x = await fleetFixture();
  try {
    // B's tenant: its instance on B (open), a copy on A (close) that would be a duplicate if B could be read
    const onB = await createTenant({ prefix: "fa-down" });
    await x.link(onB.tenantId, x.b);
    const onBName = await x.seed(x.b, onB.slug, "open");
    await x.seed(x.a, onB.slug, "close");
    // B's tenant whose row names an unprefixed instance: while B is down, not even its row is changed
    const namedSlug = uniqueSlug("fa-named");
    const named = await createTenant({
      slug: namedSlug,
      config: {
        instance_name: `other-${namedSlug}`,
        webhook_url: `${stack().webhookBaseUrl}/api/whatsapp/webhook/${namedSlug}`,
        environment: "test",
      },
    });
    await x.link(named.tenantId, x.b);
    // A's findings: a tenant with a wrong webhook, an unknown tenant's instance, an orphan past its grace
    const hooked = await createTenant({ prefix: "fa-ahook" });
    x.a.control.seedInstance(`revalya-${hooked.slug}`, { state: "open", webhookUrl: "https://evil.example/hook" });
    const ghostSlug = uniqueSlug("fa-ghost");
    x.a.control.seedInstance(`revalya-${ghostSlug}`, { state: "close" });
    const orphanA = `revalya-${uniqueSlug("fa-oa")}`;
    const orphanB = `revalya-${uniqueSlug("fa-ob")}`;
    x.a.control.seedInstance(orphanA, { state: "close" });
    x.b.control.seedInstance(orphanB, { state: "close" });
    // C is disabled: not listed, even its unknown instance is left alone
    const ghostC = `revalya-${uniqueSlug("fa-gc")}`;
    x.c.control.seedInstance(ghostC, { state: "close" });
    await sql()`update maintenance.evolution_servers set enabled = false where name = ${x.cName}`;
    await x.orphans({ apply: false }); // first sightings, both servers up
    await sql()`update maintenance.orphan_sightings set first_seen_at = now() - interval '25 hours'
      where instance_name in (${orphanA}, ${orphanB})`;

    x.b.control.setDown(true);
    const iso = await x.audit({ tenants: [onB.slug, named.slug, hooked.slug, ghostSlug], apply: true });
    await t.step("isolation-audit: B unreachable, its tenant untouched on A and B; A's findings fixed", async () => {
      assert.equal(iso.status, "degraded", JSON.stringify(iso.report));
      const evo = iso.report.evolution as {
        unreachable: string[];
        disabled: string[];
        servers: { name: string; listed: boolean; error: string | null }[];
      };
      assert.deepEqual(evo.unreachable, [x.bName]);
      assert.ok(evo.disabled.includes(x.cName), "C is disabled");
      assert.ok(!evo.servers.some((s) => s.name === x.cName), "and not listed");
      const b = evo.servers.find((s) => s.name === x.bName)!;
      assert.equal(b.listed, false);
      assert.match(String(b.error), new RegExp(`server '${x.bName}'.*unreachable`));
      assert.match(String(await storedError(iso.runId)), new RegExp(`server '${x.bName}'`));
      const wrong = find(iso, "wrong_server_instance", onB.slug)!;
      assert.deepEqual(wrong.fix, [], "nothing decided for B's tenant");
      assert.match(String(wrong.notes), /could not be read/);
      assert.equal(wrong.evidence?.onTenantServer, "unknown");
      const naming = find(iso, "invalid_prefix", named.slug)!;
      assert.deepEqual(naming.fix, [], "B's tenant's naming fix waits for B");
      assert.match(String(naming.notes), /decided when its server answers/);
      assert.equal((await configOf(named.slug))?.instance_name, `other-${namedSlug}`, "its row is unchanged");
      assert.ok(liveNames(x.a).includes(onBName), "its copy on A is kept");
      assert.ok(liveNames(x.b).includes(onBName), "its instance on B is untouched");
      const fixed = x.a.control.instances().find((i) => i.name === `revalya-${hooked.slug}`)!;
      assert.equal(fixed.webhook?.url, (await x.f.deps.evolution.expectedWebhook(hooked.slug)).url, "A's fixed");
      assert.ok(!liveNames(x.a).includes(`revalya-${ghostSlug}`), "A's unknown instance is deleted");
      assert.ok(liveNames(x.c).includes(ghostC), "C's is not");
      const [{ n }] = await sql()<{ n: number }[]>`
        select count(*)::int as n from maintenance.actions_audit
        where tenant_slug in (${onB.slug}, ${named.slug}) and not dry_run`;
      assert.equal(n, 0, "no action on B's tenants");
    });

    const orph = await x.orphans();
    await t.step("orphan-cleanup: B unreachable, its orphan's sighting kept; A's orphan deleted", async () => {
      assert.equal(orph.status, "degraded", JSON.stringify(orph.report));
      assert.deepEqual(orph.report.unreachable, [x.bName]);
      assert.match(String(orph.report.error), new RegExp(`server '${x.bName}'`));
      assert.ok((orph.report.deleted as string[]).includes(orphanA), JSON.stringify(orph.report.deleted));
      assert.ok(!(orph.report.deleted as string[]).includes(orphanB));
      assert.ok(!liveNames(x.a).includes(orphanA));
      assert.ok(liveNames(x.c).includes(ghostC), "nothing deleted on the disabled server");
      const mis = (orph.report.misplaced as MisplacedInstance[]).find((m) => m.tenant === onB.slug)!;
      assert.deepEqual([mis.server, mis.tenantServer, mis.onTenantServer], ["default", x.bName, null]);
      assert.ok(liveNames(x.a).includes(onBName), "B's tenant's copy on A is still kept");
      const [{ n }] = await sql()<{ n: number }[]>`
        select count(*)::int as n from maintenance.orphan_sightings
        where server = ${x.bName} and instance_name = ${orphanB}`;
      assert.equal(n, 1, "B's sighting is kept as it was, not forgotten as 'no instances'");
    });

    x.b.control.setDown(false);
    await t.step("B back: its orphan goes on the next run (two sightings, past its grace)", async () => {
      const r = await x.orphans();
      assert.equal(r.status, "ok", JSON.stringify(r.report));
      assert.deepEqual(r.report.deleted, [orphanB]);
      assert.ok(!liveNames(x.b).includes(orphanB));
    });
  } finally {
    x.b.control.setDown(false);
    await x.close();
  }
});
