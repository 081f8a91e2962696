-- Benchmark-only helpers, created by bench/harness.ts in the throwaway bench stack (and in the test stack by
-- tests/bench_test.ts). Never a migration: nothing here ships. Data is generated in SQL (generate_series), never row
-- by row from TypeScript.

create schema if not exists bench;
revoke all on schema bench from public;

-- why: generated api_logs rows live here first (no indexes, no identity), so a benchmark can reload the very same
-- rows into public.api_logs as often as it needs (the purge runs twice on identical data).
create table if not exists bench.api_logs_source (like public.api_logs);

-- why: a benchmark starts from an empty source.
create or replace function bench.reset_source() returns void language sql as $$
  truncate bench.api_logs_source;
$$;

-- why: tenants `{prefix}{i}` for i in [first, first + n), each with an active WhatsApp integration whose config
-- names its instance `{instance_prefix}{slug}`, as the application creates them.
create or replace function bench.create_tenants(prefix text, first integer, n integer,
  instance_prefix text default 'revalya-', webhook_base text default 'http://127.0.0.1/whatsapp-webhook')
returns integer language plpgsql as $$
declare
  made integer;
begin
  with t as (
    insert into public.tenants (slug, name, is_active)
    select prefix || g, 'Bench tenant ' || g, true from generate_series(first, first + n - 1) g
    returning id, slug
  )
  insert into public.tenant_integrations (tenant_id, integration_type, config, is_active)
  select t.id, 'whatsapp', jsonb_build_object('instance_name', instance_prefix || t.slug,
      'webhook_url', webhook_base || '/api/whatsapp/webhook/' || t.slug, 'environment', 'bench'), true
  from t;
  get diagnostics made = row_count;
  return made;
end;
$$;

-- why: n api_logs rows spread evenly over [since, until) (ids follow time, as in production), tenants
-- `{prefix}{i}`, i < tenants, skewed so a few tenants are much busier than the rest. The mix:
--   6 %  connection.update webhook events (data.state open 45 % / close 35 % / connecting 20 %, no response time)
--   89 % Evolution calls logged by the client (send_text, connection_state, fetch_instances, connect, restart,
--        logout), 3 % of them errors (timeout, server_error, unreachable, unauthorized, or no error_type);
--        response times log-normal around 150 ms, timeouts 10-15 s
--   5 %  another service ('billing'), which the WhatsApp report must ignore
-- setseed makes a run repeatable (the insert is not parallel, so random() is consumed in order).
create or replace function bench.generate_api_logs(n bigint, since timestamptz, until timestamptz, prefix text,
  tenants integer, seed float8 default 0.42)
returns bigint language plpgsql as $$
declare
  base bigint;
  span float8 := extract(epoch from until - since);
  made bigint;
begin
  perform setseed(seed);
  select coalesce(max(id), 0) into base from bench.api_logs_source;
  insert into bench.api_logs_source (id, created_at, tenant_slug, service, event, status, error_type, response_time,
    data)
  select base + s.g,
    since + make_interval(secs => span * ((s.g - 1 + s.r_time) / n)),
    prefix || floor(tenants * power(s.r_tenant, 2.5))::integer,
    case when s.r_kind < 0.95 then 'whatsapp' else 'billing' end,
    case
      when s.r_kind < 0.06 then 'connection.update'
      when s.r_kind >= 0.95 then 'charge'
      when s.r_op < 0.50 then 'send_text'
      when s.r_op < 0.75 then 'connection_state'
      when s.r_op < 0.85 then 'fetch_instances'
      when s.r_op < 0.93 then 'connect'
      when s.r_op < 0.98 then 'restart'
      else 'logout'
    end,
    case when s.r_kind >= 0.06 and s.r_err < 0.03 then 'error' else 'success' end,
    case
      when s.r_kind < 0.06 or s.r_err >= 0.03 then null
      when s.r_err < 0.012 then 'timeout'
      when s.r_err < 0.021 then 'server_error'
      when s.r_err < 0.026 then 'unreachable'
      when s.r_err < 0.028 then 'unauthorized'
      else null
    end,
    case
      when s.r_kind < 0.06 then null
      when s.r_kind >= 0.06 and s.r_err < 0.012 then 10000 + floor(5000 * s.r_op)::integer
      else greatest(1, round(exp(5.0 + 0.7 * sqrt(-2 * ln(1 - s.r_n1)) * cos(2 * pi() * s.r_n2))))::integer
    end,
    case
      when s.r_kind < 0.06 then jsonb_build_object('state',
        case when s.r_op < 0.45 then 'open' when s.r_op < 0.80 then 'close' else 'connecting' end,
        'statusReason', case when s.r_op < 0.45 then 200 when s.r_op < 0.80 then 428 else 200 end)
      else jsonb_build_object('operation', 'bench')
    end
  from (
    -- volatile functions in a subquery's select list: one draw per row, read consistently outside
    select g, random() as r_time, random() as r_tenant, random() as r_kind, random() as r_op, random() as r_err,
      random() as r_n1, random() as r_n2
    from generate_series(1::bigint, n) g
  ) s;
  get diagnostics made = row_count;
  return made;
end;
$$;

-- why: puts the source rows with created_at >= since into public.api_logs. With replace (the bench's own stack
-- only): truncate, drop the secondary indexes, load in time order, rebuild the very same indexes (bulk load, then
-- build, as a restore would). Without it (a shared test database): append, indexes in place.
create or replace function bench.load_api_logs(since timestamptz, replace boolean)
returns bigint language plpgsql as $$
declare
  defs text[];
  d text;
  made bigint;
begin
  if replace then
    select coalesce(array_agg(pg_get_indexdef(i.indexrelid)), '{}') into defs
    from pg_index i
    where i.indrelid = 'public.api_logs'::regclass
      and not exists (select 1 from pg_constraint c where c.conindid = i.indexrelid);
    for d in select format('%I.%I', n.nspname, c.relname)
      from pg_index i join pg_class c on c.oid = i.indexrelid join pg_namespace n on n.oid = c.relnamespace
      where i.indrelid = 'public.api_logs'::regclass
        and not exists (select 1 from pg_constraint k where k.conindid = i.indexrelid)
    loop
      execute 'drop index ' || d;
    end loop;
    truncate public.api_logs restart identity;
  end if;
  insert into public.api_logs (created_at, tenant_slug, service, event, status, error_type, response_time, data)
  select created_at, tenant_slug, service, event, status, error_type, response_time, data
  from bench.api_logs_source where created_at >= since
  order by id;
  get diagnostics made = row_count;
  if replace then
    foreach d in array defs loop
      execute replace(d, ' ON ONLY public.api_logs ', ' ON public.api_logs ');  -- a partitioned api_logs: on every partition
    end loop;
  end if;
  return made;
end;
$$;

-- why: the shared test database only: removes what load_api_logs appended (rows of the generated period for the
-- generated tenants), so the purge can run twice on the same rows.
create or replace function bench.remove_loaded(prefix text, since timestamptz, until timestamptz)
returns bigint language plpgsql as $$
declare
  gone bigint;
begin
  delete from public.api_logs
  where created_at >= since and created_at < until and tenant_slug like prefix || '%';
  get diagnostics gone = row_count;
  return gone;
end;
$$;
