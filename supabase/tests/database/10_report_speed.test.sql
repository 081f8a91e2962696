-- The weekly report's speed-ups: the covering index the one-pass performance_metrics reads, and the function keeps
-- its safety settings next to the ones it adds (work_mem, jit).
begin;
select plan(4);

select has_index('public', 'api_logs', 'api_logs_report_idx',
  array['service', 'created_at', 'tenant_slug', 'status', 'response_time', 'error_type'],
  'api_logs has the (service, created_at) index the report reads');
select ok((select indnatts = 6 and indnkeyatts = 2 from pg_index where indexrelid = 'public.api_logs_report_idx'::regclass),
  'it carries tenant_slug, status, response_time and error_type for an index-only scan');
select ok((select prosecdef and proconfig @> array['search_path=""', 'work_mem=128MB', 'jit=off']
    from pg_proc where oid = 'maintenance.performance_metrics(timestamptz, timestamptz, text, integer)'::regprocedure),
  'performance_metrics is security definer with an empty search_path, its work_mem and jit off');

delete from public.api_logs where created_at >= '1998-01-01' and created_at < '1998-01-09';
insert into public.api_logs (tenant_slug, service, event, status, error_type, response_time, created_at) values
  ('pg-fast', 'whatsapp', 'connect', 'success', null, 10, '1998-01-02'),
  ('pg-fast', 'whatsapp', 'connect', 'error', null, 20, '1998-01-03'),
  (null, 'whatsapp', 'connect', 'error', 'timeout', 40, '1998-01-03');
select is(maintenance.performance_metrics('1998-01-01', '1998-01-08') - 'period' - 'tenants' - 'slowestTenants',
  '{"service": "whatsapp", "totalRequests": 3, "successCount": 1, "errorCount": 2, "successRate": 33.33,
    "responseTime": {"samples": 3, "avg": 23.33, "p50": 20.00, "p95": 38.00, "p99": 39.60},
    "errorsByType": {"timeout": 1, "unknown": 1}, "diagnosis": "high_error_rate"}'::jsonb,
  'overall figures include the rows without a tenant');

select * from finish();
rollback;
