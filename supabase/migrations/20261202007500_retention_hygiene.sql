-- Nothing that grows forever (issue 17): resolved alerts, finished and dead outbox rows, and cross-tenant attempts
-- each get a retention policy that cleanup-logs applies. Append-only after 20261202006200.

-- why: how long each kind of record is kept, changeable without a deploy.
insert into maintenance.settings (key, default_value, description) values
  ('cross_tenant_collapse_after', '"24 hours"',
   'Cross-tenant attempts older than this are folded into one row per tenant, claimed instance and hour '
   || '(maintenance.cross_tenant_hourly) by cleanup-logs. 24 h: the isolation audit''s window keeps every attempt '
   || 'as it came; after that the count per hour is what an investigation needs, and a flood of forged events '
   || 'costs one row an hour instead of one row per event'),
  ('outbox_pending_expiry', '"30 days"',
   'A notification still pending this long after it was queued will never be sent (its channel is no longer '
   || 'configured, or nothing drains it): it becomes purgeable as if it had failed')
on conflict (key) do update set default_value = excluded.default_value, description = excluded.description;

-- why: the hourly record of cross-tenant attempts after the collapse. One row per (tenant whose URL was used,
-- instance it claimed, hour); `attempts` the events folded into it, `events` how many of each claimed event.
create table if not exists maintenance.cross_tenant_hourly (
  tenant_slug text not null,
  claimed_instance text not null,
  hour timestamptz not null,
  expected_instance text,
  attempts bigint not null check (attempts > 0),
  first_at timestamptz not null,
  last_at timestamptz not null,
  events jsonb not null default '{}'::jsonb,
  primary key (tenant_slug, claimed_instance, hour)
);
create index if not exists cross_tenant_hourly_hour_idx on maintenance.cross_tenant_hourly (hour);
revoke all on maintenance.cross_tenant_hourly from public, anon, authenticated;
grant all on maintenance.cross_tenant_hourly to service_role;

-- why: the collapse finds the old attempts without scanning the product's traffic (they are rare: a partial index)
create index if not exists api_logs_cross_tenant_idx on public.api_logs (created_at) where error_type = 'cross_tenant';

-- why: `a` + `b`, key by key, as counts (the events of two folds of the same hour)
create or replace function maintenance.add_counts(a jsonb, b jsonb)
returns jsonb language sql immutable set search_path = '' as $$
  select coalesce(jsonb_object_agg(k, coalesce((a ->> k)::bigint, 0) + coalesce((b ->> k)::bigint, 0)), '{}'::jsonb)
  from (select jsonb_object_keys(coalesce(a, '{}'::jsonb) || coalesce(b, '{}'::jsonb)) as k) s;
$$;

