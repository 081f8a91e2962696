-- The rollups' schedule (20261203016000): pg_cron's maintenance-rollups job, a first catch-up from the oldest row in
-- bounded steps, exact against the raw rows, and the rollups' retention applied by the same call.
begin;
select plan(9);

select results_eq($$select schedule, command from cron.job where jobname = 'maintenance-rollups'$$,
  $$values ('*/15 * * * *'::text, 'select maintenance.maintain_api_logs_rollup()'::text)$$,
  'pg_cron refreshes the rollups every 15 minutes, in SQL');

-- a database of three days of rows and no rollup yet (all rolled back at the end)
delete from public.api_logs;
delete from maintenance.api_logs_hourly;
update maintenance.api_logs_rollup_state set watermark = null;
insert into public.api_logs (created_at, tenant_slug, service, event, status, response_time)
select date_trunc('hour', now()) - interval '3 days' + i * interval '5 minutes', 'pg27-' || (i % 4), 'whatsapp',
  'send', case when i % 9 = 0 then 'error' else 'success' end, (i * 37) % 500
from generate_series(0, 3 * 24 * 12 + 5) i;  -- up to 25 minutes into the current hour
insert into maintenance.api_logs_hourly (service, tenant_slug, hour, total, ok, errors, samples, rt_sum)
values ('whatsapp', 'pg27-old', date_trunc('hour', now()) - interval '500 days', 1, 1, 0, 0, 0);

select is((select maintenance.maintain_api_logs_rollup('0 seconds', '1 day') -> 'refreshes'), '1'::jsonb,
  'with no budget left, one step per call');
select is((select watermark from maintenance.api_logs_rollup_state),
  date_trunc('hour', now()) - interval '2 days', 'the first step starts at the oldest row and covers one day');
select is((select count(*)::int from maintenance.api_logs_hourly where tenant_slug = 'pg27-old'), 0,
  'each call applies the rollups'' retention (400 days)');

select is((select r ->> 'caughtUp' from maintenance.maintain_api_logs_rollup() r), 'true',
  'the next call catches up to the last closed hour within its budget');
select is((select watermark from maintenance.api_logs_rollup_state), date_trunc('hour', now()),
  'the watermark is the current hour');
select is((select sum(total)::int from maintenance.api_logs_hourly where tenant_slug like 'pg27-%'),
  (select count(*)::int from public.api_logs where created_at < date_trunc('hour', now())),
  'every closed hour''s row counted once, the open hour left to the raw rows');

select throws_ok($$select maintenance.maintain_api_logs_rollup('1 hour')$$, '22023', null,
  'a budget above 10 minutes is refused');
select throws_ok($$select maintenance.maintain_api_logs_rollup('1 second', '10 minutes')$$, '22023', null,
  'a step under an hour is refused');

select * from finish();
rollback;
