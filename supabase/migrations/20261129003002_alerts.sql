-- Alerts with an Alertmanager-like lifecycle (fingerprint, firing → resolved, reminders at a repeat interval,
-- inhibition by platform incidents) and the outbox every notification is delivered through.

-- why: the alert rules' tunables, changeable by an operator without a deploy.
insert into maintenance.settings (key, default_value, description) values
  ('alert_repeat_interval', '"4 hours"', 'A firing alert is notified again after this long (Alertmanager repeat_interval)'),
  ('platform_incident_share', '0.5', 'More than this share of checked tenants going down in one run is one mass_disconnect incident'),
  ('platform_incident_min_tenants', '5', 'A mass_disconnect needs at least this many tenants going down in one run'),
  ('outbox_max_attempts', '20', 'Delivery attempts of one notification before it is marked failed (backoff 30 s doubling, capped at 1 h)')
on conflict (key) do update set default_value = excluded.default_value, description = excluded.description;

-- why: one row per alert occurrence. The fingerprint (kind, plus the tenant slug for tenant alerts) identifies it;
-- at most one firing row per fingerprint, resolved rows stay as history. `inhibited_by` names the platform incident
-- that explains (and silences) a tenant alert; `notified_count`/`last_notified_at` drive reminders.
create table if not exists maintenance.alerts (
  id bigint generated always as identity primary key,
  fingerprint text not null,
  kind text not null,
  scope text not null check (scope in ('platform', 'tenant')),
  tenant_id uuid references public.tenants (id) on delete set null,
  tenant_slug text,
  status text not null check (status in ('firing', 'resolved')),
  severity text not null check (severity in ('critical', 'warning')),
  summary text not null,
  labels jsonb not null default '{}'::jsonb,
  details jsonb not null default '{}'::jsonb,
  inhibited_by text,
  started_at timestamptz not null,
  last_seen_at timestamptz not null,
  last_notified_at timestamptz,
  notified_count integer not null default 0,
  resolved_at timestamptz,
  resolve_reason text,
  last_run_id uuid
);
create unique index if not exists alerts_one_firing_idx on maintenance.alerts (fingerprint) where status = 'firing';
create index if not exists alerts_tenant_firing_idx on maintenance.alerts (tenant_id) where status = 'firing';
create index if not exists alerts_started_idx on maintenance.alerts (started_at);
revoke all on maintenance.alerts from public, anon, authenticated;
grant all on maintenance.alerts to service_role;

-- why: every notification to every channel goes through here, so a channel that is down is retried on later runs
-- (backoff) and nothing is lost; the unique (dedupe_key, channel) means the same notification is never queued
-- twice, and a claim (attempts + lease in one UPDATE … SKIP LOCKED) means two drainers never send the same row.
create table if not exists maintenance.notification_outbox (
  id bigint generated always as identity primary key,
  dedupe_key text not null,
  channel text not null check (channel in ('slack', 'email', 'log')),
  alert_id bigint references maintenance.alerts (id) on delete cascade,
  kind text not null check (kind in ('firing', 'reminder', 'resolved', 'message')),
  payload jsonb not null,
  status text not null default 'pending' check (status in ('pending', 'sent', 'failed')),
  attempts integer not null default 0,
  next_attempt_at timestamptz not null default now(),
  last_error text,
  created_at timestamptz not null default now(),
  sent_at timestamptz,
  unique (dedupe_key, channel)
);
create index if not exists notification_outbox_due_idx on maintenance.notification_outbox (next_attempt_at)
  where status = 'pending';
create index if not exists notification_outbox_alert_idx on maintenance.notification_outbox (alert_id);
create index if not exists notification_outbox_created_idx on maintenance.notification_outbox (created_at);
revoke all on maintenance.notification_outbox from public, anon, authenticated;
grant all on maintenance.notification_outbox to service_role;

-- why: queue one notification on each channel, idempotently (the same dedupe_key is queued once per channel).
-- Returns the ids of the rows queued now.
create or replace function maintenance.enqueue_notification(
  dedupe_key text, payload jsonb, channels text[], alert_id bigint default null, kind text default 'message'
)
returns setof bigint
language sql
security definer
set search_path = ''
as $$
  insert into maintenance.notification_outbox (dedupe_key, channel, alert_id, kind, payload)
  select enqueue_notification.dedupe_key, c, enqueue_notification.alert_id, enqueue_notification.kind,
         enqueue_notification.payload
  from unnest(channels) c
  on conflict on constraint notification_outbox_dedupe_key_channel_key do nothing
  returning id;
$$;
revoke all on function maintenance.enqueue_notification(text, jsonb, text[], bigint, text) from public, anon, authenticated;
grant execute on function maintenance.enqueue_notification(text, jsonb, text[], bigint, text) to service_role;

