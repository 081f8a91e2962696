-- performance_metrics in one pass over api_logs (issue 8: the 7-day report on 5 million rows within 1 s), with the
-- same figures as before: the same signature, the same jsonb, the same exact percentile_cont arithmetic.
--
-- Before: a histogram grouped by (tenant, response_time) (about one group per row for per-tenant data), window sums
-- over it, a range join to find the ranks, and a second scan for the error types: 4-6 s on 5 M rows. Now one hash
-- aggregate by tenant over the covering index (20261129002010) collects each tenant's counts, its response times
-- and its error types; each tenant's percentiles are percentile_cont over its own ~600 values (small in-memory
-- sorts), the overall percentiles come from the histogram of all values (a few thousand distinct ones), and the
-- overall counts are sums of the tenants'. A sort of all rows by tenant is avoided on purpose: tenant slugs share
-- long prefixes, so text sorts are slow (measured 1.1-1.5 s for 1.2 M rows), while hashing is not.

-- why: seed §2.1 analyzePerformance over [since, until) for one service: total requests, success rate, average and
-- exact p50/p95/p99 response time (percentile_cont, over rows that have a response_time), errors by type (a null
-- error_type counts as 'unknown'), the slowest tenants by average, and the same figures per tenant, with the seed's
-- diagnosis overall and per tenant. Rows without a tenant_slug count overall and appear as tenant null.
-- work_mem: the per-tenant hash table holds every response time of the period (~30 MB for 1.2 M rows).
create or replace function maintenance.performance_metrics(
  since timestamptz, until timestamptz default now(), service_name text default 'whatsapp', top_n integer default 10
)
returns jsonb
language plpgsql stable security definer
set search_path = '' set work_mem = '128MB' set jit = off
as $$
declare
  result jsonb;
begin
  if since is null or until is null or since >= until then
    raise exception 'performance_metrics needs since < until: got % and %', since, until using errcode = '22023';
  end if;
  if top_n is null or top_n < 0 or top_n > 1000 then
    raise exception 'top_n must be between 0 and 1000: got %', top_n using errcode = '22023';
  end if;
  with g as materialized (
    -- the one pass: everything per tenant (a hash aggregate: no sort of the period's rows)
    select l.tenant_slug, count(*) as total,
      count(*) filter (where l.status = 'success') as ok,
      count(*) filter (where l.status = 'error') as errors,
      count(l.response_time) as samples,
      sum(l.response_time) as rt_sum,
      array_agg(l.response_time) filter (where l.response_time is not null) as rts,
      array_agg(coalesce(l.error_type, 'unknown')) filter (where l.status = 'error') as error_types
    from public.api_logs l
    where l.service = service_name and l.created_at >= since and l.created_at < until
    group by l.tenant_slug
  ),
  tenant_scope as (
    select false as overall, g.tenant_slug, g.total, g.ok, g.errors, g.samples,
      g.rt_sum::numeric / nullif(g.samples, 0) as avg_ms,
      (select percentile_cont(array[0.5, 0.95, 0.99]::float8[]) within group (order by v)
        from unnest(g.rts) v) as pct
    from g
  ),
  hist as materialized (
    -- every response time of the period and how often it occurs (a few thousand rows, whatever the volume)
    select v as rt, count(*) as n from g, unnest(g.rts) v group by v
  ),
  cum as (
    select h.rt, h.n, sum(h.n) over (order by h.rt) as upto, sum(h.n) over () as total from hist h
  ),
  ranks as (
    -- percentile_cont's definition: position p * (N - 1) in the sorted values, interpolated between its neighbours
    select p.ord, p.p * (max(c.total) - 1) as r from cum c
    cross join unnest(array[0.5, 0.95, 0.99]::float8[]) with ordinality as p(p, ord)
    group by p.ord, p.p
  ),
  overall_pct as (
    select array_agg(x.lo + (x.r - floor(x.r)) * (x.hi - x.lo) order by x.ord) as pct
    from (
      select rk.ord, rk.r,
        (select c.rt from cum c where c.upto > floor(rk.r) order by c.rt limit 1)::float8 as lo,
        (select c.rt from cum c where c.upto > ceil(rk.r) order by c.rt limit 1)::float8 as hi
      from ranks rk
    ) x
  ),
  per_scope as materialized (
    select * from tenant_scope
    union all
    select true, null, sum(g.total), sum(g.ok), sum(g.errors), sum(g.samples),
      sum(g.rt_sum)::numeric / nullif(sum(g.samples), 0), (select o.pct from overall_pct o)
    from g having count(*) > 0
  ),
  error_types as materialized (
    select grouping(e.tenant_slug) = 1 as overall, e.tenant_slug, e.error_type, count(*) as n
    from (select g.tenant_slug, t.error_type from g, unnest(g.error_types) t(error_type)) e
    group by grouping sets ((e.error_type), (e.tenant_slug, e.error_type))
  ),
  error_json as (
    select e.overall, coalesce(e.tenant_slug, '') as k, jsonb_object_agg(e.error_type, e.n order by e.error_type) as j
    from error_types e group by e.overall, coalesce(e.tenant_slug, '')
  ),
  figures as (
    select s.overall, s.tenant_slug, s.total, s.samples,
      jsonb_build_object(
        'totalRequests', s.total,
        'successCount', s.ok,
        'errorCount', s.errors,
        'successRate', case when s.total > 0 then round(100.0 * s.ok / s.total, 2) end,
        'responseTime', jsonb_build_object(
          'samples', s.samples,
          'avg', round(s.avg_ms, 2),
          'p50', round(s.pct[1]::numeric, 2),
          'p95', round(s.pct[2]::numeric, 2),
          'p99', round(s.pct[3]::numeric, 2)),
        'errorsByType', coalesce(ej.j, '{}'::jsonb),
        'diagnosis', maintenance.diagnose_performance(s.avg_ms, case when s.total > 0 then 100.0 * s.ok / s.total end)
      ) as body,
      s.avg_ms, s.pct
    from per_scope s
    left join error_json ej on ej.overall = s.overall and ej.k = coalesce(s.tenant_slug, '')
  )
  select jsonb_build_object(
      'period', jsonb_build_object('since', since, 'until', until),
      'service', service_name)
    || coalesce((select f.body from figures f where f.overall),
         jsonb_build_object('totalRequests', 0, 'successCount', 0, 'errorCount', 0, 'successRate', null,
           'responseTime', jsonb_build_object('samples', 0, 'avg', null, 'p50', null, 'p95', null, 'p99', null),
           'errorsByType', '{}'::jsonb, 'diagnosis', 'normal'))
    || jsonb_build_object(
      'slowestTenants', coalesce((
        select jsonb_agg(x.item order by x.avg_ms desc, x.tenant_slug)
        from (
          select f.avg_ms, f.tenant_slug, jsonb_build_object('tenant', f.tenant_slug, 'requests', f.total,
              'avg', round(f.avg_ms, 2), 'p95', round(f.pct[2]::numeric, 2)) as item
          from figures f where not f.overall and f.samples > 0
          order by f.avg_ms desc, f.tenant_slug limit top_n) x), '[]'::jsonb),
      'tenants', coalesce((
        select jsonb_agg(jsonb_build_object('tenant', f.tenant_slug) || f.body order by f.tenant_slug)
        from figures f where not f.overall), '[]'::jsonb))
  into result;
  return result;
end;
$$;

revoke all on function maintenance.performance_metrics(timestamptz, timestamptz, text, integer)
  from public, anon, authenticated;
grant execute on function maintenance.performance_metrics(timestamptz, timestamptz, text, integer) to service_role;