-- why: one batch of the collapse (or, with dry_run, how many rows would be folded). The oldest cross-tenant rows
-- before `cutoff` are deleted from api_logs and added to their hour's row in one statement, so a batch is either
-- folded whole or not at all, and two cleanup runs at once never fold a row twice (skip locked). Returns the rows
-- folded (dry run: the rows that would be).
create or replace function maintenance.collapse_cross_tenant_batch(
  cutoff timestamptz, batch_size integer default 10000, dry_run boolean default false
)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  n bigint;
begin
  if batch_size is null or batch_size < 1 or batch_size > 100000 then
    raise exception 'batch_size must be between 1 and 100000: got %', batch_size using errcode = '22023';
  end if;
  if dry_run then
    select count(*) into n from public.api_logs l where l.error_type = 'cross_tenant' and l.created_at < cutoff;
    return n;
  end if;
  with picked as (
    select l.id from public.api_logs l
    where l.error_type = 'cross_tenant' and l.created_at < cutoff
    order by l.created_at
    limit batch_size
    for update skip locked
  ),
  gone as (
    delete from public.api_logs l using picked p where l.id = p.id
    returning coalesce(l.tenant_slug, '(none)') as tenant_slug,
      left(coalesce(l.data ->> 'claimedInstance', '(unknown)'), 200) as claimed_instance,
      l.data ->> 'expectedInstance' as expected_instance,
      date_trunc('hour', l.created_at) as hour, l.created_at,
      left(coalesce(l.data ->> 'event', l.event, '(unknown)'), 100) as event
  ),
  per_event as (
    select g.tenant_slug, g.claimed_instance, g.hour, g.event, count(*) as n, max(g.expected_instance) as expected,
      min(g.created_at) as first_at, max(g.created_at) as last_at
    from gone g group by 1, 2, 3, 4
  ),
  per_hour as (
    select e.tenant_slug, e.claimed_instance, e.hour, max(e.expected) as expected_instance, sum(e.n) as attempts,
      min(e.first_at) as first_at, max(e.last_at) as last_at, jsonb_object_agg(e.event, e.n) as events
    from per_event e group by 1, 2, 3
  ),
  folded as (
    insert into maintenance.cross_tenant_hourly as h (tenant_slug, claimed_instance, hour, expected_instance,
      attempts, first_at, last_at, events)
    select * from per_hour
    on conflict (tenant_slug, claimed_instance, hour) do update set
      attempts = h.attempts + excluded.attempts,
      first_at = least(h.first_at, excluded.first_at),
      last_at = greatest(h.last_at, excluded.last_at),
      expected_instance = coalesce(excluded.expected_instance, h.expected_instance),
      events = maintenance.add_counts(h.events, excluded.events)
    returning 1
  )
  -- (folded runs whether or not it is read: a data-modifying CTE always does)
  select coalesce(sum(attempts), 0) into n from per_hour;
  return n;
end;
$$;

-- why: an outbox row is done when it was sent, when it failed for good, or when it has waited so long that nothing
-- will send it; `settled_at` says when (null while it may still be delivered), for the retention policy. A
-- trigger, not a generated column: the pending expiry reads a setting.
alter table maintenance.notification_outbox add column if not exists settled_at timestamptz;
create or replace function maintenance.outbox_settled_at()
returns trigger language plpgsql set search_path = '' as $$
begin
  new.settled_at := case
    when new.status = 'sent' then coalesce(new.sent_at, now())
    when new.status = 'failed' then coalesce(new.settled_at, now())
    else null end;
  return new;
end;
$$;
drop trigger if exists outbox_settled_at on maintenance.notification_outbox;
create trigger outbox_settled_at before insert or update of status, sent_at, settled_at
  on maintenance.notification_outbox
  for each row execute function maintenance.outbox_settled_at();
update maintenance.notification_outbox set settled_at = case
  when status = 'sent' then sent_at when status = 'failed' then coalesce(next_attempt_at, created_at) end
where settled_at is null and status in ('sent', 'failed');
create index if not exists notification_outbox_settled_idx on maintenance.notification_outbox (settled_at)
  where settled_at is not null;

