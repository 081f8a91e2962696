-- Truthful health: each tenant's state from the sources that know it (the listing, connectionState, the liveness
-- probe, webhook events), flap detection that works, and what a run needs to rotate its probes.

-- why: the probing policy of health-check and the flap detection's tunables, changeable without a deploy.
insert into maintenance.settings (key, default_value, description) values
  ('health_check_concurrency', '32',
   'Parallel Evolution calls per health-check run (connectionState reads and liveness probes; in-memory on Evolution)'),
  ('health_check_probe_budget', '1000',
   'Evolution calls per health-check run beyond the listings: connectionState and liveness probes together'),
  ('health_check_state_rotation', '"1 hour"',
   'Every open instance''s in-memory state (connectionState) is read at least this often, in rotation'),
  ('health_check_socket_rotation', '"6 hours"',
   'Every open instance''s WhatsApp socket is probed (liveness) at least this often, in rotation'),
  ('health_check_self_heal', 'false',
   'Let health-check restart an instance whose socket is dead and reconnect one in a transient close, within the remediation budget (never a logged-out one)'),
  ('flap_samples', '21', 'States (checks and connection.update events) the flap detection weighs, newest last (Nagios: 21)'),
  ('flap_high_threshold', '25', 'Percent state change above which a tenant starts flapping'),
  ('flap_low_threshold', '10', 'Percent state change below which a flapping tenant stops flapping')
on conflict (key) do update set default_value = excluded.default_value, description = excluded.description;

-- why: what the probes and the flap detection carry from run to run. live_*: the last connectionState read and
-- when; socket_*: the last liveness probe; samples: the last flap_samples observed states as [epoch ms, 1 up /
-- 0 down], checks and connection.update events alike; server_url: the server the instance is on (null: default).
alter table maintenance.tenant_health
  add column if not exists server_url text,
  add column if not exists live_state text,
  add column if not exists live_checked_at timestamptz,
  add column if not exists socket_state text,
  add column if not exists socket_checked_at timestamptz,
  add column if not exists flapping boolean not null default false,
  add column if not exists flap_percent numeric,
  add column if not exists samples jsonb not null default '[]'::jsonb;

-- why: a tenant's usual event rate (events_total over first → last event) makes silence relative to it; rows that
-- exist already have no first event on record (null: the floor alone applies), new ones start at their first event.
alter table maintenance.webhook_activity add column if not exists first_event_at timestamptz;
alter table maintenance.webhook_activity alter column first_event_at set default now();

