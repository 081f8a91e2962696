-- The reports from the rollups, faster (issue 18): performance_metrics' per-tenant percentiles from the rollups
-- were a hash of every (tenant, millisecond) pair, a running sum per tenant and six filtered minimums: 4x the raw
-- scan's time on the bench's 5 M rows, where a tenant-hour holds ~3 rows and the rollup is as large as the rows.
-- They are now percentile_cont over the merged values (the raw scan's own function, so the same float8 result),
-- the overall histogram a hash aggregate of the elements, and only the hours with errors have their error types
-- expanded. Same output as 20261203014000, byte for byte.

-- why: 20261203014000's performance_metrics with the two percentile parts above replaced; the rest unchanged.
create or replace function maintenance.performance_metrics(
  since timestamptz, until timestamptz default now(), service_name text default 'whatsapp', top_n integer default 10
)
returns jsonb
language plpgsql stable security definer
set search_path = '' set work_mem = '128MB' set jit = off
as $$
declare
  result jsonb;
  r_lo timestamptz;
  r_hi timestamptz;
begin
  if since is null or until is null or since >= until then
    raise exception 'performance_metrics needs since < until: got % and %', since, until using errcode = '22023';
  end if;
  if top_n is null or top_n < 0 or top_n > 1000 then
    raise exception 'top_n must be between 0 and 1000: got %', top_n using errcode = '22023';
  end if;
  select s.rollup_from, s.rollup_until into r_lo, r_hi from maintenance.api_logs_rollup_span(since, until) s;
  if r_lo >= r_hi then
    return maintenance.performance_metrics_raw(since, until, service_name, top_n);
  end if;
  with raw as materialized (
    select l.tenant_slug, l.status, l.error_type, l.response_time from public.api_logs l
    where l.service = service_name and l.created_at >= since and l.created_at < r_lo
    union all
    select l.tenant_slug, l.status, l.error_type, l.response_time from public.api_logs l
    where l.service = service_name and l.created_at >= r_hi and l.created_at < until
  ),
  roll as materialized (
    select h.tenant_slug, h.total, h.ok, h.errors, h.samples, h.rt_sum, h.rt_values, h.rt_counts, h.errors_by_type
    from maintenance.api_logs_hourly h
    where h.hour >= r_lo and h.hour < r_hi and h.service = service_name
  ),
  g as materialized (
    select x.tenant_slug, sum(x.total)::bigint as total, sum(x.ok)::bigint as ok, sum(x.errors)::bigint as errors,
      sum(x.samples)::bigint as samples, sum(x.rt_sum) as rt_sum
    from (
      select r.tenant_slug, count(*) as total, count(*) filter (where r.status = 'success') as ok,
        count(*) filter (where r.status = 'error') as errors, count(r.response_time) as samples,
        sum(r.response_time) as rt_sum
      from raw r group by r.tenant_slug
      union all
      select h.tenant_slug, h.total, h.ok, h.errors, h.samples, h.rt_sum from roll h
    ) x
    group by x.tenant_slug
  ),
  -- per tenant, percentile_cont itself over the merged values (each rolled-up value repeated its count of times):
  -- the raw scan's own function over the same multiset, so the same float8 result; a sort per tenant of its
  -- values, which costs about what the raw scan's sort costs (the window-and-filter merge it replaces took 4x)
  pct_t as (
    select x.tenant_slug, percentile_cont(array[0.5, 0.95, 0.99]::float8[]) within group (order by x.v) as pct
    from (
      select r.tenant_slug, r.response_time as v from raw r where r.response_time is not null
      union all
      select h.tenant_slug, u.v from roll h, unnest(h.rt_values, h.rt_counts) u(v, c), generate_series(1, u.c)
    ) x
    group by x.tenant_slug
  ),
  tenant_scope as (
    select false as overall, g.tenant_slug, g.total, g.ok, g.errors, g.samples,
      g.rt_sum::numeric / nullif(g.samples, 0) as avg_ms, p.pct
    from g
    left join pct_t p on (p.tenant_slug is null) = (g.tenant_slug is null)
      and coalesce(p.tenant_slug, '') = coalesce(g.tenant_slug, '')
  ),
  -- overall: the histogram of every value (a few thousand distinct milliseconds), a hash aggregate of the elements
  hist as materialized (
    select x.rt, sum(x.n) as n
    from (
      select r.response_time as rt, count(*) as n from raw r where r.response_time is not null group by 1
      union all
      select u.v, sum(u.c) from roll h, unnest(h.rt_values, h.rt_counts) u(v, c) group by 1
    ) x
    group by x.rt
  ),
  cum as (
    select h.rt, sum(h.n) over (order by h.rt) as upto, (sum(h.n) over () - 1)::float8 as last from hist h
  ),
  pick as (
    select c.last,
      min(c.rt) filter (where c.upto > floor(0.5::float8 * c.last))::float8 as lo1,
      min(c.rt) filter (where c.upto > ceil(0.5::float8 * c.last))::float8 as hi1,
      min(c.rt) filter (where c.upto > floor(0.95::float8 * c.last))::float8 as lo2,
      min(c.rt) filter (where c.upto > ceil(0.95::float8 * c.last))::float8 as hi2,
      min(c.rt) filter (where c.upto > floor(0.99::float8 * c.last))::float8 as lo3,
      min(c.rt) filter (where c.upto > ceil(0.99::float8 * c.last))::float8 as hi3
    from cum c group by c.last
  ),
  overall_pct as (
    select array[
        p.lo1 + (0.5::float8 * p.last - floor(0.5::float8 * p.last)) * (p.hi1 - p.lo1),
        p.lo2 + (0.95::float8 * p.last - floor(0.95::float8 * p.last)) * (p.hi2 - p.lo2),
        p.lo3 + (0.99::float8 * p.last - floor(0.99::float8 * p.last)) * (p.hi3 - p.lo3)] as pct
    from pick p
  ),
  per_scope as materialized (
    select * from tenant_scope
    union all
    select true, null, sum(g.total), sum(g.ok), sum(g.errors), sum(g.samples),
      sum(g.rt_sum)::numeric / nullif(sum(g.samples), 0), (select o.pct from overall_pct o)
    from g having count(*) > 0
  ),
  errs as (
    select x.tenant_slug, x.error_type, sum(x.n) as n
    from (
      select r.tenant_slug, coalesce(r.error_type, 'unknown') as error_type, count(*) as n from raw r
      where r.status = 'error' group by 1, 2
      union all
      select h.tenant_slug, e.key, e.value::bigint from roll h, jsonb_each_text(h.errors_by_type) e where h.errors > 0
    ) x
    group by x.tenant_slug, x.error_type
  ),
  error_types as materialized (
    select grouping(e.tenant_slug) = 1 as overall, e.tenant_slug, e.error_type, sum(e.n) as n
    from errs e
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
