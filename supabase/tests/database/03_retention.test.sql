-- Retention: the policies table, the batched api_logs purge on a fixture with known answers, the late-bound policy
-- purge, the orphan integrations report, and privileges.
begin;
select plan(19);

select has_table('maintenance', 'retention_policies', 'maintenance.retention_policies exists');
select has_function('maintenance', 'purge_api_logs_batch', array['timestamp with time zone', 'integer', 'timestamp with time zone'],
  'purge_api_logs_batch(cutoff, batch_size, after) exists');
select has_function('maintenance', 'purge_policy_batch', array['text', 'timestamp with time zone', 'integer', 'boolean'],
  'purge_policy_batch(policy, as_of, batch_size, dry_run) exists');
select table_privs_are('maintenance', 'retention_policies', 'anon', array[]::text[], 'anon cannot touch retention_policies');
select function_privs_are('maintenance', 'purge_api_logs_batch', array['timestamp with time zone', 'integer', 'timestamp with time zone'],
  'authenticated', array[]::text[], 'authenticated cannot purge api_logs');
select results_eq(
  $$select relation, keep from maintenance.retention_policies
    where relation in ('public.tenant_sessions_audit', 'cron.job_run_details', 'maintenance.job_runs') order by relation$$,
  $$values ('cron.job_run_details'::text, '7 days'::interval), ('maintenance.job_runs', '90 days'),
           ('public.tenant_sessions_audit', '0')$$,
  'pg_cron history is kept 7 days, job runs 90 days, sessions until they expire');

select results_eq(
  $$select relation, time_column, keep, present from maintenance.retention_plan()
    where relation in ('maintenance.webhook_receipts', 'maintenance.notification_outbox', 'maintenance.alerts',
      'maintenance.cross_tenant_hourly') order by relation$$,
  $$values ('maintenance.alerts'::text, 'resolved_at'::text, '90 days'::interval, true),
           ('maintenance.cross_tenant_hourly', 'hour', '90 days', true),
           ('maintenance.notification_outbox', 'settled_at', '30 days', true),
           ('maintenance.webhook_receipts', 'received_at', '7 days', true)$$,
  'webhook receipts (7 days), settled notifications (30 days), resolved alerts and the hourly cross-tenant record '
  || '(90 days) are purged, their tables found');

-- fixture: 5 expired rows, one exactly at the cut-off, two newer (all in the year 2001 so nothing else interferes)
delete from public.api_logs where created_at < '2001-02-01';
insert into public.api_logs (tenant_slug, service, event, status, created_at)
select 'pg-ret', 'whatsapp', 'x', 'success', t from unnest(array[
  '2001-01-01 00:00:00+00', '2001-01-02 00:00:00+00', '2001-01-03 00:00:00+00', '2001-01-09 23:59:59.999999+00',
  '2001-01-09 23:59:59.999999+00', '2001-01-10 00:00:00+00', '2001-01-10 00:00:00.000001+00', '2001-01-11 00:00:00+00'
]::timestamptz[]) t;

select results_eq(
  $$select deleted, last_created_at from maintenance.purge_api_logs_batch('2001-01-10 00:00:00+00', 2)$$,
  $$values (2, '2001-01-02 00:00:00+00'::timestamptz)$$,
  'a batch deletes the oldest batch_size expired rows and reports the last one');
select results_eq(
  $$select deleted from maintenance.purge_api_logs_batch('2001-01-10 00:00:00+00', 2, '2001-01-02 00:00:00+00')$$,
  $$values (2)$$,
  'the next batch continues after the previous one');
select results_eq(
  $$select deleted, last_created_at from maintenance.purge_api_logs_batch('2001-01-10 00:00:00+00', 2, '2001-01-09 23:59:59.999999+00')$$,
  $$values (1, '2001-01-09 23:59:59.999999+00'::timestamptz)$$,
  'a short batch means the purge is done (rows sharing the boundary timestamp included)');
select is(maintenance.count_expired_api_logs('2001-01-10 00:00:00+00'), 0::bigint, 'no expired row is left');
select results_eq(
  $$select created_at from public.api_logs where tenant_slug = 'pg-ret' order by created_at$$,
  $$values ('2001-01-10 00:00:00+00'::timestamptz), ('2001-01-10 00:00:00.000001+00'), ('2001-01-11 00:00:00+00')$$,
  'the row exactly at the cut-off and the newer ones stay');
select throws_ok($$select * from maintenance.purge_api_logs_batch(null, 10)$$, '22023', null,
  'a purge without a cut-off is refused');
select throws_ok($$select * from maintenance.purge_api_logs_batch(now(), 0)$$, '22023', null,
  'a batch size of 0 is refused');

-- a policy on a table that appears after the migration, and one on a table that never does
create table maintenance.pg_ret_receipts (id serial, received_at timestamptz);
insert into maintenance.pg_ret_receipts (received_at) values
  ('2001-01-01'), ('2001-01-07 12:00'), ('2001-01-08 12:00'), (null);
insert into maintenance.retention_policies (relation, time_column, keep) values
  ('maintenance.pg_ret_receipts', 'received_at', '7 days'), ('maintenance.pg_ret_never', 'received_at', '7 days');
select is(maintenance.purge_policy_batch('maintenance.pg_ret_receipts', '2001-01-15', 100, true), 2::bigint,
  'a dry run counts the rows older than keep');
select is(maintenance.purge_policy_batch('maintenance.pg_ret_receipts', '2001-01-15', 100), 2::bigint,
  'the purge deletes them');
select is((select count(*)::int from maintenance.pg_ret_receipts), 2, 'the newer and the undated rows stay');
select results_eq(
  $$select present, reason from maintenance.retention_plan() where relation = 'maintenance.pg_ret_never'$$,
  $$values (false, 'table does not exist'::text)$$,
  'a policy whose table does not exist is reported absent, not an error');

-- orphan integrations (FK dropped for the test only, restored by the rollback)
alter table public.tenant_integrations drop constraint tenant_integrations_tenant_id_fkey;
insert into public.tenant_integrations (id, tenant_id, integration_type, config)
values ('00000000-0000-0000-0000-0000000000fe', '00000000-0000-0000-0000-00000000beef', 'whatsapp',
  '{"instance_name":"revalya-ghost"}');
select is(maintenance.orphan_integrations_report(10),
  '{"count": 1, "rows": [{"id": "00000000-0000-0000-0000-0000000000fe", "tenantId": "00000000-0000-0000-0000-00000000beef",
    "integrationType": "whatsapp", "instanceName": "revalya-ghost", "isActive": true}]}'::jsonb,
  'the orphan integrations report lists the integration whose tenant is gone');

select * from finish();
rollback;
