-- Retention: what cleanup-logs purges and how. api_logs has its own batched purge (its retention is
-- LOG_RETENTION_DAYS, kept in maintenance.settings); every other table with an obvious retention is a row of
-- maintenance.retention_policies, looked up late (to_regclass) so a policy may name a table that another migration
-- creates later, or never: a missing table is reported as absent and skipped.

insert into maintenance.settings (key, default_value, description) values
  ('log_retention_days', '30', 'Days api_logs rows are kept (LOG_RETENTION_DAYS); older rows are purged daily')
on conflict (key) do update set default_value = excluded.default_value, description = excluded.description;

-- why: one row per table purged by age, besides api_logs. `time_column` is the age column (a row whose value is
-- null is never purged, so e.g. an undelivered outbox row stays); a row goes once time_column < now() - keep.
-- Other engineers register their tables here (insert … on conflict do nothing) instead of editing the job.
create table if not exists maintenance.retention_policies (
  relation text primary key check (relation ~ '^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$'),
  time_column text not null check (time_column ~ '^[a-z_][a-z0-9_]*$'),
  keep interval not null check (keep >= interval '0'),
  enabled boolean not null default true,
  description text
);
revoke all on maintenance.retention_policies from public, anon, authenticated;
grant all on maintenance.retention_policies to service_role;

insert into maintenance.retention_policies (relation, time_column, keep, description) values
  ('public.tenant_sessions_audit', 'expires_at', '0', 'expired sessions'),
  ('cron.job_run_details', 'end_time', '7 days', 'pg_cron run history (grows forever otherwise)'),
  ('maintenance.scheduled_calls', 'requested_at', '30 days', 'the record of each scheduled call and its answer'),
  ('maintenance.job_runs', 'started_at', '90 days', 'this bundle''s job runs'),
  -- webhook dedup receipts go long after Evolution's retries (about 20 minutes) have given up
  ('maintenance.webhook_receipts', 'received_at', '7 days', 'webhook dedup receipts'),
  -- delivered notifications (sent_at set) go; pending and failed ones (sent_at null) stay
  ('maintenance.notification_outbox', 'sent_at', '30 days', 'notifications delivered more than 30 days ago'),
  ('maintenance.tenant_health_history', 'at', '90 days', 'tenant health state changes')
on conflict (relation) do nothing;

-- The api_logs purge keeps each tenant's latest connection.update, however old: it is the only record of the
-- tenant's current connection state, and the uptime report reads it as the state at the start of a period. Without
-- it, a tenant connected for longer than the retention would be reported as unknown, and a purge of old rows would
-- change the report for a period the purge never touched.

-- why: finds a tenant's state changes in a period and its latest one before it without walking its other logs
-- (a few rows per tenant per day); used by the rule below and by the uptime report.
create index if not exists api_logs_connection_update_idx on public.api_logs (tenant_slug, created_at, id)
  where service = 'whatsapp' and event = 'connection.update';

-- why: the rule, written once: the api_logs rows the purge may delete when they are old enough, i.e. all but each
-- tenant's latest connection.update. A view (with the row's ctid) so the planner folds it into the purge and into
-- the count of what the purge would delete.
create or replace view maintenance.api_logs_purgeable with (security_invoker = true) as
select s.ctid as row_ctid, s.created_at
from public.api_logs s
where not (s.service = 'whatsapp' and s.event = 'connection.update' and s.tenant_slug is not null
  and not exists (
    select 1 from public.api_logs n
    where n.service = 'whatsapp' and n.event = 'connection.update' and n.tenant_slug = s.tenant_slug
      and (n.created_at, n.id) > (s.created_at, s.id)));
revoke all on maintenance.api_logs_purgeable from public, anon, authenticated;

