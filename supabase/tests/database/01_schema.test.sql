-- Foundation: tables, views, privileges, the seed's isolation views on a fixture, and the cron schedules.
begin;
select plan(42);

-- the database is a Supabase project's: the real extensions, and a postgres that is not a superuser
select results_eq($$select extname::text collate "default", extversion::text collate "default" from pg_extension
                    where extname in ('pg_net', 'supabase_vault') order by 1$$,
  $$values ('pg_net', '0.20.4'), ('supabase_vault', '0.3.1')$$,
  'the real pg_net (0.20.5, whose SQL version is 0.20.4) and supabase_vault 0.3.1 are installed');
select is((select rolsuper from pg_roles where rolname = current_user), false,
  'the tests run as postgres, and postgres is not a superuser');
select ok(exists (select 1 from pg_stat_activity where backend_type like 'pg_net % worker'),
  'pg_net''s background worker runs');
select ok(has_table_privilege('postgres', 'cron.job', 'select') and not has_table_privilege('postgres', 'cron.job', 'update'),
  'postgres reads cron.job and may not write it, as on Supabase');

select has_table('public', 'tenants', 'tenants exists');
select has_table('public', 'tenant_integrations', 'tenant_integrations exists');
select has_table('public', 'api_logs', 'api_logs exists');
select has_table('public', 'tenant_sessions_audit', 'tenant_sessions_audit exists');
select has_table('maintenance', 'job_runs', 'maintenance.job_runs exists');
select has_table('maintenance', 'settings', 'maintenance.settings exists');
select has_table('maintenance', 'job_leases', 'maintenance.job_leases exists');
select has_view('maintenance', 'instance_status', 'the instance status view exists');
select has_view('maintenance', 'naming_violations', 'the naming view exists');
select has_view('maintenance', 'webhook_mismatches', 'the webhook URL view exists');
select has_view('maintenance', 'orphan_integrations', 'the orphan integrations view exists');
select has_index('public', 'api_logs', 'api_logs_created_at_idx', 'api_logs is indexed by created_at for retention');
select has_index('public', 'api_logs', 'api_logs_tenant_created_idx', 'api_logs is indexed by (tenant_slug, created_at)');
select has_index('public', 'api_logs', 'api_logs_service_event_created_idx', 'api_logs is indexed by (service, event, created_at)');
select has_function('maintenance', 'invoke_function', array['text', 'jsonb'], 'invoke_function(name, body) exists');

select ok((select bool_and(c.relrowsecurity) from pg_class c
  where c.oid in ('public.tenants'::regclass, 'public.tenant_integrations'::regclass, 'public.api_logs'::regclass,
                  'public.tenant_sessions_audit'::regclass)),
  'the app tables this bundle created have row level security on (closed to the Data API by default)');

-- maintenance is closed to the Data API roles
select schema_privs_are('maintenance', 'anon', array[]::text[], 'anon has no privilege on schema maintenance');
select schema_privs_are('maintenance', 'authenticated', array[]::text[], 'authenticated has no privilege on schema maintenance');
select table_privs_are('maintenance', 'job_runs', 'anon', array[]::text[], 'anon cannot touch job_runs');
select table_privs_are('maintenance', 'job_runs', 'authenticated', array[]::text[], 'authenticated cannot touch job_runs');
select function_privs_are('maintenance', 'invoke_function', array['text', 'jsonb'], 'anon', array[]::text[],
  'anon cannot call invoke_function');
select ok(not has_table_privilege('authenticated', 'maintenance.naming_violations', 'select'),
  'authenticated cannot read the isolation views');

-- fixture: one violation of each kind, plus a clean tenant
update maintenance.settings set value = '"revalya-"' where key = 'instance_prefix';
update maintenance.settings set value = '"https://app.example/fn"' where key = 'webhook_base_url';
insert into public.tenants (id, slug) values
  ('00000000-0000-0000-0000-000000000001', 'pg-clean'),
  ('00000000-0000-0000-0000-000000000002', 'pg-prefix'),
  ('00000000-0000-0000-0000-000000000003', 'pg-mismatch'),
  ('00000000-0000-0000-0000-000000000004', 'pg-webhook'),
  ('00000000-0000-0000-0000-000000000005', 'pg-stale'),
  ('00000000-0000-0000-0000-000000000006', 'pg-off');
insert into public.tenant_integrations (tenant_id, integration_type, config, is_active, updated_at)
select id, 'whatsapp', jsonb_build_object(
    'instance_name', case slug when 'pg-prefix' then 'other-pg-prefix' when 'pg-mismatch' then 'revalya-pg-clean' else 'revalya-' || slug end,
    'webhook_url', case slug when 'pg-webhook' then 'https://evil.example/hook' else 'https://app.example/fn/api/whatsapp/webhook/' || slug end),
  slug <> 'pg-off', case slug when 'pg-stale' then now() - interval '25 hours' else now() end
