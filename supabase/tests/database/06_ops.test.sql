-- The actions audit, tenant operation leases, the remediation budget, orphan sightings, cross-tenant
-- attempts and the per-tenant diagnosis aggregates.
begin;
select plan(38);

-- schema and privileges
select has_table('maintenance', 'actions_audit', 'maintenance.actions_audit exists');
select has_table('maintenance', 'tenant_operation_leases', 'maintenance.tenant_operation_leases exists');
select has_table('maintenance', 'orphan_sightings', 'maintenance.orphan_sightings exists');
select table_privs_are('maintenance', 'actions_audit', 'anon', array[]::text[], 'anon cannot touch actions_audit');
select table_privs_are('maintenance', 'actions_audit', 'authenticated', array[]::text[],
  'authenticated cannot touch actions_audit');
select ok(not has_table_privilege('service_role', 'maintenance.actions_audit', 'update'),
  'even service_role cannot update an audit row');
select function_privs_are('maintenance', 'acquire_tenant_lease', array['text', 'uuid', 'text', 'text', 'integer'],
  'anon', array[]::text[], 'anon cannot take a tenant lease');
select function_privs_are('maintenance', 'store_evolution_key', array['text', 'text'], 'authenticated',
  array[]::text[], 'authenticated cannot store an Evolution key');
select is((select count(*)::int from maintenance.retention_policies where relation = 'maintenance.actions_audit'), 1,
  'the audit trail has a retention policy');

-- actions_audit rows
insert into maintenance.actions_audit (actor, action, tenant_slug, result, after)
values ('pgtap', 'fix.reconnect', 'pg6-a', 'ok', '{}');
select throws_ok($$update maintenance.actions_audit set result = 'failed', error = 'x' where tenant_slug = 'pg6-a'$$,
  '55000', null, 'an audit row cannot be rewritten');
select throws_ok($$insert into maintenance.actions_audit (actor, action, result) values ('pgtap', 'x', 'failed')$$,
  '23514', null, 'a failed action must say why (error is required)');
select throws_ok($$insert into maintenance.actions_audit (actor, action, result) values ('pgtap', 'x', 'maybe')$$,
  '23514', null, 'the result is one of the known values');

-- leases
select is((select acquired from maintenance.acquire_tenant_lease('pg6-a', '00000000-0000-0000-0000-00000000000a',
  'reset', 'pgtap', 60)), true, 'the first operation takes the tenant lease');
select results_eq(
  $$select acquired, holder_action from maintenance.acquire_tenant_lease('pg6-a',
    '00000000-0000-0000-0000-00000000000b', 'migrate', 'pgtap', 60)$$,
  $$values (false, 'reset'::text)$$,
  'a second operation on the same tenant is refused and sees the holder');
select is((select acquired from maintenance.acquire_tenant_lease('pg6-b', '00000000-0000-0000-0000-00000000000b',
  'migrate', 'pgtap', 60)), true, 'another tenant is not blocked');
select is(maintenance.release_tenant_lease('pg6-a', '00000000-0000-0000-0000-00000000000b'), false,
  'an operation cannot release a lease it does not hold');
select is(maintenance.release_tenant_lease('pg6-a', '00000000-0000-0000-0000-00000000000a'), true,
  'the holder releases its lease');
update maintenance.tenant_operation_leases set expires_at = now() - interval '1 second' where tenant_slug = 'pg6-b';
select is((select acquired from maintenance.acquire_tenant_lease('pg6-b', '00000000-0000-0000-0000-00000000000c',
  'fix', 'pgtap', 60)), true, 'an expired lease is taken over');
select throws_ok($$select * from maintenance.acquire_tenant_lease('pg6-c', gen_random_uuid(), 'fix', 'pgtap', 0)$$,
  '22023', null, 'a lease needs a positive duration');

-- remediation budget (default 3 per 60 minutes)
select results_eq($$select used, remaining from maintenance.remediation_budget('pg6-a')$$,
  $$values (1, 2)$$, 'one reconnect used, two left');
