-- The outbox's lease covers one send (append-only after 20261202000100). Before, a drainer claimed up to 200 rows
-- under one fixed 2-minute lease and sent them one by one: with a slow channel (16 × 9 s = 144 s) the lease ran out
-- on rows it had not sent yet, a second drainer re-claimed them, and both sent them. Now a drainer claims one row of
-- a channel at a time, just before sending it, for a lease the caller sizes above the channel's worst delivery time;
-- every claim carries a token of its own, and only the holder of the row's current token may complete it.

-- why: claim_token identifies the one claim that may complete the row (null: nobody holds it); claimed_at says when
-- it was taken. A pending row with a token whose next_attempt_at has passed was left by a drainer that died mid-send.
alter table maintenance.notification_outbox add column if not exists claim_token uuid;
alter table maintenance.notification_outbox add column if not exists claimed_at timestamptz;
comment on column maintenance.notification_outbox.claim_token is
  'Token of the claim that holds the row (claim_notification); only it may complete the row (finish_notification)';
comment on column maintenance.notification_outbox.claimed_at is 'When the current or last claim took the row';

-- why: the one-row claim takes the oldest pending row of one channel; this index finds it without a sort.
create index if not exists notification_outbox_pending_channel_idx on maintenance.notification_outbox (channel, id)
  where status = 'pending';

-- why: take the next due row of one channel for one send. Attempts + 1, next_attempt_at = now() + lease (the row is
-- invisible to every other drainer until then) and a new claim_token, in one UPDATE over FOR UPDATE SKIP LOCKED: two
-- drainers never hold the same row, and a row whose lease ran out (its drainer died) is taken over with a new
-- token, which makes the old one worthless. `lease` must exceed the caller's worst time for one send.
create or replace function maintenance.claim_notification(channel text, lease interval, only_ids bigint[] default null)
returns setof maintenance.notification_outbox
language plpgsql
security definer
set search_path = ''
as $$
begin
  if lease is null or lease <= interval '0' then
    raise exception 'Cannot claim a notification as the lease must be a positive interval: current value is %',
      coalesce(lease::text, 'null') using errcode = '22023';
  end if;
  return query
    with picked as (
      select o.id from maintenance.notification_outbox o
      where o.status = 'pending' and o.channel = claim_notification.channel and o.next_attempt_at <= now()
        and (only_ids is null or o.id = any (only_ids))
      order by o.id
      for update skip locked
      limit 1
    )
    update maintenance.notification_outbox o set attempts = o.attempts + 1, next_attempt_at = now() + lease,
      claim_token = gen_random_uuid(), claimed_at = now()
    from picked where o.id = picked.id
    returning o.*;
end;
$$;
revoke all on function maintenance.claim_notification(text, interval, bigint[]) from public, anon, authenticated;
grant execute on function maintenance.claim_notification(text, interval, bigint[]) to service_role;

-- why: record the outcome of the send a claim made, only if that claim still holds the row (compare-and-set on
-- the token): sent; or retried later with exponential backoff (30 s doubling, capped at 1 h, 20 % jitter, or the
-- receiver's Retry-After); or failed for good (permanent error, or attempts used). Returns the row's new status, or
-- 'lost' when the token no longer holds it (another drainer took it over after the lease ran out, or it is done):
-- then nothing changes.
create or replace function maintenance.finish_notification(
  id bigint, token uuid, ok boolean, error text default null, retry_after interval default null,
  permanent boolean default false
)
returns text
language sql
security definer
set search_path = ''
as $$
  with done as (
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
        end,
      claim_token = null
    where o.id = finish_notification.id and o.claim_token = finish_notification.token and o.status = 'pending'
    returning o.status
  )
  select coalesce((select status from done), 'lost');
$$;
revoke all on function maintenance.finish_notification(bigint, uuid, boolean, text, interval, boolean)
  from public, anon, authenticated;
grant execute on function maintenance.finish_notification(bigint, uuid, boolean, text, interval, boolean)
  to service_role;

-- why: after a retryable failure a channel is taken to be down, and its other due rows wait for a later drain
-- instead of being tried now (no hammering): each counts the attempt, gets the failure's error and backoff (or
-- Retry-After), and is failed once its attempts are used, as a tried row would be. Rows another drainer holds are
-- not due, and locked ones are skipped, so nothing in flight is touched. At most max_rows rows.
create or replace function maintenance.defer_notifications(
  channel text, error text, retry_after interval default null, only_ids bigint[] default null,
  max_rows integer default 200
)
returns table (id bigint, status text)
language sql
security definer
set search_path = ''
as $$
  with picked as (
    select o.id from maintenance.notification_outbox o
    where o.status = 'pending' and o.channel = defer_notifications.channel and o.next_attempt_at <= now()
      and (only_ids is null or o.id = any (only_ids))
    order by o.id
    for update skip locked
    limit max_rows
  )
  update maintenance.notification_outbox o set
    attempts = o.attempts + 1,
    status = case when o.attempts + 1 >= (maintenance.setting('outbox_max_attempts') #>> '{}')::integer
                    then 'failed' else 'pending' end,
    last_error = left(error, 1000),
    next_attempt_at = now() + coalesce(retry_after,
      least(interval '30 seconds' * power(2, o.attempts), interval '1 hour') * (1 + random() * 0.2)),
    claim_token = null
  from picked where o.id = picked.id
  returning o.id, o.status;
$$;
revoke all on function maintenance.defer_notifications(text, text, interval, bigint[], integer)
  from public, anon, authenticated;
grant execute on function maintenance.defer_notifications(text, text, interval, bigint[], integer) to service_role;

-- why: the batch claim of 20261129003002, kept for callers that still use it (drainOutbox no longer does): each row
-- now also gets a claim token, so its holder can complete it with finish_notification. A batch is safe only when
-- every row of it is sent within `lease`; prefer claim_notification.
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
  update maintenance.notification_outbox o set attempts = o.attempts + 1, next_attempt_at = now() + lease,
    claim_token = gen_random_uuid(), claimed_at = now()
  from picked where o.id = picked.id
  returning o.*;
$$;

-- why: the tokenless completion of 20261129003002, kept for callers that still use it: it trusts its caller to
-- hold the row (finish_notification checks that), and now also releases the claim.
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
      end,
    claim_token = null
  where o.id = complete_notification.id
  returning o.status;
$$;
