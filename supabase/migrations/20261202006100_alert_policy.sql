-- Alert policy (issue 15), after 20261202001000 (health truth) and 20261202003000 (outbox lease): thresholds before a tenant alert fires or resolves,
-- one flapping alert instead of a storm, mass disconnects per Evolution server over a sliding window, scoped runs
-- that leave platform alerts alone, and platform alerts that resolve when their check is no longer configured.
-- Runs on a database that already has every object: columns `if not exists`, settings upserted, the function
-- replaced.

-- why: the policy's tunables, named and explained (never literals inside a rule), changeable without a deploy.
-- The thresholds are Gatus's `failure-threshold` ("number of failures in a row needed before triggering the alert",
-- default 3) and `success-threshold` ("number of successes in a row before an ongoing incident is marked as
-- resolved", default 2) (github.com/TwiN/gatus, README, Alerting), and Uptime Kuma's Retries ("maximum retries
-- before the service is marked as down and a notification is sent": a beat that fails is PENDING first)
-- (github.com/louislam/uptime-kuma, src/lang/en.json). Gatus's defaults assume a 60 s interval; health-check runs
-- every 5 minutes, so 2 checks in a row is already 5–10 minutes of outage.
insert into maintenance.settings (key, default_value, description) values
  ('alert_failure_threshold', '2',
   'A tenant alert fires after this many bad health checks in a row (Gatus failure-threshold, Uptime Kuma retries). '
   || 'At one check every 5 min, 2 tells a real outage 5 to 10 min after it starts and never pages for a one-run blip '
   || '(a reconnect, an Evolution restart caught mid-way); 3 would be 10 to 15 min'),
  ('alert_success_threshold', '2',
   'A firing tenant alert resolves after this many checks in a row without its condition (Gatus success-threshold). '
   || '2: a tenant that is back for one run and down again stays one alert (no RESOLVED then FIRING); its RESOLVED '
   || 'comes 5 to 10 min after it is back'),
  ('platform_incident_window', '"15 minutes"',
   'Sliding window of the mass_disconnect rule: a server''s tenants that went down within it (still down or already '
   || 'back) count together. 15 min = the last three 5-minute checks (and the one 15 min ago): an outage rolling through a server '
   || 'a few tenants per run adds up to one incident before those tenants'' own alerts would fire, while unrelated '
   || 'failures hours apart never do'),
  ('platform_incident_share', '0.5',
   'More than this share of one Evolution server''s tenants gone down within platform_incident_window is one '
   || 'mass_disconnect incident for that server'),
  ('platform_incident_min_tenants', '5',
   'A mass_disconnect needs at least this many of the server''s tenants gone down within the window (a '
   || 'server with 3 tenants, 2 of them down, is two tenant problems, not a platform incident)')
on conflict (key) do update set default_value = excluded.default_value, description = excluded.description;

-- why: the interface with the tenant-state detection (record_tenant_health, 20261202001000, which adds and fills
-- these columns; repeated here `if not exists` so the rules below never depend on the order of unrelated
-- migrations): the server a tenant's instance is on (null = EVOLUTION_API_URL), and whether it flaps (Nagios-style
-- percent state change, with hysteresis).
alter table maintenance.tenant_health add column if not exists server_url text;
alter table maintenance.tenant_health add column if not exists flapping boolean not null default false;
alter table maintenance.tenant_health add column if not exists flap_percent numeric;

-- why: what the alert rules remember of each tenant between runs, kept by evaluate_alerts alone: how many known
-- checks in a row found it not healthy (the failure threshold counts these across degraded and unhealthy, which
-- tenant_health.consecutive does not: it restarts at every state change), and when its latest bad streak began
-- (kept once it is back, so the incident window still sees a tenant that went down and came back). A check that
-- could not see the tenant (evolution_unreachable) leaves both as they are.
create table if not exists maintenance.tenant_alert_streaks (
  tenant_id uuid primary key references public.tenants (id) on delete cascade,
  bad_checks integer not null default 0 check (bad_checks >= 0),
  went_down_at timestamptz,
  last_run_id uuid,
  updated_at timestamptz not null default now()
);
create index if not exists tenant_alert_streaks_went_down_idx on maintenance.tenant_alert_streaks (went_down_at);
revoke all on maintenance.tenant_alert_streaks from public, anon, authenticated;
grant all on maintenance.tenant_alert_streaks to service_role;

-- a database that already has tenant_health starts from what it knows (a tenant down for 3 checks stays 3)
insert into maintenance.tenant_alert_streaks (tenant_id, bad_checks, went_down_at, last_run_id, updated_at)
select h.tenant_id, case when h.state <> 'healthy' then h.consecutive else 0 end, h.went_down_at, h.last_run_id,
  h.last_checked_at
from maintenance.tenant_health h
where h.issue_code is distinct from 'evolution_unreachable'
on conflict (tenant_id) do nothing;

-- why: the rules look up an alert's latest resolution by fingerprint (a server's last incident, a tenant's last
-- flapping alert); alerts_one_firing_idx covers only the firing ones.
create index if not exists alerts_fingerprint_resolved_idx on maintenance.alerts (fingerprint, resolved_at)
  where status = 'resolved';

-- why: a firing tenant alert resolves only after alert_success_threshold checks of its tenant in a row without its
-- condition; this counts them (back to 0 whenever the condition is seen again).
alter table maintenance.alerts add column if not exists clear_checks integer not null default 0;
comment on column maintenance.alerts.clear_checks is
  'Checks in a row of the alert''s tenant without its condition; the alert resolves at alert_success_threshold';

