-- The health check fans out (issue 16 item 4): a full run of a fleet larger than `health_check_shard_tenants`
-- becomes a coordinator that plans shards (per server, ceil(tenants / shard size) parts; a tenant's part is a
-- stable hash of its id), records a tick here and queues one pg_net call per shard to health-check
-- (`{"shard": {tick, server, part, parts}}`). Each shard checks only its tenants, evaluates their alerts and (its
-- part 0) its server's platform alerts, and records its result in its row. A shard not done when the next tick is
-- planned is marked `missed` by that coordinator, which says so in its report and degrades its status.

insert into maintenance.settings (key, default_value, description) values
  ('health_check_shard_tenants', '5000',
   'A full health-check run of more active tenants than this fans out: one function invocation per shard of at most about this many tenants of one server')
on conflict (key) do update set default_value = excluded.default_value, description = excluded.description;

-- why: one row per fanned-out scheduled health check (the coordinator's run)
create table if not exists maintenance.health_ticks (
  id uuid primary key,
  started_at timestamptz not null default now(),
  shard_tenants integer not null,
  tenants integer not null,
  -- the coordinator's own status (its platform checks: database, Supabase, dead-man)
  status text
);
create index if not exists health_ticks_started_idx on maintenance.health_ticks (started_at desc);
revoke all on maintenance.health_ticks from public, anon, authenticated;
grant all on maintenance.health_ticks to service_role;

-- why: one row per shard of a tick: queued by the coordinator, done by the shard's own run, missed when the next
-- tick finds it not done
create table if not exists maintenance.health_shards (
  tick_id uuid not null references maintenance.health_ticks (id) on delete cascade,
  server text not null,
  part integer not null check (part >= 0),
  parts integer not null check (parts >= 1 and part < parts),
  tenants integer not null,
  request_id bigint,
  state text not null default 'queued' check (state in ('queued', 'running', 'done', 'missed')),
  run_id uuid,
  status text,
  started_at timestamptz,
  finished_at timestamptz,
  checked integer,
  primary key (tick_id, server, part)
);
create index if not exists health_shards_open_idx on maintenance.health_shards (tick_id) where state in ('queued', 'running');
revoke all on maintenance.health_shards from public, anon, authenticated;
grant all on maintenance.health_shards to service_role;

-- why: a tenant's shard part, the one rule the coordinator's plan and the shard's selection share
create or replace function maintenance.health_shard_part(tenant_id uuid, parts integer)
returns integer language sql immutable set search_path = '' as $$
  select (abs(hashtextextended(tenant_id::text, 0)) % greatest(parts, 1))::integer
$$;
revoke all on function maintenance.health_shard_part(uuid, integer) from public, anon, authenticated;
grant execute on function maintenance.health_shard_part(uuid, integer) to service_role;

-- why: one overall result per tick: shards planned / done / missed / pending and the worst status of the
-- coordinator and its done shards (a missed shard makes it at least degraded; never healthy while one is missing)
create or replace view maintenance.health_tick_status with (security_invoker = true) as
select t.id as tick_id, t.started_at, t.tenants, t.shard_tenants,
  count(s.part)::integer as planned,
  count(*) filter (where s.state = 'done')::integer as done,
  count(*) filter (where s.state = 'missed')::integer as missed,
  count(*) filter (where s.state in ('queued', 'running'))::integer as pending,
  coalesce(sum(s.checked) filter (where s.state = 'done'), 0)::integer as checked,
  case
    when t.status = 'error' or bool_or(s.status = 'error') then 'error'
    when t.status = 'unhealthy' or bool_or(s.status = 'unhealthy') then 'unhealthy'
    when t.status = 'degraded' or bool_or(s.status = 'degraded') or bool_or(s.state = 'missed') then 'degraded'
    when bool_or(s.state in ('queued', 'running')) then 'running'
    else 'healthy' end as status,
  max(s.finished_at) as finished_at
from maintenance.health_ticks t
left join maintenance.health_shards s on s.tick_id = t.id
group by t.id;
revoke all on maintenance.health_tick_status from public, anon, authenticated;
grant select on maintenance.health_tick_status to service_role;

-- why: one evaluation of the alert rules after a health-check run, set-wise (replaces 20261202006100's; the same
-- signature, options and rules, plus the fleet and the shards). `candidates` are the platform alerts the job saw firing
-- ({fingerprint, kind, severity, summary, labels, details}); tenant alerts are derived here from the tenant_health
-- rows of this run, and mass_disconnect incidents per Evolution server from the tenants that went down within
-- platform_incident_window. Options: fullRun (every active tenant was checked: only then are platform alerts raised
-- or resolved), platformKinds (kinds evaluated this run: absent ones resolve), configuredKinds (kinds whose check is
-- configured: a firing alert of any other kind resolves as 'check no longer configured'), tenantsEvaluated,
-- massDetection, channels, repeatInterval, share, minTenants, failureThreshold, successThreshold, incidentWindow
-- (each defaults to its setting). The rules:
--   * a tenant alert fires once its tenant has been bad for alert_failure_threshold known checks in a row, and
--     resolves after alert_success_threshold checks in a row without its condition; in between it stays as it is;
--   * a flapping tenant has ONE alert, flapping:<slug>; while it flaps its other alerts are held back and those
--     already firing are inhibited by it;
--   * evolution_down (default server) or evolution_down:<server name> (raised by the job, one per server whose GET /
--     and listing fail) inhibits exactly the alerts of that server's tenants (tenant_health.server_url, through
--     fleet_server_key); in a full run each tenant it could not show has an evolution_unreachable:<slug> alert,
--     inhibited by it from the start, never notified, resolved with it; database_down inhibits every tenant alert;
--   * mass_disconnect (default server) or mass_disconnect:<server name>: more than platform_incident_share, and at
--     least platform_incident_min_tenants, of a server's tenants seen in the run went down within the window; it
--     inhibits the tenant alerts of the tenants it explains;
--   * frequent_disconnections of a tenant whose flapping alert fired within flap_window is held;
--   * a scoped run (fullRun false) evaluates its tenants' own alerts only: no platform alert is raised, resolved
--     or notified by it.
-- Notifications (firing, reminder after repeat_interval, resolved if the firing was sent) go to the outbox.
-- Fan-out: options.serverScope (a server's key, '' for the default server) is a shard's evaluation: its tenants'
-- alerts as a scoped run, plus that one server's evolution_down / mass_disconnect (raised, resolved and notified);
-- a full run that evaluated no tenant (the coordinator) leaves evolution_unreachable alerts to the shards.
create or replace function maintenance.evaluate_alerts(
  run_id uuid, evaluated_at timestamptz, candidates jsonb, options jsonb default '{}'::jsonb
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  full_run boolean := coalesce((options ->> 'fullRun')::boolean, false);
  -- a shard of a fanned-out run (20261202009000): the platform alerts of this one server ('' = the default one)
  server_scope text := options ->> 'serverScope';
  scope_fps text[] := case when options ->> 'serverScope' is null then '{}'
    when options ->> 'serverScope' = '' then array['evolution_down', 'mass_disconnect']
    else array['evolution_down:' || (options ->> 'serverScope'), 'mass_disconnect:' || (options ->> 'serverScope')] end;
  platform_kinds text[] := case when full_run or options ->> 'serverScope' is not null
    then coalesce(array(select jsonb_array_elements_text(options -> 'platformKinds')), '{}') else '{}' end;
  configured_kinds text[] := case when full_run and jsonb_typeof(options -> 'configuredKinds') = 'array'
    then array(select jsonb_array_elements_text(options -> 'configuredKinds')) end;
  tenants_evaluated boolean := coalesce((options ->> 'tenantsEvaluated')::boolean, false);
  mass_detection boolean := (full_run or options ->> 'serverScope' is not null) and tenants_evaluated
    and coalesce((options ->> 'massDetection')::boolean, true);
  channels text[] := coalesce(array(select jsonb_array_elements_text(options -> 'channels')), '{}');
  repeat_interval interval := coalesce((options ->> 'repeatInterval')::interval,
    (maintenance.setting('alert_repeat_interval') #>> '{}')::interval);
  share numeric := coalesce((options ->> 'share')::numeric,
    (maintenance.setting('platform_incident_share') #>> '{}')::numeric);
  min_tenants integer := coalesce((options ->> 'minTenants')::integer,
    (maintenance.setting('platform_incident_min_tenants') #>> '{}')::integer);
  failure_threshold integer := greatest(1, coalesce((options ->> 'failureThreshold')::integer,
    (maintenance.setting('alert_failure_threshold') #>> '{}')::integer));
  success_threshold integer := greatest(1, coalesce((options ->> 'successThreshold')::integer,
    (maintenance.setting('alert_success_threshold') #>> '{}')::integer));
  incident_window interval := coalesce((options ->> 'incidentWindow')::interval,
    (maintenance.setting('platform_incident_window') #>> '{}')::interval);
  flap_window interval := (maintenance.setting('flap_window') #>> '{}')::interval;
  all_candidates jsonb := '[]'::jsonb;
  resolved_ids bigint[] := '{}';
  fired text[];
  pending integer := 0;
  result jsonb;
begin
  if candidates is not null and jsonb_typeof(candidates) <> 'array' then
    raise exception 'candidates must be a jsonb array' using errcode = '22023';
  end if;
  -- one evaluation at a time (a scoped run and a scheduled run may overlap); released at commit
  perform pg_advisory_xact_lock(hashtext('maintenance.evaluate_alerts'));

  -- platform candidates count only in a full run: a few tenants say nothing about the platform
  if full_run then
    all_candidates := coalesce((
      select jsonb_agg(x || jsonb_build_object('eligible', true)) from jsonb_array_elements(candidates) x), '[]');
  elsif server_scope is not null then
    -- a shard: only its own server's platform alerts
    all_candidates := coalesce((
      select jsonb_agg(x || jsonb_build_object('eligible', true)) from jsonb_array_elements(candidates) x
      where x ->> 'fingerprint' = any (scope_fps)), '[]');
  end if;

  if tenants_evaluated then
    -- 0. the streaks of the tenants this run could see (an unreachable server's tenants are not seen)
    insert into maintenance.tenant_alert_streaks as s (tenant_id, bad_checks, went_down_at, last_run_id, updated_at)
    select h.tenant_id, case when h.state <> 'healthy' then 1 else 0 end,
      case when h.state <> 'healthy' then evaluated_at end, h.last_run_id, evaluated_at
    from maintenance.tenant_health h
    where h.last_run_id = run_id and h.issue_code is distinct from 'evolution_unreachable'
    on conflict (tenant_id) do update set
      bad_checks = case when excluded.bad_checks > 0 then s.bad_checks + 1 else 0 end,
      went_down_at = case when excluded.bad_checks > 0 and s.bad_checks = 0 then excluded.went_down_at
                          else s.went_down_at end,
      last_run_id = excluded.last_run_id,
      updated_at = excluded.updated_at
    -- once per run; a healthy tenant that was healthy is left alone (no write per tenant per run)
    where s.last_run_id is distinct from excluded.last_run_id and (excluded.bad_checks > 0 or s.bad_checks > 0);

    -- tenant conditions seen now: the primary issue and the flags of each tenant checked in this run, and
    -- `flapping`. `eligible`: may fire now (the failure threshold is met, the tenant does not flap); a condition
    -- that is not eligible still keeps an alert that already fires from resolving.
    all_candidates := all_candidates || coalesce((
      select jsonb_agg(jsonb_build_object(
        'fingerprint', k.kind || ':' || h.tenant_slug, 'kind', k.kind, 'scope', 'tenant',
        'tenant_id', h.tenant_id, 'tenant_slug', h.tenant_slug,
        'severity', case when k.kind = 'flapping' then 'warning'
                      when k.kind in ('instance_missing', 'check_error') or (k.is_primary and h.severity = 'high')
                      then 'critical' else 'warning' end,
        'summary', format('%s: %s', h.tenant_slug, case
          when k.kind = 'flapping' then 'WhatsApp keeps disconnecting and reconnecting'
            || coalesce(format(' (%s%% state change)', round(h.flap_percent)), '')
          when k.is_primary then coalesce(h.issue, k.kind)
          when k.kind = 'frequent_disconnections' then 'WhatsApp disconnects repeatedly'
          when k.kind = 'zombie_suspected' then 'connected, but no webhook events arrive'
          else k.kind end),
        'labels', jsonb_build_object('tenant', h.tenant_slug, 'evolution_state', h.evolution_state),
        'details', h.details || jsonb_build_object('state', h.state, 'badChecks', coalesce(s.bad_checks, 0))
          || case when k.kind = 'flapping' then jsonb_build_object(
               'flapPercent', h.flap_percent,
               'text', format('%s keeps disconnecting and reconnecting%s: its per-change alerts are held back until '
                 || 'it is stable, then the usual rules apply.', h.tenant_slug,
                 coalesce(format(' (%s%% state change)', round(h.flap_percent)), '')))
             else '{}'::jsonb end,
        'eligible', case when k.kind = 'flapping' then true
                      when h.flapping or coalesce(s.bad_checks, 0) < failure_threshold then false
                      -- the closes frequent_disconnections counts (over flap_window) are those of a flap already
                      -- told by its flapping alert: held until they have aged out of the window
                      when k.kind = 'frequent_disconnections' and exists (
                        select 1 from maintenance.alerts f where f.fingerprint = 'flapping:' || h.tenant_slug
                          and (f.status = 'firing' or f.resolved_at > evaluated_at - flap_window)) then false
                      else true end))
      from maintenance.tenant_health h
      left join maintenance.tenant_alert_streaks s on s.tenant_id = h.tenant_id
      cross join lateral (
        -- `flapping` comes from the column alone (its detection has the hysteresis), not from an issue or a flag
        select 'flapping' as kind, false as is_primary where h.flapping
        union
        select h.issue_code, true where h.state <> 'healthy' and h.issue_code not in ('flapping', 'evolution_unreachable')
        union
        select f, false from unnest(h.flags) f
        where h.state <> 'healthy' and f is distinct from h.issue_code and f not in ('flapping', 'evolution_unreachable')
      ) k
      where h.last_run_id = run_id and h.issue_code is distinct from 'evolution_unreachable'
    ), '[]'::jsonb);

    -- the tenants a server that is down could not show (a full run only, and only where that server's own
    -- evolution_down is a candidate of this run): one evolution_unreachable:<slug> alert each, inhibited from its
    -- start by that server's alert (step 4) and never notified (step 5): recorded, not skipped, and told once by the
    -- server's alert. Its streak is left alone (the check could not see the tenant).
    if full_run or server_scope is not null then
      all_candidates := all_candidates || coalesce((
        select jsonb_agg(jsonb_build_object(
          'fingerprint', 'evolution_unreachable:' || h.tenant_slug, 'kind', 'evolution_unreachable',
          'scope', 'tenant', 'tenant_id', h.tenant_id, 'tenant_slug', h.tenant_slug, 'severity', 'critical',
          'summary', format('%s: %s', h.tenant_slug, coalesce(h.issue, 'Evolution API unreachable')),
          'labels', jsonb_strip_nulls(jsonb_build_object('tenant', h.tenant_slug, 'server', nullif(k.server, ''))),
          'details', h.details || jsonb_build_object('state', h.state, 'serverAlert', k.down_fp),
          'eligible', true))
        from maintenance.tenant_health h
        cross join lateral (select maintenance.fleet_server_key(h.server_url) as server) s
        cross join lateral (select s.server,
          case when s.server = '' then 'evolution_down' else 'evolution_down:' || s.server end as down_fp) k
        where h.last_run_id = run_id and h.issue_code = 'evolution_unreachable'
          and exists (select 1 from jsonb_array_elements(candidates) c where c ->> 'fingerprint' = k.down_fp)
          and (server_scope is null or k.down_fp = any (scope_fps))
      ), '[]'::jsonb);
    end if;

    if mass_detection then
      -- mass disconnects, per Evolution server, over the sliding window. A server's population: its tenants seen in
      -- this run (not those whose server could not be listed, nor those without an instance to judge). Counted
      -- against it: those whose bad streak began within the window (still down or already back: an outage rolling
      -- through a server a few tenants per run adds up), and after that server's last incident ended (what an
      -- incident explained never raises it again). A tenant down for days did not go down now: it never counts.
      all_candidates := all_candidates || coalesce((
        with pop as materialized (
          select maintenance.fleet_server_key(h.server_url) as server, h.tenant_id, h.state <> 'healthy' as down_now,
            s.went_down_at
          from maintenance.tenant_health h
          left join maintenance.tenant_alert_streaks s on s.tenant_id = h.tenant_id
          where h.last_run_id = run_id and h.issue_code is distinct from 'evolution_unreachable'
            and (h.evolution_state is not null or h.state <> 'healthy')
            and (server_scope is null or maintenance.fleet_server_key(h.server_url) = server_scope)
        ),
        -- each server once: its population, its incident firing now, when its last one ended
        known as materialized (
          select sv.server, sv.fp, sv.checked, f.id as firing_id, f.summary as firing_summary,
            case when jsonb_typeof(f.details -> 'tenantIds') = 'array' then f.details -> 'tenantIds' else '[]' end
              as firing_ids,
            (select max(r.resolved_at) from maintenance.alerts r where r.fingerprint = sv.fp and r.status = 'resolved')
              as last_resolved_at
          from (
            select p.server, case when p.server = '' then 'mass_disconnect' else 'mass_disconnect:' || p.server end
              as fp, count(*) as checked
            from pop p group by p.server
          ) sv
          left join maintenance.alerts f on f.fingerprint = sv.fp and f.status = 'firing'
        ),
        measured as materialized (
          select p.server,
            coalesce(array_agg(p.tenant_id) filter (where p.went_down_at >= evaluated_at - incident_window
              and (k.last_resolved_at is null or p.went_down_at > k.last_resolved_at)), '{}') as recent,
            count(*) filter (where p.down_now and p.went_down_at = evaluated_at) as went_now
          from pop p join known k on k.server = p.server
          group by p.server
        ),
        -- the tenants each incident explains: those it already did, and those that went down since
        explained as materialized (
          select e.server, coalesce(array_agg(e.tenant_id), '{}') as explained,
            count(*) filter (where p.down_now) as still_down
          from (
            select k.server, (t)::uuid as tenant_id from known k cross join jsonb_array_elements_text(k.firing_ids) t
            union
            select m.server, t from measured m cross join unnest(m.recent) t
          ) e
          left join pop p on p.tenant_id = e.tenant_id and p.server = e.server
          group by e.server
        ),
        judged as (
          select k.*, m.recent, m.went_now, coalesce(e.explained, '{}') as explained,
            coalesce(e.still_down, 0) as still_down,
            cardinality(m.recent) >= min_tenants and cardinality(m.recent) > share * k.checked as holds
          from known k join measured m on m.server = k.server left join explained e on e.server = k.server
        )
        select jsonb_agg(jsonb_build_object(
          'fingerprint', j.fp, 'kind', 'mass_disconnect', 'scope', 'platform', 'severity', 'critical', 'eligible', true,
          'summary', coalesce(j.firing_summary, format('%s of %s WhatsApp tenants%s went down within %s',
            cardinality(j.recent), j.checked, case when j.server = '' then '' else ' on ' || j.server end,
            round(extract(epoch from incident_window) / 60) || ' min')),
          'labels', jsonb_strip_nulls(jsonb_build_object('server', nullif(j.server, ''))),
          'details', jsonb_build_object(
            'text', format('A platform incident%s (Evolution restart, WhatsApp outage, network): the per-tenant '
              || 'alerts it explains are silenced.', case when j.server = '' then '' else ' on ' || j.server end),
            'server', nullif(j.server, ''), 'window', incident_window::text,
            'wentDown', cardinality(j.recent), 'checked', j.checked, 'stillDown', j.still_down,
            'tenantIds', to_jsonb(j.explained))))
        from judged j
        -- a new incident when the window holds enough; one in progress stays while the outage still spreads (a
        -- tenant went down in this run and the window holds) or most of the tenants it explains are still down
        where (j.firing_id is null and j.holds)
           or (j.firing_id is not null and ((j.went_now > 0 and j.holds)
             or (j.still_down >= min_tenants and j.still_down > share * cardinality(j.explained))))
      ), '[]'::jsonb);
      platform_kinds := platform_kinds || array['mass_disconnect'];
    end if;
  end if;

  -- the candidates as a table: the steps below look them up by fingerprint (thousands of them in an incident)
  if to_regclass('pg_temp.alert_candidates') is null then
    create temp table alert_candidates (
      fingerprint text primary key, kind text, scope text, tenant_id uuid, tenant_slug text, severity text,
      summary text, labels jsonb, details jsonb, eligible boolean
    ) on commit drop;
  else
    truncate pg_temp.alert_candidates;  -- evaluated twice in one transaction
  end if;
  insert into pg_temp.alert_candidates
  select x ->> 'fingerprint', x ->> 'kind',
    coalesce(x ->> 'scope', case when x ? 'tenant_id' then 'tenant' else 'platform' end),
    (x ->> 'tenant_id')::uuid, x ->> 'tenant_slug', x ->> 'severity', x ->> 'summary',
    coalesce(x -> 'labels', '{}'::jsonb), coalesce(x -> 'details', '{}'::jsonb),
    coalesce((x ->> 'eligible')::boolean, true)
  from jsonb_array_elements(all_candidates) x
  on conflict (fingerprint) do nothing;
  analyze pg_temp.alert_candidates;

  -- 1. what fires now: new alerts for eligible conditions; a firing alert whose condition is seen (eligible or held
  -- back) is kept firing and its clear count restarts
  with c as (
    select * from pg_temp.alert_candidates
  ), ins as (
    insert into maintenance.alerts as a (fingerprint, kind, scope, tenant_id, tenant_slug, status, severity, summary,
      labels, details, started_at, last_seen_at, last_run_id)
    select c.fingerprint, c.kind, c.scope, c.tenant_id, c.tenant_slug, 'firing', c.severity, c.summary, c.labels,
      c.details, evaluated_at, evaluated_at, run_id
    from c where c.eligible
    on conflict (fingerprint) where status = 'firing' do update set
      severity = excluded.severity, summary = excluded.summary, labels = excluded.labels, details = excluded.details,
      last_seen_at = excluded.last_seen_at, last_run_id = excluded.last_run_id, clear_checks = 0
    returning a.fingerprint, a.started_at
  ), kept as (
    update maintenance.alerts a set severity = c.severity, summary = c.summary, labels = c.labels, details = c.details,
      last_seen_at = evaluated_at, last_run_id = run_id, clear_checks = 0
    from c where not c.eligible and a.status = 'firing' and a.fingerprint = c.fingerprint
    returning a.id
  )
  select coalesce(array_agg(fingerprint) filter (where started_at = evaluated_at), '{}'),
    (select count(*) from c where not c.eligible and not exists (
      select 1 from maintenance.alerts a where a.status = 'firing' and a.fingerprint = c.fingerprint))
    into fired, pending
  from ins;
  -- an incident can add thousands of firing alerts at once: plan the steps below on what the table now holds
  if cardinality(fired) > 500 then
    analyze maintenance.alerts;
  end if;

  -- 2. a firing tenant alert of a tenant seen in this run, whose condition is not: one more clear check
  if tenants_evaluated then
    update maintenance.alerts a set clear_checks = a.clear_checks + 1, last_run_id = run_id
    from maintenance.tenant_health h
    where a.status = 'firing' and a.scope = 'tenant' and h.tenant_id = a.tenant_id and h.last_run_id = run_id
      and h.issue_code is distinct from 'evolution_unreachable' and a.last_run_id is distinct from run_id
      and not exists (select 1 from pg_temp.alert_candidates x where x.fingerprint = a.fingerprint);
  end if;

  -- 3. resolve what no longer fires, within the scope evaluated now
  with r as (
    update maintenance.alerts a set status = 'resolved', resolved_at = evaluated_at, last_run_id = run_id,
      resolve_reason = case
        when a.scope = 'tenant' and (a.tenant_id is null or not exists (
          select 1 from public.tenants t where t.id = a.tenant_id and coalesce(t.is_active, true)))
          then 'tenant removed or deactivated'
        when a.scope = 'platform' and configured_kinds is not null and not (a.kind = any (configured_kinds))
          then 'check no longer configured'
        else null end
    where a.status = 'firing'
      and not exists (select 1 from pg_temp.alert_candidates x where x.fingerprint = a.fingerprint)
      and (
        (a.scope = 'platform' and a.kind = any (platform_kinds)
          and (server_scope is null or full_run or a.fingerprint = any (scope_fps)))
        or (a.scope = 'platform' and configured_kinds is not null and not (a.kind = any (configured_kinds)))
        -- its tenant was seen in this run: flapping resolves when it stops; any other alert after the success
        -- threshold, never while its tenant flaps
        or (a.scope = 'tenant' and tenants_evaluated and a.kind = 'flapping' and a.tenant_id in (
          select h.tenant_id from maintenance.tenant_health h
          where h.last_run_id = run_id and h.issue_code is distinct from 'evolution_unreachable'))
        or (a.scope = 'tenant' and tenants_evaluated and a.kind <> 'flapping' and a.clear_checks >= success_threshold
          and a.tenant_id in (
            select h.tenant_id from maintenance.tenant_health h
            where h.last_run_id = run_id and h.issue_code is distinct from 'evolution_unreachable' and not h.flapping))
        -- an evolution_unreachable alert lasts exactly as long as its server's outage: it resolves in a full run
        -- that does not raise it again, and in any run that sees its tenant (never notified either way)
        or (a.scope = 'tenant' and a.kind = 'evolution_unreachable' and ((full_run and tenants_evaluated) or a.tenant_id in (
          select h.tenant_id from maintenance.tenant_health h
          where h.last_run_id = run_id and h.issue_code is distinct from 'evolution_unreachable')))
        or (a.scope = 'tenant' and full_run and (a.tenant_id is null or not exists (
          select 1 from public.tenants t where t.id = a.tenant_id and coalesce(t.is_active, true))))
      )
    returning a.id
  )
  select coalesce(array_agg(id), '{}') into resolved_ids from r;
  if cardinality(resolved_ids) > 500 then
    analyze maintenance.alerts;
  end if;

  -- 4. inhibition: the database down silences every tenant alert; an Evolution server down (evolution_down for the
  -- default server, evolution_down:<name> for another) exactly the alerts of the tenants on that server (as their
  -- last check placed them: tenant_health.server_url); a mass disconnect those of the tenants it explains; a
  -- flapping tenant its own other alerts
  with outage as (
    select min(p.fingerprint) as fingerprint from maintenance.alerts p
    where p.status = 'firing' and p.fingerprint = 'database_down'
  ), down as (
    select p.fingerprint, case when p.fingerprint = 'evolution_down' then '' else substr(p.fingerprint, 16) end
      as server
    from maintenance.alerts p
    where p.status = 'firing' and p.kind = 'evolution_down' and p.scope = 'platform'
  ), server_down as (
    -- a tenant's server as the alerts name it (maintenance.fleet_server_key), only while some server is down
    select h.tenant_id, min(d.fingerprint) as fingerprint
    from maintenance.tenant_health h
    join down d on d.server = maintenance.fleet_server_key(h.server_url)
    where h.tenant_id in (select t.tenant_id from maintenance.alerts t where t.status = 'firing' and t.scope = 'tenant')
    group by h.tenant_id
  ), mass as (
    select (e.t)::uuid as tenant_id, min(p.fingerprint) as fingerprint
    from maintenance.alerts p cross join lateral jsonb_array_elements_text(p.details -> 'tenantIds') e(t)
    where p.status = 'firing' and p.kind = 'mass_disconnect' and jsonb_typeof(p.details -> 'tenantIds') = 'array'
    group by 1
  ), flap as (
    select f.tenant_id, min(f.fingerprint) as fingerprint from maintenance.alerts f
    where f.status = 'firing' and f.kind = 'flapping' group by f.tenant_id
  ), i as (
    select t.id, coalesce((select o.fingerprint from outage o), sd.fingerprint, m.fingerprint,
      case when t.kind <> 'flapping' then fl.fingerprint end) as inhibitor
    from maintenance.alerts t
    left join server_down sd on sd.tenant_id = t.tenant_id
    left join mass m on m.tenant_id = t.tenant_id
    left join flap fl on fl.tenant_id = t.tenant_id
    where t.status = 'firing' and t.scope = 'tenant'
  )
  update maintenance.alerts a set inhibited_by = i.inhibitor
  from i where a.id = i.id and a.inhibited_by is distinct from i.inhibitor;

  -- 5. notifications: first firing, reminders after the repeat interval, one resolved (only if firing was sent).
  -- Only while its condition was seen at the last check (clear_checks = 0): an alert let go by an incident that ended
  -- while its tenant was already back is not announced, it resolves quietly. A scoped run notifies no platform alert.
  with due as (
    select a.id, case when a.notified_count = 0 then 'firing' else 'reminder' end as event
    from maintenance.alerts a
    where a.status = 'firing' and a.inhibited_by is null and a.clear_checks = 0 and (full_run or a.scope = 'tenant' or a.fingerprint = any (scope_fps))
      and a.kind <> 'evolution_unreachable'
      and (a.notified_count = 0 or a.last_notified_at <= evaluated_at - repeat_interval)
    union all
    select a.id, 'resolved' from maintenance.alerts a where a.id = any (resolved_ids) and a.notified_count > 0
  ), marked as (
    update maintenance.alerts a set
      notified_count = a.notified_count + case when d.event = 'resolved' then 0 else 1 end,
      last_notified_at = evaluated_at
    from due d where a.id = d.id
    returning a.id, a.notified_count, d.event
  ), queued as (
    insert into maintenance.notification_outbox (dedupe_key, channel, alert_id, kind, payload)
    select format('alert:%s:%s', m.id, case m.event when 'reminder' then 'reminder:' || m.notified_count
                                                   else m.event end),
           ch, m.id, m.event, maintenance.alert_payload(a, m.event)
    from marked m join maintenance.alerts a on a.id = m.id cross join unnest(channels) ch
    on conflict on constraint notification_outbox_dedupe_key_channel_key do nothing
    returning kind
  )
  select jsonb_build_object(
    'notified', (select coalesce(jsonb_object_agg(event, n), '{}') from (
      select event, count(*) as n from marked group by event) s),
    'queued', (select count(*) from queued)
  ) into result;

  return result || jsonb_build_object(
    'fired', to_jsonb(fired[1:100]),
    'resolved', (select coalesce(jsonb_agg(a.fingerprint order by a.fingerprint), '[]') from maintenance.alerts a
                 where a.id = any (resolved_ids[1:100])),
    'resolvedCount', cardinality(resolved_ids),
    'pending', pending,
    'platformEvaluated', full_run,
    'firing', (select count(*) from maintenance.alerts a where a.status = 'firing'),
    'inhibited', (select count(*) from maintenance.alerts a where a.status = 'firing' and a.inhibited_by is not null),
    'platform', (select coalesce(jsonb_agg(a.fingerprint order by a.fingerprint), '[]') from maintenance.alerts a
                 where a.status = 'firing' and a.scope = 'platform'));
end;
$$;
revoke all on function maintenance.evaluate_alerts(uuid, timestamptz, jsonb, jsonb) from public, anon, authenticated;
grant execute on function maintenance.evaluate_alerts(uuid, timestamptz, jsonb, jsonb) to service_role;