insert into maintenance.actions_audit (actor, action, tenant_slug, result, error, created_at) values
  ('pgtap', 'fix.create_instance', 'pg6-a', 'failed', 'boom', now() - interval '10 minutes'),
  ('pgtap', 'reconnect.connect', 'pg6-a', 'ok', null, now() - interval '20 minutes'),
  ('pgtap', 'reconnect.connect', 'pg6-a', 'planned', null, now()),
  ('pgtap', 'fix.reconnect', 'pg6-a', 'refused', 'budget', now()),
  ('pgtap', 'fix.reconnect', 'pg6-a', 'ok', null, now() - interval '2 hours'),
  ('pgtap', 'fix.reconnect', 'pg6-other', 'ok', null, now());
select results_eq($$select used, remaining from maintenance.remediation_budget('pg6-a')$$,
  $$values (3, 0)$$, 'failed attempts count, plans, refusals, old rows and other tenants do not');
select ok((select resets_at between now() + interval '39 minutes' and now() + interval '41 minutes'
  from maintenance.remediation_budget('pg6-a')),
  'the budget says when the next remediation is allowed (the oldest counted one leaves the window)');

-- orphan sightings
update maintenance.settings set value = '"revalya-"' where key = 'instance_prefix';
insert into public.tenants (id, slug) values ('00000000-0000-0000-0000-000000000601', 'pg6-live'),
  ('00000000-0000-0000-0000-000000000602', 'pg6-nocfg');
insert into public.tenant_integrations (tenant_id, integration_type, config)
values ('00000000-0000-0000-0000-000000000601', 'whatsapp', '{"instance_name":"revalya-pg6-live"}');
select results_eq(
  $$select instance_name, times_seen, tenant_exists, eligible from maintenance.sight_orphans(
    '[{"name":"revalya-pg6-live","state":"open"},{"name":"revalya-pg6-gone","state":"close"},
      {"name":"revalya-pg6-nocfg","state":"open"}]', '00000000-0000-0000-0000-000000000001', '24 hours')$$,
  $$values ('revalya-pg6-gone'::text, 1, false, false), ('revalya-pg6-nocfg', 1, true, false)$$,
  'first run: the instance no row names is sighted, not eligible; a live tenant''s instance is flagged');
select results_eq(
  $$select instance_name, times_seen, eligible from maintenance.sight_orphans(
    '[{"name":"revalya-pg6-gone","state":"close"}]', '00000000-0000-0000-0000-000000000001', '0 hours')$$,
  $$values ('revalya-pg6-gone'::text, 1, false)$$,
  'the same run seen twice is one sighting: even a zero grace needs a second run');
update maintenance.orphan_sightings set first_seen_at = now() - interval '25 hours'
where instance_name = 'revalya-pg6-gone';
select results_eq(
  $$select instance_name, times_seen, eligible from maintenance.sight_orphans(
    '[{"name":"revalya-pg6-gone","state":"close"},{"name":"revalya-pg6-nocfg","state":"open"}]',
    '00000000-0000-0000-0000-000000000002', '24 hours')$$,
  $$values ('revalya-pg6-gone'::text, 2, true), ('revalya-pg6-nocfg', 1, false)$$,
  'second run after the grace: the orphan is eligible, the live tenant''s instance never is');
select is((select count(*)::int from maintenance.orphan_sightings where instance_name = 'revalya-pg6-nocfg'), 1,
  'the sighting of a still-listed instance stays');
select results_eq(
  $$select instance_name from maintenance.sight_orphans('[{"name":"revalya-pg6-nocfg","state":"open"}]',
    '00000000-0000-0000-0000-000000000003', '24 hours')$$,
  $$values ('revalya-pg6-nocfg'::text)$$, 'an instance that disappeared is no longer an orphan');
select is((select count(*)::int from maintenance.orphan_sightings where instance_name = 'revalya-pg6-gone'), 0,
  'its sighting is forgotten, so the grace restarts if it comes back');
select throws_ok($$select * from maintenance.sight_orphans('{}', gen_random_uuid())$$, '22023', null,
  'sight_orphans wants an array');

-- cross-tenant attempts
insert into public.api_logs (tenant_slug, service, event, status, error_type, created_at, data) values
  ('pg6-x', 'whatsapp', 'webhook', 'error', 'cross_tenant', now() - interval '1 hour', '{"instance":"revalya-pg6-y"}'),
  ('pg6-x', 'whatsapp', 'webhook', 'error', 'cross_tenant', now() - interval '2 hours', '{"instance":"revalya-pg6-y"}'),
  ('pg6-x', 'whatsapp', 'webhook', 'error', 'cross_tenant', now() - interval '30 hours', '{}');