-- why: the api_logs retention cut-off, from maintenance.settings (the functions keep it equal to
-- LOG_RETENTION_DAYS). Rows with created_at strictly before it are expired; a row exactly at it stays.
create or replace function maintenance.api_logs_cutoff(as_of timestamptz default now())
returns timestamptz language sql stable set search_path = '' as $$
  select as_of - make_interval(days => (maintenance.setting('log_retention_days') #>> '{}')::integer);
$$;

-- why: one batch of the api_logs purge, small enough to be its own short transaction (the caller loops, one call
-- per transaction, under a time budget). Index-driven: the oldest `batch_size` rows before `cutoff` by the
-- created_at index, deleted by ctid, each tenant's latest connection.update skipped. `after` is the previous
-- batch's last created_at, so a run never re-walks the index entries it has just made dead. Rows are only marked
-- deleted (no index is touched), and nothing a webhook insert waits on is locked.
create or replace function maintenance.purge_api_logs_batch(
  cutoff timestamptz, batch_size integer default 10000, after timestamptz default null
)
returns table (deleted integer, last_created_at timestamptz)
language plpgsql security definer set search_path = '' as $$
begin
  if cutoff is null then
    raise exception 'cutoff must be a timestamp' using errcode = '22023';
  end if;
  if batch_size is null or batch_size < 1 or batch_size > 100000 then
    raise exception 'batch_size must be between 1 and 100000: got %', batch_size using errcode = '22023';
  end if;
  return query
    with gone as (
      delete from public.api_logs l
      where l.ctid = any (array(
        select p.row_ctid from maintenance.api_logs_purgeable p
        where p.created_at < cutoff and (after is null or p.created_at >= after)
        order by p.created_at
        limit batch_size))
      returning l.created_at
    )
    select count(*)::integer, max(gone.created_at) from gone;
end;
$$;

-- why: what a dry run reports and what a run that ran out of time still has to do, with the purge's rule.
create or replace function maintenance.count_expired_api_logs(cutoff timestamptz)
returns bigint language sql stable security definer set search_path = '' as $$
  select count(*) from maintenance.api_logs_purgeable p where p.created_at < cutoff;
$$;

-- why: the retention policies as they apply now: whether the table exists (late-bound, to_regclass), whether its
-- age column does, and the cut-off. cleanup-logs walks this list.
create or replace function maintenance.retention_plan(as_of timestamptz default now())
returns table (relation text, time_column text, keep interval, cutoff timestamptz, present boolean, reason text)
language sql stable security definer set search_path = '' as $$
  select p.relation, p.time_column, p.keep, as_of - p.keep,
    a.attname is not null,
    case
      when to_regclass(p.relation) is null then 'table does not exist'
      when a.attname is null then 'column ' || p.time_column || ' does not exist'
      when a.atttypid not in ('timestamptz'::regtype, 'timestamp'::regtype, 'date'::regtype)
        then 'column ' || p.time_column || ' is not a timestamp'
    end
  from maintenance.retention_policies p
  left join pg_catalog.pg_attribute a
    on a.attrelid = to_regclass(p.relation) and a.attname = p.time_column and not a.attisdropped and a.attnum > 0
  where p.enabled
  order by p.relation;
$$;

-- why: one batch of a policy's purge (or, with dry_run, the count of what would go). Dynamic SQL is built from the
-- catalogue (regclass and quote_ident), never from caller text, and only for a registered, existing table.
create or replace function maintenance.purge_policy_batch(
  policy text, as_of timestamptz default now(), batch_size integer default 10000, dry_run boolean default false
)
returns bigint
language plpgsql security definer set search_path = '' as $$
declare
  plan record;
  n bigint;
begin
  if batch_size is null or batch_size < 1 or batch_size > 100000 then
    raise exception 'batch_size must be between 1 and 100000: got %', batch_size using errcode = '22023';
  end if;
  select * into plan from maintenance.retention_plan(as_of) r where r.relation = policy;
  if not found then
    raise exception 'no enabled retention policy for %', coalesce(policy, 'null') using errcode = '22023';
  end if;
  if plan.reason is not null then
    raise exception 'retention policy for % cannot run: %', policy, plan.reason using errcode = '42P01';
  end if;
  if dry_run then
    execute format('select count(*) from %s where %I < $1', to_regclass(policy), plan.time_column)
      into n using plan.cutoff;
  else
    execute format(
      'with gone as (delete from %1$s t where t.ctid = any (array(select s.ctid from %1$s s where s.%2$I < $1 limit $2))'
      ' returning 1) select count(*) from gone', to_regclass(policy), plan.time_column)
      into n using plan.cutoff, batch_size;
  end if;
  return n;
end;
$$;

-- why: the orphan integrations (integration rows whose tenant is gone), as the report lists them (instance name rather
-- than the whole config).
create or replace function maintenance.orphan_integrations_report(max_rows integer default 50)
returns jsonb language sql stable security definer set search_path = '' as $$
  select jsonb_build_object(
    'count', (select count(*) from maintenance.orphan_integrations),
    'rows', coalesce((
      select jsonb_agg(jsonb_build_object('id', o.id, 'tenantId', o.tenant_id, 'integrationType', o.integration_type,
        'instanceName', o.config ->> 'instance_name', 'isActive', o.is_active) order by o.created_at, o.id)
      from (select * from maintenance.orphan_integrations order by created_at, id limit greatest(max_rows, 0)) o),
      '[]'::jsonb));
$$;

revoke all on function maintenance.api_logs_cutoff(timestamptz), maintenance.purge_api_logs_batch(timestamptz, integer,
  timestamptz), maintenance.count_expired_api_logs(timestamptz), maintenance.retention_plan(timestamptz),
  maintenance.purge_policy_batch(text, timestamptz, integer, boolean), maintenance.orphan_integrations_report(integer)
  from public, anon, authenticated;
grant execute on function maintenance.api_logs_cutoff(timestamptz), maintenance.purge_api_logs_batch(timestamptz,
  integer, timestamptz), maintenance.count_expired_api_logs(timestamptz), maintenance.retention_plan(timestamptz),
  maintenance.purge_policy_batch(text, timestamptz, integer, boolean), maintenance.orphan_integrations_report(integer)
  to service_role;
