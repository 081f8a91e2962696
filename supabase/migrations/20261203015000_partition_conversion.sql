-- Retention by partition, finished (issue 18, item 2): the partitioned path of the purge stops at the rollup
-- watermark as the plain one does, and a batched conversion (both ways) that does not block writers: the new table
-- is built beside public.api_logs, a trigger mirrors every write into it, the existing rows are copied in short
-- batches (each its own transaction), and a brief lock swaps the two at the end. api_logs_set_layout (one
-- transaction) stays for small tables.

-- why: the partitioned path never drops a day with rows not yet rolled up: the cut-off is capped at the rollup
-- watermark exactly as in maintenance.purge_api_logs_batch (no cap while no refresh has ever run). Otherwise as in
-- 20261202011000: whole days before the cut-off are detached and dropped, each tenant's latest connection.update
-- of such a day moved first into the default partition (id kept). At most `max_partitions` days (null: all) in one
-- call: detaching a day locks api_logs until the transaction ends, so cleanup-logs drops one day per transaction and
-- a writer waits for one day's detach and drop at most, never for all of them. Returns how many were dropped.
create or replace function maintenance.api_logs_drop_expired_partitions(cutoff timestamptz, max_partitions integer)
returns integer language plpgsql security definer set search_path = '' as $$
declare
  part record;
  dropped integer := 0;
  wm timestamptz;
begin
  if cutoff is null then
    raise exception 'cutoff must be a timestamp' using errcode = '22023';
  end if;
  if max_partitions is not null and max_partitions < 1 then
    raise exception 'max_partitions must be at least 1 (or null: all): got %', max_partitions using errcode = '22023';
  end if;
  if not maintenance.api_logs_is_partitioned() then
    return 0;
  end if;
  -- during a batched conversion back to a plain table a detached day would vanish without its rows' delete being
  -- mirrored (and come back with the swap): the days wait, the row-wise purge (mirrored) still runs
  if exists (select 1 from maintenance.api_logs_conversion) then
    return 0;
  end if;
  select s.watermark into wm from maintenance.api_logs_rollup_state s where s.id;
  if wm is not null and wm < cutoff then
    cutoff := wm;
  end if;
  drop table if exists pg_temp.api_logs_keep;
  create temporary table api_logs_keep (like public.api_logs) on commit drop;
  for part in
    select c.oid::regclass as rel, c.relname
    from pg_catalog.pg_inherits i join pg_catalog.pg_class c on c.oid = i.inhrelid
    where i.inhparent = pg_catalog.to_regclass('public.api_logs') and c.relname ~ '^api_logs_p[0-9]{8}$'
      and ((to_date(substr(c.relname, 11), 'YYYYMMDD') + 1)::timestamp at time zone 'UTC') <= cutoff
    order by c.relname
    limit max_partitions
  loop
    -- the day itself first (writers never touch it; an autovacuum on it yields), then the keepers, then the parent's
    -- lock for the detach: writers queue for the detach and the drop only
    execute format('lock table %s in access exclusive mode', part.rel);
    truncate api_logs_keep;
    -- the rule's rows of this day: a tenant's latest of the day (no other partition holds rows of the day), kept if
    -- the tenant has none from the day's end on (the partitions before the day pruned away, the next day's probed
    -- first): one check per tenant, not one per row across every partition
    execute format($q$insert into api_logs_keep select s.* from (
        select distinct on (p.tenant_slug) p.* from %s p
        where p.service = 'whatsapp' and p.event = 'connection.update' and p.tenant_slug is not null
          and p.status is distinct from 'error'
        order by p.tenant_slug, p.created_at desc, p.id desc) s
      where not exists (select 1 from public.api_logs n
        where n.service = 'whatsapp' and n.event = 'connection.update' and n.tenant_slug = s.tenant_slug
          and n.status is distinct from 'error' and n.created_at >= %L)$q$, part.rel,
      (to_date(substr(part.relname, 11), 'YYYYMMDD') + 1)::timestamp at time zone 'UTC');
    execute format('alter table public.api_logs detach partition %s', part.rel);
    insert into public.api_logs overriding system value select * from api_logs_keep;
    execute format('drop table %s', part.rel);
    dropped := dropped + 1;
  end loop;
  return dropped;
