-- The reports read the hourly rollups (issue 18, item 1, second part): for a period [since, until), the whole hours
-- that the rollups cover (from their first hour up to the watermark: hours no transaction can still write to) come
-- from maintenance.api_logs_hourly, and the partial first and last hours and every hour not rolled up yet from the
-- raw rows of public.api_logs. The figures are exactly those of the raw scan (20261129002002 and 20261202006200):
-- percentiles are percentile_cont's interpolation over the merged exact histogram. Once an hour is rolled up, its
-- figures no longer depend on its raw rows, so the raw purge (capped at the watermark) changes no report of it.
--
-- The rollup gains what usage_report needs (connection.update counts, opens, terminal closes and drops per tenant and
-- hour); the per-tenant uptime (tenant_uptime) is a timeline across hours and stays on the raw rows.

-- why: usage_report's connection figures per (service, tenant, hour), with the report's own definitions:
-- conn_events  connection.update rows of service whatsapp that are not error rows (topActiveTenants' activity);
-- conn_opens   those whose data.state is open (totalConnections);
-- conn_closes  those whose state (data.state or data.data.state) is close, tenant rows only (totalCloses);
-- conn_drops   the drops (maintenance.connection_drops: a connecting or close whose previous state of the tenant,
--              looked up across all earlier rows, was open), tenant rows only (totalDisconnections).
-- A drop's previous state may lie in an earlier hour; it is read when the hour is rolled up, so the count is
-- additive over hours. Null: not computed (a refresh that does not know these columns); the report then reads the
-- raw rows for the connection figures.
alter table maintenance.api_logs_hourly
  add column if not exists conn_events bigint,
  add column if not exists conn_opens bigint,
  add column if not exists conn_closes bigint,
  add column if not exists conn_drops bigint;

-- why: the connection figures of every (tenant, hour) in [from_at, until_at), one pass over the connection.update
-- rows of the range (api_logs_connection_update_idx) and one backward probe per tenant for the state before it.
-- Used by the refresh and by this migration's backfill.
create or replace function maintenance.api_logs_hourly_conn(from_at timestamptz, until_at timestamptz)
returns table (tenant_slug text, hour timestamptz, conn_events bigint, conn_opens bigint, conn_closes bigint,
  conn_drops bigint)
language sql stable security definer set search_path = '' as $$
  with win as materialized (
    select l.tenant_slug, l.created_at, l.id, l.data ->> 'state' = 'open' as is_open,
      coalesce(l.data ->> 'state', l.data #>> '{data,state}') as state
    from public.api_logs l
    where l.service = 'whatsapp' and l.event = 'connection.update' and l.status is distinct from 'error'
      and l.created_at >= from_at and l.created_at < until_at
  ),
  prior as (
    select t.tenant_slug, p.created_at, p.id, p.state
    from (select distinct w.tenant_slug from win w where w.tenant_slug is not null) t
    cross join lateral (
      select l.created_at, l.id, coalesce(l.data ->> 'state', l.data #>> '{data,state}') as state
      from public.api_logs l
      where l.service = 'whatsapp' and l.event = 'connection.update' and l.status is distinct from 'error'
        and l.tenant_slug = t.tenant_slug and l.created_at < from_at
        and coalesce(l.data ->> 'state', l.data #>> '{data,state}') is not null
      order by l.created_at desc, l.id desc
      limit 1) p
  ),
  marked as (
    select t.tenant_slug, t.created_at, t.in_window, t.state,
      t.in_window and t.state in ('connecting', 'close')
        and lag(t.state) over (partition by t.tenant_slug order by t.created_at, t.id) = 'open' as is_drop
    from (
      select p.tenant_slug, p.created_at, p.id, p.state, false as in_window from prior p
      union all
      select w.tenant_slug, w.created_at, w.id, w.state, true from win w
      where w.tenant_slug is not null and w.state is not null
    ) t
  ),
  drops as (
    select m.tenant_slug, date_trunc('hour', m.created_at) as hour,
      count(*) filter (where m.is_drop) as drops, count(*) filter (where m.state = 'close') as closes
    from marked m where m.in_window group by 1, 2
  ),
  counts as (
    select w.tenant_slug, date_trunc('hour', w.created_at) as hour, count(*) as events,
      count(*) filter (where w.is_open) as opens
    from win w group by 1, 2
  )
  select c.tenant_slug, c.hour, c.events, c.opens, coalesce(d.closes, 0), coalesce(d.drops, 0)
  from counts c
  left join drops d on d.tenant_slug = c.tenant_slug and d.hour = c.hour;
$$;

-- why: the incremental refresh of 20261202010000 (same watermark, same re-aggregation of the recent hours), now also
-- writing the connection figures. Its joins compare keys Postgres can hash (null-flag plus coalesce) instead of
-- `is not distinct from`, which only a nested loop can evaluate: quadratic in the hours' rows (a week of 2,000
-- tenants is ~330,000 rows).
create or replace function maintenance.refresh_api_logs_rollup(recent interval default '2 hours', as_of timestamptz default now())
returns table (hours_from timestamptz, hours_until timestamptz, rows_written bigint, watermark timestamptz)
language plpgsql security definer set search_path = '' set work_mem = '64MB' as $$
declare
  wm timestamptz;
  safe timestamptz;
  start_at timestamptz;
  n bigint;
begin
  if recent is null or recent < interval '0' or recent > interval '31 days' then
    raise exception 'recent must be between 0 and 31 days: got %', recent using errcode = '22023';
  end if;
  if as_of is null then
    raise exception 'as_of must be a timestamp' using errcode = '22023';
  end if;
  select s.watermark into wm from maintenance.api_logs_rollup_state s where s.id for update;
  safe := maintenance.api_logs_rollup_safe_until(as_of);
  if wm is null then
    select date_trunc('hour', min(l.created_at)) into start_at from public.api_logs l;
  else
    start_at := date_trunc('hour', wm - recent);
  end if;
  if start_at is null or start_at >= safe then
    update maintenance.api_logs_rollup_state s set refreshed_at = now(), watermark = coalesce(s.watermark, safe)
      where s.id returning s.watermark into wm;
    return query select start_at, safe, 0::bigint, wm;
    return;
  end if;
  delete from maintenance.api_logs_hourly h where h.hour >= start_at and h.hour < safe;
  with base as (
    select l.service, l.tenant_slug, date_trunc('hour', l.created_at) as hour, l.status, l.error_type, l.event,
      l.response_time
    from public.api_logs l
    where l.created_at >= start_at and l.created_at < safe
  ),
  totals as (
    select b.service, b.tenant_slug, b.hour, count(*) as total,
      count(*) filter (where b.status = 'success') as ok,
      count(*) filter (where b.status = 'error') as errors,
      count(b.response_time) as samples, sum(b.response_time) as rt_sum
    from base b group by 1, 2, 3
  ),
  hist as (
    select x.service, x.tenant_slug, x.hour, array_agg(x.rt order by x.rt) as rt_values,
      array_agg(x.n order by x.rt) as rt_counts
    from (select b.service, b.tenant_slug, b.hour, b.response_time as rt, count(*) as n from base b
      where b.response_time is not null group by 1, 2, 3, 4) x
    group by 1, 2, 3
  ),
  errs as (
    select x.service, x.tenant_slug, x.hour, jsonb_object_agg(x.et, x.n) as j
    from (select b.service, b.tenant_slug, b.hour, coalesce(b.error_type, 'unknown') as et, count(*) as n from base b
      where b.status = 'error' group by 1, 2, 3, 4) x
    group by 1, 2, 3
  ),
  evs as (
    select x.service, x.tenant_slug, x.hour, jsonb_object_agg(x.ev, x.n) as j
    from (select b.service, b.tenant_slug, b.hour, b.event as ev, count(*) as n from base b
      where b.event is not null group by 1, 2, 3, 4) x
    group by 1, 2, 3
  ),
  conn as (
    select c.* from maintenance.api_logs_hourly_conn(start_at, safe) c
  ),
  ins as (
    insert into maintenance.api_logs_hourly
      (service, tenant_slug, hour, total, ok, errors, samples, rt_sum, rt_values, rt_counts, errors_by_type, events,
       conn_events, conn_opens, conn_closes, conn_drops)
    select t.service, t.tenant_slug, t.hour, t.total, t.ok, t.errors, t.samples, t.rt_sum,
      coalesce(h.rt_values, '{}'), coalesce(h.rt_counts, '{}'), coalesce(e.j, '{}'), coalesce(v.j, '{}'),
      coalesce(c.conn_events, 0), coalesce(c.conn_opens, 0), coalesce(c.conn_closes, 0), coalesce(c.conn_drops, 0)
    from totals t
    left join hist h on (h.service is null) = (t.service is null)
      and coalesce(h.service, '') = coalesce(t.service, '') and (h.tenant_slug is null) = (t.tenant_slug is null)
      and coalesce(h.tenant_slug, '') = coalesce(t.tenant_slug, '') and h.hour = t.hour
    left join errs e on (e.service is null) = (t.service is null)
      and coalesce(e.service, '') = coalesce(t.service, '') and (e.tenant_slug is null) = (t.tenant_slug is null)
      and coalesce(e.tenant_slug, '') = coalesce(t.tenant_slug, '') and e.hour = t.hour
    left join evs v on (v.service is null) = (t.service is null)
      and coalesce(v.service, '') = coalesce(t.service, '') and (v.tenant_slug is null) = (t.tenant_slug is null)
      and coalesce(v.tenant_slug, '') = coalesce(t.tenant_slug, '') and v.hour = t.hour
    left join conn c on t.service = 'whatsapp' and (c.tenant_slug is null) = (t.tenant_slug is null)
      and coalesce(c.tenant_slug, '') = coalesce(t.tenant_slug, '') and c.hour = t.hour
    returning 1
  )
  select count(*) into n from ins;
  update maintenance.api_logs_rollup_state s set watermark = greatest(s.watermark, safe), refreshed_at = now()
    where s.id returning s.watermark into wm;
  return query select start_at, safe, n, wm;
end;
$$;

-- The backfill: the rollup rows already written get their connection figures from the raw rows as they are now,
-- i.e. exactly what the raw-scan report computes today for those hours (hours whose raw rows were purged already
-- keep their purged figures, as today). One pass over the rolled-up range's connection.update rows.
update maintenance.api_logs_hourly h
set conn_events = coalesce(c.conn_events, 0), conn_opens = coalesce(c.conn_opens, 0),
  conn_closes = coalesce(c.conn_closes, 0), conn_drops = coalesce(c.conn_drops, 0)
from maintenance.api_logs_hourly h2
left join maintenance.api_logs_hourly_conn(
    (select min(x.hour) from maintenance.api_logs_hourly x),
    (select max(x.hour) + interval '1 hour' from maintenance.api_logs_hourly x)) c
  on h2.service = 'whatsapp' and (c.tenant_slug is null) = (h2.tenant_slug is null)
    and coalesce(c.tenant_slug, '') = coalesce(h2.tenant_slug, '') and c.hour = h2.hour
where h2.ctid = h.ctid and h.conn_events is null;

-- The raw-scan reports of 20261202006200 and 20261129002002 are kept, unchanged, under new names: the reports below
-- call them when no hour of the period is rolled up (no watermark yet, or a period of raw hours only), so that case
-- runs exactly today's plan. Renamed only once (a second run finds them renamed).
do $$
begin
  if to_regprocedure('maintenance.performance_metrics_raw(timestamptz, timestamptz, text, integer)') is null then
    alter function maintenance.performance_metrics(timestamptz, timestamptz, text, integer)
      rename to performance_metrics_raw;
  end if;
  if to_regprocedure('maintenance.usage_report_raw(integer, timestamptz, integer)') is null then
    alter function maintenance.usage_report(integer, timestamptz, integer) rename to usage_report_raw;
  end if;
end;
$$;

-- why: the part of [since, until) read from the rollups: the whole hours from the first rolled-up hour to the
-- watermark (every hour in it was aggregated by a refresh; one without a row had no rows). Empty (both bounds
-- `until`) when nothing is rolled up there; the raw rows then cover [since, rollup_from) and [rollup_until, until).
create or replace function maintenance.api_logs_rollup_span(since timestamptz, until timestamptz,
  out rollup_from timestamptz, out rollup_until timestamptz)
language plpgsql stable security definer set search_path = '' as $$
declare
  wm timestamptz := (select s.watermark from maintenance.api_logs_rollup_state s where s.id);
  first_hour timestamptz := (select min(h.hour) from maintenance.api_logs_hourly h);
begin
  rollup_from := date_trunc('hour', since);
  if rollup_from < since then
    rollup_from := rollup_from + interval '1 hour';
  end if;
  rollup_from := greatest(rollup_from, first_hour);
  rollup_until := least(date_trunc('hour', until), wm);
  if wm is null or first_hour is null or rollup_from >= rollup_until then
    rollup_from := until;
    rollup_until := until;
  end if;
end;
$$;

-- why: the seed's analyzePerformance over [since, until) (20261129002002, same output): the rolled-up hours from
-- maintenance.api_logs_hourly, the rest from the raw rows (api_logs_report_idx, two ranges). Per tenant and overall
-- the exact histogram (every millisecond value and its count) is merged, and p50/p95/p99 are percentile_cont's:
-- position p * (N - 1) in the sorted values, interpolated between its neighbours, in float8 as Postgres does.
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
  -- the merged histogram per tenant: every response time and how often it occurs
  hist_t as materialized (
    select x.tenant_slug, x.rt, sum(x.n) as n
    from (
      select r.tenant_slug, r.response_time as rt, count(*) as n from raw r
      where r.response_time is not null group by 1, 2
      union all
      select h.tenant_slug, u.v, u.c from roll h, unnest(h.rt_values, h.rt_counts) u(v, c)
    ) x
    group by x.tenant_slug, x.rt
  ),
  -- percentile_cont's positions (0-based): the value at position k is the smallest whose running count exceeds k
  cum_t as (
    select h.tenant_slug, h.rt, sum(h.n) over (partition by h.tenant_slug order by h.rt) as upto,
      (sum(h.n) over (partition by h.tenant_slug) - 1)::float8 as last
    from hist_t h
  ),
  pick_t as (
    select c.tenant_slug, c.last,
      min(c.rt) filter (where c.upto > floor(0.5::float8 * c.last))::float8 as lo1,
      min(c.rt) filter (where c.upto > ceil(0.5::float8 * c.last))::float8 as hi1,
      min(c.rt) filter (where c.upto > floor(0.95::float8 * c.last))::float8 as lo2,
      min(c.rt) filter (where c.upto > ceil(0.95::float8 * c.last))::float8 as hi2,
      min(c.rt) filter (where c.upto > floor(0.99::float8 * c.last))::float8 as lo3,
      min(c.rt) filter (where c.upto > ceil(0.99::float8 * c.last))::float8 as hi3
    from cum_t c group by c.tenant_slug, c.last
  ),
  pct_t as (
    select p.tenant_slug, array[
        p.lo1 + (0.5::float8 * p.last - floor(0.5::float8 * p.last)) * (p.hi1 - p.lo1),
        p.lo2 + (0.95::float8 * p.last - floor(0.95::float8 * p.last)) * (p.hi2 - p.lo2),
        p.lo3 + (0.99::float8 * p.last - floor(0.99::float8 * p.last)) * (p.hi3 - p.lo3)] as pct
    from pick_t p
  ),
  tenant_scope as (
    select false as overall, g.tenant_slug, g.total, g.ok, g.errors, g.samples,
      g.rt_sum::numeric / nullif(g.samples, 0) as avg_ms, p.pct
    from g
    left join pct_t p on (p.tenant_slug is null) = (g.tenant_slug is null)
      and coalesce(p.tenant_slug, '') = coalesce(g.tenant_slug, '')
  ),
  hist as materialized (
    select h.rt, sum(h.n) as n from hist_t h group by h.rt
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
      select h.tenant_slug, e.key, e.value::bigint from roll h, jsonb_each_text(h.errors_by_type) e
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

-- why: the seed's generateUsageReport (20261202006200, same output). totalConnections, totalDisconnections,
-- totalCloses and topActiveTenants add the rolled-up hours' connection figures to those of the raw rows of the
-- rest of the period (maintenance.connection_drops over each raw range, its window (since, until] shifted by one
-- microsecond as before); the uptime (maintenance.tenant_uptime) is a timeline across the whole period and is
-- still read from the raw rows. A rolled-up hour without connection figures (written by a refresh that did not
-- compute them) sends the whole period to the raw rows.
create or replace function maintenance.usage_report(
  days integer default 7, until timestamptz default now(), top_n integer default 10
)
returns jsonb
language plpgsql stable security definer set search_path = '' as $$
declare
  since timestamptz;
  result jsonb;
  r_lo timestamptz;
  r_hi timestamptz;
begin
  if days is null or days < 1 or days > 366 then
    raise exception 'days must be between 1 and 366: got %', days using errcode = '22023';
  end if;
  if until is null then
    raise exception 'until must be a timestamp' using errcode = '22023';
  end if;
  if top_n is null or top_n < 0 or top_n > 1000 then
    raise exception 'top_n must be between 0 and 1000: got %', top_n using errcode = '22023';
  end if;
  since := until - make_interval(days => days);
  select s.rollup_from, s.rollup_until into r_lo, r_hi from maintenance.api_logs_rollup_span(since, until) s;
  if exists (select 1 from maintenance.api_logs_hourly h
      where h.hour >= r_lo and h.hour < r_hi and h.service = 'whatsapp' and h.conn_events is null) then
    r_lo := until;
    r_hi := until;
  end if;
  if r_lo >= r_hi then
    return maintenance.usage_report_raw(days, until, top_n);
  end if;
  with conn as materialized (
    select l.tenant_slug, l.data ->> 'state' as state, true as first_part
    from public.api_logs l
    where l.service = 'whatsapp' and l.event = 'connection.update' and l.status is distinct from 'error'
      and l.created_at >= since and l.created_at < r_lo
    union all
    select l.tenant_slug, l.data ->> 'state' as state, false
    from public.api_logs l
    where l.service = 'whatsapp' and l.event = 'connection.update' and l.status is distinct from 'error'
      and l.created_at >= r_hi and l.created_at < until
  ),
  roll as materialized (
    select h.tenant_slug, h.conn_events, h.conn_opens, h.conn_closes, h.conn_drops
    from maintenance.api_logs_hourly h
    where h.hour >= r_lo and h.hour < r_hi and h.service = 'whatsapp' and h.conn_events > 0
  ),
  raw_drops as (
    select d.drops, d.closes
    from maintenance.connection_drops(
      coalesce((select array_agg(distinct conn.tenant_slug) from conn
        where conn.tenant_slug is not null and conn.first_part), '{}'),
      since - interval '1 microsecond', r_lo - interval '1 microsecond') d
    union all
    select d.drops, d.closes
    from maintenance.connection_drops(
      coalesce((select array_agg(distinct conn.tenant_slug) from conn
        where conn.tenant_slug is not null and not conn.first_part), '{}'),
      r_hi - interval '1 microsecond', until - interval '1 microsecond') d
  ),
  drops as (
    select coalesce((select sum(r.drops) from raw_drops r), 0)
        + coalesce((select sum(h.conn_drops) from roll h), 0) as drops,
      coalesce((select sum(r.closes) from raw_drops r), 0)
        + coalesce((select sum(h.conn_closes) from roll h), 0) as closes
  ),
  activity as (
    select x.tenant_slug, sum(x.n) as n
    from (
      select conn.tenant_slug, count(*) as n from conn where conn.tenant_slug is not null group by 1
      union all
      select h.tenant_slug, h.conn_events from roll h where h.tenant_slug is not null
    ) x
    group by x.tenant_slug
  ),
  up as (select * from maintenance.tenant_uptime(since, until))
  select jsonb_build_object(
    'period', jsonb_build_object('days', days, 'since', since, 'until', until),
    'totalTenants', (select count(*) from public.tenants t where t.is_active),
    'activeIntegrations', (select count(*) from public.tenant_integrations ti
      where ti.integration_type = 'whatsapp' and ti.is_active),
    'totalConnections', (select count(*) from conn where conn.state = 'open')
      + coalesce((select sum(h.conn_opens) from roll h), 0),
    'totalDisconnections', (select drops.drops from drops),
    'totalCloses', (select drops.closes from drops),
    'averageUptime', (select round(avg(up.uptime_pct), 2) from up),
    'uptimeKnownTenants', (select count(*) from up where up.uptime_pct is not null),
    'uptime', coalesce((select jsonb_agg(jsonb_build_object('tenant', up.tenant_slug, 'uptime', up.uptime_pct,
        'upSeconds', round(up.up_seconds, 3), 'knownSeconds', round(up.known_seconds, 3),
        'unknownSeconds', round(up.unknown_seconds, 3), 'stateAtStart', up.state_at_start,
        'stateChanges', up.state_changes) order by up.tenant_slug) from up), '[]'::jsonb),
    'topActiveTenants', coalesce((
      select jsonb_agg(jsonb_build_object('tenant', a.tenant_slug, 'activity', a.n) order by a.n desc, a.tenant_slug)
      from (select a.tenant_slug, a.n from activity a
            order by a.n desc, a.tenant_slug limit top_n) a), '[]'::jsonb)
  ) into result;
  return result;
end;
$$;

revoke all on function maintenance.performance_metrics_raw(timestamptz, timestamptz, text, integer),
  maintenance.usage_report_raw(integer, timestamptz, integer) from public, anon, authenticated;
grant execute on function maintenance.performance_metrics_raw(timestamptz, timestamptz, text, integer),
  maintenance.usage_report_raw(integer, timestamptz, integer) to service_role;
revoke all on function maintenance.api_logs_hourly_conn(timestamptz, timestamptz),
  maintenance.api_logs_rollup_span(timestamptz, timestamptz) from public, anon, authenticated;
grant execute on function maintenance.api_logs_hourly_conn(timestamptz, timestamptz),
  maintenance.api_logs_rollup_span(timestamptz, timestamptz) to service_role;
revoke all on function maintenance.performance_metrics(timestamptz, timestamptz, text, integer),
  maintenance.usage_report(integer, timestamptz, integer), maintenance.weekly_report(integer, timestamptz),
  maintenance.refresh_api_logs_rollup(interval, timestamptz) from public, anon, authenticated;
grant execute on function maintenance.performance_metrics(timestamptz, timestamptz, text, integer),
  maintenance.usage_report(integer, timestamptz, integer), maintenance.weekly_report(integer, timestamptz),
  maintenance.refresh_api_logs_rollup(interval, timestamptz) to service_role;
