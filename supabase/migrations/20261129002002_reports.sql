-- The weekly report in SQL (the seed's analyzePerformance, diagnosePerformance and generateUsageReport): every
-- figure is an aggregate computed in Postgres over the whole period, never rows pulled into TypeScript, so the
-- answer is the same for 10 rows and 10 million.

-- why: the seed's diagnosePerformance thresholds in one place: slow_api when the average response time is above
-- 5,000 ms, else high_error_rate when the success rate is below 95 %, else normal (also when there is no traffic).
create or replace function maintenance.diagnose_performance(avg_response_ms numeric, success_rate numeric)
returns text language sql immutable set search_path = '' as $$
  select case
    when avg_response_ms > 5000 then 'slow_api'
    when success_rate < 95 then 'high_error_rate'
    else 'normal'
  end;
$$;

-- why: the seed's analyzePerformance over [since, until) for one service: total requests, success rate, average and
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

-- why: per-tenant uptime over [since, until) from connection.update events (data->>'state'): a tenant is up while
-- its last known state is 'open' and down in any other state (connecting, close, refused). The state at `since` is
-- that of the last event before it. Time before a tenant's first known state (no event before the period, e.g.
-- purged by retention) is unknown: it counts neither up nor down, and is reported as unknownSeconds; uptime is
-- up / known time, null when nothing is known. Tenants: active ones with an active WhatsApp integration, plus any
-- tenant with events in the period.
create or replace function maintenance.tenant_uptime(since timestamptz, until timestamptz default now())
returns table (tenant_slug text, uptime_pct numeric, up_seconds numeric, known_seconds numeric,
  unknown_seconds numeric, state_at_start text, state_changes bigint)
language plpgsql stable security definer set search_path = '' as $$
begin
  if since is null or until is null or since >= until then
    raise exception 'tenant_uptime needs since < until: got % and %', since, until using errcode = '22023';
  end if;
  return query
  with events as (
    select l.tenant_slug, l.created_at, l.id, l.data ->> 'state' as state
    from public.api_logs l
    where l.service = 'whatsapp' and l.event = 'connection.update'
      and l.created_at >= since and l.created_at < until and l.data ->> 'state' is not null
  ),
  scope as (
    select t.slug from public.tenants t
    where t.is_active and exists (select 1 from public.tenant_integrations ti
      where ti.tenant_id = t.id and ti.integration_type = 'whatsapp' and ti.is_active)
    union
    select e.tenant_slug from events e where e.tenant_slug is not null
  ),
  timeline as (
    select s.slug, since as at, 0::bigint as id, (
        select l.data ->> 'state' from public.api_logs l
        where l.service = 'whatsapp' and l.event = 'connection.update' and l.tenant_slug = s.slug
          and l.created_at < since and l.data ->> 'state' is not null
        order by l.created_at desc, l.id desc limit 1) as state, false as is_event
    from scope s
    union all
    select e.tenant_slug, e.created_at, e.id, e.state, true from events e where e.tenant_slug is not null
  ),
  segments as (
    select tl.slug, tl.state, tl.is_event,
      extract(epoch from lead(tl.at, 1, until) over w - tl.at) as seconds
    from timeline tl
    window w as (partition by tl.slug order by tl.at, tl.id)
  )
  select sg.slug,
    round(100 * sum(sg.seconds) filter (where sg.state = 'open')
      / nullif(sum(sg.seconds) filter (where sg.state is not null), 0), 2),
    coalesce(sum(sg.seconds) filter (where sg.state = 'open'), 0),
    coalesce(sum(sg.seconds) filter (where sg.state is not null), 0),
    coalesce(sum(sg.seconds) filter (where sg.state is null), 0),
    max(sg.state) filter (where not sg.is_event),
    count(*) filter (where sg.is_event)
  from segments sg
  group by sg.slug
  order by sg.slug;
end;
$$;

-- why: the seed's generateUsageReport over the last `days` days up to `until`: active tenants, active WhatsApp
-- integrations, connections and disconnections (connection.update with state open / close), per-tenant uptime
-- and its average (over tenants whose uptime is known), and the top active tenants by connection.update events
-- (the seed's measure of activity).
create or replace function maintenance.usage_report(
  days integer default 7, until timestamptz default now(), top_n integer default 10
)
returns jsonb
language plpgsql stable security definer set search_path = '' as $$
declare
  since timestamptz;
  result jsonb;
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
  with conn as (
    select l.tenant_slug, l.data ->> 'state' as state
    from public.api_logs l
    where l.service = 'whatsapp' and l.event = 'connection.update' and l.created_at >= since and l.created_at < until
  ),
  up as (select * from maintenance.tenant_uptime(since, until))
  select jsonb_build_object(
    'period', jsonb_build_object('days', days, 'since', since, 'until', until),
    'totalTenants', (select count(*) from public.tenants t where t.is_active),
    'activeIntegrations', (select count(*) from public.tenant_integrations ti
      where ti.integration_type = 'whatsapp' and ti.is_active),
    'totalConnections', (select count(*) from conn where conn.state = 'open'),
    'totalDisconnections', (select count(*) from conn where conn.state = 'close'),
    'averageUptime', (select round(avg(up.uptime_pct), 2) from up),
    'uptimeKnownTenants', (select count(*) from up where up.uptime_pct is not null),
    'uptime', coalesce((select jsonb_agg(jsonb_build_object('tenant', up.tenant_slug, 'uptime', up.uptime_pct,
        'upSeconds', round(up.up_seconds, 3), 'knownSeconds', round(up.known_seconds, 3),
        'unknownSeconds', round(up.unknown_seconds, 3), 'stateAtStart', up.state_at_start,
        'stateChanges', up.state_changes) order by up.tenant_slug) from up), '[]'::jsonb),
    'topActiveTenants', coalesce((
      select jsonb_agg(jsonb_build_object('tenant', a.tenant_slug, 'activity', a.n) order by a.n desc, a.tenant_slug)
      from (select conn.tenant_slug, count(*) as n from conn where conn.tenant_slug is not null
            group by conn.tenant_slug order by n desc, conn.tenant_slug limit top_n) a), '[]'::jsonb)
  ) into result;
  return result;
end;
$$;

-- why: the whole weekly report in one call (what the weekly-report job stores): usage and performance over the
-- same period, and the seed's diagnosis.
create or replace function maintenance.weekly_report(days integer default 7, until timestamptz default now())
returns jsonb
language plpgsql stable security definer set search_path = '' as $$
declare
  usage jsonb;
  perf jsonb;
begin
  usage := maintenance.usage_report(days, until);
  perf := maintenance.performance_metrics((usage #>> '{period,since}')::timestamptz, until);
  return jsonb_build_object('period', usage -> 'period', 'diagnosis', perf -> 'diagnosis', 'usage', usage - 'period',
    'performance', perf - 'period');
end;
$$;

revoke all on function maintenance.diagnose_performance(numeric, numeric),
  maintenance.performance_metrics(timestamptz, timestamptz, text, integer),
  maintenance.tenant_uptime(timestamptz, timestamptz), maintenance.usage_report(integer, timestamptz, integer),
  maintenance.weekly_report(integer, timestamptz) from public, anon, authenticated;
grant execute on function maintenance.diagnose_performance(numeric, numeric),
  maintenance.performance_metrics(timestamptz, timestamptz, text, integer),
  maintenance.tenant_uptime(timestamptz, timestamptz), maintenance.usage_report(integer, timestamptz, integer),
  maintenance.weekly_report(integer, timestamptz) to service_role;
