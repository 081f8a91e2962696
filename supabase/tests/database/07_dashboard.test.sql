-- Dashboard views, job health, cron schedule arithmetic and the status page's SQL.
begin;
select plan(52);

-- the views exist, with the columns the table editor shows
select has_view('maintenance', 'dashboard_tenants', 'current health per tenant is a view');
select has_view('maintenance', 'dashboard_open_alerts', 'open alerts is a view');
select has_view('maintenance', 'dashboard_jobs', 'job health is a view');
select has_view('maintenance', 'dashboard_isolation_violations', 'isolation violations is a view');
select has_view('maintenance', 'dashboard_recent_actions', 'recent actions is a view');
select columns_are('maintenance', 'dashboard_tenants', array['tenant_slug', 'tenant_name', 'state', 'issue_code',
  'issue', 'severity', 'evolution_state', 'flags', 'since', 'state_for', 'last_checked_at', 'last_change_at',
  'last_event_at', 'last_event', 'last_webhook_state', 'open_alerts', 'alert_fingerprints', 'tenant_id'],
  'dashboard_tenants shows state, since, last event and open alerts');
select columns_are('maintenance', 'dashboard_open_alerts', array['severity', 'fingerprint', 'kind', 'scope',
  'tenant_slug', 'summary', 'started_at', 'firing_for', 'last_seen_at', 'inhibited_by', 'notified_count',
  'last_notified_at', 'details', 'alert_id'], 'dashboard_open_alerts shows severity, summary and how long it fires');
select columns_are('maintenance', 'dashboard_jobs', array['job', 'schedule', 'active', 'last_run_at',
  'last_run_status', 'last_run_duration_ms', 'last_run_error', 'last_success_at', 'running', 'next_due_at',
  'expected_by', 'missed', 'missed_alert'], 'dashboard_jobs shows last run, last success, next due and missed');
select columns_are('maintenance', 'dashboard_isolation_violations', array['kind', 'tenant_slug', 'tenant_id',
  'integration_id', 'current_value', 'expected_value', 'attempts', 'last_seen_at'],
  'dashboard_isolation_violations has a kind column');
select columns_are('maintenance', 'dashboard_recent_actions', array['created_at', 'action', 'tenant_slug', 'result',
  'error', 'actor', 'operation_id', 'before', 'after', 'audit_id'], 'dashboard_recent_actions shows who did what');

-- closed to the Data API roles, readable by the service role
select is((select count(*)::int from information_schema.role_table_grants g
           where g.table_schema = 'maintenance' and g.table_name like 'dashboard\_%'
             and g.grantee in ('anon', 'authenticated', 'PUBLIC')), 0,
  'anon and authenticated have no privilege on any dashboard view');
select table_privs_are('maintenance', 'dashboard_tenants', 'anon', array[]::text[], 'anon cannot read dashboard_tenants');
select table_privs_are('maintenance', 'dashboard_jobs', 'authenticated', array[]::text[],
  'authenticated cannot read dashboard_jobs');
select table_privs_are('maintenance', 'dashboard_open_alerts', 'service_role', array['SELECT'],
  'the service role reads dashboard_open_alerts');
select is((select count(*)::int from information_schema.role_routine_grants g
           where g.routine_schema = 'maintenance'
             and g.routine_name in ('cron_field_values', 'cron_next_run', 'job_health', 'availability_bars',
                                    'status_page_tenants', 'status_page_summary')
             and g.grantee in ('anon', 'authenticated', 'PUBLIC')), 0,
  'anon and authenticated cannot execute the dashboard and status page functions');
select is((select count(*)::int from pg_proc p join pg_namespace n on n.oid = p.pronamespace
           where n.nspname = 'maintenance' and p.proname in ('job_health', 'availability_bars', 'status_page_tenants',
             'status_page_summary') and p.prosecdef
             and array_to_string(p.proconfig, ',') like '%search_path=""%'), 4,
  'the security definer functions pin an empty search_path');

-- cron arithmetic (the next runs pg_cron itself would make)
select is(maintenance.cron_next_run('*/5 * * * *', '2026-01-01 10:05:00Z'), '2026-01-01 10:10:00Z'::timestamptz,
  'every five minutes: strictly after the given time');
