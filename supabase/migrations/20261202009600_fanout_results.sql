-- A fanned-out health check (20261202009000) as the dashboard, the status page and the dead-man check see it
-- (issue 16 item 4: "one overall result per scheduled tick; the dashboard and status page read it").
--   * a job's last run is its last scheduled-or-direct run, not a shard of one: a shard's run row is one server's
--     part of its coordinator's tick, and the tick's result stands for the whole health check. A coordinator's row
--     reads the tick's status (maintenance.health_tick_status: the worst of the coordinator and its shards, degraded
--     when one was missed) once no shard is pending, its duration the tick's (until its last shard finished), and an
--     error naming the shards missed; while shards are pending it shows the coordinator's own status.
--   * dashboard_servers takes each server's latest view from the last full run OR, on a fanned-out fleet, from the
--     latest done shard of that server within a day, whichever is newer.
--   * ticks (and their shards, on delete cascade) are kept 30 days.

-- why: the last run of each job as of `as_of` (replaces 20261129005002's: shard runs are parts of a tick, the
-- coordinator's row carries the tick's result)
create or replace function maintenance.job_last_runs(as_of timestamptz default now())
returns table (
  job text, last_run_at timestamptz, last_run_status text, last_run_duration_ms integer, last_run_error text,
  last_success_at timestamptz
)
language sql
stable
set search_path = ''
as $$
  select s.job, lr.started_at,
    case when ts.status is null or ts.status = 'running' then lr.status else ts.status end,
    case when ts.status is not null and ts.status <> 'running' and ts.finished_at is not null
      then greatest(lr.duration_ms, (extract(epoch from ts.finished_at - ts.started_at) * 1000)::integer)
      else lr.duration_ms end,
    coalesce(lr.error, case when ts.missed > 0 then format('%s of %s shard(s) of this tick missed', ts.missed,
      ts.planned) end),
    ok.started_at
  from maintenance.scheduled_jobs s
  left join lateral (
    select r.id, r.started_at, r.status, r.duration_ms, r.error from maintenance.job_runs r
    where r.job = s.job and r.started_at <= as_of and r.status <> 'skipped' and not (r.input ? 'shard')
    order by r.started_at desc limit 1) lr on true
  left join maintenance.health_tick_status ts on ts.tick_id = lr.id
  left join lateral (
    select r.started_at from maintenance.job_runs r
    where r.job = s.job and r.started_at <= as_of and r.status in ('healthy', 'degraded', 'unhealthy', 'ok')
      and not (r.input ? 'shard')
    order by r.started_at desc limit 1) ok on true;
$$;
revoke all on function maintenance.job_last_runs(timestamptz) from public, anon, authenticated;

-- why: every Evolution server in one row, for the dashboard and the status page (replaces 20261202007000's: a
-- server's latest view comes from the last full run or, on a fanned-out fleet, its latest tick's done shards, the
-- newer; `instances_listed` is null when that run did not list the server)
create or replace view maintenance.dashboard_servers with (security_invoker = true) as
with last_full as (
  select r.id, r.started_at, r.report
  from maintenance.job_runs r
  where r.job = 'health-check' and r.status in ('healthy', 'degraded', 'unhealthy')
    and r.report ->> 'scope' = 'all' and jsonb_typeof(r.report -> 'servers') = 'array'
  order by r.started_at desc
  limit 1
),
shard_runs as (
  -- the done shards of the last day's ticks (a part of a large server lists all of it: any part that listed will do)
  select r.id, t.started_at, r.report
  from maintenance.health_ticks t
  join maintenance.health_shards sh on sh.tick_id = t.id and sh.state = 'done' and sh.run_id is not null
  join maintenance.job_runs r on r.id = sh.run_id
  where t.started_at > now() - interval '1 day' and jsonb_typeof(r.report -> 'servers') = 'array'
),
seen as (
  select distinct on (x ->> 'name') x ->> 'name' as name, x, v.started_at, v.id as run_id
  from (select * from last_full union all select * from shard_runs) v
  cross join lateral jsonb_array_elements(v.report -> 'servers') x
  -- the newest run or tick; within a tick, a part that listed the server before one that had nothing to list there
  order by x ->> 'name', v.started_at desc, (x -> 'instances') is null or x -> 'instances' = 'null'::jsonb
),
tenant_states as (
  select maintenance.fleet_server_key(h.server_url) as server_key,
    count(*) filter (where h.state <> 'healthy') as not_healthy,
    count(*) filter (where h.issue_code = 'evolution_unreachable') as unreachable
  from maintenance.tenant_health h
  group by 1
)
select
  l.name,
  l.base_url as url,
  l.is_default,
  l.enabled,
  l.draining,
  l.capacity,
  l.tenants,
  l.load,
  coalesce(s.x ->> 'state', case when not l.enabled then 'disabled' else 'unknown' end) as state,
  coalesce(s.x ->> 'version', l.version) as version,
  (s.x ->> 'latencyMs')::integer as latency_ms,
  (s.x ->> 'instances')::integer as instances_listed,
  s.x ->> 'error' as error,
  s.started_at as checked_at,
  s.run_id as checked_by_run,
  coalesce(ts.not_healthy, 0)::integer as tenants_not_healthy,
  coalesce(ts.unreachable, 0)::integer as tenants_unreachable,
  a.fingerprint as down_alert,
  a.started_at as down_since
from maintenance.evolution_server_load l
left join seen s on s.name = l.name
left join tenant_states ts on ts.server_key = case when l.is_default then '' else l.name end
left join maintenance.alerts a on a.status = 'firing'
  and a.fingerprint = case when l.is_default then 'evolution_down' else 'evolution_down:' || l.name end
order by l.is_default desc, l.name;
revoke all on maintenance.dashboard_servers from public, anon, authenticated, service_role;
grant select on maintenance.dashboard_servers to service_role;

-- why: a tick's shards are looked up by the run that did them (dashboard_servers, job_last_runs)
create index if not exists health_shards_run_idx on maintenance.health_shards (run_id) where run_id is not null;

insert into maintenance.retention_policies (relation, time_column, keep, description) values
  ('maintenance.health_ticks', 'started_at', '30 days',
   'fanned-out health-check ticks (their shards go with them) started more than 30 days ago')
on conflict (relation) do nothing;
