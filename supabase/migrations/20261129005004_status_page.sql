-- What the status page shows, one SQL statement per section: the summary (overall status, the last health-check's
-- service health, counts), the tenants with their availability bars, and (from the dashboard views) the open
-- alerts and the jobs. Nothing is computed per tenant in TypeScript.

-- why: availability bars of some tenants over [since, until) cut into `buckets` equal buckets. A tenant's state
-- over time comes from tenant_health_history (its last change before `since`, then every change in the window);
-- it counts as known only within availability_gap after a successful health-check run (job_runs), so a stretch
-- without checks is "unknown", as is the time before the tenant's first check. A bucket takes the worst state
-- known in it (unhealthy > degraded > healthy; unknown when nothing is known); consecutive buckets of one state
-- are merged into one segment {from, to, state, start, end} (bucket indexes, to exclusive). `availability` is the
-- exact share of the known time the tenant was healthy (null when nothing is known).
create or replace function maintenance.availability_bars(
  tenant_ids uuid[], since timestamptz, until timestamptz, buckets integer default 96
)
returns table (tenant_id uuid, availability numeric, healthy_seconds numeric, known_seconds numeric, segments jsonb)
language sql
stable
security definer
set search_path = ''
as $$
  with params as (
    select (until - since) / buckets as step,
      (maintenance.setting('availability_gap') #>> '{}')::interval as gap
  ),
  coverage as (
    select coalesce(range_agg(tstzrange(greatest(r.started_at, since), least(r.started_at + p.gap, until))),
                    '{}'::tstzmultirange) as m
    from maintenance.job_runs r cross join params p
    where r.job = 'health-check' and r.status in ('healthy', 'degraded', 'unhealthy')
      and r.started_at < until and r.started_at > since - p.gap
  ),
  changes as (
    select h.tenant_id, h.to_state as state, h.at, h.id
    from maintenance.tenant_health_history h
    where h.tenant_id = any (tenant_ids) and h.at >= since and h.at < until
    union all
    select b.tenant_id, b.to_state, since, b.id
    from unnest(tenant_ids) tid(id)
    cross join lateral (
      select h.tenant_id, h.to_state, h.id from maintenance.tenant_health_history h
      where h.tenant_id = tid.id and h.at < since
      order by h.at desc, h.id desc limit 1) b
  ),
  runs as (
    select c.tenant_id, c.state,
      tstzmultirange(tstzrange(c.at, lead(c.at, 1, until) over (partition by c.tenant_id order by c.at, c.id)))
        * cov.m as known
    from changes c cross join coverage cov
  ),
  -- each stretch of known state as a plain range, with the first and last bucket it touches
  pieces as (
    select r.tenant_id, r.state, lower(x) as lo, upper(x) as hi,
      floor(extract(epoch from lower(x) - since)::float8 / extract(epoch from p.step)::float8)::integer as b_lo,
      least(buckets - 1,
        ceil(extract(epoch from upper(x) - since)::float8 / extract(epoch from p.step)::float8)::integer - 1) as b_hi
    from runs r cross join params p cross join lateral unnest(r.known) x
  ),
  -- a piece's inner buckets are wholly its own (pieces of one tenant never overlap); only its first and last bucket
  -- may share time with another piece, so only those are resolved bucket by bucket: O(pieces), not O(buckets)
  edges as (
    select pc.tenant_id, e.i, pc.state,
      extract(epoch from least(pc.hi, since + p.step * (e.i + 1)) - greatest(pc.lo, since + p.step * e.i))::float8
        as secs
    from pieces pc cross join params p
    cross join lateral (select pc.b_lo as i union select pc.b_hi) e
  ),
  edge_buckets as (
    select e.tenant_id, e.i, e.i + 1 as to_i,
      case when bool_or(e.state = 'unhealthy' and e.secs > 0) then 'unhealthy'
           when bool_or(e.state = 'degraded' and e.secs > 0) then 'degraded'
           else 'healthy' end as state
    from edges e group by e.tenant_id, e.i
    having sum(e.secs) > 0
  ),
  known_parts as (
    select tenant_id, state, i as from_i, to_i from edge_buckets
    union all
    select pc.tenant_id, pc.state, pc.b_lo + 1, pc.b_hi from pieces pc where pc.b_hi - pc.b_lo >= 2
  ),
  -- adjacent parts in one state make one segment
  marked as (
    select k.*, case when k.state = lag(k.state) over w and k.from_i = lag(k.to_i) over w then 0 else 1 end as starts
    from known_parts k window w as (partition by k.tenant_id order by k.from_i)
  ),
  known_segments as (
    select m.tenant_id, m.state, min(m.from_i) as from_i, max(m.to_i) as to_i
    from (select m.*, sum(m.starts) over (partition by m.tenant_id order by m.from_i) as grp from marked m) m
    group by m.tenant_id, m.state, m.grp
  ),
  -- the gaps before, between and after them are unknown
  gaps as (
    select k.tenant_id, 'unknown' as state,
      coalesce(lag(k.to_i) over (partition by k.tenant_id order by k.from_i), 0) as from_i, k.from_i as to_i
    from known_segments k
    union all
    select k.tenant_id, 'unknown', max(k.to_i), buckets from known_segments k group by k.tenant_id
  ),
  segments as (
    select tenant_id, state, from_i, to_i from known_segments
    union all
    select tenant_id, state, from_i, to_i from gaps where to_i > from_i
    union all
    select t.id, 'unknown', 0, buckets from unnest(tenant_ids) t(id)
    where not exists (select 1 from known_segments k where k.tenant_id = t.id)
  ),
  bars as (
    select s.tenant_id, jsonb_agg(jsonb_build_object('from', s.from_i, 'to', s.to_i, 'state', s.state,
        'start', since + p.step * s.from_i, 'end', least(until, since + p.step * s.to_i)) order by s.from_i) as segments
    from segments s cross join params p
    group by s.tenant_id
  ),
  -- availability is exact: from the pieces, not the buckets
  totals as (
    select pc.tenant_id,
      sum(extract(epoch from pc.hi - pc.lo)) filter (where pc.state = 'healthy') as healthy,
      sum(extract(epoch from pc.hi - pc.lo)) as known
    from pieces pc group by pc.tenant_id
  )
  select b.tenant_id,
    case when t.known > 0 then round(100 * coalesce(t.healthy, 0) / t.known, 2) end,
    round(coalesce(t.healthy, 0)), round(coalesce(t.known, 0)), b.segments
  from bars b left join totals t on t.tenant_id = b.tenant_id;
$$;
revoke all on function maintenance.availability_bars(uuid[], timestamptz, timestamptz, integer)
  from public, anon, authenticated;
grant execute on function maintenance.availability_bars(uuid[], timestamptz, timestamptz, integer) to service_role;

-- why: the tenants section of the status page in one statement: active tenants matching `search` (slug or name,
-- case-insensitive substring), worst state first, at most max_rows of them, each with its 24 h bar (96 buckets of
-- 15 min) and 7 day bar (168 buckets of 1 h); `total` is how many matched before the cap.
create or replace function maintenance.status_page_tenants(
  as_of timestamptz default now(), max_rows integer default 200, search text default null
)
returns table (
  tenant_slug text, tenant_name text, state text, issue_code text, issue text, evolution_state text,
  since timestamptz, last_checked_at timestamptz, last_event_at timestamptz, open_alerts integer,
  availability_24h numeric, segments_24h jsonb, availability_7d numeric, segments_7d jsonb, total bigint
)
language sql
stable
security definer
set search_path = ''
as $$
  with pattern as (
    select '%' || replace(replace(replace(search, '\', '\\'), '%', '\%'), '_', '\_') || '%' as p
  ),
  matched as (
    select d.*, count(*) over () as total,
      row_number() over (order by case d.state when 'unhealthy' then 0 when 'degraded' then 1 when 'unknown' then 2
                                   else 3 end, d.since desc nulls last, d.tenant_slug) as rn
    from maintenance.dashboard_tenants d cross join pattern
    where search is null or search = '' or d.tenant_slug ilike pattern.p or d.tenant_name ilike pattern.p
  ),
  shown as (
    select * from matched where rn <= greatest(max_rows, 0)
  ),
  ids as (select array_agg(tenant_id) as a from shown),
  day as (select b.* from ids, maintenance.availability_bars(ids.a, as_of - interval '24 hours', as_of, 96) b),
  week as (select b.* from ids, maintenance.availability_bars(ids.a, as_of - interval '7 days', as_of, 168) b)
  select s.tenant_slug, s.tenant_name, s.state, s.issue_code, s.issue, s.evolution_state, s.since, s.last_checked_at,
    s.last_event_at, s.open_alerts, d.availability, d.segments, w.availability, w.segments, s.total
  from shown s
  left join day d on d.tenant_id = s.tenant_id
  left join week w on w.tenant_id = s.tenant_id
  order by s.rn;
$$;
revoke all on function maintenance.status_page_tenants(timestamptz, integer, text) from public, anon, authenticated;
grant execute on function maintenance.status_page_tenants(timestamptz, integer, text) to service_role;

-- why: the top of the status page in one statement. The last health-check run (its services: Evolution, database,
-- Supabase), tenant counts per state, firing alerts, missed jobs, and the overall status:
--   outage      a critical platform alert fires, or the last (fresh) check found a service unhealthy;
--   unknown     no successful health-check run within status_page_stale_after;
--   degraded    any tenant not healthy, any firing alert, a missed job, or a degraded service;
--   operational otherwise.
create or replace function maintenance.status_page_summary(as_of timestamptz default now())
returns jsonb
language sql
stable
security definer
set search_path = ''
as $$
  with stale as (
    select (maintenance.setting('status_page_stale_after') #>> '{}')::interval as s
  ),
  last_check as (
    select r.id, r.status, r.started_at, r.finished_at, r.report, r.error
    from maintenance.job_runs r
    where r.job = 'health-check' and r.status in ('healthy', 'degraded', 'unhealthy', 'error')
      and r.started_at <= as_of
    order by r.started_at desc limit 1
  ),
  last_ok as (
    select (select j.last_success_at from maintenance.job_last_runs(as_of) j where j.job = 'health-check') as at
  ),
  tenants as (
    select count(*) as total,
      count(*) filter (where d.state = 'healthy') as healthy,
      count(*) filter (where d.state = 'degraded') as degraded,
      count(*) filter (where d.state = 'unhealthy') as unhealthy,
      count(*) filter (where d.state = 'unknown') as unknown
    from maintenance.dashboard_tenants d
  ),
  alerts as (
    select count(*) as firing,
      count(*) filter (where a.severity = 'critical') as critical,
      count(*) filter (where a.severity = 'warning') as warning,
      count(*) filter (where a.inhibited_by is not null) as inhibited,
      coalesce(array_agg(a.fingerprint order by a.fingerprint)
        filter (where a.scope = 'platform' and a.severity = 'critical'), '{}') as critical_platform
    from maintenance.alerts a where a.status = 'firing'
  ),
  jobs as (
    select coalesce(array_agg(j.job order by j.job) filter (where j.missed), '{}') as missed
    from maintenance.job_health(as_of) j
  ),
  services as (
    select coalesce(lc.report -> 'services', '{}'::jsonb) as s from (select 1) one left join last_check lc on true
  ),
  facts as (
    select
      (select count(*) from last_ok, stale where last_ok.at > as_of - stale.s) > 0 as fresh,
      exists (select 1 from services, jsonb_each(services.s) e where e.value ->> 'status' = 'unhealthy') as svc_down,
      exists (select 1 from services, jsonb_each(services.s) e where e.value ->> 'status' = 'degraded') as svc_degraded
  )
  select jsonb_build_object(
    'asOf', as_of,
    'overall', case
      when cardinality(a.critical_platform) > 0 or (f.fresh and f.svc_down) then 'outage'
      when not f.fresh then 'unknown'
      when t.degraded + t.unhealthy > 0 or a.firing > 0 or cardinality(j.missed) > 0 or f.svc_degraded
        then 'degraded'
      else 'operational' end,
    'reasons', to_jsonb(array_remove(array[
      case when cardinality(a.critical_platform) > 0
        then 'critical platform alerts: ' || array_to_string(a.critical_platform, ', ') end,
      case when f.fresh and f.svc_down then 'a service was unhealthy in the last health check' end,
      case when not f.fresh then 'no successful health check since ' || coalesce(lo.at::text, 'ever') end,
      case when t.unhealthy > 0 then t.unhealthy || ' tenant(s) unhealthy' end,
      case when t.degraded > 0 then t.degraded || ' tenant(s) degraded' end,
      case when cardinality(j.missed) > 0 then 'missed runs: ' || array_to_string(j.missed, ', ') end
    ], null)),
    'lastCheck', (select jsonb_build_object('runId', lc.id, 'status', lc.status, 'startedAt', lc.started_at,
        'finishedAt', lc.finished_at, 'error', lc.error, 'ageSeconds', round(extract(epoch from as_of - lc.started_at)))
      from last_check lc),
    'lastSuccessAt', lo.at,
    'fresh', f.fresh,
    'services', sv.s,
    'tenants', jsonb_build_object('total', t.total, 'healthy', t.healthy, 'degraded', t.degraded,
      'unhealthy', t.unhealthy, 'unknown', t.unknown),
    'alerts', jsonb_build_object('firing', a.firing, 'critical', a.critical, 'warning', a.warning,
      'inhibited', a.inhibited),
    'missedJobs', to_jsonb(j.missed))
  from tenants t, alerts a, jobs j, services sv, facts f, last_ok lo;
$$;
revoke all on function maintenance.status_page_summary(timestamptz) from public, anon, authenticated;
grant execute on function maintenance.status_page_summary(timestamptz) to service_role;
