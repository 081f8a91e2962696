-- Connection drops: one rule for "disconnections", and cross-tenant attempts that never count as a tenant's
-- connection state (append-only after 20261202006100; it replaces 20261202001000's record_tenant_health).
--
-- Evolution sends `connection.update` `close` only for a terminal reason (a logout, a ban: docs/EVOLUTION.md
-- section 11). A transient drop reconnects at once and shows `connecting` then `open`, with no `close`. Counting
-- closes therefore missed every transient drop and counted only logouts. A drop is now a connection that was open
-- and stopped being open: the first `connecting` or `close` after an `open`.
--
-- A cross-tenant attempt (an event posted to one tenant's URL claiming another tenant's instance) was stored
-- under the event name it claimed, so a rejected `connection.update` looked like one of the tenant's states to
-- every reader: the purge kept it as the tenant's latest state (and deleted the real one), the rules counted it.
-- It is now stored as event 'cross_tenant_attempt' with the claimed event in data.event, and the rows stored the
-- old way are moved to that name here.

-- why: the one rule for disconnections (diagnose, the weekly report, health-check's frequent_disconnections). For each
-- tenant of `slugs` (one row each, zeros when nothing happened), over the window (since, until]:
--   drops         connection.update events with state connecting or close whose previous state of that tenant
--                 (its last connection.update before it, by created_at then id, looked up before `since` too) was
--                 open: open → connecting → open is one drop, open → connecting → close is still one; a tenant
--                 never seen open has no drop;
--   closes        the terminal closes (state close), whatever came before;
--   last_drop_at  the last drop;
--   reasons       statusReason → count over the drops ('unknown' when absent; a transient drop says 200, as
--                 Evolution's connecting does, a logout 401);
--   events        the tenant's connection.update events.
-- A connection.update row is service 'whatsapp', event 'connection.update' (the receiver's spelling), not an error
-- row; its state is data.state (or data.data.state, a whole envelope stored as data). Rows without a state count
-- in events only. Per tenant, one range of api_logs_connection_update_idx over the window and, when the tenant
-- has events in it, one backward probe for the state before it.
create or replace function maintenance.connection_drops(slugs text[], since timestamptz, until timestamptz)
returns table (tenant_slug text, drops integer, closes integer, last_drop_at timestamptz, reasons jsonb, events integer)
language plpgsql stable security definer set search_path = '' as $$
begin
  if slugs is null or since is null or until is null or since > until then
    raise exception 'connection_drops needs slugs and since <= until: got % slugs, % and %',
      cardinality(slugs), since, until using errcode = '22023';
  end if;
  return query
  with scope as (
    select distinct s.slug from unnest(slugs) as s(slug) where s.slug is not null
  ),
  -- each tenant's rows of the window through the partial index (tenant_slug, created_at, id): its own rows only,
  -- however many other rows the window holds (a scan of the window by created_at walks every service's rows)
  win as materialized (
    select s.slug as tenant_slug, l.created_at, l.id,
      coalesce(l.data ->> 'state', l.data #>> '{data,state}') as state,
      coalesce(l.data ->> 'statusReason', l.data #>> '{data,statusReason}') as reason
    from scope s
    cross join lateral (
      select x.created_at, x.id, x.data from public.api_logs x
      where x.service = 'whatsapp' and x.event = 'connection.update' and x.status is distinct from 'error'
        and x.tenant_slug = s.slug and x.created_at > since and x.created_at <= until) l
  ),
  per_events as (
    select w.tenant_slug, count(*)::integer as n from win w group by w.tenant_slug
  ),
  prior as (
    -- the state before the window, only for the tenants that have events in it (no event: no drop to judge)
    select t.tenant_slug, p.created_at, p.id, p.state
    from per_events t
    cross join lateral (
      select l.created_at, l.id, coalesce(l.data ->> 'state', l.data #>> '{data,state}') as state
      from public.api_logs l
      where l.service = 'whatsapp' and l.event = 'connection.update' and l.status is distinct from 'error'
        and l.tenant_slug = t.tenant_slug and l.created_at <= since
        and coalesce(l.data ->> 'state', l.data #>> '{data,state}') is not null
      order by l.created_at desc, l.id desc
      limit 1) p
  ),
  marked as (
    select t.tenant_slug, t.created_at, t.reason, t.state, t.in_window,
      t.in_window and t.state in ('connecting', 'close')
        and lag(t.state) over (partition by t.tenant_slug collate "C" order by t.created_at, t.id) = 'open' as is_drop
    from (
      select p.tenant_slug, p.created_at, p.id, p.state, null::text as reason, false as in_window from prior p
      union all
      select w.tenant_slug, w.created_at, w.id, w.state, w.reason, true from win w where w.state is not null
    ) t
  ),
  -- one pass over the marked rows: per tenant and reason, then per tenant
  per_reason as (
    select m.tenant_slug, coalesce(m.reason, 'unknown') as reason,
      count(*) filter (where m.is_drop)::integer as drops,
      count(*) filter (where m.in_window and m.state = 'close')::integer as closes,
      max(m.created_at) filter (where m.is_drop) as last_drop_at
    from marked m
    group by 1, 2
  ),
  per_tenant as (
    select r.tenant_slug, sum(r.drops)::integer as drops, sum(r.closes)::integer as closes,
      max(r.last_drop_at) as last_drop_at,
      jsonb_object_agg(r.reason, r.drops order by r.reason) filter (where r.drops > 0) as reasons
    from per_reason r
    group by r.tenant_slug
  )
  select s.slug, coalesce(a.drops, 0), coalesce(a.closes, 0), a.last_drop_at, coalesce(a.reasons, '{}'::jsonb),
    coalesce(e.n, 0)
  from scope s
  left join per_tenant a on a.tenant_slug = s.slug
  left join per_events e on e.tenant_slug = s.slug
  order by s.slug;
end;
$$;
revoke all on function maintenance.connection_drops(text[], timestamptz, timestamptz) from public, anon, authenticated;
grant execute on function maintenance.connection_drops(text[], timestamptz, timestamptz) to service_role;

-- why: diagnose's disconnection figures for one tenant over (p_as_of - p_window, p_as_of], from
-- maintenance.connection_drops. The columns keep their names: `closes` now counts the drops (a transient drop
-- sends no close), `last_close_at` is the last drop, `reasons` the drops' statusReason counts; `terminal_closes`
-- is new: the window's state-close events (logouts, bans), after an open or not. More than 3 drops in 2 h is a
-- pattern.
-- Dropped and created again because its result gains a column (create or replace cannot change a result type).
drop function if exists maintenance.tenant_disconnections(text, interval, timestamptz);
create function maintenance.tenant_disconnections(
  p_tenant_slug text, p_window interval default '2 hours', p_as_of timestamptz default now()
)
returns table (closes integer, last_close_at timestamptz, reasons jsonb, events integer, terminal_closes integer)
language sql stable security definer set search_path = '' as $$
  select d.drops, d.last_drop_at, d.reasons, d.events, d.closes
  from maintenance.connection_drops(array[p_tenant_slug], p_as_of - p_window, p_as_of) d;
$$;
revoke all on function maintenance.tenant_disconnections(text, interval, timestamptz) from public, anon, authenticated;
grant execute on function maintenance.tenant_disconnections(text, interval, timestamptz) to service_role;

-- why: health-check's frequent_disconnections rule counts drops (replaces 20261202001000's record_tenant_health,
-- which counted connection.update close events: only terminal closes, so a reconnect loop never fired it). More
-- than flap_threshold drops in flap_window, by maintenance.connection_drops, read once per run for every tenant
-- checked; the issue says how many times WhatsApp dropped its connection and details.drops carries the count
-- (details.closeEvents before). Everything else is 20261202001000's function as it was.
insert into maintenance.settings (key, default_value, description) values
  ('flap_threshold', '3',
   'More than this many connection drops (an open connection going connecting or close) within flap_window = frequent_disconnections')
on conflict (key) do update set default_value = excluded.default_value, description = excluded.description;
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
  -- the drops in the flap window (maintenance.connection_drops: an open connection going connecting or close;
  -- a transient drop sends no close, only connecting then open)
  drops as (
    select d.tenant_slug, d.drops as n
    from maintenance.connection_drops(slugs, checked_at - flap_window, checked_at) d
    where d.drops > 0
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
      -- the same bound as a constant, so the index range is the window, not every connection.update ever stored
      and l.created_at > checked_at - flap_window
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
    select i.*, coalesce(c.n, 0) as drop_events, a.last_event_at, fl.samples, fl.percent, fl.flapping,
      array_remove(array[
        case when fl.flapping then 'flapping' end,
        case when coalesce(c.n, 0) > flap_threshold then 'frequent_disconnections' end
      ], null) || i.job_flags as flags
    from input i
    join flap fl on fl.tenant_id = i.tenant_id
    left join drops c on c.tenant_slug = i.slug
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
             then format('WhatsApp dropped its connection %s times in %s', f.drop_events, flap_window)
           when f.state = 'healthy' and f.flags[1] = 'zombie_suspected'
             then format('Connected, but no webhook event since %s', coalesce(f.last_event_at::text, 'it opened'))
           else f.issue end as issue,
      case when f.state = 'healthy' and cardinality(f.flags) > 0 then 'medium' else f.severity end as severity,
      f.evolution_state,
      f.details || jsonb_strip_nulls(jsonb_build_object('drops', nullif(f.drop_events, 0),
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

-- why: a cross-tenant attempt: an event posted to one tenant's webhook claiming another instance. Logged against
-- the tenant whose URL was used, under its own event name 'cross_tenant_attempt' (the claimed event is in
-- data.event), so no reader of the tenant's connection.update rows ever takes it for one of its states; read by
-- the isolation audit and the dashboard through maintenance.cross_tenant_attempts.
create or replace function maintenance.record_cross_tenant_attempt(
  slug text, claimed_instance text, expected_instance text, event_name text
)
returns void
language sql volatile security definer set search_path = '' as $$
  insert into public.api_logs (tenant_slug, service, event, status, error_type, data)
  values (slug, 'whatsapp', 'cross_tenant_attempt', 'error', 'cross_tenant',
    jsonb_build_object('claimedInstance', left(claimed_instance, 200), 'expectedInstance', expected_instance,
      'event', left(event_name, 100)));
$$;
revoke all on function maintenance.record_cross_tenant_attempt(text, text, text, text) from public, anon, authenticated;
grant execute on function maintenance.record_cross_tenant_attempt(text, text, text, text) to service_role;

-- The attempts stored before this migration, under the event they claimed: moved to the new name, the claimed
-- event kept in data.event (they already carry it there; a row that does not gets it from its event column). One
-- pass over api_logs (error_type has no index); a second run finds nothing to change.
update public.api_logs l
set event = 'cross_tenant_attempt',
  data = case when jsonb_typeof(l.data) = 'object' then l.data
              else jsonb_strip_nulls(jsonb_build_object('data', l.data)) end
    || jsonb_build_object('event', coalesce(l.data ->> 'event', l.event))
where l.error_type = 'cross_tenant' and l.event is distinct from 'cross_tenant_attempt';

-- why: per tenant, the cross-tenant attempts of the last p_window not yet acknowledged (see
-- 20261129004005_isolation_cross_tenant.sql). Every row with error_type 'cross_tenant' counts, whatever its event
-- column says; the sample's `event` is the event the attempt claimed (data.event), as before the rename.
create or replace function maintenance.cross_tenant_attempts(
  p_window interval default '24 hours', p_as_of timestamptz default now()
)
returns table (tenant_slug text, attempts bigint, first_at timestamptz, last_at timestamptz, acknowledged_until timestamptz,
  sample jsonb)
language sql stable security definer set search_path = '' as $$
  with ack as (
    select a.tenant_slug, max((a.after ->> 'until')::timestamptz) as until
    from maintenance.actions_audit a
    where a.action = 'isolation.acknowledge_cross_tenant' and a.result = 'ok'
    group by a.tenant_slug
  )
  select l.tenant_slug, count(*), min(l.created_at), max(l.created_at), max(ack.until),
    (array_agg(jsonb_strip_nulls(jsonb_build_object('at', l.created_at,
        'event', case when l.event = 'cross_tenant_attempt' then coalesce(l.data ->> 'event', l.event) else l.event end,
        'data', l.data))
      order by l.created_at desc))[1]
  from public.api_logs l
  left join ack on ack.tenant_slug is not distinct from l.tenant_slug
  where l.error_type = 'cross_tenant'
    and l.created_at > p_as_of - p_window
    and l.created_at <= p_as_of
    and (ack.until is null or l.created_at > ack.until)
  group by l.tenant_slug
  order by count(*) desc, l.tenant_slug;
$$;
revoke all on function maintenance.cross_tenant_attempts(interval, timestamptz) from public, anon, authenticated;
grant execute on function maintenance.cross_tenant_attempts(interval, timestamptz) to service_role;

-- why: the purge's rule (see 20261129002001_retention.sql), with error rows left out of "the tenant's latest
-- connection.update": a rejected event is never the state the purge keeps, so it cannot push the real latest state
-- out. The error rows themselves expire like any other row.
create or replace view maintenance.api_logs_purgeable with (security_invoker = true) as
select s.ctid as row_ctid, s.created_at
from public.api_logs s
where not (s.service = 'whatsapp' and s.event = 'connection.update' and s.tenant_slug is not null
  and s.status is distinct from 'error'
  and not exists (
    select 1 from public.api_logs n
    where n.service = 'whatsapp' and n.event = 'connection.update' and n.tenant_slug = s.tenant_slug
      and n.status is distinct from 'error'
      and (n.created_at, n.id) > (s.created_at, s.id)));
revoke all on maintenance.api_logs_purgeable from public, anon, authenticated;

-- why: per-tenant uptime over [since, until) (see 20261129002002_reports.sql), its states read from the tenant's
-- connection.update rows that are not error rows. A tenant known to be down for the whole period is 0 % (it was
-- null, as if nothing were known, and so left out of averageUptime); null stays for "nothing known".
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
    where l.service = 'whatsapp' and l.event = 'connection.update' and l.status is distinct from 'error'
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
        where l.service = 'whatsapp' and l.event = 'connection.update' and l.status is distinct from 'error'
          and l.tenant_slug = s.slug and l.created_at < since and l.data ->> 'state' is not null
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
    round(100 * coalesce(sum(sg.seconds) filter (where sg.state = 'open'), 0)
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

-- why: the seed's generateUsageReport (see 20261129002002_reports.sql) with disconnections counted right:
-- totalDisconnections is the period's drops (maintenance.connection_drops: an open connection that went
-- connecting or close), no longer its close events; totalCloses is new and counts those close events (terminal
-- closes: logouts, bans), the figure totalDisconnections used to be. connection_drops' window is (since, until];
-- the report's period is [since, until), so it is called one microsecond earlier on both ends (timestamptz counts
-- whole microseconds: the two windows hold exactly the same rows). Error rows (cross-tenant attempts stored the old
-- way) are not connection.update events of the tenant.
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
  with conn as materialized (
    select l.tenant_slug, l.data ->> 'state' as state
    from public.api_logs l
    where l.service = 'whatsapp' and l.event = 'connection.update' and l.status is distinct from 'error'
      and l.created_at >= since and l.created_at < until
  ),
  drops as (
    select coalesce(sum(d.drops), 0) as drops, coalesce(sum(d.closes), 0) as closes
    from maintenance.connection_drops(
      coalesce((select array_agg(distinct conn.tenant_slug) from conn where conn.tenant_slug is not null), '{}'),
      since - interval '1 microsecond', until - interval '1 microsecond') d
  ),
  up as (select * from maintenance.tenant_uptime(since, until))
  select jsonb_build_object(
    'period', jsonb_build_object('days', days, 'since', since, 'until', until),
    'totalTenants', (select count(*) from public.tenants t where t.is_active),
    'activeIntegrations', (select count(*) from public.tenant_integrations ti
      where ti.integration_type = 'whatsapp' and ti.is_active),
    'totalConnections', (select count(*) from conn where conn.state = 'open'),
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
      from (select conn.tenant_slug, count(*) as n from conn where conn.tenant_slug is not null
            group by conn.tenant_slug order by n desc, conn.tenant_slug limit top_n) a), '[]'::jsonb)
  ) into result;
  return result;
end;
$$;
