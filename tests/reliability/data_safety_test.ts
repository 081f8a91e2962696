// The data-safety matrix. Retention, as a property over a few hundred seeded-random timestamps around each cutoff
// (exact boundaries included, several batches): no row at or after its cutoff is ever deleted, every row before it
// is. Then reset / migrate / isolation fix / orphan delete, each applied with neighbours present (one of them with a
// slug that extends the target's, so its instance name starts with the target's): the neighbours' rows and
// simulator instances are identical before and after.
import assert from "node:assert/strict";
import { startSimulator } from "../../dev/evolution_sim/app.ts";
import { EvolutionClient } from "../../shared/evolution/client.ts";
import { cleanupLogs } from "../../shared/jobs/cleanup_logs.ts";
import { isolationAudit } from "../../shared/jobs/isolation_audit.ts";
import { orphanCleanup } from "../../shared/jobs/orphan_cleanup.ts";
import { runJob } from "../../shared/jobs/runner.ts";
import { createOpsApp } from "../../shared/ops/app.ts";
import { createTenant, forgetServers, stack, testConfig, testDeps, testSql, uniqueSlug } from "../_helpers.ts";
import { FAULT_SIM_KEY, MIGRATE_TARGET_KEY, prng, propertySeed } from "./_matrix.ts";

const ROWS = 300;

/** Offsets around a cutoff, in microseconds: the exact boundary and its neighbours, then random ones within ±2 h. */
function offsets(rand: () => number): number[] {
  const fixed = [0, 1, -1, 999, -999, 1000, -1000, 1_000_000, -1_000_000];
  const out = [...fixed];
  while (out.length < ROWS) {
    const r = rand();
    // half close to the boundary (±1 s), half anywhere within ±2 h
    const span = r < 0.5 ? 1_000_000 : 7_200_000_000;
    out.push(Math.round((rand() * 2 - 1) * span));
  }
  return out;
}

Deno.test("retention never deletes a row newer than its cutoff, and deletes every older one (seeded property)", async (t) => {
  const seed = propertySeed("retention");
  const rand = prng(seed);
  const sql = testSql();
  const asOf = new Date(Math.floor(Date.now() / 1000) * 1000 - 123_456); // fixed, with a millisecond part
  const deps = testDeps({ now: () => new Date(asOf) });
  const marker = uniqueSlug("ds-ret");
  const { tenantId } = await createTenant({ slug: marker, integration: false });
  const apiCutoff = new Date(asOf.getTime() - deps.config.logRetentionDays * 86_400_000);
  const plan = await sql<
    { relation: string; cutoff: Date }[]
  >`select relation, cutoff from maintenance.retention_plan(${asOf})`;
  const cutoffOf = (relation: string) => new Date(plan.find((p) => p.relation === relation)!.cutoff);
  const tables = {
    "public.api_logs": offsets(rand),
    "public.tenant_sessions_audit": offsets(rand),
    "maintenance.job_runs": offsets(rand),
    "maintenance.actions_audit": offsets(rand),
  };
  try {
    // the rows, at cutoff + offset µs (computed in SQL, so no precision is lost)
    await sql`
      insert into public.api_logs (created_at, tenant_slug, service, event, status, data)
      select ${apiCutoff}::timestamptz + make_interval(secs => o / 1e6), ${marker}, 'whatsapp', 'sendText', 'success',
        jsonb_build_object('offset', o)
      from unnest(${tables["public.api_logs"]}::bigint[]) o`;
    await sql`
      insert into public.tenant_sessions_audit (tenant_id, created_at, expires_at)
      select ${tenantId}, ${asOf}::timestamptz - interval '1 day',
        ${cutoffOf("public.tenant_sessions_audit")}::timestamptz + make_interval(secs => o / 1e6)
      from unnest(${tables["public.tenant_sessions_audit"]}::bigint[]) o`;
    await sql`
      insert into maintenance.job_runs (job, status, started_at, trigger, input)
      select 'weekly-report', 'ok', ${cutoffOf("maintenance.job_runs")}::timestamptz + make_interval(secs => o / 1e6),
        'test', jsonb_build_object('marker', ${marker}::text, 'offset', o)
      from unnest(${tables["maintenance.job_runs"]}::bigint[]) o`;
    await sql`
      insert into maintenance.actions_audit (created_at, actor, action, tenant_slug, result, after)
      select ${cutoffOf("maintenance.actions_audit")}::timestamptz + make_interval(secs => o / 1e6), 'test',
        'reliability.retention', ${marker}, 'ok', jsonb_build_object('offset', o)
      from unnest(${tables["maintenance.actions_audit"]}::bigint[]) o`;

    const r = await runJob(deps, cleanupLogs, { input: cleanupLogs.input.parse({ batchSize: 100 }), trigger: "test" });
    assert.equal(r.status, "ok", JSON.stringify(r.report));

    const survivors: Record<string, number[]> = {
      "public.api_logs": (await sql<{ o: string }[]>`
        select data ->> 'offset' as o from public.api_logs where tenant_slug = ${marker}`).map((x) => Number(x.o)),
      "public.tenant_sessions_audit": (await sql<{ o: string }[]>`
        select ((extract(epoch from expires_at - ${
        cutoffOf("public.tenant_sessions_audit")
      }::timestamptz) * 1e6)::bigint)::text as o
        from public.tenant_sessions_audit where tenant_id = ${tenantId}`).map((x) => Number(x.o)),
      "maintenance.job_runs": (await sql<{ o: string }[]>`
        select input ->> 'offset' as o from maintenance.job_runs where input ->> 'marker' = ${marker}`)
        .map((x) => Number(x.o)),
      "maintenance.actions_audit": (await sql<{ o: string }[]>`
        select after ->> 'offset' as o from maintenance.actions_audit
        where tenant_slug = ${marker} and action = 'reliability.retention'`).map((x) => Number(x.o)),
    };
    for (const [table, all] of Object.entries(tables)) {
      await t.step(`${table}: ${all.length} rows around the cutoff (seed ${seed})`, () => {
        const kept = survivors[table].sort((a, b) => a - b);
        const newer = all.filter((o) => o >= 0).sort((a, b) => a - b);
        const lostNewer = newer.filter((o) => !kept.includes(o));
        assert.deepEqual(lostNewer, [], `rows at or after the cutoff were deleted (offsets in µs), seed ${seed}`);
        assert.deepEqual(kept, newer, `every row before the cutoff is deleted, seed ${seed}`);
      });
    }
  } finally {
    await sql`delete from public.tenants where slug = ${marker}`;
    await sql`delete from public.api_logs where tenant_slug = ${marker}`;
    await sql`delete from maintenance.job_runs where input ->> 'marker' = ${marker}`;
    await sql`delete from maintenance.actions_audit where tenant_slug = ${marker}`;
  }
});

