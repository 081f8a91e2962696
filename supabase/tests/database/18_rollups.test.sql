-- Hourly rollups of api_logs: exact against the raw rows, re-aggregation without double counts, late rows inside the
-- recent window, the watermark, the rollups' retention, and the raw purge stopping at the watermark. Fixtures live
-- in 1993, which no other test uses.
begin;
select plan(14);

delete from public.api_logs where created_at >= '1993-01-01' and created_at < '1994-01-01';
insert into public.api_logs (created_at, tenant_slug, service, event, status, error_type, response_time)
select '1993-03-01 00:00'::timestamptz + (i * interval '37 seconds'), 'pg18-' || (i % 3), 'whatsapp',
  case when i % 5 = 0 then 'connection.update' else 'send' end,
  case when i % 7 = 0 then 'error' else 'success' end,
  case when i % 7 = 0 then (array['timeout', null, 'http_500'])[1 + i % 3] end,
  case when i % 11 = 0 then null else (i * 7919) % 900 end
from generate_series(1, 600) i;  -- 600 rows over about 6 h 10 min

update maintenance.api_logs_rollup_state set watermark = '1993-03-01 00:00';
select is((select watermark from maintenance.refresh_api_logs_rollup('1 hour', '1993-03-01 04:30')),
  '1993-03-01 04:00'::timestamptz, 'the watermark moves to the last closed hour');

create temp table t_raw as
select tenant_slug, date_trunc('hour', created_at) as hour, count(*) as total,
  count(*) filter (where status = 'success') as ok, count(*) filter (where status = 'error') as errors,
  count(response_time) as samples, sum(response_time) as rt_sum
from public.api_logs where created_at >= '1993-03-01' and created_at < '1993-03-01 04:00' and service = 'whatsapp'
group by 1, 2;

select is((select count(*) from maintenance.api_logs_hourly where hour >= '1993-03-01' and hour < '1993-03-02'),
  12::bigint, 'one row per tenant and closed hour (3 tenants × 4 hours), none for the open hour');
select is((select count(*) from (
    select tenant_slug, hour, total, ok, errors, samples, rt_sum from maintenance.api_logs_hourly
    where hour >= '1993-03-01' and hour < '1993-03-02'
    except select * from t_raw) x), 0::bigint, 'every figure equals the raw scan');
select is((select sum(c) from maintenance.api_logs_hourly h, unnest(h.rt_counts) c
    where h.hour >= '1993-03-01' and h.hour < '1993-03-02'),
  (select sum(samples) from t_raw)::numeric, 'the histograms hold every response time once');
select is((select array_agg(v order by v) from maintenance.api_logs_hourly h, unnest(h.rt_values, h.rt_counts) u(v, c),
    generate_series(1, c::integer) where h.hour >= '1993-03-01' and h.hour < '1993-03-02'),
  (select array_agg(response_time order by response_time) from public.api_logs
    where created_at >= '1993-03-01' and created_at < '1993-03-01 04:00' and response_time is not null),
  'the histograms are exact (every millisecond value with its count)');
select is((select sum((errors_by_type ->> 'unknown')::bigint)::bigint from maintenance.api_logs_hourly
    where hour >= '1993-03-01' and hour < '1993-03-02'),
  (select count(*) from public.api_logs where created_at >= '1993-03-01' and created_at < '1993-03-01 04:00'
    and status = 'error' and error_type is null), 'a null error_type counts as unknown');

-- a late row inside the recent window, then a second refresh: counted once, nothing doubled
insert into public.api_logs (created_at, tenant_slug, service, event, status, response_time)
values ('1993-03-01 03:59', 'pg18-0', 'whatsapp', 'send', 'success', 5);
select is((select watermark from maintenance.refresh_api_logs_rollup('1 hour', '1993-03-01 05:10')),
  '1993-03-01 05:00'::timestamptz, 'the second refresh moves the watermark by one hour');
select is((select sum(total) from maintenance.api_logs_hourly where hour >= '1993-03-01' and hour < '1993-03-01 04:00'),
  (select sum(total) from t_raw) + 1::numeric, 'the late row inside the recent window is counted, once');
select is((select sum(total)::bigint from maintenance.api_logs_hourly where hour >= '1993-03-01' and hour < '1993-03-01 05:00'),
  (select count(*) from public.api_logs where created_at >= '1993-03-01' and created_at < '1993-03-01 05:00'),
  'after two refreshes the rollups equal the raw rows (no hour counted twice)');

-- a refresh with the same as_of is idempotent
select is((select watermark from maintenance.refresh_api_logs_rollup('1 hour', '1993-03-01 05:10')),
  '1993-03-01 05:00'::timestamptz, 'a repeated refresh keeps the watermark');

-- the raw purge stops at the watermark
select is((select deleted from maintenance.purge_api_logs_batch('1993-03-02', 100000)),
  (select count(*)::integer from public.api_logs where created_at < '1993-03-01 05:00'
    and created_at >= '1993-01-01'), 'the raw purge removes only rows of rolled-up hours');
select ok(exists (select 1 from public.api_logs where created_at >= '1993-03-01 05:00' and created_at < '1993-03-02'),
  'rows of hours not yet rolled up stay');

select throws_ok($$select * from maintenance.refresh_api_logs_rollup('-1 hour')$$, '22023', null,
  'a negative recent window is refused');
select is(maintenance.purge_api_logs_rollup('1 day', '1993-03-02 12:00'), 12::bigint + 3,
  'the rollups past their retention are purged');

select * from finish();
rollback;
