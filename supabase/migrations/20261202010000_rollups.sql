-- Hourly per-tenant rollups of public.api_logs (issue 18, first part): the table, an incremental refresh with a
-- watermark that survives restarts and concurrent writers, their retention, and a purge of raw rows that never
-- removes rows of hours not yet rolled up. The reports do not read the rollups yet (see README, Rollups).

-- why: one row per (service, tenant, hour) with every figure the reports need; the response-time histogram is exact
-- and compact: the distinct millisecond values of the hour (ascending) and how often each occurs, two arrays.
create table if not exists maintenance.api_logs_hourly (
  service text,
  tenant_slug text,
  hour timestamptz not null,
  total bigint not null,
  ok bigint not null,
  errors bigint not null,
  samples bigint not null,
  rt_sum bigint,
  rt_values integer[] not null default '{}',
  rt_counts bigint[] not null default '{}',
  errors_by_type jsonb not null default '{}',
  events jsonb not null default '{}',
  refreshed_at timestamptz not null default now()
);
create unique index if not exists api_logs_hourly_key
  on maintenance.api_logs_hourly (coalesce(service, ''), coalesce(tenant_slug, ''), hour);
create index if not exists api_logs_hourly_hour_idx on maintenance.api_logs_hourly (hour);

-- why: the watermark: every hour before it is rolled up. One row, so it survives restarts; the refresh locks it, so
-- two refreshes never interleave.
create table if not exists maintenance.api_logs_rollup_state (
  id boolean primary key default true check (id),
  watermark timestamptz,
  refreshed_at timestamptz
);
insert into maintenance.api_logs_rollup_state (id) values (true) on conflict do nothing;

-- why: the earliest moment a row still invisible to us may carry: created_at defaults to now(), the start of its
-- writer's transaction, so no transaction still running can commit a row older than its own start.
create or replace function maintenance.api_logs_rollup_safe_until(as_of timestamptz default now())
returns timestamptz language sql stable security definer set search_path = '' as $$
  select least(date_trunc('hour', as_of),
    (select date_trunc('hour', min(a.xact_start)) from pg_catalog.pg_stat_activity a
      where a.pid <> pg_catalog.pg_backend_pid() and a.backend_xid is not null and a.datname = current_database()));
$$;

-- why: the incremental refresh. Hours from (watermark - recent) up to the safe bound are re-aggregated wholesale from
-- the raw rows (delete + insert of those hours, never an increment, so no row is counted twice), which catches late
-- rows inside that window; the watermark only moves up to the safe bound, so a writer committing out of id order
-- never has its hour closed before its rows are visible. Returns the hours rewritten and the new watermark.
create or replace function maintenance.refresh_api_logs_rollup(recent interval default '2 hours', as_of timestamptz default now())
returns table (hours_from timestamptz, hours_until timestamptz, rows_written bigint, watermark timestamptz)
language plpgsql security definer set search_path = '' set work_mem = '64MB' as $$
declare
  wm timestamptz;
  safe timestamptz;
  start_at timestamptz;
  n bigint;
