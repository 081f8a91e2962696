// health-check for tenants migrated to another Evolution server (whatsapp-ops migrate): their instances are listed on
// their own server, once per server, with the key read back from Vault; a failure there is theirs alone.
import assert from "node:assert/strict";
import { createTenant, forgetServers, testDeps, testSql } from "./_helpers.ts";
import { startSimulator } from "../dev/evolution_sim/app.ts";
import { runHealthCheck } from "../shared/jobs/health_check.ts";

Deno.test("healthCheck() lists a migrated tenant's instance on its own server, once per server", async () => {
  const sql = testSql();
  const home = await startSimulator({ port: 0 });
  const other = await startSimulator({ port: 0 });
  const stay = await createTenant({ prefix: "hc-stay" });
  const moved = await createTenant({ prefix: "hc-moved" });
  const [{ id: keyId }] = await sql<{ id: string }[]>`
    select maintenance.store_evolution_key(${moved.slug}, ${other.apiKey}) as id`;
  await sql`
    update public.tenant_integrations
    set config = config || ${sql.json({ evolution_api_url: other.url, evolution_api_key_secret_id: keyId })}
    where id = ${moved.integrationId}`;
  const deps = testDeps({
    env: { EVOLUTION_API_URL: home.url, EVOLUTION_API_KEY: home.apiKey, ALERT_LOG: "false" },
  });
  const slugs = [stay.slug, moved.slug];
  try {
    home.control.seedInstance(`revalya-${stay.slug}`, { state: "open" });
    other.control.seedInstance(`revalya-${moved.slug}`, { state: "open" });
    const ok = await runHealthCheck(deps, { runId: crypto.randomUUID(), input: { tenants: slugs } });
    assert.equal(ok.status, "healthy", JSON.stringify(ok.report.issues));
    assert.equal(home.control.stats().calls.fetchInstances, 1, "one listing on the home server");
    assert.equal(other.control.stats().calls.fetchInstances, 1, "one listing on the migrated tenant's server");
    assert.equal((ok.report.evolutionCalls as { fetchInstances: number }).fetchInstances, 2);

    other.control.setDown(true);
    const down = await runHealthCheck(deps, { runId: crypto.randomUUID(), input: { tenants: slugs } });
    const health = await sql<{ tenant_slug: string; state: string; issue_code: string | null }[]>`
      select tenant_slug, state, issue_code from maintenance.tenant_health
      where tenant_slug = any (${slugs}::text[]) order by tenant_slug = ${stay.slug}`;
    assert.deepEqual(health.map((h) => ({ ...h })), [
      { tenant_slug: moved.slug, state: "unhealthy", issue_code: "evolution_unreachable" },
      { tenant_slug: stay.slug, state: "healthy", issue_code: null },
    ]);
    assert.equal(
      (down.report.services as Record<string, { status: string }>).evolution_api.status,
      "healthy",
      "the home server is not blamed",
    );
    const [{ n }] = await sql<{ n: number }[]>`
      select count(*)::int as n from maintenance.alerts where fingerprint = 'evolution_down' and status = 'firing'`;
    assert.equal(n, 0, "no platform incident for one migrated tenant's server");
  } finally {
    await sql`select maintenance.drop_evolution_key(${keyId}::uuid)`;
    await sql`delete from maintenance.alerts where labels ->> 'tenant' = any (${slugs}::text[])`.catch(() => {});
    await sql`delete from public.tenants where slug = any (${slugs}::text[])`;
    await forgetServers(home.url, other.url);
    await home.close();
    await other.close();
  }
});
