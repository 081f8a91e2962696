-- Retention by partition, opt-in (issue 18): api_logs partitioned by day, expired days detached and dropped whole.
-- Nothing here changes the default layout: every function is a no-op (returns 0) while public.api_logs is a plain
-- table. The conversion in this release is the one-transaction form (it holds api_logs' lock for the copy: for a
-- table small enough to copy in a maintenance window); the batched, non-blocking form is still to come.

-- why: which layout cleanup-logs is on.
create or replace function maintenance.api_logs_is_partitioned()
returns boolean language sql stable security definer set search_path = '' as $$
  -- by name, never a regclass constant: a cached plan would keep the oid of the table before a conversion
  select exists (select 1 from pg_catalog.pg_partitioned_table pt
    join pg_catalog.pg_class c on c.oid = pt.partrelid join pg_catalog.pg_namespace n on n.oid = c.relnamespace
    where n.nspname = 'public' and c.relname = 'api_logs');
$$;

-- why: day partitions made ahead of the writes (a default partition catches anything else). Returns how many made.
create or replace function maintenance.api_logs_ensure_partitions(days_ahead integer default 7)
returns integer language plpgsql security definer set search_path = '' as $$
declare
  d date;
  made integer := 0;
begin
  if days_ahead is null or days_ahead < 0 or days_ahead > 366 then
    raise exception 'days_ahead must be between 0 and 366: got %', days_ahead using errcode = '22023';
  end if;
  if not maintenance.api_logs_is_partitioned() then
    return 0;
  end if;
  for d in select g::date from generate_series((now() at time zone 'UTC')::date,
      (now() at time zone 'UTC')::date + days_ahead, interval '1 day') g loop
    if to_regclass(format('public.api_logs_p%s', to_char(d, 'YYYYMMDD'))) is null then
      execute format('create table public.%I partition of public.api_logs for values from (%L) to (%L)',
        'api_logs_p' || to_char(d, 'YYYYMMDD'), (d::timestamp at time zone 'UTC'),
        ((d + 1)::timestamp at time zone 'UTC'));
      made := made + 1;
    end if;
  end loop;
  return made;
end;
$$;

-- why: the partitioned path of the purge: every day partition wholly before `cutoff` is detached and dropped
-- (O(partitions), no row-wise WAL). The rule "each tenant's latest connection.update is kept, however old" holds:
-- such rows of a dropped day are moved first into the default partition (ids kept). The boundary day is left to the
-- row-wise batches (maintenance.purge_api_logs_batch). Returns how many partitions were dropped.
create or replace function maintenance.api_logs_drop_expired_partitions(cutoff timestamptz)
returns integer language plpgsql security definer set search_path = '' as $$
declare
  part record;
  dropped integer := 0;
begin
  if cutoff is null then
    raise exception 'cutoff must be a timestamp' using errcode = '22023';
  end if;
  if not maintenance.api_logs_is_partitioned() then
    return 0;
  end if;
  for part in
    select c.oid::regclass as rel, c.relname
    from pg_catalog.pg_inherits i join pg_catalog.pg_class c on c.oid = i.inhrelid
    where i.inhparent = pg_catalog.to_regclass('public.api_logs') and c.relname ~ '^api_logs_p[0-9]{8}$'
      and ((to_date(substr(c.relname, 11), 'YYYYMMDD') + 1)::timestamp at time zone 'UTC') <= cutoff
    order by c.relname
  loop
    -- the rows the purge's rule keeps, read while the day is still attached (the rule looks across all days)
    create temporary table if not exists api_logs_keep (like public.api_logs) on commit drop;
    truncate api_logs_keep;
    execute format($q$insert into api_logs_keep select s.* from %s s
      where s.service = 'whatsapp' and s.event = 'connection.update' and s.tenant_slug is not null
        and s.status is distinct from 'error'
        and not exists (select 1 from public.api_logs n
          where n.service = 'whatsapp' and n.event = 'connection.update' and n.tenant_slug = s.tenant_slug
            and n.status is distinct from 'error' and (n.created_at, n.id) > (s.created_at, s.id))$q$, part.rel);
    execute format('alter table public.api_logs detach partition %s', part.rel);
    insert into public.api_logs overriding system value select * from api_logs_keep;
    execute format('drop table %s', part.rel);
    dropped := dropped + 1;
  end loop;
  return dropped;
end;
$$;

revoke all on function maintenance.api_logs_is_partitioned(), maintenance.api_logs_ensure_partitions(integer),
  maintenance.api_logs_drop_expired_partitions(timestamptz) from public, anon, authenticated;
grant execute on function maintenance.api_logs_is_partitioned(), maintenance.api_logs_ensure_partitions(integer),
  maintenance.api_logs_drop_expired_partitions(timestamptz) to service_role;
