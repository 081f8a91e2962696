-- Tenant-facing notices (issue 19, item 3): when a tenant's number needs its owner (logged out and waiting for a QR
-- scan or a pairing code, the QR code limit reached, the number banned or blocked by WhatsApp), the application
-- webhooks get one `tenant_action_required` for that tenant, and one `tenant_action_done` once the number is paired
-- (open) again. An episode is a row of maintenance.tenant_notices, opened and closed by a trigger on
-- maintenance.tenant_health (so in the very statement that records the state) and queued on the application
-- webhook channels with a dedupe key made of the episode's id: a retry, a second run or a redelivery cannot
-- duplicate it, and a new episode starts only after the number was open again.

-- why: the outbox's rows of the two notice events are kinds of their own (the webhook body's `type`).
alter table maintenance.notification_outbox drop constraint if exists notification_outbox_kind_check;
alter table maintenance.notification_outbox add constraint notification_outbox_kind_check
  check (kind in ('firing', 'reminder', 'resolved', 'message', 'job', 'tenant_action_required', 'tenant_action_done'));

-- why: what a tenant_health row says its owner must do, from the facts the health check recorded (issue_code, the
-- state Evolution gave, the listing's stored status and reason, the last connection.update): 'logged_out' (a
-- terminal close: 401, and 402/406 on 2.3.x), 'banned' (403, forbidden: banned or blocked by WhatsApp, stored
-- close), 'qr_limit' (the QR code limit: a `refused` connection.update, or the stored status left `connecting`
-- while the socket is closed, contract §5.2), 'pairing_pending' (a socket showing QR codes, waiting for a scan or a
-- pairing code); null when nothing is asked of the owner (open, an unreachable server, a missing instance, a
-- transient drop of a paired number).
create or replace function maintenance.tenant_action_reason(issue_code text, evolution_state text, details jsonb)
returns text
language sql
immutable
set search_path = ''
as $$
  select case
    when evolution_state is not distinct from 'open' then null
    when issue_code = 'logged_out' then 'logged_out'
    when issue_code is distinct from 'instance_disconnected' then null
    when details ->> 'listed' = 'close' and details ->> 'reason' = '403' then 'banned'
    when details ->> 'listed' = 'close' and details ->> 'reason' in ('401', '402', '406') then 'logged_out'
    when details ->> 'webhook' = 'refused'
      or (details ->> 'listed' = 'connecting' and evolution_state = 'close') then 'qr_limit'
    when details ->> 'listed' = 'connecting' and evolution_state = 'connecting' then 'pairing_pending'
  end;
$$;
revoke all on function maintenance.tenant_action_reason(text, text, jsonb) from public, anon, authenticated;
grant execute on function maintenance.tenant_action_reason(text, text, jsonb) to service_role;

-- why: one row per episode of a tenant's number needing its owner: opened when the health check first records a
-- reason, closed when it records the number open again; `id` is the events' stable id. At most one open episode
-- per tenant. *_queued_at: when the event was queued on the application webhooks (null: not yet, or never: an
-- episode closed before any webhook was configured is not told).
create table if not exists maintenance.tenant_notices (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  tenant_slug text not null,
  reason text not null check (reason in ('logged_out', 'banned', 'qr_limit', 'pairing_pending')),
  last_reason text not null check (last_reason in ('logged_out', 'banned', 'qr_limit', 'pairing_pending')),
  opened_at timestamptz not null,
  opened_run_id uuid,
  last_seen_at timestamptz not null,
  closed_at timestamptz,
  closed_run_id uuid,
  required_queued_at timestamptz,
  done_queued_at timestamptz,
  check (closed_at is null or closed_at >= opened_at)
);
create unique index if not exists tenant_notices_one_open_idx on maintenance.tenant_notices (tenant_id)
  where closed_at is null;
create index if not exists tenant_notices_unqueued_idx on maintenance.tenant_notices (opened_at)
  where required_queued_at is null or (closed_at is not null and done_queued_at is null);
revoke all on maintenance.tenant_notices from public, anon, authenticated;
grant all on maintenance.tenant_notices to service_role;

-- why: the episode bookkeeping, in the statement that writes tenant_health: a reason opens the tenant's episode (or
-- notes the latest reason of the open one), the number open again closes it. Row-level, and only for rows the
-- WHEN clauses of the triggers below let through (a reason now, or a change to open).
create or replace function maintenance.tenant_notice_track()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  why text := maintenance.tenant_action_reason(new.issue_code, new.evolution_state, new.details);
begin
  if why is not null then
    insert into maintenance.tenant_notices as n (tenant_id, tenant_slug, reason, last_reason, opened_at,
      opened_run_id, last_seen_at)
    values (new.tenant_id, new.tenant_slug, why, why, new.last_checked_at, new.last_run_id, new.last_checked_at)
    on conflict (tenant_id) where closed_at is null do update
      set last_reason = excluded.last_reason, last_seen_at = excluded.last_seen_at, tenant_slug = excluded.tenant_slug;
  elsif new.evolution_state = 'open' then
    update maintenance.tenant_notices
    set closed_at = greatest(new.last_checked_at, opened_at), closed_run_id = new.last_run_id
    where tenant_id = new.tenant_id and closed_at is null;
  end if;
  return null;
end;
$$;
revoke all on function maintenance.tenant_notice_track() from public, anon, authenticated;