select results_eq($$select attempts from maintenance.cross_tenant_attempts() where tenant_slug = 'pg6-x'$$,
  $$values (2::bigint)$$, 'two cross-tenant attempts in the last 24 h (the older one is out of the window)');
insert into maintenance.actions_audit (actor, action, tenant_slug, result, after)
values ('pgtap', 'isolation.acknowledge_cross_tenant', 'pg6-x', 'ok',
  jsonb_build_object('until', now() - interval '90 minutes'));
select results_eq($$select attempts from maintenance.cross_tenant_attempts() where tenant_slug = 'pg6-x'$$,
  $$values (1::bigint)$$, 'an acknowledgement hides the attempts up to its time');

-- diagnosis aggregates
insert into public.api_logs (tenant_slug, service, event, status, error_type, response_time, created_at, data)
select 'pg6-d', 'whatsapp', 'connection.update', 'success', null, null, now() - make_interval(mins => g * 10 + o.m),
  jsonb_build_object('state', o.state, 'statusReason', o.reason)
from generate_series(1, 4) g, (values (0, 'close', 401), (5, 'open', 200)) o(m, state, reason);
insert into public.api_logs (tenant_slug, service, event, status, error_type, response_time, created_at)
values ('pg6-d', 'whatsapp', 'connection_state', 'success', null, 6000, now()),
       ('pg6-d', 'whatsapp', 'connection_state', 'error', 'timeout', 10000, now()),
       ('pg6-d', 'whatsapp', 'connection_state', 'success', null, 2000, now() - interval '3 days');
select results_eq($$select closes, reasons from maintenance.tenant_disconnections('pg6-d')$$,
  $$values (4, '{"401": 4}'::jsonb)$$,
  'four disconnections in the last two hours (connected, then logged out: 401), each close after an open');
select results_eq(
  $$select total, success_rate, avg_response_ms, errors_by_type
    from maintenance.tenant_performance('pg6-d', array['connection_state'])$$,
  $$values (2, 50.00::numeric, 8000.0::numeric, '{"timeout": 1}'::jsonb)$$,
  'the tenant''s calls of the last 24 h: success rate, mean latency and errors by type');
select results_eq($$select total from maintenance.tenant_performance('pg6-none', array['connection_state'])$$,
  $$values (0)$$, 'a tenant without calls has an empty sample, not an error');
select results_eq(
  $$select total >= 2, errors >= 1 from maintenance.evolution_stability(array['connection_state'])$$,
  $$values (true, true)$$, 'Evolution stability counts every tenant''s recent calls');

-- instances being removed: our audited, applied, successful deletes of the last 30 minutes, nothing else
insert into maintenance.actions_audit (actor, action, result, dry_run, before, error, created_at) values
  ('pg', 'orphan.delete_instance', 'ok', false, '{"instance": "revalya-pg6-gone"}', null, now() - interval '1 minute'),
  ('pg', 'isolation.delete_instance', 'ok', false, '{"instance": "revalya-pg6-ghost"}', null, now() - interval '2 min'),
  ('pg', 'orphan.delete_instance', 'planned', true, '{"instance": "revalya-pg6-dry"}', null, now()),
  ('pg', 'orphan.delete_instance', 'failed', false, '{"instance": "revalya-pg6-fail"}', 'x', now()),
  ('pg', 'orphan.delete_instance', 'ok', false, '{"instance": "revalya-pg6-old"}', null, now() - interval '2 hours');
select results_eq($$select instance_name from maintenance.instances_being_removed(
    array['revalya-pg6-gone', 'revalya-pg6-ghost', 'revalya-pg6-dry', 'revalya-pg6-fail', 'revalya-pg6-old',
      'revalya-pg6-never']) order by 1$$,
  $$values ('revalya-pg6-ghost'), ('revalya-pg6-gone')$$,
  'an instance is being removed after our successful delete of it, for 30 minutes; not after a dry run or a failure');
select is((select count(*)::int from maintenance.instances_being_removed(array['revalya-pg6-old'], interval '3 hours')),
  1, 'the window is a parameter');
select ok(not has_function_privilege('anon', 'maintenance.instances_being_removed(text[], interval)', 'execute'),
  'anon cannot call instances_being_removed');

select * from finish();
rollback;