from public.tenants where slug like 'pg-%';
-- an orphan integration row: its tenant is gone (FK dropped for the test only, restored by the rollback)
alter table public.tenant_integrations drop constraint tenant_integrations_tenant_id_fkey;
insert into public.tenant_integrations (id, tenant_id, integration_type, config)
values ('00000000-0000-0000-0000-0000000000ff', '00000000-0000-0000-0000-00000000dead', 'whatsapp', '{"instance_name":"revalya-ghost"}');

select results_eq(
  $$select tenant_slug, violation, current_name, expected_name from maintenance.naming_violations
    where tenant_slug like 'pg-%' order by tenant_slug$$,
  $$values ('pg-mismatch'::text, 'slug_mismatch'::text, 'revalya-pg-clean'::text, 'revalya-pg-mismatch'::text),
           ('pg-prefix', 'invalid_prefix', 'other-pg-prefix', 'revalya-pg-prefix')$$,
  'naming_violations reports exactly the invalid prefix and the slug mismatch');
select results_eq(
  $$select tenant_slug, current_url, expected_url from maintenance.webhook_mismatches where tenant_slug like 'pg-%'$$,
  $$values ('pg-webhook'::text, 'https://evil.example/hook'::text, 'https://app.example/fn/api/whatsapp/webhook/pg-webhook'::text)$$,
  'webhook_mismatches reports exactly the wrong webhook URL');
select results_eq(
  $$select tenant_slug, status from maintenance.instance_status where tenant_slug in ('pg-clean', 'pg-stale', 'pg-off')
    order by tenant_slug$$,
  $$values ('pg-clean'::text, 'Active'::text), ('pg-off', 'Inactive'), ('pg-stale', 'Stale')$$,
  'instance_status says Active, Inactive and Stale (not updated for 24 h) as the seed does');
select results_eq(
  $$select id from maintenance.orphan_integrations$$,
  $$values ('00000000-0000-0000-0000-0000000000ff'::uuid)$$,
  'orphan_integrations lists exactly the integration whose tenant is gone');

-- schedules
select results_eq(
  $$select jobname::text collate "default", schedule::text collate "default" from cron.job where jobname like 'canais-%' order by jobname$$,
  $$select ('canais-' || job)::text collate "default", schedule collate "default" from maintenance.scheduled_jobs order by job$$,
  'every row of maintenance.scheduled_jobs is a pg_cron job canais-<job> with its schedule, and nothing else is');
select ok((select count(*) >= 1 from maintenance.scheduled_jobs), 'the jobs have their rows');
select ok((select bool_and(command like '%maintenance.invoke_function(%') from cron.job where jobname like 'canais-%'),
  'every schedule goes through maintenance.invoke_function');
select lives_ok($$select maintenance.set_schedule('health-check', '*/5 * * * *')$$,
  're-applying a schedule is idempotent');
select is((select count(*)::int from cron.job where jobname = 'canais-health-check'), 1,
  're-applying leaves exactly one health-check job');
select throws_ok($$select maintenance.set_schedule('drop-database', '* * * * *')$$, '22023', null,
  'set_schedule refuses an unknown job');
select throws_ok($$update maintenance.scheduled_jobs set schedule = 'every tuesday' where job = 'health-check'$$,
  null, null, 'a schedule pg_cron cannot read is refused with the row');
select throws_ok($$select maintenance.invoke_function('../etc', '{}')$$, '22023', null,
  'invoke_function refuses a function name that is not a plain name');
select isnt((select maintenance.invoke_function('health-check', '{}')), null,
  'invoke_function queues a request through pg_net (read back from Vault)');
select ok(exists (select 1 from net.http_request_queue q where q.url like '%/functions/v1/health-check'
    and q.headers ->> 'apikey' is not null),
  'the queued request targets the function with the secret key from Vault');
select ok(exists (select 1 from net.http_request_queue q where q.url like '%/functions/v1/health-check'
    and q.headers ->> 'Prefer' = 'respond-async' and q.timeout_milliseconds = 15000),
  'a scheduled call asks for an asynchronous answer (202 at once), with a 15 s timeout for a cold start');
select is((select job from maintenance.scheduled_calls c order by c.requested_at desc, c.request_id desc limit 1),
  'health-check', 'the call is recorded in maintenance.scheduled_calls, which outlives pg_net''s six-hour answers');

select * from finish();
rollback;
