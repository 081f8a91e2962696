-- The weekly report's SQL functions: they exist, only the service role may call them, they refuse bad periods,
-- and a tiny fixture gives the expected headline figures.
begin;
select plan(10);

select has_function('maintenance', 'performance_metrics', array['timestamp with time zone', 'timestamp with time zone', 'text', 'integer'],
  'performance_metrics(since, until, service, top_n) exists');
select has_function('maintenance', 'usage_report', array['integer', 'timestamp with time zone', 'integer'],
  'usage_report(days, until, top_n) exists');
select has_function('maintenance', 'weekly_report', array['integer', 'timestamp with time zone'], 'weekly_report(days, until) exists');
select function_privs_are('maintenance', 'weekly_report', array['integer', 'timestamp with time zone'], 'anon', array[]::text[],
  'anon cannot read the weekly report');
select function_privs_are('maintenance', 'performance_metrics', array['timestamp with time zone', 'timestamp with time zone', 'text', 'integer'],
  'authenticated', array[]::text[], 'authenticated cannot read the performance metrics');
select throws_ok($$select maintenance.usage_report(0)$$, '22023', null, 'a period of 0 days is refused');
select throws_ok($$select maintenance.performance_metrics(now(), now() - interval '1 day')$$, '22023', null,
  'a period that ends before it starts is refused');

delete from public.api_logs where created_at >= '1999-01-01' and created_at < '1999-01-09';
insert into public.api_logs (tenant_slug, service, event, status, response_time, created_at) values
  ('pg-rep', 'whatsapp', 'connect', 'success', 6000, '1999-01-02'),
  ('pg-rep', 'whatsapp', 'connect', 'success', 8000, '1999-01-03'),
  ('pg-rep', 'other', 'connect', 'error', 1, '1999-01-03');
select is(maintenance.performance_metrics('1999-01-01', '1999-01-08') -> 'responseTime',
  '{"samples": 2, "avg": 7000.00, "p50": 7000.00, "p95": 7900.00, "p99": 7980.00}'::jsonb,
  'average and percentiles of the whatsapp rows only');
select is(maintenance.performance_metrics('1999-01-01', '1999-01-08') ->> 'diagnosis', 'slow_api',
  'an average above 5,000 ms is diagnosed slow_api');
select is(maintenance.weekly_report(7, '1999-01-08') #>> '{performance,successRate}', '100.00',
  'the weekly report carries the performance figures of the same period');

select * from finish();
rollback;