select is(maintenance.cron_next_run('*/5 * * * *', '2026-01-01 10:07:31Z'), '2026-01-01 10:10:00Z'::timestamptz,
  'every five minutes from a time between runs');
select is(maintenance.cron_next_run('0 2 * * *', '2026-01-01 02:00:00Z'), '2026-01-02 02:00:00Z'::timestamptz,
  'daily at 02:00, asked at 02:00, is tomorrow');
select is(maintenance.cron_next_run('0 8 * * 0', '2026-11-27 12:00Z'), '2026-11-29 08:00:00Z'::timestamptz,
  'Sundays 08:00 (2026-11-29 is a Sunday)');
select is(maintenance.cron_next_run('0 8 * * 7', '2026-11-27 12:00Z'), '2026-11-29 08:00:00Z'::timestamptz,
  'day of week 7 is Sunday too');
select is(maintenance.cron_next_run('30 9 * * mon-fri', '2026-11-27 10:00Z'), '2026-11-30 09:30:00Z'::timestamptz,
  'weekday names: Friday after 09:30 → Monday');
select is(maintenance.cron_next_run('0 0 1,15 * 1', '2026-12-02 00:00Z'), '2026-12-07 00:00:00Z'::timestamptz,
  'day of month and day of week both restricted: either matches (vixie cron)');
select is(maintenance.cron_next_run('0 0 29 feb *', '2026-03-01Z'), '2028-02-29 00:00:00Z'::timestamptz,
  'a leap-day schedule finds the next leap year');
select is(maintenance.cron_next_run('@hourly', '2026-01-01 10:00Z'), '2026-01-01 11:00:00Z'::timestamptz,
  '@hourly is expanded');
select is(maintenance.cron_next_run('30 seconds', '2026-01-01 10:00Z'), '2026-01-01 10:00:30Z'::timestamptz,
  'pg_cron''s interval form adds the seconds');
select ok(maintenance.cron_next_run('61 * * * *', now()) is null and maintenance.cron_next_run('0 0 31 2 *', now()) is null
  and maintenance.cron_next_run('* * *', now()) is null, 'an invalid or impossible schedule gives null');

-- job health: last success, next due and missed, as of a fixed time (npm test pauses the schedules; resume them here)
select cron.alter_job(jobid, active := true) from cron.job where jobname like 'canais-%';
insert into maintenance.job_runs (job, status, started_at, finished_at, duration_ms, trigger) values
  ('health-check', 'healthy', '2029-12-31 23:00Z', '2029-12-31 23:00:01Z', 1000, 'test'),
  ('health-check', 'error', '2029-12-31 23:30Z', '2029-12-31 23:30:01Z', 1000, 'test');
select results_eq($$select last_success_at, last_run_status, next_due_at, expected_by, missed
                    from maintenance.job_health('2029-12-31 23:10Z') where job = 'health-check'$$,
  $$values ('2029-12-31 23:00Z'::timestamptz, 'healthy'::text, '2029-12-31 23:15Z'::timestamptz,
            '2029-12-31 23:15Z'::timestamptz, false)$$,
  'ten minutes after a success the health check is not missed (next run 23:05 + 10 min grace)');
select results_eq($$select last_run_status, last_success_at, missed from maintenance.job_health('2030-01-01 00:00Z')
                    where job = 'health-check'$$,
  $$values ('error'::text, '2029-12-31 23:00Z'::timestamptz, true)$$,
  'an hour without a success is a missed run, and the last run shows its error');
select is((select count(*)::int from maintenance.job_health('2030-01-01Z')),
  (select count(*)::int from maintenance.scheduled_jobs), 'every scheduled job has a row');

-- the status page fixture: three tenants, health checks every five minutes for eight days, except one day
create temp table fx as select '2030-02-01 00:00Z'::timestamptz as as_of;
insert into public.tenants (id, slug, name) values
  ('00000000-0000-0000-0000-0000000007a1', 'sp7-ok', 'Healthy Co'),
  ('00000000-0000-0000-0000-0000000007a2', 'sp7-deg', 'Degraded Co'),
  ('00000000-0000-0000-0000-0000000007a3', 'sp7-down', 'Down <b>Co</b>');