end;
$$;

-- why: every expired day at once (20261202011000's signature, kept for callers that do not care about the lock).
create or replace function maintenance.api_logs_drop_expired_partitions(cutoff timestamptz)
returns integer language sql security definer set search_path = '' as $$
  select maintenance.api_logs_drop_expired_partitions(cutoff, null);
$$;
revoke all on function maintenance.api_logs_drop_expired_partitions(timestamptz, integer)
  from public, anon, authenticated;
grant execute on function maintenance.api_logs_drop_expired_partitions(timestamptz, integer) to service_role;

-- why: the row-wise batch of the partitioned layout, capped at the rollup watermark like purge_api_logs_batch; same
-- rule, arguments and result. A ctid is unique only within one partition, and a DELETE joined to (tableoid, ctid)
-- pairs scans every partition whole (seconds a batch on 10 M rows): the victims are found across the partitions,
-- then deleted partition by partition by `ctid = any(...)` (a TID scan, as in the plain batch).
create or replace function maintenance.purge_api_logs_partitioned_batch(
  cutoff timestamptz, batch_size integer default 10000, after timestamptz default null
)
returns table (deleted integer, last_created_at timestamptz)
language plpgsql security definer set search_path = '' as $$
declare
  wm timestamptz;
  part record;
  n integer := 0;
  k integer;
  m timestamptz;
  latest timestamptz;
begin
  if cutoff is null then
    raise exception 'cutoff must be a timestamp' using errcode = '22023';
  end if;
  if batch_size is null or batch_size < 1 or batch_size > 100000 then
    raise exception 'batch_size must be between 1 and 100000: got %', batch_size using errcode = '22023';
  end if;
  select s.watermark into wm from maintenance.api_logs_rollup_state s where s.id;
  if wm is not null and wm < cutoff then
    cutoff := wm;
  end if;
  for part in
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
    )
    select v.t::regclass as rel, array_agg(v.c) as ctids from victims v group by v.t
  loop
    execute format('with gone as (delete from %s l where l.ctid = any($1) returning l.created_at)
      select count(*)::integer, max(gone.created_at) from gone', part.rel) into k, m using part.ctids;
    n := n + k;
    latest := greatest(latest, m);
  end loop;
  return query select n, latest;
end;
$$;

-- why: the state of a batched conversion under way (one row at most): its target layout, the highest id that
-- existed when the mirror trigger was installed (every row above it reached the new table through the trigger),
-- how far the copy has come, and which index of the new table stands for which index of the old one.
create table if not exists maintenance.api_logs_conversion (
  id boolean primary key default true check (id),
  to_partitioned boolean not null,
  high_id bigint not null,
  copied_until bigint not null,
  copied bigint not null default 0,
  batches integer not null default 0,
  indexes jsonb not null,
  started_at timestamptz not null default now()
);
revoke all on table maintenance.api_logs_conversion from public, anon, authenticated;
grant select on table maintenance.api_logs_conversion to service_role;

-- why: the mirror: during a conversion every write to public.api_logs is applied to public.api_logs_next in the
-- same transaction (ids kept), so the copy only has to bring the rows that existed before.
create or replace function maintenance.api_logs_conversion_mirror()
returns trigger language plpgsql security definer set search_path = '' as $$
begin
  if tg_op = 'TRUNCATE' then
    truncate public.api_logs_next;
    return null;
  end if;
  if tg_op in ('UPDATE', 'DELETE') then
    delete from public.api_logs_next n where n.id = old.id;
  end if;
  if tg_op in ('INSERT', 'UPDATE') then
    insert into public.api_logs_next overriding system value select new.*;
  end if;
  return null;
end;
$$;
revoke all on function maintenance.api_logs_conversion_mirror() from public, anon, authenticated;

-- why: step 1 of the batched conversion. Builds public.api_logs_next in the target layout (day partitions from the
-- oldest row, at most 366 days back, to `days_ahead` days ahead, and a default partition for anything else; or one
-- plain table) with every index of api_logs (empty, so instantly), then installs the mirror trigger under a SHARE
-- ROW EXCLUSIVE lock held only for that (writers wait at most until it commits, a few milliseconds; `lock_wait`
-- bounds how long it queues itself). Returns 'started', or 'unchanged' when api_logs already has that layout.
create or replace function maintenance.api_logs_convert_start(
  to_partitioned boolean, days_ahead integer default 7, lock_wait interval default '3 seconds'
)
returns text language plpgsql security definer set search_path = '' as $$
declare
  idx record;
  first_day date;
  d date;
  mapping jsonb := '[]'::jsonb;
  next_name text;
  high bigint;
begin
  if to_partitioned is null then
    raise exception 'to_partitioned must be true or false' using errcode = '22023';
  end if;
  if days_ahead is null or days_ahead < 0 or days_ahead > 366 then
    raise exception 'days_ahead must be between 0 and 366: got %', days_ahead using errcode = '22023';
  end if;
  if lock_wait is null or lock_wait < interval '0' or lock_wait > interval '60 seconds' then
    raise exception 'lock_wait must be between 0 and 60 seconds: got %', lock_wait using errcode = '22023';
  end if;
  if exists (select 1 from maintenance.api_logs_conversion) or pg_catalog.to_regclass('public.api_logs_next') is not null
  then
    raise exception 'a conversion of public.api_logs is already under way: finish it (maintenance.api_logs_convert_finish()) or abort it (maintenance.api_logs_convert_abort())'
      using errcode = '55000';
  end if;
  if maintenance.api_logs_is_partitioned() = to_partitioned then
    return 'unchanged';
  end if;
  if exists (select 1 from pg_catalog.pg_policy p where p.polrelid = pg_catalog.to_regclass('public.api_logs')) then
    raise exception 'public.api_logs has row security policies: convert it by hand' using errcode = '55000';
  end if;
  if to_partitioned and exists (select 1 from public.api_logs where created_at is null) then
    raise exception 'public.api_logs has rows without created_at: a day partition needs one' using errcode = '23502';
  end if;
  if to_partitioned then
    create table public.api_logs_next (like public.api_logs including defaults including identity
      including storage, primary key (id, created_at)) partition by range (created_at);
    if pg_catalog.to_regclass('public.api_logs_default') is null then
      execute 'create table public.api_logs_default partition of public.api_logs_next default';
    end if;
    -- a day partition for every day from the oldest row, but at most 366 days back: older rows (a stray one from
    -- years ago would otherwise make thousands of partitions) go to the default partition
    select greatest(coalesce(min(created_at), now()) at time zone 'UTC', (now() at time zone 'UTC')::date - 366)
      into first_day from public.api_logs;
    for d in select x::date from generate_series(first_day, (now() at time zone 'UTC')::date + days_ahead,
        interval '1 day') x loop
      execute format('create table public.%I partition of public.api_logs_next for values from (%L) to (%L)',
        'api_logs_p' || to_char(d, 'YYYYMMDD'), (d::timestamp at time zone 'UTC'),
        ((d + 1)::timestamp at time zone 'UTC'));
    end loop;
  else
    create table public.api_logs_next (like public.api_logs including defaults including identity
      including storage, primary key (id));
    alter table public.api_logs_next alter column created_at drop not null;
  end if;
  -- every index of api_logs, under a name of its own until the swap
  for idx in select c.relname, i.indisprimary, pg_catalog.pg_get_indexdef(i.indexrelid) as def
      from pg_catalog.pg_index i join pg_catalog.pg_class c on c.oid = i.indexrelid
      where i.indrelid = 'public.api_logs'::regclass order by c.relname loop
    if idx.indisprimary then
      select c.relname into next_name from pg_catalog.pg_index i join pg_catalog.pg_class c on c.oid = i.indexrelid
        where i.indrelid = 'public.api_logs_next'::regclass and i.indisprimary;
    else
      next_name := left(idx.relname, 57) || '_next';
      execute replace(replace(replace(idx.def, ' ON ONLY public.api_logs ', ' ON public.api_logs_next '),
        ' ON public.api_logs ', ' ON public.api_logs_next '), 'INDEX ' || idx.relname || ' ',
        'INDEX ' || next_name || ' ');
    end if;
    mapping := mapping || jsonb_build_array(jsonb_build_object('name', idx.relname, 'next', next_name));
  end loop;
  -- the mirror: this lock waits for the writers in flight and holds new ones until commit, so every row written
  -- after it reaches api_logs_next through the trigger and every row before it is at most high_id
  perform pg_catalog.set_config('lock_timeout', (extract(epoch from lock_wait) * 1000)::bigint::text, true);
  lock table public.api_logs in share row exclusive mode;
  create trigger api_logs_conversion_mirror after insert or update or delete on public.api_logs
    for each row execute function maintenance.api_logs_conversion_mirror();
  create trigger api_logs_conversion_mirror_truncate after truncate on public.api_logs
    for each statement execute function maintenance.api_logs_conversion_mirror();
  select coalesce(max(id), 0) into high from public.api_logs;
  insert into maintenance.api_logs_conversion (to_partitioned, high_id, copied_until, indexes)
    values (to_partitioned, high, 0, mapping);
  return 'started';
end;
$$;

-- why: step 2, one batch of the copy, in its own transaction: the next `batch_size` rows by id (up to high_id) are
-- copied into api_logs_next. They are read FOR SHARE, so a concurrent update or delete of one of them waits for
-- this batch (and is then mirrored) instead of being overwritten by the copy of its old version; inserts never
-- wait. Returns the rows read: 0 when the copy is done.
create or replace function maintenance.api_logs_convert_copy_batch(batch_size integer default 20000)
returns integer language plpgsql security definer set search_path = '' as $$
declare
  st maintenance.api_logs_conversion;
  n integer;
  last_id bigint;
begin
  if batch_size is null or batch_size < 1 or batch_size > 1000000 then
    raise exception 'batch_size must be between 1 and 1000000: got %', batch_size using errcode = '22023';
  end if;
  select * into st from maintenance.api_logs_conversion c where c.id for update;
  if not found then
    raise exception 'no conversion of public.api_logs is under way: start one (maintenance.api_logs_convert_start())'
      using errcode = '55000';
  end if;
  with src as (
    select s.* from public.api_logs s where s.id > st.copied_until and s.id <= st.high_id
    order by s.id limit batch_size for share
  ), ins as (
    insert into public.api_logs_next overriding system value select * from src on conflict do nothing
    returning 1
  )
  select (select count(*) from src)::integer, (select max(src.id) from src) into n, last_id;
  if n > 0 then
    update maintenance.api_logs_conversion c set copied_until = last_id, copied = c.copied + n,
      batches = c.batches + 1 where c.id;
  end if;
  return n;
end;
$$;

-- why: step 3, the swap, under one ACCESS EXCLUSIVE lock held for catalogue work only (no rows move): the views on
-- api_logs are dropped and rebuilt on the new table with their options and grants, the old table and its indexes
-- step aside, api_logs_next takes the names (the table's, every index's, the identity sequence's), the identity
-- continues after the highest id, grants, row security and the comment are carried over, and the old table is
-- dropped (with its trigger). `lock_wait` bounds how long it queues for the lock (writers queue behind it): on
-- timeout nothing changes and it can be run again. Returns 'partitioned' or 'plain'.
create or replace function maintenance.api_logs_convert_finish(lock_wait interval default '3 seconds')
returns text language plpgsql security definer set search_path = '' as $$
declare
  st maintenance.api_logs_conversion;
  v record;
  views jsonb := '[]'::jsonb;
  m record;
  g record;
  next_id bigint;
  old_seq text;
  comment text;
  rls boolean;
begin
  if lock_wait is null or lock_wait < interval '0' or lock_wait > interval '60 seconds' then
    raise exception 'lock_wait must be between 0 and 60 seconds: got %', lock_wait using errcode = '22023';
  end if;
  select * into st from maintenance.api_logs_conversion c where c.id for update;
  if not found then
    raise exception 'no conversion of public.api_logs is under way: start one (maintenance.api_logs_convert_start())'
      using errcode = '55000';
  end if;
  if exists (select 1 from public.api_logs s where s.id > st.copied_until and s.id <= st.high_id) then
    raise exception 'the copy is not done: run maintenance.api_logs_convert_copy_batch() until it returns 0'
      using errcode = '55000';
  end if;
  perform pg_catalog.set_config('lock_timeout', (extract(epoch from lock_wait) * 1000)::bigint::text, true);
  lock table public.api_logs in access exclusive mode;
  lock table public.api_logs_next in access exclusive mode;
  if (select count(*) from pg_catalog.pg_index i where i.indrelid = 'public.api_logs'::regclass)
      <> jsonb_array_length(st.indexes)
    or exists (select 1 from pg_catalog.pg_index i join pg_catalog.pg_class c on c.oid = i.indexrelid
      where i.indrelid = 'public.api_logs'::regclass
        and not st.indexes @> jsonb_build_array(jsonb_build_object('name', c.relname))) then
    raise exception 'the indexes of public.api_logs changed during the conversion: abort it and start again'
      using errcode = '55000';
  end if;
  comment := pg_catalog.obj_description('public.api_logs'::regclass, 'pg_class');
  select c.relrowsecurity into rls from pg_catalog.pg_class c where c.oid = 'public.api_logs'::regclass;
  for v in
    select distinct w.oid, n.nspname, w.relname, pg_catalog.pg_get_viewdef(w.oid) as def, w.reloptions, w.relacl
    from pg_catalog.pg_depend dp join pg_catalog.pg_rewrite r on r.oid = dp.objid
    join pg_catalog.pg_class w on w.oid = r.ev_class join pg_catalog.pg_namespace n on n.oid = w.relnamespace
    where dp.refobjid = 'public.api_logs'::regclass and w.oid <> dp.refobjid and w.relkind = 'v'
  loop
    views := views || jsonb_build_array(jsonb_build_object('schema', v.nspname, 'name', v.relname, 'def', v.def,
      'options', coalesce(array_to_string(v.reloptions, ', '), ''),
      'grants', (select coalesce(jsonb_agg(jsonb_build_object('grantee', a.grantee::regrole::text,
        'privilege', a.privilege_type)), '[]'::jsonb) from aclexplode(v.relacl) a where a.grantee <> 0)));
    execute format('drop view %I.%I', v.nspname, v.relname);
  end loop;
  old_seq := pg_catalog.pg_get_serial_sequence('public.api_logs', 'id');
  select coalesce(max(id), 0) + 1 into next_id from public.api_logs;
  select greatest(coalesce(pg_catalog.pg_sequence_last_value(old_seq::regclass), 0) + 1, next_id) into next_id;
  alter table public.api_logs rename to api_logs_old;
  for m in select * from jsonb_to_recordset(st.indexes) as x(name text, next text) loop
    execute format('alter index public.%I rename to %I', m.name, left(m.name, 50) || '_old');
  end loop;
  alter table public.api_logs_next rename to api_logs;
  for m in select * from jsonb_to_recordset(st.indexes) as x(name text, next text) loop
    execute format('alter index public.%I rename to %I', m.next, m.name);
  end loop;
  perform pg_catalog.setval(pg_catalog.pg_get_serial_sequence('public.api_logs', 'id'), next_id, false);
  -- the grants: exactly the old table's
  for g in select a.grantee::regrole::text as grantee from pg_catalog.pg_class c, aclexplode(c.relacl) a
      where c.oid = 'public.api_logs'::regclass and a.grantee <> 0 and a.grantee <> c.relowner
      group by a.grantee loop
    execute format('revoke all on public.api_logs from %s', g.grantee);
  end loop;
  for g in select a.grantee::regrole::text as grantee, a.privilege_type from pg_catalog.pg_class c,
      aclexplode(c.relacl) a where c.oid = 'public.api_logs_old'::regclass and a.grantee <> 0 loop
    execute format('grant %s on public.api_logs to %s', g.privilege_type, g.grantee);
  end loop;
  if exists (select 1 from pg_catalog.pg_class c, aclexplode(c.relacl) a
      where c.oid = 'public.api_logs_old'::regclass and a.grantee = 0) then
    raise notice 'public.api_logs had grants to PUBLIC: not carried over';
  end if;
  if rls then
    alter table public.api_logs enable row level security;
  end if;
  execute format('comment on table public.api_logs is %L', comment);
  drop table public.api_logs_old;
  if old_seq is not null and pg_catalog.to_regclass(old_seq) is null then
    execute format('alter sequence %s rename to %I', pg_catalog.pg_get_serial_sequence('public.api_logs', 'id'),
      (parse_ident(old_seq))[2]);
  end if;
  for v in select * from jsonb_to_recordset(views) as x(schema text, name text, def text, options text, grants jsonb)
  loop
    execute format('create view %I.%I %s as %s', v.schema, v.name,
      case when v.options = '' then '' else 'with (' || v.options || ')' end, v.def);
    execute format('revoke all on %I.%I from public, anon, authenticated', v.schema, v.name);
    for g in select * from jsonb_to_recordset(v.grants) as y(grantee text, privilege text) loop
      execute format('grant %s on %I.%I to %s', g.privilege, v.schema, v.name, g.grantee);
    end loop;
  end loop;
  delete from maintenance.api_logs_conversion c where c.id;
  return case when st.to_partitioned then 'partitioned' else 'plain' end;
end;
$$;

-- why: the way out of a conversion under way (before its swap): the mirror trigger and api_logs_next go,
-- public.api_logs is untouched. Returns 'aborted', or 'none' when no conversion was under way.
create or replace function maintenance.api_logs_convert_abort()
returns text language plpgsql security definer set search_path = '' as $$
begin
  if not exists (select 1 from maintenance.api_logs_conversion) and pg_catalog.to_regclass('public.api_logs_next') is null
  then
    return 'none';
  end if;
  perform pg_catalog.set_config('lock_timeout', '3000', true);
  drop trigger if exists api_logs_conversion_mirror on public.api_logs;
  drop trigger if exists api_logs_conversion_mirror_truncate on public.api_logs;
  drop table if exists public.api_logs_next;
  delete from maintenance.api_logs_conversion c where c.id;
  return 'aborted';
end;
$$;

revoke all on function maintenance.api_logs_convert_start(boolean, integer, interval),
  maintenance.api_logs_convert_copy_batch(integer), maintenance.api_logs_convert_finish(interval),
  maintenance.api_logs_convert_abort() from public, anon, authenticated;

-- why: the whole batched conversion in one call (as postgres, alone: `call maintenance.api_logs_convert(true)`,
-- never inside a transaction block, since each step commits). Start, copy batch by batch (a commit after each),
-- analyze the new table, then the swap, retried up to 10 times if it cannot get its lock within `lock_wait`.
-- Not SECURITY DEFINER: a procedure that commits cannot be.
create or replace procedure maintenance.api_logs_convert(
  to_partitioned boolean, batch_size integer default 20000, days_ahead integer default 7,
  lock_wait interval default '3 seconds'
)
language plpgsql as $$
declare
  r text;
  n integer;
  tries integer := 0;
begin
  r := maintenance.api_logs_convert_start(to_partitioned, days_ahead, lock_wait);
  commit;
  if r = 'unchanged' then
    raise notice 'public.api_logs already has that layout: unchanged';
    return;
  end if;
  loop
    n := maintenance.api_logs_convert_copy_batch(batch_size);
    commit;
    exit when n = 0;
  end loop;
  analyze public.api_logs_next;
  commit;
  loop
    begin
      r := maintenance.api_logs_convert_finish(lock_wait);
      exit;
    exception when lock_not_available then
      tries := tries + 1;
      if tries >= 10 then
        raise exception 'the swap could not get its lock on public.api_logs in 10 tries: the copy is kept, run select maintenance.api_logs_convert_finish() later, or maintenance.api_logs_convert_abort()'
          using errcode = '55P03';
      end if;
    end;
    perform pg_catalog.pg_sleep(1);
  end loop;
  commit;
  raise notice 'public.api_logs is now %', r;
end;
$$;
revoke all on procedure maintenance.api_logs_convert(boolean, integer, integer, interval)
  from public, anon, authenticated;