-- why: the per-tenant bookkeeping of one health-check run, set-wise (replaces 20261129003001's). `results` adds to
-- what it had: server_url, live_state / socket_state (set when connectionState / the probe ran in this run), and
-- flags decided by the job (zombie_suspected). Here: frequent_disconnections from the logs, the flap detection
-- over the run's samples plus the connection.update events since the tenant's last check (with hysteresis), the
-- probes' dates carried for the rotation.
create or replace function maintenance.record_tenant_health(
  run_id uuid, checked_at timestamptz, results jsonb, full_run boolean default false
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  flap_threshold integer := (maintenance.setting('flap_threshold') #>> '{}')::integer;
  flap_window interval := (maintenance.setting('flap_window') #>> '{}')::interval;
  n_samples integer := (maintenance.setting('flap_samples') #>> '{}')::integer;
  high numeric := (maintenance.setting('flap_high_threshold') #>> '{}')::numeric;
  low numeric := (maintenance.setting('flap_low_threshold') #>> '{}')::numeric;
  slugs text[];
  summary jsonb;
  removed integer := 0;
begin
  if results is null or jsonb_typeof(results) <> 'array' then
    raise exception 'results must be a jsonb array' using errcode = '22023';
  end if;
  select coalesce(array_agg(r ->> 'slug'), '{}') into slugs from jsonb_array_elements(results) r;

  with input as materialized (
    select (r ->> 'tenant_id')::uuid as tenant_id, r ->> 'slug' as slug, r ->> 'state' as state,
           r ->> 'issue_code' as issue_code, r ->> 'issue' as issue, r ->> 'severity' as severity,
           r ->> 'evolution_state' as evolution_state, coalesce(r -> 'details', '{}'::jsonb) as details,
           r ->> 'server_url' as server_url, r ->> 'live_state' as live_state, r ->> 'socket_state' as socket_state,
           coalesce(array(select jsonb_array_elements_text(r -> 'flags')), '{}') as job_flags
    from jsonb_array_elements(results) r
  ),
  prev as materialized (
    select h.tenant_id, h.state, h.issue_code, h.samples, h.flapping, h.last_checked_at
    from maintenance.tenant_health h where h.tenant_id in (select tenant_id from input)
  ),
  closes as (
    select l.tenant_slug, count(*)::integer as n
    from public.api_logs l
    where l.event = 'connection.update' and l.status = 'success'
      and l.created_at > checked_at - flap_window and l.created_at <= checked_at
      and coalesce(l.data ->> 'state', l.data #>> '{data,state}') = 'close'
      and l.tenant_slug = any (slugs)
    group by l.tenant_slug
  ),
  -- the connection.update events each tenant's receiver stored since its last check (at most one flap window),
  -- gathered in one pass per run (materialized: a per-tenant lookup would scan api_logs once per tenant)
  events as materialized (
    select l.tenant_slug,
      jsonb_agg(jsonb_build_array((extract(epoch from l.created_at) * 1000)::bigint,
        (coalesce(l.data ->> 'state', l.data #>> '{data,state}') = 'open')::integer)) as evs
    from public.api_logs l
    join input i on i.slug = l.tenant_slug
    left join prev p on p.tenant_id = i.tenant_id
    where l.event = 'connection.update' and l.status = 'success' and l.tenant_slug = any (slugs)
      and l.created_at > greatest(coalesce(p.last_checked_at, checked_at - flap_window), checked_at - flap_window)
      and l.created_at <= checked_at
      and coalesce(l.data ->> 'state', l.data #>> '{data,state}') in ('open', 'connecting', 'close')
    group by l.tenant_slug
  ),
  -- every tenant's samples, set-wise: the carried ones, the new events, and this check where it observed a state
  -- (Evolution unreachable observes nothing); the newest flap_samples are kept
  points as (
    select i.tenant_id, (e ->> 0)::bigint as t, (e ->> 1)::integer as up
    from input i
    left join prev p on p.tenant_id = i.tenant_id
    left join events ev on ev.tenant_slug = i.slug
    cross join lateral jsonb_array_elements(coalesce(p.samples, '[]'::jsonb) || coalesce(ev.evs, '[]'::jsonb) ||
      case when i.evolution_state in ('open', 'close', 'connecting', 'missing')
        then jsonb_build_array(jsonb_build_array((extract(epoch from checked_at) * 1000)::bigint,
          (i.evolution_state = 'open')::integer))
        else '[]'::jsonb end) e
  ),
  ranked as (
    select pt.*, row_number() over (partition by pt.tenant_id order by pt.t desc) as newest,
      least(count(*) over (partition by pt.tenant_id), n_samples) as cnt
    from points pt
  ),
  windowed as (
    select r.tenant_id, r.t, r.up, r.cnt, r.cnt - r.newest + 1 as ord,
      lag(r.up) over (partition by r.tenant_id order by r.t) as prev_up
    from ranked r where r.newest <= n_samples
  ),
  -- Nagios's percent state change: the weighted share of changes between consecutive samples over a full window
  -- of n_samples (a shorter history counts as steady before it, as Nagios fills it with the first state), the
  -- oldest transition weighing 0.8 and the newest 1.2
  sampled as (
    select w.tenant_id, jsonb_agg(jsonb_build_array(w.t, w.up) order by w.t) as samples,
      coalesce(round(100 * sum(case when w.prev_up is not null and w.up <> w.prev_up
        then 0.8 + 0.4 * ((n_samples - w.cnt) + w.ord - 2)::numeric / greatest(n_samples - 2, 1) else 0 end)
        / greatest(n_samples - 1, 1), 1), 0) as percent
    from windowed w group by w.tenant_id
  ),
  flap as (
    select i.tenant_id, coalesce(s.samples, '[]'::jsonb) as samples, coalesce(s.percent, 0) as percent,
      case when coalesce(p.flapping, false) then coalesce(s.percent, 0) >= low
           else coalesce(s.percent, 0) > high end as flapping
    from input i left join sampled s on s.tenant_id = i.tenant_id left join prev p on p.tenant_id = i.tenant_id
  ),
  activity as (
    select a.tenant_slug, a.last_event_at from maintenance.last_webhook_events(slugs) a
  ),
  flagged as (
    select i.*, coalesce(c.n, 0) as close_events, a.last_event_at, fl.samples, fl.percent, fl.flapping,
      array_remove(array[
        case when fl.flapping then 'flapping' end,
        case when coalesce(c.n, 0) > flap_threshold then 'frequent_disconnections' end
      ], null) || i.job_flags as flags
    from input i
    join flap fl on fl.tenant_id = i.tenant_id
    left join closes c on c.tenant_slug = i.slug
    left join activity a on a.tenant_slug = i.slug
  ),
  final as (
    select f.tenant_id, f.slug, f.flags, f.server_url, f.live_state, f.socket_state, f.samples, f.percent,
      f.flapping,
      case when f.state = 'healthy' and cardinality(f.flags) > 0 then 'degraded' else f.state end as state,
      case when f.state = 'healthy' and cardinality(f.flags) > 0 then f.flags[1] else f.issue_code end as issue_code,
      case when f.state = 'healthy' and f.flags[1] = 'flapping'
             then format('WhatsApp keeps disconnecting and reconnecting (%s%% state change)', f.percent)
           when f.state = 'healthy' and f.flags[1] = 'frequent_disconnections'
             then format('WhatsApp disconnected %s times in %s', f.close_events, flap_window)
           when f.state = 'healthy' and f.flags[1] = 'zombie_suspected'
             then format('Connected, but no webhook event since %s', coalesce(f.last_event_at::text, 'it opened'))
           else f.issue end as issue,
      case when f.state = 'healthy' and cardinality(f.flags) > 0 then 'medium' else f.severity end as severity,
      f.evolution_state,
      f.details || jsonb_strip_nulls(jsonb_build_object('closeEvents', nullif(f.close_events, 0),
        'lastWebhookEventAt', f.last_event_at, 'flapPercent', nullif(f.percent, 0))) as details
    from flagged f
  ),
  upserted as (
    insert into maintenance.tenant_health as h (tenant_id, tenant_slug, state, issue_code, issue, severity,
      evolution_state, flags, details, since, last_checked_at, last_change_at, consecutive, went_down_at, last_run_id,
      server_url, live_state, live_checked_at, socket_state, socket_checked_at, flapping, flap_percent, samples)
    select f.tenant_id, f.slug, f.state, f.issue_code, f.issue, f.severity, f.evolution_state, f.flags, f.details,
      checked_at, checked_at, checked_at, 1,
      case when f.state <> 'healthy' and f.issue_code is distinct from 'evolution_unreachable' then checked_at end,
      run_id, f.server_url, f.live_state, case when f.live_state is not null then checked_at end,
      f.socket_state, case when f.socket_state is not null then checked_at end, f.flapping, f.percent, f.samples
    from final f
    on conflict (tenant_id) do update set
      tenant_slug = excluded.tenant_slug,
      state = excluded.state,
      issue_code = excluded.issue_code,
      issue = excluded.issue,
      severity = excluded.severity,
      evolution_state = excluded.evolution_state,
      flags = excluded.flags,
      details = excluded.details,
      since = case when h.state = excluded.state then h.since else excluded.since end,
      last_checked_at = excluded.last_checked_at,
      last_change_at = case
        when (h.state, h.issue_code, h.evolution_state, h.flags)
          is distinct from (excluded.state, excluded.issue_code, excluded.evolution_state, excluded.flags)
        then excluded.last_change_at else h.last_change_at end,
      consecutive = case when h.state = excluded.state then h.consecutive + 1 else 1 end,
      went_down_at = case when excluded.state = 'healthy' then null
                          when h.state = 'healthy' or h.issue_code = 'evolution_unreachable'
                            then excluded.went_down_at
                          else h.went_down_at end,
      last_run_id = excluded.last_run_id,
      server_url = excluded.server_url,
      live_state = coalesce(excluded.live_state, h.live_state),
      live_checked_at = coalesce(excluded.live_checked_at, h.live_checked_at),
      socket_state = coalesce(excluded.socket_state, h.socket_state),
      socket_checked_at = coalesce(excluded.socket_checked_at, h.socket_checked_at),
      flapping = excluded.flapping,
      flap_percent = excluded.flap_percent,
      samples = excluded.samples
    returning h.tenant_id
  ),
  history as (
    insert into maintenance.tenant_health_history (tenant_id, tenant_slug, from_state, to_state, at, issue_code,
      issue, run_id)
    select f.tenant_id, f.slug, p.state, f.state, checked_at, f.issue_code, f.issue, run_id
    from final f left join prev p on p.tenant_id = f.tenant_id
    where p.state is distinct from f.state
    returning 1
  )
  select jsonb_build_object(
    'checked', (select count(*) from final),
    'written', (select count(*) from upserted),
    'healthy', (select count(*) from final where state = 'healthy'),
    'degraded', (select count(*) from final where state = 'degraded'),
    'unhealthy', (select count(*) from final where state = 'unhealthy'),
    'changed', (select count(*) from history),
    -- went down in this run: was healthy, never seen, or unknown because Evolution was unreachable
    'wentDown', (select count(*) from final f left join prev p on p.tenant_id = f.tenant_id
                 where f.state <> 'healthy' and f.issue_code is distinct from 'evolution_unreachable'
                   and (p.state is null or p.state = 'healthy' or p.issue_code = 'evolution_unreachable')),
    'flapping', (select coalesce(jsonb_agg(slug order by slug), '[]') from final where flapping),
    'frequentDisconnections', (select coalesce(jsonb_agg(slug order by slug), '[]') from final
                 where 'frequent_disconnections' = any (flags)),
    'zombies', (select coalesce(jsonb_agg(slug order by slug), '[]') from final
                 where 'zombie_suspected' = any (flags) or issue_code = 'socket_dead'),
    'issueCount', (select count(*) from final where state <> 'healthy'),
    'issues', (select coalesce(jsonb_agg(x order by x ->> 'tenant'), '[]') from (
                 select jsonb_build_object('tenant', slug, 'state', state, 'issue', issue_code, 'message', issue,
                   'severity', severity) as x
                 from final where state <> 'healthy' order by slug limit 200) s)
  ) into summary;

  if full_run then
    delete from maintenance.tenant_health h
    where h.tenant_id not in (
      select (r ->> 'tenant_id')::uuid from jsonb_array_elements(results) r);
    get diagnostics removed = row_count;
  end if;
  return summary || jsonb_build_object('removed', removed);
end;
$$;
revoke all on function maintenance.record_tenant_health(uuid, timestamptz, jsonb, boolean)
  from public, anon, authenticated;
grant execute on function maintenance.record_tenant_health(uuid, timestamptz, jsonb, boolean) to service_role;

-- why: the remediation budget counts health-check's own repairs (self-healing) like the operators' (replaces the
-- list of 20261129004003; same signature, grants kept by create or replace).
create or replace function maintenance.remediation_budget(p_tenant_slug text, p_as_of timestamptz default now())
returns table (used integer, max_allowed integer, remaining integer, window_minutes integer,
  window_start timestamptz, resets_at timestamptz)
language sql stable security definer set search_path = '' as $$
  with s as (
    select (maintenance.setting('remediation_max_per_window') #>> '{}')::integer as max_allowed,
           (maintenance.setting('remediation_window_minutes') #>> '{}')::integer as window_minutes
  ), a as (
    select count(*)::integer as used, array_agg(x.created_at order by x.created_at) as times
    from maintenance.actions_audit x, s
    where x.tenant_slug = p_tenant_slug
      and x.action in ('fix.create_instance', 'fix.reconnect', 'reconnect.connect', 'reset.create_instance',
        'heal.restart', 'heal.reconnect')
      and x.result in ('ok', 'failed', 'rolled_back')
      and x.created_at > p_as_of - make_interval(mins => s.window_minutes)
      and x.created_at <= p_as_of
  )
  select a.used, s.max_allowed, greatest(s.max_allowed - a.used, 0), s.window_minutes,
         p_as_of - make_interval(mins => s.window_minutes),
         case when a.used >= s.max_allowed
           then a.times[a.used - s.max_allowed + 1] + make_interval(mins => s.window_minutes) end
  from a, s;
$$;
