// performance_metrics() is exact at any volume: on a pseudo-random fixture (tenants with hundreds of rows, rows
// without a tenant, without a response time, statuses other than success/error, other services, error types with
// and without a name) every figure, overall and per tenant, equals the textbook SQL over the same rows
// (count, avg, percentile_cont grouped by tenant), and rows added late or purged change the answer exactly as the
// textbook query says.
import assert from "node:assert/strict";
import { testSql } from "./_helpers.ts";

const SINCE = "2003-03-01T00:00:00Z";
const UNTIL = "2003-03-08T00:00:00Z";

/** Reserved window for this file: cleared, then filled with `n` rows from a fixed seed. */
async function fill(n: number, seed: number) {
  const sql = testSql();
  await sql`delete from public.api_logs where created_at >= '2003-02-27' and created_at < '2003-03-10'`;
  await sql.begin(async (tx) => {
    await tx`select setseed(${seed})`;
    await tx`
      insert into public.api_logs (created_at, tenant_slug, service, event, status, error_type, response_time)
      select timestamptz '2003-02-28' + random() * interval '9 days',
        case when random() < 0.02 then null else 'wr-exact-' || (1 + floor(power(random(), 2) * 40))::int end,
        case when random() < 0.05 then 'other' else 'whatsapp' end,
        'connect',
        case when r < 0.08 then 'error' when r < 0.1 then 'pending' else 'success' end,
        case when r < 0.08 then (array['timeout', 'http_500', null])[1 + floor(random() * 3)::int] end,
        case when random() < 0.1 then null else 50 + floor(power(random(), 3) * 8000)::int end
      from (select random() as r from generate_series(1, ${n})) s`;
  });
}

/** The textbook answer: plain aggregates and percentile_cont straight over the rows, per tenant and overall. */
async function textbook() {
  const sql = testSql();
  const rows = await sql<
    {
      overall: boolean;
      tenant: string | null;
      total: number;
      ok: number;
      errors: number;
      samples: number;
      avg: string | null;
      p: number[] | null;
      err: Record<string, number> | null;
    }[]
  >`
    select grouping(l.tenant_slug) = 1 as overall, l.tenant_slug as tenant, count(*)::int as total,
      count(*) filter (where l.status = 'success')::int as ok, count(*) filter (where l.status = 'error')::int as errors,
      count(l.response_time)::int as samples, round(avg(l.response_time), 2)::text as avg,
      percentile_cont(array[0.5, 0.95, 0.99]) within group (order by l.response_time) as p,
      (select jsonb_object_agg(e.t, e.n) from (
        select coalesce(x.error_type, 'unknown') as t, count(*)::int as n from public.api_logs x
        where x.service = 'whatsapp' and x.created_at >= ${SINCE} and x.created_at < ${UNTIL} and x.status = 'error'
          and (grouping(l.tenant_slug) = 1 or x.tenant_slug is not distinct from l.tenant_slug)
        group by 1) e) as err
    from public.api_logs l
    where l.service = 'whatsapp' and l.created_at >= ${SINCE} and l.created_at < ${UNTIL}
    group by grouping sets ((l.tenant_slug), ())`;
  const round2 = (v: number) => Math.round(v * 100) / 100;
  const figures = (r: (typeof rows)[number]) => ({
    totalRequests: r.total,
    successCount: r.ok,
    errorCount: r.errors,
    successRate: r.total > 0 ? round2((100 * r.ok) / r.total) : null,
    responseTime: {
      samples: r.samples,
      avg: r.avg === null ? null : Number(r.avg),
      p50: r.p ? round2(r.p[0]) : null,
      p95: r.p ? round2(r.p[1]) : null,
      p99: r.p ? round2(r.p[2]) : null,
    },
    errorsByType: r.err ?? {},
  });
  const overall = rows.find((r) => r.overall)!;
  const tenants = rows.filter((r) => !r.overall).map((r) => ({ tenant: r.tenant, ...figures(r) }));
  return { overall: figures(overall), tenants };
}

async function metrics() {
  const [{ m }] = await testSql()`select maintenance.performance_metrics(${SINCE}, ${UNTIL}, 'whatsapp', 5) as m`;
  return m;
}

function assertMatches(m: Record<string, unknown>, expected: Awaited<ReturnType<typeof textbook>>) {
  const { tenants, slowestTenants, ...overall } = m as {
    tenants: Record<string, unknown>[];
    slowestTenants: { tenant: string; avg: number }[];
    [k: string]: unknown;
  };
  const strip = ({ diagnosis: _d, ...rest }: Record<string, unknown>) => rest;
  const { period: _p, service: _s, ...figures } = overall;
  assert.deepEqual(strip(figures), expected.overall);
  const byName = (a: Record<string, unknown>, b: Record<string, unknown>) =>
    String(a.tenant).localeCompare(String(b.tenant));
  assert.deepEqual(
    tenants.map(strip).sort(byName),
    [...expected.tenants].sort(byName),
  );
  const slowest = [...expected.tenants].filter((t) => t.responseTime.samples > 0)
    .sort((a, b) => b.responseTime.avg! - a.responseTime.avg! || byName(a, b)).slice(0, 5)
    .map((t) => t.tenant);
  // ties in the rounded average are ordered by the exact one in SQL: compare the sets of names when they tie
  assert.deepEqual(slowestTenants.map((t) => t.tenant).sort(), [...slowest].sort());
}

Deno.test("performance_metrics() equals percentile_cont and plain aggregates on 20,000 pseudo-random rows", async () => {
  await fill(20000, 0.42);
  const expected = await textbook();
  assert.ok(expected.tenants.length >= 40, "the fixture has 40 tenants and rows without one");
  assert.ok(expected.tenants.some((t) => t.tenant === null), "rows without a tenant appear as tenant null");
  assert.ok(expected.overall.totalRequests > 12000);
  assertMatches(await metrics(), expected);
});

Deno.test("performance_metrics() stays exact after late rows and a purge inside the period", async () => {
  const sql = testSql();
  await fill(5000, 0.17);
  const before = await metrics();
  // late rows: written now, timestamped inside the period (one new tenant, one existing, extreme values)
  await sql`insert into public.api_logs (created_at, tenant_slug, service, event, status, error_type, response_time)
    values ('2003-03-02T10:00:00Z', 'wr-exact-late', 'whatsapp', 'connect', 'error', 'late', 1),
           ('2003-03-07T23:59:59.999Z', 'wr-exact-1', 'whatsapp', 'connect', 'success', null, 999999),
           ('2003-03-08T00:00:00Z', 'wr-exact-1', 'whatsapp', 'connect', 'success', null, 5)`;
  const late = await metrics();
  assert.equal(late.totalRequests, before.totalRequests + 2, "the row at `until` is outside the period");
  assert.equal(late.errorsByType.late, 1);
  assertMatches(late, await textbook());
  // a purge of the first two days of the period
  await sql`delete from public.api_logs where created_at >= '2003-02-27' and created_at < '2003-03-03'`;
  const purged = await metrics();
  assert.ok(purged.totalRequests < late.totalRequests);
  assertMatches(purged, await textbook());
});