begin
  if recent is null or recent < interval '0' or recent > interval '31 days' then
    raise exception 'recent must be between 0 and 31 days: got %', recent using errcode = '22023';
  end if;
  if as_of is null then
    raise exception 'as_of must be a timestamp' using errcode = '22023';
  end if;
  select s.watermark into wm from maintenance.api_logs_rollup_state s where s.id for update;
  safe := maintenance.api_logs_rollup_safe_until(as_of);
  if wm is null then
    select date_trunc('hour', min(l.created_at)) into start_at from public.api_logs l;
  else
    start_at := date_trunc('hour', wm - recent);
  end if;
  if start_at is null or start_at >= safe then
    update maintenance.api_logs_rollup_state s set refreshed_at = now(), watermark = coalesce(s.watermark, safe)
      where s.id returning s.watermark into wm;
    return query select start_at, safe, 0::bigint, wm;
    return;
  end if;
  delete from maintenance.api_logs_hourly h where h.hour >= start_at and h.hour < safe;
  with base as (
    select l.service, l.tenant_slug, date_trunc('hour', l.created_at) as hour, l.status, l.error_type, l.event,
      l.response_time
    from public.api_logs l
    where l.created_at >= start_at and l.created_at < safe
  ),
  totals as (
    select b.service, b.tenant_slug, b.hour, count(*) as total,
      count(*) filter (where b.status = 'success') as ok,
      count(*) filter (where b.status = 'error') as errors,
      count(b.response_time) as samples, sum(b.response_time) as rt_sum
    from base b group by 1, 2, 3
  ),
  hist as (
    select x.service, x.tenant_slug, x.hour, array_agg(x.rt order by x.rt) as rt_values,
      array_agg(x.n order by x.rt) as rt_counts
    from (select b.service, b.tenant_slug, b.hour, b.response_time as rt, count(*) as n from base b
      where b.response_time is not null group by 1, 2, 3, 4) x
    group by 1, 2, 3
  ),
  errs as (
    select x.service, x.tenant_slug, x.hour, jsonb_object_agg(x.et, x.n) as j
    from (select b.service, b.tenant_slug, b.hour, coalesce(b.error_type, 'unknown') as et, count(*) as n from base b
      where b.status = 'error' group by 1, 2, 3, 4) x
    group by 1, 2, 3
  ),
  evs as (
    select x.service, x.tenant_slug, x.hour, jsonb_object_agg(x.ev, x.n) as j
    from (select b.service, b.tenant_slug, b.hour, b.event as ev, count(*) as n from base b
      where b.event is not null group by 1, 2, 3, 4) x
    group by 1, 2, 3
  ),
  ins as (
    insert into maintenance.api_logs_hourly
      (service, tenant_slug, hour, total, ok, errors, samples, rt_sum, rt_values, rt_counts, errors_by_type, events)
    select t.service, t.tenant_slug, t.hour, t.total, t.ok, t.errors, t.samples, t.rt_sum,
      coalesce(h.rt_values, '{}'), coalesce(h.rt_counts, '{}'), coalesce(e.j, '{}'), coalesce(v.j, '{}')
    from totals t
    left join hist h on h.service is not distinct from t.service and h.tenant_slug is not distinct from t.tenant_slug
      and h.hour = t.hour
    left join errs e on e.service is not distinct from t.service and e.tenant_slug is not distinct from t.tenant_slug
      and e.hour = t.hour
    left join evs v on v.service is not distinct from t.service and v.tenant_slug is not distinct from t.tenant_slug
      and v.hour = t.hour
    returning 1
  )
  select count(*) into n from ins;
  update maintenance.api_logs_rollup_state s set watermark = greatest(s.watermark, safe), refreshed_at = now()
    where s.id returning s.watermark into wm;
  return query select start_at, safe, n, wm;
end;
$$;

-- why: the rollups' retention (default 400 days: a year of weekly reports and their comparisons); raw rows keep
-- their own, shorter one.
create or replace function maintenance.purge_api_logs_rollup(keep interval default '400 days', as_of timestamptz default now())
returns bigint language plpgsql security definer set search_path = '' as $$
declare n bigint;
begin
  if keep is null or keep < interval '1 day' then
    raise exception 'keep must be at least 1 day: got %', keep using errcode = '22023';
  end if;
  delete from maintenance.api_logs_hourly h where h.hour < as_of - keep;
  get diagnostics n = row_count;
  return n;
end;
$$;

-- why: the purge of raw rows (20261129002001's rule) now stops at the rollup watermark once rollups exist, so no raw
-- row of an hour not yet rolled up is ever removed.
create or replace function maintenance.purge_api_logs_batch(
  cutoff timestamptz, batch_size integer default 10000, after timestamptz default null
)
returns table (deleted integer, last_created_at timestamptz)
language plpgsql security definer set search_path = '' as $$
declare
  wm timestamptz;
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

revoke all on table maintenance.api_logs_hourly, maintenance.api_logs_rollup_state from public, anon, authenticated;
grant select on table maintenance.api_logs_hourly, maintenance.api_logs_rollup_state to service_role;
revoke all on function maintenance.api_logs_rollup_safe_until(timestamptz),
  maintenance.refresh_api_logs_rollup(interval, timestamptz), maintenance.purge_api_logs_rollup(interval, timestamptz),
  maintenance.purge_api_logs_batch(timestamptz, integer, timestamptz) from public, anon, authenticated;
grant execute on function maintenance.api_logs_rollup_safe_until(timestamptz),
  maintenance.refresh_api_logs_rollup(interval, timestamptz), maintenance.purge_api_logs_rollup(interval, timestamptz),
  maintenance.purge_api_logs_batch(timestamptz, integer, timestamptz) to service_role;
