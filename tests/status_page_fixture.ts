/**
 * @module
 * A status page fixture written straight into the health tables of the test stack: a healthy, a degraded, a down
 * tenant and one whose name is an HTML injection, their state history, a firing alert, and health-check runs every
 * five minutes for eight days (the latest one, now, with the services' health). The health-check lease is held
 * meanwhile so a scheduled run cannot rewrite the fixture. Timestamps sit mid-bucket so the bars do not depend on
 * how many milliseconds pass before the page is rendered.
 */
import { testSql } from "./_helpers.ts";

/** The name of the tenant that tries to inject a script. */
export const XSS_NAME = `<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2"> Evil & "Co"`;

/** What the fixture created. */
export interface StatusFixture {
  prefix: string;
  slugs: { ok: string; deg: string; down: string; xss: string };
  evolutionVersion: string;
  cleanup(): Promise<void>;
}

/** Creates the fixture (see the module comment); `cleanup()` removes every row it wrote. */
export async function createStatusFixture(): Promise<StatusFixture> {
  const sql = testSql();
  const prefix = `sp-${crypto.randomUUID().slice(0, 8)}`;
  const slugs = { ok: `${prefix}-ok`, deg: `${prefix}-deg`, down: `${prefix}-down`, xss: `${prefix}-xss` };
  const evolutionVersion = `9.9.9-${prefix}`;
  const leaseRun = crypto.randomUUID();
  await sql.begin(async (tx) => {
    await tx`
      insert into maintenance.job_leases (job, run_id, acquired_at, expires_at)
      values ('health-check', ${leaseRun}, now(), now() + interval '10 minutes')
      on conflict (job) do update set run_id = excluded.run_id, acquired_at = excluded.acquired_at,
        expires_at = excluded.expires_at`;
    const tenants = await tx<{ id: string; slug: string }[]>`
      insert into public.tenants (slug, name) values
        (${slugs.ok}, 'Healthy Co'), (${slugs.deg}, 'Degraded Co'), (${slugs.down}, 'Down Co'), (${slugs.xss}, ${XSS_NAME})
      returning id, slug`;
    const id = (slug: string) => tenants.find((t) => t.slug === slug)!.id;
    const [{ now }] = await tx<{ now: Date }[]>`select now() as now`;
    const services = {
      evolution_api: { status: "healthy", latencyMs: 12, version: evolutionVersion },
      database: { status: "healthy", latencyMs: 1 },
      supabase: { status: "skipped", reason: "SUPABASE_URL is not set" },
    };
    await tx`
      insert into maintenance.job_runs (job, status, started_at, finished_at, duration_ms, trigger, input, report)
      select 'health-check', 'healthy', t, t + interval '1 second', 1000, 'test', ${tx.json({ fixture: prefix })},
        case when t = ${now}::timestamptz then ${tx.json({ services })}::jsonb else '{}'::jsonb end
      from generate_series(${now}::timestamptz - interval '8 days', ${now}::timestamptz, interval '5 minutes') t`;
    const history: Array<[string, string | null, string, string]> = [
      [slugs.ok, null, "healthy", "8 days"],
      [slugs.deg, null, "healthy", "8 days"],
      [slugs.deg, "healthy", "degraded", "6 hours 7 minutes"],
      [slugs.down, null, "healthy", "3 days 30 minutes"],
      [slugs.down, "healthy", "unhealthy", "12 hours 7 minutes"],
      [slugs.xss, null, "healthy", "1 hour 7 minutes"],
    ];
    for (const [slug, from, to, ago] of history) {
      await tx`
        insert into maintenance.tenant_health_history (tenant_id, tenant_slug, from_state, to_state, at)
        values (${id(slug)}, ${slug}, ${from}, ${to}, ${now}::timestamptz - ${ago}::interval)`;
    }
    const health: Array<[string, string, string | null, string | null, string]> = [
      [slugs.ok, "healthy", null, null, "8 days"],
      [slugs.deg, "degraded", "instance_disconnected", "WhatsApp not connected (close)", "6 hours 7 minutes"],
      [slugs.down, "unhealthy", "instance_missing", "Instance not found in Evolution API", "12 hours 7 minutes"],
      [slugs.xss, "healthy", null, null, "1 hour 7 minutes"],
    ];
    for (const [slug, state, code, issue, ago] of health) {
      await tx`
        insert into maintenance.tenant_health (tenant_id, tenant_slug, state, issue_code, issue, severity, since,
          last_checked_at, last_change_at)
        values (${id(slug)}, ${slug}, ${state}, ${code}, ${issue}, ${code ? "high" : null},
          ${now}::timestamptz - ${ago}::interval, ${now}, ${now}::timestamptz - ${ago}::interval)`;
    }
    await tx`
      insert into maintenance.alerts (fingerprint, kind, scope, tenant_id, tenant_slug, status, severity, summary,
        started_at, last_seen_at)
      values (${"instance_missing:" + slugs.down}, 'instance_missing', 'tenant', ${id(slugs.down)}, ${slugs.down},
        'firing', 'critical', ${slugs.down + ": Instance not found in Evolution API"},
        ${now}::timestamptz - interval '12 hours 7 minutes', ${now})`;
  });
  return {
    prefix,
    slugs,
    evolutionVersion,
    async cleanup() {
      await sql.begin(async (tx) => {
        await tx`delete from maintenance.alerts where tenant_slug like ${prefix + "-%"}`;
        await tx`delete from maintenance.job_runs where job = 'health-check' and input ->> 'fixture' = ${prefix}`;
        await tx`delete from public.tenants where slug like ${prefix + "-%"}`;
        await tx`delete from maintenance.job_leases where job = 'health-check' and run_id = ${leaseRun}`;
      });
    },
  };
}
