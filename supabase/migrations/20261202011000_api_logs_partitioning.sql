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
  drop table if exists pg_temp.api_logs_keep;
  create temporary table api_logs_keep (like public.api_logs) on commit drop;
  for part in
    select c.oid::regclass as rel, c.relname
    from pg_catalog.pg_inherits i join pg_catalog.pg_class c on c.oid = i.inhrelid
    where i.inhparent = pg_catalog.to_regclass('public.api_logs') and c.relname ~ '^api_logs_p[0-9]{8}$'
      and ((to_date(substr(c.relname, 11), 'YYYYMMDD') + 1)::timestamp at time zone 'UTC') <= cutoff
    order by c.relname
  loop
    -- the rows the purge's rule keeps, read while the day is still attached (the rule looks across all days)
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

-- why: the conversion, both ways, in ONE transaction (api_logs is locked for the copy: run it in a quiet window; the
-- batched form that does not block writers is not in this release). Ids (and the identity's next value), every
-- index by name, grants, row security and the table's comment are kept; the views on api_logs are rebuilt with
-- their options and grants. `to_partitioned` true: a table partitioned by day (UTC), one partition per day from
-- the oldest row to `days_ahead` days ahead, and a default partition; false: back to one plain table.
create or replace function maintenance.api_logs_set_layout(to_partitioned boolean, days_ahead integer default 7)
returns text language plpgsql security definer set search_path = '' as $$
declare
  v record;
  views jsonb := '[]'::jsonb;
  idx record;
  g record;
  next_id bigint;
  first_day date;
  d date;
  comment text := pg_catalog.obj_description(pg_catalog.to_regclass('public.api_logs'), 'pg_class');
  rls boolean;
begin
  if to_partitioned is null then
    raise exception 'to_partitioned must be true or false' using errcode = '22023';
  end if;
  if maintenance.api_logs_is_partitioned() = to_partitioned then
    return 'unchanged';
  end if;
  if exists (select 1 from pg_catalog.pg_policy p where p.polrelid = pg_catalog.to_regclass('public.api_logs')) then
    raise exception 'public.api_logs has row security policies: convert it by hand' using errcode = '55000';
  end if;
  lock table public.api_logs in access exclusive mode;
  if to_partitioned and exists (select 1 from public.api_logs where created_at is null) then
    raise exception 'public.api_logs has rows without created_at: a day partition needs one' using errcode = '23502';
  end if;
  select c.relrowsecurity into rls from pg_catalog.pg_class c where c.oid = pg_catalog.to_regclass('public.api_logs');
  -- the views that read api_logs: definition, options, grants
  for v in
    select distinct w.oid, n.nspname, w.relname, pg_catalog.pg_get_viewdef(w.oid) as def, w.reloptions, w.relacl
    from pg_catalog.pg_depend dp join pg_catalog.pg_rewrite r on r.oid = dp.objid
    join pg_catalog.pg_class w on w.oid = r.ev_class join pg_catalog.pg_namespace n on n.oid = w.relnamespace
    where dp.refobjid = pg_catalog.to_regclass('public.api_logs') and w.oid <> dp.refobjid and w.relkind = 'v'
  loop
    views := views || jsonb_build_array(jsonb_build_object('schema', v.nspname, 'name', v.relname, 'def', v.def,
      'options', coalesce(array_to_string(v.reloptions, ', '), ''),
      'grants', (select coalesce(jsonb_agg(jsonb_build_object('grantee', a.grantee::regrole::text,
        'privilege', a.privilege_type)), '[]'::jsonb) from aclexplode(v.relacl) a where a.grantee <> 0)));
    execute format('drop view %I.%I', v.nspname, v.relname);
  end loop;
  select coalesce(max(id), 0) + 1 into next_id from public.api_logs;
  select greatest(coalesce(pg_catalog.pg_sequence_last_value(pg_catalog.pg_get_serial_sequence('public.api_logs',
    'id')::regclass), 0) + 1, next_id) into next_id;
  alter table public.api_logs rename to api_logs_old;
  for idx in select i.indexrelid::regclass as name, c.relname from pg_catalog.pg_index i
      join pg_catalog.pg_class c on c.oid = i.indexrelid where i.indrelid = 'public.api_logs_old'::regclass loop
    execute format('alter index %s rename to %I', idx.name, left(idx.relname, 50) || '_old');
  end loop;
  if to_partitioned then
    create table public.api_logs (like public.api_logs_old including defaults including identity
      including storage, primary key (id, created_at)) partition by range (created_at);
    execute 'create table public.api_logs_default partition of public.api_logs default';
    select coalesce(min(created_at), now()) at time zone 'UTC' into first_day from public.api_logs_old;
    for d in select x::date from generate_series(first_day, (now() at time zone 'UTC')::date + days_ahead,
        interval '1 day') x loop
      execute format('create table public.%I partition of public.api_logs for values from (%L) to (%L)',
        'api_logs_p' || to_char(d, 'YYYYMMDD'), (d::timestamp at time zone 'UTC'),
        ((d + 1)::timestamp at time zone 'UTC'));
    end loop;
  else
    create table public.api_logs (like public.api_logs_old including defaults including identity
      including storage, primary key (id));
    -- the plain layout's created_at is nullable (the partition key is not)
    alter table public.api_logs alter column created_at drop not null;
  end if;
  insert into public.api_logs overriding system value select * from public.api_logs_old;
  perform pg_catalog.setval(pg_catalog.pg_get_serial_sequence('public.api_logs', 'id'), next_id, false);
  for idx in select pg_catalog.pg_get_indexdef(i.indexrelid) as def, c.relname from pg_catalog.pg_index i
      join pg_catalog.pg_class c on c.oid = i.indexrelid
      where i.indrelid = 'public.api_logs_old'::regclass and not i.indisprimary loop
    execute replace(replace(replace(idx.def, ' ON ONLY public.api_logs_old ', ' ON public.api_logs '),
      ' ON public.api_logs_old ', ' ON public.api_logs '),
      'INDEX ' || idx.relname || ' ', 'INDEX ' || left(replace(idx.relname, '_old', ''), 63) || ' ');
  end loop;
  for g in select a.grantee::regrole::text as grantee, a.privilege_type from pg_catalog.pg_class c,
      aclexplode(c.relacl) a where c.oid = 'public.api_logs_old'::regclass and a.grantee <> 0 loop
    execute format('grant %s on public.api_logs to %s', g.privilege_type, g.grantee);
  end loop;
  if rls then
    alter table public.api_logs enable row level security;
  end if;
  execute format('comment on table public.api_logs is %L', comment);
  drop table public.api_logs_old;
  for v in select * from jsonb_to_recordset(views) as x(schema text, name text, def text, options text, grants jsonb)
  loop
    execute format('create view %I.%I %s as %s', v.schema, v.name,
      case when v.options = '' then '' else 'with (' || v.options || ')' end, v.def);
    execute format('revoke all on %I.%I from public, anon, authenticated', v.schema, v.name);
    for g in select * from jsonb_to_recordset(v.grants) as y(grantee text, privilege text) loop
      execute format('grant %s on %I.%I to %s', g.privilege, v.schema, v.name, g.grantee);
    end loop;
  end loop;
  return case when to_partitioned then 'partitioned' else 'plain' end;
end;
$$;
revoke all on function maintenance.api_logs_set_layout(boolean, integer) from public, anon, authenticated;

-- why: the row-wise batch of the partitioned layout (the boundary day, and whatever sits in the default
-- partition). maintenance.purge_api_logs_batch deletes by ctid, which is unique only within one partition: here
-- rows are matched by (tableoid, ctid). Same rule as maintenance.api_logs_purgeable, same arguments and result.
create or replace function maintenance.purge_api_logs_partitioned_batch(
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
    with victims as (
      select s.tableoid as t, s.ctid as c from public.api_logs s
      where s.created_at < cutoff and (after is null or s.created_at >= after)
        and not (s.service = 'whatsapp' and s.event = 'connection.update' and s.tenant_slug is not null
          and s.status is distinct from 'error'
          and not exists (
            select 1 from public.api_logs n
            where n.service = 'whatsapp' and n.event = 'connection.update' and n.tenant_slug = s.tenant_slug
              and n.status is distinct from 'error'
              and (n.created_at, n.id) > (s.created_at, s.id)))
      order by s.created_at
      limit batch_size
    ), gone as (
      delete from public.api_logs l using victims v
      where l.tableoid = v.t and l.ctid = v.c
      returning l.created_at
    )
    select count(*)::integer, max(gone.created_at) from gone;
end;
$$;
revoke all on function maintenance.purge_api_logs_partitioned_batch(timestamptz, integer, timestamptz)
  from public, anon, authenticated;
grant execute on function maintenance.purge_api_logs_partitioned_batch(timestamptz, integer, timestamptz)
  to service_role;