drop trigger if exists tenant_notice_on_insert on maintenance.tenant_health;
create trigger tenant_notice_on_insert
  after insert on maintenance.tenant_health
  for each row
  when (maintenance.tenant_action_reason(new.issue_code, new.evolution_state, new.details) is not null)
  execute function maintenance.tenant_notice_track();

drop trigger if exists tenant_notice_on_update on maintenance.tenant_health;
create trigger tenant_notice_on_update
  after update on maintenance.tenant_health
  for each row
  when (maintenance.tenant_action_reason(new.issue_code, new.evolution_state, new.details) is not null
    or (new.evolution_state = 'open' and old.evolution_state is distinct from 'open'))
  execute function maintenance.tenant_notice_track();

-- why: what the owner is told to do, per reason (the payload's `actions` and `message`).
create or replace function maintenance.tenant_action_advice(reason text)
returns jsonb
language sql
immutable
set search_path = ''
as $$
  select case reason
    when 'logged_out' then jsonb_build_object(
      'actions', jsonb_build_array('scan_qr_code', 'request_pairing_code'),
      'message', 'Your WhatsApp number was disconnected (logged out). Reconnect it: scan the QR code with WhatsApp '
        || '(Settings > Linked devices > Link a device), or request a pairing code and enter it on the phone.')
    when 'pairing_pending' then jsonb_build_object(
      'actions', jsonb_build_array('scan_qr_code', 'request_pairing_code'),
      'message', 'Your WhatsApp number is waiting to be paired: scan the QR code with WhatsApp (Settings > Linked '
        || 'devices > Link a device), or request a pairing code and enter it on the phone.')
    when 'qr_limit' then jsonb_build_object(
      'actions', jsonb_build_array('request_new_qr_code', 'request_pairing_code'),
      'message', 'The QR codes expired without being scanned (the limit was reached). Request a new QR code, or a '
        || 'pairing code, and complete it on the phone right away.')
    when 'banned' then jsonb_build_object(
      'actions', jsonb_build_array('check_number_in_whatsapp', 'contact_support'),
      'message', 'WhatsApp blocked this number (403, banned or restricted). It cannot be reconnected from here: '
        || 'check the number in the WhatsApp app, appeal to WhatsApp or use another number, then pair it again.')
  end;
$$;
revoke all on function maintenance.tenant_action_advice(text) from public, anon, authenticated;
grant execute on function maintenance.tenant_action_advice(text) to service_role;

-- why: the payload of one notice event, built from the episode row alone: that tenant's id and slug, the reason
-- and what to do (required), when it started and ended (done). No instance name, server, key or token.
create or replace function maintenance.tenant_notice_payload(n maintenance.tenant_notices, event text)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select jsonb_build_object(
    'episodeId', n.id,
    'tenant', jsonb_build_object('id', n.tenant_id, 'slug', n.tenant_slug),
    'reason', n.reason,
    'since', n.opened_at)
    || case when event = 'tenant_action_required' then maintenance.tenant_action_advice(n.reason)
       else jsonb_build_object('doneAt', n.closed_at, 'lastReason', n.last_reason) end;
$$;
revoke all on function maintenance.tenant_notice_payload(maintenance.tenant_notices, text)
  from public, anon, authenticated;
grant execute on function maintenance.tenant_notice_payload(maintenance.tenant_notices, text) to service_role;

-- why: queue the episodes' events on the application webhook channels given (the others are ignored: a tenant's
-- notice is for the application only), once per episode, event and channel (dedupe key
-- `tenant_action_required:<episode>` / `tenant_action_done:<episode>`). A `done` follows only a `required` that was
-- queued; an episode that closed before it could be told is marked told-nothing (both null, never queued later).
-- Called by each health-check run after it recorded the health; without webhook channels it changes nothing.
create or replace function maintenance.queue_tenant_notices(channels text[])
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  hooks text[] := array(select distinct c from unnest(channels) c where c ~ '^webhook:[0-9a-f]{8}$' order by 1);
  n maintenance.tenant_notices;
  required integer := 0;
  done integer := 0;
begin
  if cardinality(hooks) = 0 then
    return jsonb_build_object('required', 0, 'done', 0);
  end if;
  for n in
    select * from maintenance.tenant_notices
    where required_queued_at is null and closed_at is null
    order by opened_at
    for update skip locked
  loop
    perform maintenance.enqueue_notification('tenant_action_required:' || n.id,
      maintenance.tenant_notice_payload(n, 'tenant_action_required'), hooks, null, 'tenant_action_required');
    update maintenance.tenant_notices set required_queued_at = now() where id = n.id;
    required := required + 1;
  end loop;
  for n in
    select * from maintenance.tenant_notices
    where closed_at is not null and required_queued_at is not null and done_queued_at is null
    order by closed_at
    for update skip locked
  loop
    perform maintenance.enqueue_notification('tenant_action_done:' || n.id,
      maintenance.tenant_notice_payload(n, 'tenant_action_done'), hooks, null, 'tenant_action_done');
    update maintenance.tenant_notices set done_queued_at = now() where id = n.id;
    done := done + 1;
  end loop;
  return jsonb_build_object('required', required, 'done', done);
end;
$$;
revoke all on function maintenance.queue_tenant_notices(text[]) from public, anon, authenticated;
grant execute on function maintenance.queue_tenant_notices(text[]) to service_role;