insert into maintenance.job_runs (job, status, started_at, trigger, report)
select 'health-check', 'healthy', t, 'test', '{"services":{"evolution_api":{"status":"healthy"},"database":{"status":"healthy"}}}'
from fx, generate_series(fx.as_of - interval '8 days', fx.as_of - interval '1 minute', interval '5 minutes') t
where not (t > fx.as_of - interval '5 days' and t < fx.as_of - interval '4 days');
insert into maintenance.tenant_health_history (tenant_id, tenant_slug, from_state, to_state, at)
select x.id::uuid, x.slug, x.f, x.t, fx.as_of + x.ago from fx, (values
  ('00000000-0000-0000-0000-0000000007a1', 'sp7-ok', null, 'healthy', - interval '8 days'),
  ('00000000-0000-0000-0000-0000000007a2', 'sp7-deg', null, 'healthy', - interval '8 days'),
  ('00000000-0000-0000-0000-0000000007a2', 'sp7-deg', 'healthy', 'degraded', - interval '6 hours'),
  ('00000000-0000-0000-0000-0000000007a3', 'sp7-down', null, 'healthy', - interval '3 days'),
  ('00000000-0000-0000-0000-0000000007a3', 'sp7-down', 'healthy', 'unhealthy', - interval '12 hours')
) x(id, slug, f, t, ago);
delete from maintenance.tenant_health;
insert into maintenance.tenant_health (tenant_id, tenant_slug, state, issue_code, issue, since, last_checked_at,
  last_change_at)
select x.id::uuid, x.slug, x.state, x.code, x.issue, fx.as_of + x.since, fx.as_of - interval '1 minute', fx.as_of + x.since
from fx, (values
  ('00000000-0000-0000-0000-0000000007a1', 'sp7-ok', 'healthy', null, null, - interval '8 days'),
  ('00000000-0000-0000-0000-0000000007a2', 'sp7-deg', 'degraded', 'instance_disconnected', 'WhatsApp not connected (close)', - interval '6 hours'),
  ('00000000-0000-0000-0000-0000000007a3', 'sp7-down', 'unhealthy', 'instance_missing', 'Instance not found in Evolution API', - interval '12 hours')
) x(id, slug, state, code, issue, since);

create temp table bars24 as
select b.tenant_id, b.availability, (select jsonb_agg(jsonb_build_array(s ->> 'state', (s ->> 'from')::int, (s ->> 'to')::int))
  from jsonb_array_elements(b.segments) s) as segs
from fx, maintenance.availability_bars(array['00000000-0000-0000-0000-0000000007a1',
  '00000000-0000-0000-0000-0000000007a2', '00000000-0000-0000-0000-0000000007a3']::uuid[],
  fx.as_of - interval '24 hours', fx.as_of, 96) b;
create temp table bars7d as
select b.tenant_id, b.availability, (select jsonb_agg(jsonb_build_array(s ->> 'state', (s ->> 'from')::int, (s ->> 'to')::int))
  from jsonb_array_elements(b.segments) s) as segs
from fx, maintenance.availability_bars(array['00000000-0000-0000-0000-0000000007a1',
  '00000000-0000-0000-0000-0000000007a2', '00000000-0000-0000-0000-0000000007a3']::uuid[],
  fx.as_of - interval '7 days', fx.as_of, 168) b;

select is((select segs from bars24 where tenant_id = '00000000-0000-0000-0000-0000000007a1'),
  '[["healthy",0,96]]'::jsonb, '24 h: a tenant healthy all day is one healthy segment');
select is((select availability from bars24 where tenant_id = '00000000-0000-0000-0000-0000000007a1'), 100.00,
  '24 h: and 100 % available');
select is((select segs from bars24 where tenant_id = '00000000-0000-0000-0000-0000000007a2'),
  '[["healthy",0,72],["degraded",72,96]]'::jsonb, '24 h: degraded for the last 6 h is the last quarter of the bar');
