-- maintenance.metrics_snapshot (20261202009500): one call answers every family; per-tenant rows only for tenants
-- that are not healthy and at most tenant_limit of them, the total uncapped; windowed figures stay in the window;
-- not callable by anon or authenticated.
begin;
select plan(8);

insert into public.tenants (id, slug) values
  ('00000000-0000-4000-8000-00000000a001', 'pgtap-mx-a'), ('00000000-0000-4000-8000-00000000a002', 'pgtap-mx-b'),
  ('00000000-0000-4000-8000-00000000a003', 'pgtap-mx-c');
insert into maintenance.tenant_health (tenant_id, tenant_slug, state, since, last_checked_at, last_change_at, consecutive)
values ('00000000-0000-4000-8000-00000000a001', 'pgtap-mx-a', 'unhealthy', now(), now(), now(), 9),
  ('00000000-0000-4000-8000-00000000a002', 'pgtap-mx-b', 'degraded', now(), now(), now(), 2),
  ('00000000-0000-4000-8000-00000000a003', 'pgtap-mx-c', 'healthy', now(), now(), now(), 1);
insert into public.api_logs (created_at, tenant_slug, service, event, status, response_time) values
  (now() - interval '10 minutes', 'pgtap-mx-a', 'whatsapp', 'pgtap_mx_route', 'success', 80),
  (now() - interval '2 hours', 'pgtap-mx-a', 'whatsapp', 'pgtap_mx_route', 'success', 80);

select ok(maintenance.metrics_snapshot() ?& array['tenantStates', 'tenantsNotHealthy', 'tenantsNotHealthyTotal',
  'servers', 'alertsOpen', 'jobsLast', 'jobRuns', 'evolutionCalls', 'outbox', 'webhooksReceived',
  'webhooksRejected'], 'one call answers every family');
select is((select count(*)::int from jsonb_array_elements(maintenance.metrics_snapshot() -> 'tenantsNotHealthy') t
           where t ->> 'tenant' like 'pgtap-mx-%'), 2, 'per-tenant rows: the two tenants that are not healthy');
select is((select count(*)::int from jsonb_array_elements(maintenance.metrics_snapshot() -> 'tenantsNotHealthy') t
           where t ->> 'tenant' = 'pgtap-mx-c'), 0, 'no per-tenant row for a healthy tenant');
select is(jsonb_array_length(maintenance.metrics_snapshot(now(), 1) -> 'tenantsNotHealthy'), 1,
  'tenant_limit caps the per-tenant rows');
select is((maintenance.metrics_snapshot(now(), 1) ->> 'tenantsNotHealthyTotal')::int,
  (select count(*)::int from maintenance.tenant_health where state <> 'healthy'), 'the total is not capped');
select is((maintenance.metrics_snapshot(now(), 1) -> 'tenantsNotHealthy' -> 0 ->> 'state'), 'unhealthy',
  'the worst first');
select is((select (c ->> 'count')::int from jsonb_array_elements(maintenance.metrics_snapshot() -> 'evolutionCalls') c
           where c ->> 'route' = 'pgtap_mx_route'), 1, 'only the calls of the window are counted');
select ok(not has_function_privilege('authenticated', 'maintenance.metrics_snapshot(timestamptz, integer, integer)',
  'execute'), 'authenticated cannot call it');

select * from finish();
rollback;
