-- Recording a webhook event: receipt (dedup), api_logs row and tenant activity in ONE statement, so the receiver
-- pays one round trip per event and a redelivery changes nothing.

-- why: the receiver's one write per accepted event. With store_log (connection.update and lifecycle events): a
-- receipt keyed by sha256(instance, event, date_time, data); only when that receipt is new, an api_logs row
-- (service 'whatsapp', event, status 'success', data = the payload's data) and the tenant's activity upsert.
-- Without store_log (qrcode.updated, message traffic): only the activity upsert. Returns false for a redelivery.
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
      (tenant_slug, last_event_at, last_event, last_state, last_state_at, events_total)
    select slug, now(), event_name, st.state, case when st.state is not null then coalesce(event_at, now()) end, 1
    from fresh, st
    where fresh.is_new
    on conflict (tenant_slug) do update set
      last_event_at = greatest(a.last_event_at, excluded.last_event_at),
      last_event = excluded.last_event,
      last_state = case
        when excluded.last_state is not null
          and (a.last_state_at is null or excluded.last_state_at >= a.last_state_at) then excluded.last_state
        else a.last_state end,
      last_state_at = case
        when excluded.last_state is not null
          and (a.last_state_at is null or excluded.last_state_at >= a.last_state_at) then excluded.last_state_at
        else a.last_state_at end,
      events_total = a.events_total + 1
    returning 1
  )
  select is_new from fresh;
$$;
revoke all on function maintenance.record_webhook_event(text, text, text, timestamptz, jsonb, boolean)
  from public, anon, authenticated;
grant execute on function maintenance.record_webhook_event(text, text, text, timestamptz, jsonb, boolean)
  to service_role;

-- why: a cross-tenant attempt: an event posted to one tenant's webhook claiming another instance.
-- Logged against the tenant whose URL was used, with what was claimed, for the isolation audit and diagnoses.
create or replace function maintenance.record_cross_tenant_attempt(
  slug text, claimed_instance text, expected_instance text, event_name text
)
returns void
language sql volatile security definer set search_path = '' as $$
  insert into public.api_logs (tenant_slug, service, event, status, error_type, data)
  values (slug, 'whatsapp', left(event_name, 100), 'error', 'cross_tenant',
    jsonb_build_object('claimedInstance', left(claimed_instance, 200), 'expectedInstance', expected_instance,
      'event', left(event_name, 100)));
$$;
revoke all on function maintenance.record_cross_tenant_attempt(text, text, text, text) from public, anon, authenticated;
grant execute on function maintenance.record_cross_tenant_attempt(text, text, text, text) to service_role;