Deno.test("reset, migrate, isolation fix and orphan delete never touch a neighbour tenant", async (t) => {
  const sim = await startSimulator({ port: 0, apiKey: FAULT_SIM_KEY, webhookRetryDelaysMs: [50] });
  const target = await startSimulator({ port: 0, apiKey: MIGRATE_TARGET_KEY, webhookRetryDelaysMs: [50] });
  const env = { EVOLUTION_API_URL: sim.url, EVOLUTION_API_KEY: sim.apiKey, ALERT_LOG: "false" };
  const evolution = new EvolutionClient(testConfig(env), {
    sql: testSql(),
    retry: { retries: 1, minDelayMs: 10, maxDelayMs: 20 },
    logs: { intervalMs: 50 },
  });
  const deps = testDeps({ env, evolution });
  const app = createOpsApp(deps);
  const sql = testSql();
  const ops = async (route: string, body: unknown) => {
    const res = await app.request(`/whatsapp-ops/${route}`, {
      method: "POST",
      headers: { "content-type": "application/json", apikey: deps.config.secretKey },
      body: JSON.stringify(body),
    });
    return (await res.json()) as Record<string, unknown>;
  };
  const seed = async (slug: string, state: "open" | "close" = "open") => {
    const hook = await deps.evolution.expectedWebhook(slug);
    sim.control.seedInstance(`revalya-${slug}`, { state, webhookUrl: hook.url, webhookHeaders: hook.headers });
  };
  const subject = await createTenant({ prefix: "ds-subj" });
  const neighbours = [
    await createTenant({ slug: `${subject.slug}-2` }), // its instance name starts with the subject's
    await createTenant({ prefix: "ds-nb" }),
    await createTenant({ prefix: "ds-nb-close" }),
  ];
  const all = [subject.slug, ...neighbours.map((n) => n.slug)];
  // a tenant whose row names a neighbour's instance (slug_mismatch): the fix must not take the neighbour's
  const squatter = await createTenant({
    prefix: "ds-squat",
    config: { instance_name: `revalya-${neighbours[1].slug}`, webhook_url: "", environment: "test" },
  });
  const orphan = `revalya-${subject.slug}-old`;
  try {
    await seed(subject.slug);
    await seed(neighbours[0].slug);
    await seed(neighbours[1].slug);
    await seed(neighbours[2].slug, "close");
    sim.control.seedInstance(orphan, { state: "close" });
    // neighbours' activity, so their log rows are part of the comparison
    for (const n of neighbours) {
      await sql`insert into public.api_logs (tenant_slug, service, event, status, data)
        values (${n.slug}, 'whatsapp', 'connection.update', 'success', '{"state":"open"}')`;
    }

    const [{ lastLogId }] = await sql<{ lastLogId: string }[]>`
      select coalesce(max(id), 0)::text as "lastLogId" from public.api_logs`;
    const snapshot = async () => {
      const slugs = neighbours.map((n) => n.slug);
      return {
        tenants: await sql`select * from public.tenants where slug = any (${slugs}::text[]) order by slug`,
        integrations: await sql`
          select ti.* from public.tenant_integrations ti join public.tenants t on t.id = ti.tenant_id
          where t.slug = any (${slugs}::text[]) order by t.slug`,
        // their log rows as they were (an audit in scope may add read-call rows: checked below, not compared)
        logs: await sql`select * from public.api_logs where tenant_slug = any (${slugs}::text[]) and id <= ${lastLogId}
          order by id`,
        writesLogged: (await sql<{ event: string }[]>`
          select distinct event from public.api_logs where tenant_slug = any (${slugs}::text[]) and id > ${lastLogId}
            and event not in ('fetch_instances', 'connection_state', 'find_webhook', 'server_info')`)
          .map((r) => r.event),
        audit:
          await sql`select * from maintenance.actions_audit where tenant_slug = any (${slugs}::text[]) order by id`,
        instances: sim.control.instances().filter((i) => slugs.some((s) => i.name === `revalya-${s}`))
          .sort((a, b) => a.name.localeCompare(b.name)),
        onTarget: target.control.instances().filter((i) => slugs.some((s) => i.name === `revalya-${s}`)),
      };
    };
    const before = await snapshot();
    assert.equal(before.instances.length, 3);
    assert.equal(before.logs.length, 3);

    await t.step("reset (applied) of the subject", async () => {
      const r = await ops("reset", { slug: subject.slug, confirm: subject.slug, apply: true });
      assert.equal(r.result, "ok", JSON.stringify(r));
      assert.deepEqual(await snapshot(), before);
    });
    await t.step("migrate (applied) of the subject to another server", async () => {
      const r = await ops("migrate", {
        slug: subject.slug,
        apiUrl: target.url,
        apiKey: MIGRATE_TARGET_KEY,
        apply: true,
      });
      assert.equal(r.result, "ok", JSON.stringify(r));
      assert.ok(target.control.instances().some((i) => i.name === `revalya-${subject.slug}`));
      assert.deepEqual(await snapshot(), before);
    });
    await t.step("isolation fix (applied) of a tenant whose row names a neighbour's instance", async () => {
      const r = await runJob(deps, isolationAudit, {
        input: isolationAudit.input.parse({ apply: true, tenants: [squatter.slug, ...neighbours.map((n) => n.slug)] }),
        trigger: "test",
      });
      assert.equal(r.status, "ok", JSON.stringify(r.report));
      assert.ok(Number(r.report.fixed) >= 1, "the squatter was fixed");
      const [own] = await sql`
        select ti.config ->> 'instance_name' as name from public.tenant_integrations ti
        join public.tenants t on t.id = ti.tenant_id where t.slug = ${squatter.slug}`;
      assert.equal(own.name, `revalya-${squatter.slug}`);
      assert.deepEqual(await snapshot(), before);
    });
    await t.step("orphan delete (applied) of an instance named like the subject's", async () => {
      await runJob(deps, orphanCleanup, { input: orphanCleanup.input.parse({ apply: true }), trigger: "test" });
      await sql`update maintenance.orphan_sightings set first_seen_at = now() - interval '25 hours'
        where instance_name = ${orphan}`;
      const r = await runJob(deps, orphanCleanup, {
        input: orphanCleanup.input.parse({ apply: true }),
        trigger: "test",
      });
      assert.equal(r.status, "ok", JSON.stringify(r.report));
      assert.ok((r.report.deleted as string[]).includes(orphan), JSON.stringify(r.report.deleted));
      assert.deepEqual(await snapshot(), before);
    });
    assert.equal(stack().profile, "test");
  } finally {
    await deps.evolution.flushLogs();
    await forgetServers(target.url);
    await sim.close();
    await target.close();
    await sql`delete from public.tenants where slug = any (${[...all, squatter.slug]}::text[])`;
  }
});
