-- Evolution as it really is (append-only after 20261129006001): webhook times are receipt times, one tenant's
-- states are ordered by Evolution's own date_time, and an instance we deleted is known to be on its way out while
-- Evolution still lists it.

-- why: Evolution's `date_time` is its server's local wall time written with a `Z` (3 h behind UTC on the official
-- image): it can order one server's events, never be compared with our clock. last_state_at becomes the receipt
-- time; last_state_source_at keeps the date_time that orders states, so a late or retried delivery never
-- overwrites a newer state.
alter table maintenance.webhook_activity add column if not exists last_state_source_at timestamptz;
comment on column maintenance.webhook_activity.last_state_source_at is
  'Evolution''s date_time of the connection.update that set last_state (its local wall time): orders states only';

-- why: the receiver's one write per accepted event. With store_log (connection.update and lifecycle events): a
-- receipt keyed by sha256(instance, event, date_time, data); only when that receipt is new, an api_logs row
-- (service 'whatsapp', event, status 'success', data = the payload's data) and the tenant's activity upsert.
-- Without store_log (qrcode.updated, message traffic): only the activity upsert. Returns false for a redelivery.
-- Times are receipt times: Evolution's `date_time` is its server's local wall time written with a `Z` (3 h behind
-- UTC on the official image), so it only goes into the dedup key (a redelivery repeats it exactly) and orders one
-- tenant's states (last_state_source_at).
create or replace function maintenance.record_webhook_event(
  slug text, instance_name text, event_name text, event_at timestamptz, payload jsonb, store_log boolean default true
)
returns boolean
language sql volatile security definer set search_path = '' as $$
  with receipt as (
    insert into maintenance.webhook_receipts (dedup_key, tenant_slug, event)
    select sha256(convert_to(concat_ws(chr(31), instance_name, event_name,
        coalesce(extract(epoch from event_at)::text, ''), coalesce(payload::text, 'null')), 'UTF8')), slug, event_name
    where store_log
    on conflict (dedup_key) do nothing
    returning 1
  ),
  fresh as (
    select (not store_log) or exists (select 1 from receipt) as is_new
  ),
  logged as (
    insert into public.api_logs (tenant_slug, service, event, status, data)
    select slug, 'whatsapp', event_name, 'success', payload from receipt
    returning 1
  ),
  st as (
    select case when event_name = 'connection.update' then payload ->> 'state' end as state
  ),
  activity as (
    insert into maintenance.webhook_activity as a
      (tenant_slug, last_event_at, last_event, last_state, last_state_at, last_state_source_at, events_total)
    select slug, now(), event_name, st.state, case when st.state is not null then now() end,
      case when st.state is not null then coalesce(event_at, now()) end, 1
    from fresh, st
    where fresh.is_new
    on conflict (tenant_slug) do update set
      last_event_at = greatest(a.last_event_at, excluded.last_event_at),
      last_event = excluded.last_event,
      last_state = case
        when excluded.last_state is not null and (a.last_state_source_at is null
          or excluded.last_state_source_at >= a.last_state_source_at) then excluded.last_state
        else a.last_state end,
      last_state_at = case
        when excluded.last_state is not null and (a.last_state_source_at is null
          or excluded.last_state_source_at >= a.last_state_source_at) then excluded.last_state_at
        else a.last_state_at end,
      last_state_source_at = case
        when excluded.last_state is not null and (a.last_state_source_at is null
          or excluded.last_state_source_at >= a.last_state_source_at) then excluded.last_state_source_at
        else a.last_state_source_at end,
      events_total = a.events_total + 1
    returning 1
  )
  select is_new from fresh;
$$;
revoke all on function maintenance.record_webhook_event(text, text, text, timestamptz, jsonb, boolean)
  from public, anon, authenticated;
grant execute on function maintenance.record_webhook_event(text, text, text, timestamptz, jsonb, boolean)
  to service_role;

-- why: Evolution answers a delete at once but keeps the instance listed (and its name taken) until the
-- remove.instance delivery and its own DB clean-up end: seconds normally, ~20 min with a failing webhook receiver.
-- The isolation audit and the orphan clean-up read this so an instance they deleted in that window is reported as
-- being removed, not found (and deleted) again. The audited successful deletes are the source: nothing new to keep.
create or replace function maintenance.instances_being_removed(
  names text[], within interval default interval '30 minutes'
)
returns table (instance_name text, deleted_at timestamptz)
language sql stable security definer set search_path = '' as $$
  select a.before ->> 'instance', max(a.created_at)
  from maintenance.actions_audit a
  where a.action in ('isolation.delete_instance', 'orphan.delete_instance')
    and a.result = 'ok' and not a.dry_run
    and a.created_at > now() - within
    and a.before ->> 'instance' = any (names)
  group by 1;
$$;
revoke all on function maintenance.instances_being_removed(text[], interval) from public, anon, authenticated;
grant execute on function maintenance.instances_being_removed(text[], interval) to service_role;