-- why: take due rows for delivery. Bumping attempts and pushing next_attempt_at by a lease in the same statement
-- (FOR UPDATE SKIP LOCKED) makes a row invisible to any other drainer until it is completed or the lease runs out.
create or replace function maintenance.claim_notifications(
  channels text[], max_rows integer default 50, lease interval default interval '2 minutes', only_ids bigint[] default null
)
returns setof maintenance.notification_outbox
language sql
security definer
set search_path = ''
as $$
  with picked as (
    select o.id from maintenance.notification_outbox o
    where o.status = 'pending' and o.next_attempt_at <= now() and o.channel = any (channels)
      and (only_ids is null or o.id = any (only_ids))
    order by o.id
    for update skip locked
    limit max_rows
  )
  update maintenance.notification_outbox o set attempts = o.attempts + 1, next_attempt_at = now() + lease
  from picked where o.id = picked.id
  returning o.*;
$$;
revoke all on function maintenance.claim_notifications(text[], integer, interval, bigint[]) from public, anon, authenticated;
grant execute on function maintenance.claim_notifications(text[], integer, interval, bigint[]) to service_role;

-- why: record the outcome of one delivery attempt: sent; or retried later with exponential backoff (30 s doubling,
-- capped at 1 h, 20 % jitter, or the receiver's Retry-After); or failed for good (permanent error, or attempts used).
create or replace function maintenance.complete_notification(
  id bigint, ok boolean, error text default null, retry_after interval default null, permanent boolean default false
)
returns text
language sql
security definer
set search_path = ''
as $$
  update maintenance.notification_outbox o set
    status = case when ok then 'sent'
                  when permanent or o.attempts >= (maintenance.setting('outbox_max_attempts') #>> '{}')::integer
                    then 'failed'
                  else 'pending' end,
    sent_at = case when ok then now() else o.sent_at end,
    last_error = case when ok then o.last_error else left(error, 1000) end,
    next_attempt_at = case when ok or permanent then o.next_attempt_at
      else now() + coalesce(retry_after,
        least(interval '30 seconds' * power(2, greatest(o.attempts - 1, 0)), interval '1 hour') * (1 + random() * 0.2))
      end
  where o.id = complete_notification.id
  returning o.status;
$$;
revoke all on function maintenance.complete_notification(bigint, boolean, text, interval, boolean)
  from public, anon, authenticated;
grant execute on function maintenance.complete_notification(bigint, boolean, text, interval, boolean) to service_role;

-- why: the notification payload of an alert event (Notification shape: severity, title, text, fields).
create or replace function maintenance.alert_payload(a maintenance.alerts, event text)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select jsonb_build_object(
    'severity', case when event = 'resolved' then 'info' else a.severity end,
    'title', case event when 'firing' then '[FIRING] ' when 'reminder' then '[FIRING, still] ' else '[RESOLVED] ' end
      || a.summary,
    'text', case when event = 'resolved'
      then format('Resolved at %s after %s%s.', to_char(a.resolved_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'),
        justify_interval(date_trunc('second', a.resolved_at - a.started_at)),
        coalesce(' (' || a.resolve_reason || ')', ''))
      else coalesce(a.details ->> 'text', a.summary) || format(' Firing since %s.',
        to_char(a.started_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')) end,
    'fields', jsonb_strip_nulls(jsonb_build_object(
      'alert', a.kind, 'tenant', a.tenant_slug, 'severity', a.severity, 'fingerprint', a.fingerprint,
      'since', to_char(a.started_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"'),
      'status', case when event = 'resolved' then 'resolved' else 'firing' end)),
    'alertId', a.id, 'event', event);
$$;
revoke all on function maintenance.alert_payload(maintenance.alerts, text) from public, anon, authenticated;
grant execute on function maintenance.alert_payload(maintenance.alerts, text) to service_role;

-- why: one evaluation of the alert rules after a health-check run, set-wise. `candidates` are the platform alerts
-- the job saw firing ({fingerprint, kind, severity, summary, labels, details}); tenant alerts are derived here from
-- the tenant_health rows of this run, and a mass_disconnect incident from how many of them went down in it.
-- Options: platformKinds (kinds evaluated this run: absent ones resolve), tenantsEvaluated, massDetection, fullRun,
-- channels, repeatInterval, share, minTenants. Alerts absent from an evaluated scope resolve; platform incidents
-- inhibit the tenant alerts they explain; notifications (firing, reminder, resolved) are queued in the outbox.
create or replace function maintenance.evaluate_alerts(
  run_id uuid, evaluated_at timestamptz, candidates jsonb, options jsonb default '{}'::jsonb
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  platform_kinds text[] := coalesce(array(select jsonb_array_elements_text(options -> 'platformKinds')), '{}');
  tenants_evaluated boolean := coalesce((options ->> 'tenantsEvaluated')::boolean, false);
  mass_detection boolean := coalesce((options ->> 'massDetection')::boolean, tenants_evaluated);
  full_run boolean := coalesce((options ->> 'fullRun')::boolean, false);
  channels text[] := coalesce(array(select jsonb_array_elements_text(options -> 'channels')), '{}');
  repeat_interval interval := coalesce((options ->> 'repeatInterval')::interval,
    (maintenance.setting('alert_repeat_interval') #>> '{}')::interval);
  share numeric := coalesce((options ->> 'share')::numeric,
    (maintenance.setting('platform_incident_share') #>> '{}')::numeric);
  min_tenants integer := coalesce((options ->> 'minTenants')::integer,
    (maintenance.setting('platform_incident_min_tenants') #>> '{}')::integer);
  all_candidates jsonb := coalesce(candidates, '[]'::jsonb);
  went uuid[];
  checked integer;
  mass record;
  still_down integer;
  resolved_ids bigint[] := '{}';
  fired text[];
  result jsonb;
begin
  if jsonb_typeof(all_candidates) <> 'array' then
    raise exception 'candidates must be a jsonb array' using errcode = '22023';
  end if;
  -- one evaluation at a time (a scoped run and a scheduled run may overlap); released at commit
  perform pg_advisory_xact_lock(hashtext('maintenance.evaluate_alerts'));

  if tenants_evaluated then
    -- tenant alerts: the primary issue of each tenant checked in this run, plus its flags
    all_candidates := all_candidates || coalesce((
      select jsonb_agg(jsonb_build_object(
        'fingerprint', k.kind || ':' || h.tenant_slug, 'kind', k.kind, 'scope', 'tenant',
        'tenant_id', h.tenant_id, 'tenant_slug', h.tenant_slug,
        'severity', case when k.kind in ('instance_missing', 'check_error') or (k.is_primary and h.severity = 'high')
                      then 'critical' else 'warning' end,
        'summary', format('%s: %s', h.tenant_slug, case
          when k.is_primary then coalesce(h.issue, k.kind)
          when k.kind = 'frequent_disconnections' then 'WhatsApp disconnects repeatedly'
          when k.kind = 'zombie_suspected' then 'connected, but no webhook events arrive'
          else k.kind end),
        'labels', jsonb_build_object('tenant', h.tenant_slug, 'evolution_state', h.evolution_state),
        'details', h.details || jsonb_build_object('state', h.state)))
      from maintenance.tenant_health h
      cross join lateral (
        select h.issue_code as kind, true as is_primary where h.issue_code is not null
        union
        select f, false from unnest(h.flags) f where f is distinct from h.issue_code
      ) k
      where h.last_run_id = run_id and h.state <> 'healthy' and k.kind <> 'evolution_unreachable'
    ), '[]'::jsonb);

    if mass_detection then
      select coalesce(array_agg(h.tenant_id) filter (where h.went_down_at = evaluated_at), '{}'),
             count(*) filter (where h.evolution_state is not null or h.state <> 'healthy')
        into went, checked
      from maintenance.tenant_health h where h.last_run_id = run_id;
      select a.* into mass from maintenance.alerts a where a.fingerprint = 'mass_disconnect' and a.status = 'firing';
      if cardinality(went) >= min_tenants and cardinality(went) > share * checked then
        all_candidates := all_candidates || jsonb_build_array(jsonb_build_object(
          'fingerprint', 'mass_disconnect', 'kind', 'mass_disconnect', 'severity', 'critical',
          'summary', format('%s of %s WhatsApp tenants went down in one health-check run', cardinality(went), checked),
          'details', jsonb_build_object(
            'text', 'A platform incident (Evolution restart, WhatsApp outage, network): the per-tenant alerts it explains are silenced.',
            'wentDown', cardinality(went), 'checked', checked,
            'tenantIds', (select coalesce(jsonb_agg(distinct t), '[]') from (
              select unnest(went) as t
              union select (jsonb_array_elements_text(coalesce(mass.details -> 'tenantIds', '[]')))::uuid) s))));
      elsif mass.id is not null then
        -- an incident in progress stays firing while enough of the tenants it explains are still down
        select count(*) into still_down from maintenance.tenant_health h
        where h.tenant_id in (select (jsonb_array_elements_text(mass.details -> 'tenantIds'))::uuid)
          and h.state <> 'healthy';
        if still_down >= min_tenants and still_down > share * jsonb_array_length(mass.details -> 'tenantIds') then
          all_candidates := all_candidates || jsonb_build_array(jsonb_build_object(
            'fingerprint', 'mass_disconnect', 'kind', 'mass_disconnect', 'severity', 'critical',
            'summary', mass.summary, 'details', mass.details || jsonb_build_object('stillDown', still_down)));
        end if;
      end if;
      platform_kinds := platform_kinds || array['mass_disconnect'];
    end if;
  end if;

  -- 1. upsert what fires now
  with c as (
    select x ->> 'fingerprint' as fingerprint, x ->> 'kind' as kind,
           coalesce(x ->> 'scope', case when x ? 'tenant_id' then 'tenant' else 'platform' end) as scope,
           (x ->> 'tenant_id')::uuid as tenant_id, x ->> 'tenant_slug' as tenant_slug,
           x ->> 'severity' as severity, x ->> 'summary' as summary,
           coalesce(x -> 'labels', '{}'::jsonb) as labels, coalesce(x -> 'details', '{}'::jsonb) as details
    from jsonb_array_elements(all_candidates) x
  ), ins as (
    insert into maintenance.alerts as a (fingerprint, kind, scope, tenant_id, tenant_slug, status, severity, summary,
      labels, details, started_at, last_seen_at, last_run_id)
    select c.fingerprint, c.kind, c.scope, c.tenant_id, c.tenant_slug, 'firing', c.severity, c.summary, c.labels,
      c.details, evaluated_at, evaluated_at, run_id
    from c
    on conflict (fingerprint) where status = 'firing' do update set
      severity = excluded.severity, summary = excluded.summary, labels = excluded.labels, details = excluded.details,
      last_seen_at = excluded.last_seen_at, last_run_id = excluded.last_run_id
    returning a.fingerprint, a.started_at
  )
  select coalesce(array_agg(fingerprint) filter (where started_at = evaluated_at), '{}') into fired from ins;

  -- 2. resolve what no longer fires, within the scope evaluated now
  with r as (
    update maintenance.alerts a set status = 'resolved', resolved_at = evaluated_at, last_run_id = run_id,
      resolve_reason = case
        when a.scope = 'tenant' and (a.tenant_id is null or not exists (
          select 1 from public.tenants t where t.id = a.tenant_id and coalesce(t.is_active, true)))
          then 'tenant removed or deactivated'
        else null end
    where a.status = 'firing'
      and not exists (select 1 from jsonb_array_elements(all_candidates) x where x ->> 'fingerprint' = a.fingerprint)
      and (
        (a.scope = 'platform' and a.kind = any (platform_kinds))
        or (a.scope = 'tenant' and tenants_evaluated and exists (
          select 1 from maintenance.tenant_health h where h.tenant_id = a.tenant_id and h.last_run_id = run_id))
        or (a.scope = 'tenant' and full_run and (a.tenant_id is null or not exists (
          select 1 from public.tenants t where t.id = a.tenant_id and coalesce(t.is_active, true))))
      )
    returning a.id
  )
  select coalesce(array_agg(id), '{}') into resolved_ids from r;

  -- 3. inhibition: a platform incident silences the tenant alerts it explains
  update maintenance.alerts a set inhibited_by = i.inhibitor
  from (
    select t.id, case
      when exists (select 1 from maintenance.alerts p where p.status = 'firing'
                   and p.fingerprint in ('evolution_down', 'database_down')) then
        (select min(p.fingerprint) from maintenance.alerts p where p.status = 'firing'
           and p.fingerprint in ('evolution_down', 'database_down'))
      when exists (select 1 from maintenance.alerts p where p.status = 'firing' and p.fingerprint = 'mass_disconnect'
                   and p.details -> 'tenantIds' ? t.tenant_id::text) then 'mass_disconnect'
      end as inhibitor
    from maintenance.alerts t where t.status = 'firing' and t.scope = 'tenant'
  ) i
  where a.id = i.id and a.inhibited_by is distinct from i.inhibitor;

  -- 4. notifications: first firing, reminders after the repeat interval, one resolved (only if firing was sent)
  with due as (
    select a.id, case when a.notified_count = 0 then 'firing' else 'reminder' end as event
    from maintenance.alerts a
    where a.status = 'firing' and a.inhibited_by is null
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
    'firing', (select count(*) from maintenance.alerts a where a.status = 'firing'),
    'inhibited', (select count(*) from maintenance.alerts a where a.status = 'firing' and a.inhibited_by is not null),
    'platform', (select coalesce(jsonb_agg(a.fingerprint order by a.fingerprint), '[]') from maintenance.alerts a
                 where a.status = 'firing' and a.scope = 'platform'));
end;
$$;
revoke all on function maintenance.evaluate_alerts(uuid, timestamptz, jsonb, jsonb) from public, anon, authenticated;
grant execute on function maintenance.evaluate_alerts(uuid, timestamptz, jsonb, jsonb) to service_role;