select is((select availability from bars24 where tenant_id = '00000000-0000-0000-0000-0000000007a2'), 75.00,
  '24 h: 18 of 24 known hours healthy is 75 %');
select is((select segs from bars24 where tenant_id = '00000000-0000-0000-0000-0000000007a3'),
  '[["healthy",0,48],["unhealthy",48,96]]'::jsonb, '24 h: down for the last 12 h is the second half');
select is((select segs from bars7d where tenant_id = '00000000-0000-0000-0000-0000000007a1'),
  '[["healthy",0,49],["unknown",49,72],["healthy",72,168]]'::jsonb,
  '7 days: the day without health-check runs is unknown (the last check before it still covers 15 min)');
select is((select availability from bars7d where tenant_id = '00000000-0000-0000-0000-0000000007a1'), 100.00,
  '7 days: unknown time counts neither up nor down');
select is((select segs from bars7d where tenant_id = '00000000-0000-0000-0000-0000000007a3'),
  '[["unknown",0,96],["healthy",96,156],["unhealthy",156,168]]'::jsonb,
  '7 days: before its first check a tenant is unknown');
select is((select availability from bars7d where tenant_id = '00000000-0000-0000-0000-0000000007a3'), 83.33,
  '7 days: 60 of 72 known hours healthy');
select is((select count(*)::int from bars24), 3, 'one bar per tenant asked for');

-- the tenants section: worst first, capped, counted, searchable
select results_eq($$select tenant_slug, state from fx, maintenance.status_page_tenants(fx.as_of, 10, 'sp7-')$$,
  $$values ('sp7-down'::text, 'unhealthy'::text), ('sp7-deg', 'degraded'), ('sp7-ok', 'healthy')$$,
  'tenants are listed worst first');
select results_eq($$select tenant_slug, total from fx, maintenance.status_page_tenants(fx.as_of, 2, 'SP7-')$$,
  $$values ('sp7-down'::text, 3::bigint), ('sp7-deg', 3::bigint)$$,
  'the cap keeps the worst, and total counts every match (search is case-insensitive)');
select is((select count(*)::int from fx, maintenance.status_page_tenants(fx.as_of, 10, 'down <b>')), 1,
  'search matches the tenant name too');
select is((select count(*)::int from fx, maintenance.status_page_tenants(fx.as_of, 10, 'sp7_')), 0,
  'search treats _ and % literally');
select is((select segments_24h -> 1 ->> 'state' from fx, maintenance.status_page_tenants(fx.as_of, 10, 'sp7-deg')),
  'degraded', 'the tenants section carries the 24 h bar');

-- the summary: overall status from the last check, tenants, alerts and jobs
delete from maintenance.alerts;
select is((select maintenance.status_page_summary(fx.as_of) #>> '{tenants,unhealthy}' from fx), '1',
  'the summary counts unhealthy tenants');
select is((select maintenance.status_page_summary(fx.as_of) ->> 'overall' from fx), 'degraded',
  'tenants with issues make the platform degraded');
select is((select maintenance.status_page_summary(fx.as_of) #>> '{services,evolution_api,status}' from fx), 'healthy',
  'service health comes from the last health-check run');
select is((select maintenance.status_page_summary(fx.as_of + interval '1 hour') ->> 'overall' from fx), 'unknown',
  'no health check for an hour: status unknown');
insert into maintenance.alerts (fingerprint, kind, scope, status, severity, summary, started_at, last_seen_at)
select 'evolution_down', 'evolution_down', 'platform', 'firing', 'critical', 'Evolution API is down', fx.as_of, fx.as_of
from fx;
select is((select maintenance.status_page_summary(fx.as_of) ->> 'overall' from fx), 'outage',
  'a critical platform alert is an outage');

-- the dashboard views answer with the fixture
select is((select state from maintenance.dashboard_tenants where tenant_slug = 'sp7-down'), 'unhealthy',
  'dashboard_tenants shows the current state');
select is((select kind from maintenance.dashboard_open_alerts where fingerprint = 'evolution_down'), 'evolution_down',
  'dashboard_open_alerts lists the firing alert');

select * from finish();
rollback;
