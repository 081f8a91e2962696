-- The api_logs purge keeps each tenant's latest connection.update, however old: it is the only record of the
-- tenant's current connection state, and the uptime report reads it as the state at the start of a period. Without
-- it, a tenant connected for longer than the retention would be reported as unknown, and a purge of old rows would
-- change the report for a period the purge never touched.

-- why: finds a tenant's state changes in a period and its latest one before it without walking its other logs
-- (a few rows per tenant per day); used by the purge below and by the uptime report.
create index if not exists api_logs_connection_update_idx on public.api_logs (tenant_slug, created_at, id)
  where service = 'whatsapp' and event = 'connection.update';

-- why: one batch of the api_logs purge (see 20261129002001_retention.sql), now skipping each tenant's latest
-- connection.update (one row per tenant stays).
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
        select s.ctid from public.api_logs s
        where s.created_at < cutoff and (after is null or s.created_at >= after)
          and not (s.service = 'whatsapp' and s.event = 'connection.update' and s.tenant_slug is not null
            and not exists (
              select 1 from public.api_logs n
              where n.service = 'whatsapp' and n.event = 'connection.update' and n.tenant_slug = s.tenant_slug
                and (n.created_at, n.id) > (s.created_at, s.id)))
        order by s.created_at
        limit batch_size))
      returning l.created_at
    )
    select count(*)::integer, max(gone.created_at) from gone;
end;
$$;

-- why: what a dry run reports and what a run that ran out of time still has to do, with the same rule as the purge.
create or replace function maintenance.count_expired_api_logs(cutoff timestamptz)
returns bigint language sql stable security definer set search_path = '' as $$
  select count(*) from public.api_logs s
  where s.created_at < cutoff
    and not (s.service = 'whatsapp' and s.event = 'connection.update' and s.tenant_slug is not null
      and not exists (
        select 1 from public.api_logs n
        where n.service = 'whatsapp' and n.event = 'connection.update' and n.tenant_slug = s.tenant_slug
          and (n.created_at, n.id) > (s.created_at, s.id)));
$$;
