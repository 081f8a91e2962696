/**
 * @module
 * The status page at scale: N active tenants (5,000 in the full run) with eight days of state history (most steady,
 * 5 % degraded and 2 % down in the last day, 10 % flapping every few hours all week) and a health-check run every
 * five minutes, rendered through the `status-page` app in process (real Postgres).
 *
 *   ours:  the page as shipped: four SQL statements (summary, tenants with both bars, alerts, jobs), HTML rendered
 *   naive: the per-tenant way, one history query per tenant for its 7 days (bars would still have to be drawn in
 *          TypeScript afterwards; only the queries are timed)
 *
 * Standalone: `deno run -A bench/status_page.ts [--json] [--tenants=N]` starts a throwaway stack (port base
 * CANAIS_PORT_BASE, default 56950) and removes it afterwards; `bench/main.ts` runs it as `status`.
 */
import postgres from "postgres";
import { destroy, profileFromEnv, start } from "../dev/stack.ts";
import { createSql } from "../shared/db.ts";
import { buildDeps } from "../shared/deps.ts";
import { createNotifier } from "../shared/alerts/notify.ts";
import { createStatusPageApp } from "../shared/status_page/app.ts";
import { benchConfig, type BenchContext, median, ratio, round, since, target } from "./harness.ts";

/** Runs the benchmark; returns the JSON section `statusPage`. */
export async function benchStatusPage(ctx: BenchContext, options: { tenants: number; runs?: number }) {
  const { sql, info, log } = ctx;
  const n = options.tenants;
  const runs = options.runs ?? 5;
  const prefix = `bs-${crypto.randomUUID().slice(0, 6)}-`;
  const t0 = performance.now();
  await sql.begin(async (tx) => {
    await tx`
      insert into public.tenants (slug, name)
      select ${prefix} || i, 'Bench tenant ' || i from generate_series(1, ${n}) i`;
    // every tenant healthy from 8 days ago; 10 % flap every 4 h all week; 5 % degraded and 2 % down in the last day
    await tx`
      with t as (
        select id, slug, substr(slug, length(${prefix}) + 1)::int as i from public.tenants where slug like ${prefix} || '%'
      ), changes as (
        select t.id, t.slug, 'healthy' as state, now() - interval '8 days' as at from t
        union all
        select t.id, t.slug, case when k % 2 = 0 then 'degraded' else 'healthy' end,
          now() - interval '7 days' + k * interval '4 hours' + (t.i % 60) * interval '1 minute'
        from t cross join generate_series(0, 40) k where t.i % 10 = 0
        union all
        select t.id, t.slug, case when t.i % 50 = 1 then 'unhealthy' else 'degraded' end,
          now() - (t.i % 20) * interval '1 hour' - interval '3 minutes'
        from t where t.i % 20 = 1 or t.i % 50 = 1
      ), ordered as (
        select c.*, lag(c.state) over (partition by c.id order by c.at) as prev from changes c
      ), ins as (
        insert into maintenance.tenant_health_history (tenant_id, tenant_slug, from_state, to_state, at)
        select id, slug, prev, state, at from ordered where prev is distinct from state
        returning tenant_id, tenant_slug, to_state, at
      )
      insert into maintenance.tenant_health (tenant_id, tenant_slug, state, since, last_checked_at, last_change_at)
      select distinct on (tenant_id) tenant_id, tenant_slug, to_state, at, now(), at from ins
      order by tenant_id, at desc`;
    await tx`
      insert into maintenance.job_runs (job, status, started_at, finished_at, duration_ms, trigger, input, report)
      select 'health-check', 'healthy', t, t + interval '1 second', 1000, 'bench', ${tx.json({ bench: prefix })},
        ${tx.json({ services: { evolution_api: { status: "healthy" }, database: { status: "healthy" } } })}
      from generate_series(now() - interval '8 days', now(), interval '5 minutes') t`;
  });
  const [{ history }] = await sql<{ history: number }[]>`
    select count(*)::int as history from maintenance.tenant_health_history where tenant_slug like ${prefix} || '%'`;
  const setupMs = since(t0);
  log(`status page: ${n} tenants, ${history} state changes (${setupMs} ms)`);

  const config = benchConfig(info);
  const pageSql = createSql(info.dbUrl);
  const deps = buildDeps(config, { sql: pageSql, notify: createNotifier(config, { sql: pageSql, channels: [] }) });
  const app = createStatusPageApp(deps);
  const time = async (query: string) => {
    const times: number[] = [];
    let bytes = 0;
    for (let r = 0; r <= runs; r++) {
      const t = performance.now();
      const res = await app.request(`/status-page${query}`, { headers: { apikey: config.secretKey } });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`status-page answered ${res.status}: ${text.slice(0, 200)}`);
      if (r > 0) times.push(since(t)); // the first request warms the connection pool
      bytes = text.length;
    }
    return { ms: median(times), bytes };
  };
  try {
    const page = await time("");
    const page2000 = await time("?limit=2000");
    const search = await time(`?q=${prefix}77`);

    // the per-tenant way: one history query per tenant
    const ids = await sql<{ id: string }[]>`select id from public.tenants where slug like ${prefix} || '%'`;
    const tn = performance.now();
    for (const { id } of ids) {
      await pageSql`
        select to_state, at from maintenance.tenant_health_history
        where tenant_id = ${id} and at >= now() - interval '7 days' order by at`;
    }
    const naiveMs = since(tn);
    const result = {
      size: { tenants: n, stateChanges: history, healthCheckRuns: 2305 },
      setupMs,
      ours: {
        pageMs: page.ms,
        pageBytes: page.bytes,
        page2000Ms: page2000.ms,
        page2000Bytes: page2000.bytes,
        searchMs: search.ms,
        statements: 4,
      },
      naive: { queries: ids.length, ms: naiveMs },
      ratio: ratio(page.ms, naiveMs),
      targets: [
        target("page (200 tenants shown) at 5,000 tenants", page.ms, {
          max: 1000,
          text: "< 1 s",
          applies: n >= 5000,
        }),
      ],
    };
    log(
      `status page: ${round(page.ms, 1)} ms (${page.bytes} bytes); 2,000 shown ${page2000.ms} ms; naive ${naiveMs} ms`,
    );
    return result;
  } finally {
    await pageSql.end();
    await sql`delete from maintenance.job_runs where job = 'health-check' and input ->> 'bench' = ${prefix}`;
    await sql`delete from public.tenants where slug like ${prefix} || '%'`;
  }
}

if (import.meta.main) {
  const json = Deno.args.includes("--json");
  const tenants = Number(Deno.args.find((a) => a.startsWith("--tenants="))?.slice(10) ?? 5000);
  const env = Deno.env.toObject();
  const profile = profileFromEnv({
    ...env,
    CANAIS_PROFILE: "bench",
    CANAIS_PORT_BASE: env.CANAIS_PORT_BASE ?? "56950",
  });
  const log = (line: string) => console.error(`[bench] ${line}`);
  try {
    const info = await start(profile, { fresh: true, log });
    const sql = postgres(info.dbUrl, { max: 2, prepare: false, onnotice: () => {} });
    try {
      const out = await benchStatusPage({ info, sql, until: new Date(), exclusive: true, log }, { tenants });
      console.log(json ? JSON.stringify(out) : out);
    } finally {
      await sql.end();
    }
  } finally {
    await destroy(profile);
  }
}