-- why: one evaluation of the alert rules after a health-check run, set-wise. `candidates` are the platform alerts
-- the job saw firing ({fingerprint, kind, severity, summary, labels, details}); tenant alerts are derived here from
-- the tenant_health rows of this run, and mass_disconnect incidents per Evolution server from the tenants that went
-- down within platform_incident_window. Options: fullRun (every active tenant was checked: only then are platform
-- alerts raised or resolved), platformKinds (kinds evaluated this run: absent ones resolve), configuredKinds (kinds
-- whose check is configured: a firing alert of any other kind resolves as 'check no longer configured'),
-- tenantsEvaluated, massDetection, channels, repeatInterval, share, minTenants, failureThreshold, successThreshold,
-- incidentWindow (each defaults to its setting). The rules:
--   * a tenant alert fires once its tenant has been bad for alert_failure_threshold known checks in a row, and
--     resolves after alert_success_threshold checks in a row without its condition; in between it stays as it is
--     (no RESOLVED, no new FIRING);
--   * a flapping tenant (tenant_health.flapping) has ONE alert, flapping:<slug>, fired at once and resolved as soon
--     as it stops (the detection has its own hysteresis); while it flaps, its other alerts are held back: none
--     fires, none resolves, and those already firing are inhibited by flapping:<slug> (Nagios suppresses problem
--     and recovery notifications while a host flaps and sends one flapping start and one stop);
--   * mass_disconnect (default server) or mass_disconnect:<server_url>: more than platform_incident_share, and at
--     least platform_incident_min_tenants, of a server's tenants seen in the run went down within the window (still
--     down or already back; since its previous incident resolved); it inhibits the tenant alerts of the tenants it
--     explains (every one that went down while it fired), and stays while the outage still spreads (a tenant went
--     down in this run and the window holds) or most of the tenants it explains are still down;
--   * frequent_disconnections of a tenant whose flapping alert fired within flap_window is held: its closes are
--     the flap's, already told;
--   * a scoped run (fullRun false) evaluates its tenants' own alerts only: no platform alert is raised, resolved
--     or notified by it.
-- Notifications (firing, reminder after repeat_interval, resolved if the firing was sent) go to the outbox.
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
  platform_kinds text[] := case when full_run
    then coalesce(array(select jsonb_array_elements_text(options -> 'platformKinds')), '{}') else '{}' end;
  configured_kinds text[] := case when full_run and jsonb_typeof(options -> 'configuredKinds') = 'array'
    then array(select jsonb_array_elements_text(options -> 'configuredKinds')) end;
  tenants_evaluated boolean := coalesce((options ->> 'tenantsEvaluated')::boolean, false);
  mass_detection boolean := full_run and tenants_evaluated
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

    if mass_detection then
      -- mass disconnects, per Evolution server, over the sliding window. A server's population: its tenants seen in
      -- this run (not those whose server could not be listed, nor those without an instance to judge). Counted
      -- against it: those whose bad streak began within the window (still down or already back: an outage rolling
      -- through a server a few tenants per run adds up), and after that server's last incident ended (what an
      -- incident explained never raises it again). A tenant down for days did not go down now: it never counts.
      all_candidates := all_candidates || coalesce((
        with pop as materialized (
          select coalesce(h.server_url, '') as server, h.tenant_id, h.state <> 'healthy' as down_now, s.went_down_at
          from maintenance.tenant_health h
          left join maintenance.tenant_alert_streaks s on s.tenant_id = h.tenant_id
          where h.last_run_id = run_id and h.issue_code is distinct from 'evolution_unreachable'
            and (h.evolution_state is not null or h.state <> 'healthy')
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
        (a.scope = 'platform' and a.kind = any (platform_kinds))
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
        or (a.scope = 'tenant' and full_run and (a.tenant_id is null or not exists (
          select 1 from public.tenants t where t.id = a.tenant_id and coalesce(t.is_active, true))))
      )
    returning a.id
  )
  select coalesce(array_agg(id), '{}') into resolved_ids from r;
  if cardinality(resolved_ids) > 500 then
    analyze maintenance.alerts;
  end if;

  -- 4. inhibition: an outage silences every tenant alert, a mass disconnect those of the tenants it explains, a
  -- flapping tenant its own other alerts
  with outage as (
    select min(p.fingerprint) as fingerprint from maintenance.alerts p
    where p.status = 'firing' and p.fingerprint in ('evolution_down', 'database_down')
  ), mass as (
    select (e.t)::uuid as tenant_id, min(p.fingerprint) as fingerprint
    from maintenance.alerts p cross join lateral jsonb_array_elements_text(p.details -> 'tenantIds') e(t)
    where p.status = 'firing' and p.kind = 'mass_disconnect' and jsonb_typeof(p.details -> 'tenantIds') = 'array'
    group by 1
  ), flap as (
    select f.tenant_id, min(f.fingerprint) as fingerprint from maintenance.alerts f
    where f.status = 'firing' and f.kind = 'flapping' group by f.tenant_id
  ), i as (
    select t.id, coalesce((select o.fingerprint from outage o), m.fingerprint,
      case when t.kind <> 'flapping' then fl.fingerprint end) as inhibitor
    from maintenance.alerts t
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
    where a.status = 'firing' and a.inhibited_by is null and a.clear_checks = 0 and (full_run or a.scope = 'tenant')
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
