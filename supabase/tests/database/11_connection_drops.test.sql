-- Connection drops (the one rule for disconnections), diagnose's tenant_disconnections on top of it, the weekly
-- report's count, and cross-tenant attempts that never count as a tenant's connection state (their storage, the
-- purge rule, the isolation audit's reader). Fixtures live in 1996, which no other test uses.
begin;
select plan(32);

select has_function('maintenance', 'connection_drops', array['text[]', 'timestamp with time zone', 'timestamp with time zone'],
  'connection_drops(slugs, since, until) exists');
select function_privs_are('maintenance', 'connection_drops', array['text[]', 'timestamp with time zone', 'timestamp with time zone'],
  'anon', array[]::text[], 'anon cannot read connection drops');
select function_privs_are('maintenance', 'connection_drops', array['text[]', 'timestamp with time zone', 'timestamp with time zone'],
  'authenticated', array[]::text[], 'authenticated cannot read connection drops');
select ok(has_function_privilege('service_role', 'maintenance.connection_drops(text[], timestamptz, timestamptz)', 'execute'),
  'the functions (service_role) read connection drops');

delete from public.api_logs where created_at >= '1996-01-01' and created_at < '1997-01-01';
create temp table t_ev (slug text, at timestamptz, state text, reason integer, status text default 'success',
  error_type text, event text default 'connection.update');
insert into t_ev (slug, at, state, reason) values
  -- transient drop: open before the window, then connecting and open again (no close)
  ('pg11-tr', '1996-01-01 10:00', 'open', 200),
  ('pg11-tr', '1996-01-02 10:00', 'connecting', 200),
  ('pg11-tr', '1996-01-02 10:01', 'open', 200),
  -- open → connecting → close: one drop that ends in a logout
  ('pg11-oc', '1996-01-02 09:00', 'open', 200),
  ('pg11-oc', '1996-01-02 10:00', 'connecting', 200),
  ('pg11-oc', '1996-01-02 10:05', 'close', 401),
  -- a close with no open before it (a pairing that never connected)
  ('pg11-cl', '1996-01-02 10:00', 'connecting', 200),
  ('pg11-cl', '1996-01-02 10:05', 'close', 401),
  -- open → close directly: a logout is a drop, with its reason
  ('pg11-lo', '1996-01-01 08:00', 'open', 200),
  ('pg11-lo', '1996-01-02 11:00', 'close', 401),
  -- the only open is long before the window: it is still the previous state
  ('pg11-old', '1995-06-01 00:00', 'open', 200),
  ('pg11-old', '1996-01-02 12:00', 'connecting', null);
insert into t_ev (slug, at, state, reason, status, error_type) values
  -- forged: cross-tenant rows stored the old way (event connection.update, error rows) between real states
  ('pg11-x', '1996-01-02 09:00', 'open', 200, 'success', null),
  ('pg11-x', '1996-01-02 10:00', 'connecting', 200, 'success', null),
  ('pg11-x', '1996-01-02 10:30', 'open', 200, 'error', 'cross_tenant'),
  ('pg11-x', '1996-01-02 11:00', 'connecting', 200, 'success', null),
  ('pg11-x', '1996-01-02 11:30', 'open', 200, 'error', 'cross_tenant'),
  ('pg11-x', '1996-01-02 12:00', 'close', 401, 'success', null);
insert into public.api_logs (tenant_slug, service, event, status, error_type, created_at, data)
select slug, 'whatsapp', event, status, error_type, at,
  jsonb_strip_nulls(jsonb_build_object('state', state, 'statusReason', reason))
from t_ev order by at;
-- a cross-tenant attempt stored the new way, and another service's row: neither is a connection state
insert into public.api_logs (tenant_slug, service, event, status, error_type, created_at, data) values
  ('pg11-x', 'whatsapp', 'cross_tenant_attempt', 'error', 'cross_tenant', '1996-01-02 11:45',
   '{"event": "connection.update", "claimedInstance": "revalya-pg11-y", "state": "open"}'),
  ('pg11-tr', 'billing', 'connection.update', 'success', null, '1996-01-02 11:00', '{"state": "connecting"}');

create temp table t_drops as
select * from maintenance.connection_drops(
  array['pg11-tr', 'pg11-oc', 'pg11-cl', 'pg11-lo', 'pg11-old', 'pg11-x', 'pg11-none', 'pg11-tr', null],
  '1996-01-02 00:00', '1996-01-03 00:00');

select results_eq($$select drops, closes, reasons, events from t_drops where tenant_slug = 'pg11-tr'$$,
  $$values (1, 0, '{"200": 1}'::jsonb, 2)$$,
  'a transient drop (open, connecting, open) is one drop and no close; another service''s row is not an event');
select results_eq($$select drops, closes, last_drop_at from t_drops where tenant_slug = 'pg11-oc'$$,
  $$values (1, 1, '1996-01-02 10:00+00'::timestamptz)$$,
  'open, connecting, close is one drop (at the connecting) and one terminal close');
select results_eq($$select drops, closes, reasons from t_drops where tenant_slug = 'pg11-cl'$$,
  $$values (0, 1, '{}'::jsonb)$$, 'a close with no open before it is a close but no drop');
select results_eq($$select drops, closes, reasons from t_drops where tenant_slug = 'pg11-lo'$$,
  $$values (1, 1, '{"401": 1}'::jsonb)$$, 'open then close (a logout) is a drop with the logout''s reason');
select results_eq($$select drops, reasons from t_drops where tenant_slug = 'pg11-old'$$,
  $$values (1, '{"unknown": 1}'::jsonb)$$,
  'the previous state is looked up before the window, however old; a drop without statusReason counts as unknown');
select results_eq($$select drops, closes, events from t_drops where tenant_slug = 'pg11-x'$$,
  $$values (1, 1, 4)$$,
  'cross-tenant rows (old and new storage) are neither states nor events: open, connecting, connecting, close is one drop');
select results_eq($$select drops, closes, last_drop_at, reasons, events from t_drops where tenant_slug = 'pg11-none'$$,
  $$values (0, 0, null::timestamptz, '{}'::jsonb, 0)$$, 'a tenant without events has a row of zeros');
select results_eq($$select array_agg(tenant_slug order by tenant_slug) from t_drops$$,
  $$values (array['pg11-cl', 'pg11-lo', 'pg11-none', 'pg11-oc', 'pg11-old', 'pg11-tr', 'pg11-x'])$$,
  'one row per distinct slug asked for (duplicates and nulls ignored)');

select results_eq($$select drops, events from maintenance.connection_drops(array['pg11-tr'], '1996-01-02 10:00', '1996-01-02 10:01')$$,
  $$values (0, 1)$$, 'the window is (since, until]: an event at since is the previous state, one at until is in');
select results_eq($$select drops from maintenance.connection_drops(array['pg11-tr'], '1996-01-02 09:59:59', '1996-01-02 10:00')$$,
  $$values (1)$$, 'an event exactly at until is in the window');
select results_eq($$select drops, closes from maintenance.connection_drops(array['pg11-oc'], '1996-01-02 10:00', '1996-01-03')$$,
  $$values (0, 1)$$, 'a close after a connecting before the window is not a new drop');
select throws_ok($$select * from maintenance.connection_drops(array['pg11-tr'], '1996-01-03', '1996-01-02')$$,
  '22023', null, 'a window that ends before it starts is refused');
select throws_ok($$select * from maintenance.connection_drops(null, '1996-01-02', '1996-01-03')$$,
  '22023', null, 'slugs are required');

-- diagnose's view: tenant_disconnections counts drops under its old column names
insert into public.api_logs (tenant_slug, service, event, status, created_at, data)
select 'pg11-loop', 'whatsapp', 'connection.update', 'success',
  '1996-02-01 10:00'::timestamptz + make_interval(mins => g * 10),
  jsonb_build_object('state', case when g % 2 = 0 then 'open' else 'connecting' end, 'statusReason', 200)
from generate_series(0, 8) g;
select results_eq(
  $$select closes, last_close_at, reasons, events, terminal_closes
    from maintenance.tenant_disconnections('pg11-loop', '2 hours', '1996-02-01 11:30')$$,
  $$values (4, '1996-02-01 11:10+00'::timestamptz, '{"200": 4}'::jsonb, 9, 0)$$,
  'four transient drops in two hours: closes (now the drops) is 4, with no terminal close');
select results_eq(
  $$select closes, terminal_closes from maintenance.tenant_disconnections('pg11-oc', '1 day', '1996-01-03')$$,
  $$values (1, 1)$$, 'a drop ending in a logout is one disconnection and one terminal close');
select results_eq(
  $$select closes, terminal_closes from maintenance.tenant_disconnections('pg11-cl', '1 day', '1996-01-03')$$,
  $$values (0, 1)$$, 'a close never preceded by an open is not a disconnection');

-- the weekly report: totalDisconnections counts drops over [since, until), totalCloses the terminal closes
select results_eq(
  $$select (r ->> 'totalDisconnections')::int, (r ->> 'totalCloses')::int
    from maintenance.usage_report(1, '1996-01-03') r$$,
  $$values (5, 4)$$,
  'a day''s report: one drop each for tr, oc, lo, old, x (cl has none); closes of oc, cl, lo, x');
select results_eq(
  $$select (r ->> 'totalDisconnections')::int from maintenance.usage_report(1, '1996-01-02 10:00') r$$,
  $$values (0)$$, 'the report''s period is [since, until): drops exactly at until are left out');
select results_eq(
  $$select (r ->> 'totalDisconnections')::int from maintenance.usage_report(1, '1996-01-02 10:00:00.000001') r$$,
  $$values (3)$$, '… and one microsecond later they are in (tr, oc, x at 10:00)');

-- cross-tenant attempts: their own event name, the claimed event in data
select maintenance.record_cross_tenant_attempt('pg11-ct', 'revalya-pg11-victim', 'revalya-pg11-ct', 'connection.update');
select results_eq(
  $$select event, status, error_type, data ->> 'event', data ->> 'claimedInstance' from public.api_logs
    where tenant_slug = 'pg11-ct'$$,
  $$values ('cross_tenant_attempt'::text, 'error'::text, 'cross_tenant'::text, 'connection.update'::text,
    'revalya-pg11-victim'::text)$$,
  'a cross-tenant attempt is stored as cross_tenant_attempt, the claimed event in data.event');
select results_eq(
  $$select attempts, sample ->> 'event' from maintenance.cross_tenant_attempts() where tenant_slug = 'pg11-ct'$$,
  $$values (1::bigint, 'connection.update'::text)$$, 'the isolation audit''s reader sees it, with the claimed event');
select results_eq(
  $$select kind, current_value from maintenance.dashboard_isolation_violations where tenant_slug = 'pg11-ct'$$,
  $$values ('cross_tenant'::text, 'connection.update'::text)$$, 'the dashboard lists it under cross_tenant');
insert into public.api_logs (tenant_slug, service, event, status, error_type, data) values
  ('pg11-ct', 'whatsapp', 'connection.update', 'error', 'cross_tenant', '{"claimedInstance": "revalya-pg11-victim"}');
select results_eq(
  $$select attempts, sample ->> 'event' from maintenance.cross_tenant_attempts() where tenant_slug = 'pg11-ct'$$,
  $$values (2::bigint, 'connection.update'::text)$$,
  'a row stored the old way (under the event it claimed) is still reported as an attempt');

select results_eq(
  $$select state_at_start, uptime_pct, state_changes
    from maintenance.tenant_uptime('1996-01-02 10:20', '1996-01-02 11:05') where tenant_slug = 'pg11-x'$$,
  $$values ('connecting'::text, 0.00::numeric, 1::bigint)$$,
  'the uptime report reads no state from an error row: connecting throughout, never up');

-- the purge keeps each tenant's latest real state, never a rejected event
insert into public.tenants (id, slug) values ('00000000-0000-0000-0000-000000001101', 'pg11-pg');
insert into public.tenant_integrations (tenant_id, integration_type, config)
values ('00000000-0000-0000-0000-000000001101', 'whatsapp', '{"instance_name": "revalya-pg11-pg"}');
insert into public.api_logs (tenant_slug, service, event, status, error_type, created_at, data) values
  ('pg11-pg', 'whatsapp', 'connection.update', 'success', null, '1996-03-01', '{"state": "close"}'),
  ('pg11-pg', 'whatsapp', 'connection.update', 'success', null, '1996-03-02', '{"state": "open"}'),
  ('pg11-pg', 'whatsapp', 'connection.update', 'error', 'cross_tenant', '1996-03-03',
   '{"claimedInstance": "revalya-pg11-other", "event": "connection.update"}'),
  ('pg11-pg', 'whatsapp', 'cross_tenant_attempt', 'error', 'cross_tenant', '1996-03-04',
   '{"claimedInstance": "revalya-pg11-other", "event": "connection.update"}');
select is(maintenance.count_expired_api_logs('1996-03-10') - maintenance.count_expired_api_logs('1996-03-01'), 3::bigint,
  'of the tenant''s four expired rows, three may go: the older state and both rejected events');
create temp table t_purgeable as select maintenance.count_expired_api_logs('1996-03-10') as n;
select is((select deleted::bigint from maintenance.purge_api_logs_batch('1996-03-10', 100000)), (select n from t_purgeable),
  'the purge deletes exactly what the rule allows');
select results_eq(
  $$select event, status, data ->> 'state', created_at from public.api_logs where tenant_slug = 'pg11-pg'$$,
  $$values ('connection.update'::text, 'success'::text, 'open'::text, '1996-03-02 00:00+00'::timestamptz)$$,
  'after the purge the tenant''s last real state (open) is left, the rejected events are gone');
select results_eq(
  $$select state_at_start, uptime_pct from maintenance.tenant_uptime('1996-04-01', '1996-04-02') where tenant_slug = 'pg11-pg'$$,
  $$values ('open'::text, 100.00::numeric)$$, 'so the uptime report still knows the tenant was connected');

select * from finish();
rollback;