-- why: a pending row past `outbox_pending_expiry` is dead: failed with that reason, so the policy takes it like any
-- failed row (and the report of what is left stops counting it). Called by cleanup-logs; returns the rows expired.
create or replace function maintenance.expire_dead_notifications(
  as_of timestamptz default now(), dry_run boolean default false
)
returns bigint language sql security definer set search_path = '' as $$
  with candidates as (
    select o.id from maintenance.notification_outbox o
    where o.status = 'pending'
      and o.created_at < as_of - (maintenance.setting('outbox_pending_expiry') #>> '{}')::interval
      and (o.claim_token is null or o.claimed_at < as_of - interval '1 hour')
  ),
  dead as (
    update maintenance.notification_outbox o set status = 'failed', settled_at = as_of,
      last_error = left(coalesce(o.last_error || '; ', '') || 'never delivered within '
        || (maintenance.setting('outbox_pending_expiry') #>> '{}') || ' (channel no longer configured?)', 1000),
      claim_token = null
    from candidates c
    where o.id = c.id and not dry_run
    returning 1
  )
  select case when dry_run then (select count(*) from candidates) else (select count(*) from dead) end;
$$;

-- why: the policies. Outbox rows go 30 days after they settled (sent, failed, or dead); resolved alerts 90 days
-- after they resolved (a firing alert is never purged: resolved_at is null; their notifications go with them, on
-- delete cascade, and are long settled by then); the hourly cross-tenant record after 90 days, as the audit trail.
update maintenance.retention_policies set time_column = 'settled_at',
  description = 'notifications settled (sent, failed for good, or dead) more than 30 days ago'
where relation = 'maintenance.notification_outbox' and time_column = 'sent_at';
insert into maintenance.retention_policies (relation, time_column, keep, description) values
  ('maintenance.notification_outbox', 'settled_at', '30 days',
   'notifications settled (sent, failed for good, or dead) more than 30 days ago'),
  ('maintenance.alerts', 'resolved_at', '90 days', 'alerts resolved more than 90 days ago (firing ones stay)'),
  ('maintenance.cross_tenant_hourly', 'hour', '90 days', 'the hourly record of cross-tenant attempts')
on conflict (relation) do nothing;

revoke all on function maintenance.add_counts(jsonb, jsonb),
  maintenance.collapse_cross_tenant_batch(timestamptz, integer, boolean),
  maintenance.outbox_settled_at(), maintenance.expire_dead_notifications(timestamptz, boolean)
  from public, anon, authenticated;
grant execute on function maintenance.collapse_cross_tenant_batch(timestamptz, integer, boolean),
  maintenance.expire_dead_notifications(timestamptz, boolean) to service_role;

-- why: per tenant, the cross-tenant attempts of the last p_window not yet acknowledged (20261202006200's), now also
-- from the hourly record: an attempt folded by cleanup-logs still counts, once, with its hour as its time (an hour
-- counts when it overlaps the window; its sample is the raw rows' latest when there is one).
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
  ),
  raw as (
    select l.tenant_slug, 1::bigint as n, l.created_at as first_at, l.created_at as last_at,
      jsonb_strip_nulls(jsonb_build_object('at', l.created_at,
        'event', case when l.event = 'cross_tenant_attempt' then coalesce(l.data ->> 'event', l.event) else l.event end,
        'data', l.data)) as sample
    from public.api_logs l
    left join ack on ack.tenant_slug is not distinct from l.tenant_slug
    where l.error_type = 'cross_tenant'
      and l.created_at > p_as_of - p_window
      and l.created_at <= p_as_of
      and (ack.until is null or l.created_at > ack.until)
  ),
  folded as (
    select h.tenant_slug, h.attempts as n, h.first_at, h.last_at,
      jsonb_build_object('at', h.last_at, 'event', (select e.key from jsonb_each_text(h.events) e
          order by e.value::bigint desc, e.key limit 1),
        'data', jsonb_build_object('claimedInstance', h.claimed_instance, 'expectedInstance', h.expected_instance,
          'attempts', h.attempts, 'hour', h.hour)) as sample
    from maintenance.cross_tenant_hourly h
    left join ack on ack.tenant_slug = h.tenant_slug
    where h.last_at > p_as_of - p_window
      and h.first_at <= p_as_of
      and (ack.until is null or h.last_at > ack.until)
  ),
  both_kinds as (select * from raw union all select * from folded)
  select b.tenant_slug, sum(b.n)::bigint, min(b.first_at), max(b.last_at),
    (select max(ack.until) from ack where ack.tenant_slug is not distinct from b.tenant_slug),
    (array_agg(b.sample order by b.last_at desc))[1]
  from both_kinds b
  group by b.tenant_slug
  order by sum(b.n) desc, b.tenant_slug;
$$;
revoke all on function maintenance.cross_tenant_attempts(interval, timestamptz) from public, anon, authenticated;
grant execute on function maintenance.cross_tenant_attempts(interval, timestamptz) to service_role;
