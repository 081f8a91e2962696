-- The fleet-aware health check (issue 16, third part): every server of the registry is listed once per run, and
-- one that does not answer is its own platform incident, `evolution_down:<server name>` (`evolution_down`, the
-- fingerprint it always had, for the default server), which silences exactly the alerts of that server's tenants;
-- mass disconnects are keyed by the server's registry name; the dashboard and the status page show each server.
-- Runs on a database that already has every object: functions replaced, the view replaced, alert rows renamed only
-- where the new name is free.
--
-- What the rules receive is unchanged: record_tenant_health still gets `server_url` (null = the default server) in
-- each result and stores it in tenant_health.server_url; the registry maps that URL to the server's name here.

-- why: the one name the alert rules give a tenant's server, from tenant_health.server_url: '' for the default server
-- (null, or the default server's own URL), the registry name of a registered server, else the URL itself (a tenant
-- whose legacy config names a server nobody registered). Fingerprints are `<kind>` for '' and `<kind>:<key>` else.
create or replace function maintenance.fleet_server_key(p_url text)
returns text
language sql
stable
set search_path = ''
as $$
  select case when p_url is null then '' else coalesce(
    (select case when s.name = 'default' then '' else s.name end
     from maintenance.evolution_servers s where s.base_url = maintenance.normalize_base_url(p_url)),
    maintenance.normalize_base_url(p_url)) end
$$;
revoke all on function maintenance.fleet_server_key(text) from public, anon, authenticated;
grant execute on function maintenance.fleet_server_key(text) to service_role;

-- a mass_disconnect incident of a registered server was keyed by its URL: it takes the server's name (the default
-- server's URL: the bare fingerprint), unless an alert of that name already fires
update maintenance.alerts a
set fingerprint = case when s.name = 'default' then 'mass_disconnect' else 'mass_disconnect:' || s.name end,
  labels = a.labels || jsonb_build_object('server', s.name)
from maintenance.evolution_servers s
where a.kind = 'mass_disconnect' and a.fingerprint = 'mass_disconnect:' || s.base_url
  and (a.status = 'resolved' or not exists (
    select 1 from maintenance.alerts f where f.status = 'firing'
      and f.fingerprint = case when s.name = 'default' then 'mass_disconnect' else 'mass_disconnect:' || s.name end));

-- The alert rules of the fleet (evolution_down:<server> inhibiting exactly that server's tenants, their
-- evolution_unreachable alerts, mass_disconnect keyed by fleet_server_key) are in evaluate_alerts as
-- 20261202009000_health_fanout.sql defines it (with the shard's server scope): one definition in this release.

-- why: every Evolution server in one row, for the dashboard and the status page: the registry (URL, enabled,
-- draining, capacity, tenants placed on it, load) beside what the last full health-check run saw of it (its row in
-- the run report's `servers`: state, version, GET / latency, instances listed, error), how many of its tenants are
-- not healthy now, and its firing evolution_down alert. `state` is `unknown` for a server no full run has listed
-- yet (`disabled` when it is disabled). The default server first, then by name.
create or replace view maintenance.dashboard_servers with (security_invoker = true) as
with last_full as (
  select r.id, r.started_at, r.report
  from maintenance.job_runs r
  where r.job = 'health-check' and r.status in ('healthy', 'degraded', 'unhealthy')
    and r.report ->> 'scope' = 'all' and jsonb_typeof(r.report -> 'servers') = 'array'
  order by r.started_at desc
  limit 1
),
seen as (
  select x ->> 'name' as name, x, lf.started_at, lf.id as run_id
  from last_full lf cross join lateral jsonb_array_elements(lf.report -> 'servers') x
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
