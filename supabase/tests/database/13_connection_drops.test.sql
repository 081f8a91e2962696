-- Connection drops (the one rule for disconnections), diagnose's tenant_disconnections on top of it, the weekly
-- report's count, and cross-tenant attempts that never count as a tenant's connection state (their storage, the
-- purge rule, the isolation audit's reader). Fixtures live in 1996, which no other test uses.
begin;
select plan(34);

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
  ('pg13-tr', '1996-01-01 10:00', 'open', 200),
  ('pg13-tr', '1996-01-02 10:00', 'connecting', 200),
  ('pg13-tr', '1996-01-02 10:01', 'open', 200),
  -- open → connecting → close: one drop that ends in a logout
  ('pg13-oc', '1996-01-02 09:00', 'open', 200),
  ('pg13-oc', '1996-01-02 10:00', 'connecting', 200),
  ('pg13-oc', '1996-01-02 10:05', 'close', 401),
  -- a close with no open before it (a pairing that never connected)
  ('pg13-cl', '1996-01-02 10:00', 'connecting', 200),
  ('pg13-cl', '1996-01-02 10:05', 'close', 401),
  -- open → close directly: a logout is a drop, with its reason
  ('pg13-lo', '1996-01-01 08:00', 'open', 200),
  ('pg13-lo', '1996-01-02 11:00', 'close', 401),
  -- the only open is long before the window: it is still the previous state
  ('pg13-old', '1995-06-01 00:00', 'open', 200),
  ('pg13-old', '1996-01-02 12:00', 'connecting', null);
insert into t_ev (slug, at, state, reason, status, error_type) values
  -- forged: cross-tenant rows stored the old way (event connection.update, error rows) between real states
  ('pg13-x', '1996-01-02 09:00', 'open', 200, 'success', null),
  ('pg13-x', '1996-01-02 10:00', 'connecting', 200, 'success', null),
  ('pg13-x', '1996-01-02 10:30', 'open', 200, 'error', 'cross_tenant'),
  ('pg13-x', '1996-01-02 11:00', 'connecting', 200, 'success', null),
  ('pg13-x', '1996-01-02 11:30', 'open', 200, 'error', 'cross_tenant'),
  ('pg13-x', '1996-01-02 12:00', 'close', 401, 'success', null);
insert into public.api_logs (tenant_slug, service, event, status, error_type, created_at, data)
select slug, 'whatsapp', event, status, error_type, at,
  jsonb_strip_nulls(jsonb_build_object('state', state, 'statusReason', reason))
from t_ev order by at;
-- a cross-tenant attempt stored the new way, and another service's row: neither is a connection state
insert into public.api_logs (tenant_slug, service, event, status, error_type, created_at, data) values
  ('pg13-x', 'whatsapp', 'cross_tenant_attempt', 'error', 'cross_tenant', '1996-01-02 11:45',
   '{"event": "connection.update", "claimedInstance": "revalya-pg13-y", "state": "open"}'),
  ('pg13-tr', 'billing', 'connection.update', 'success', null, '1996-01-02 11:00', '{"state": "connecting"}');

create temp table t_drops as
select * from maintenance.connection_drops(
  array['pg13-tr', 'pg13-oc', 'pg13-cl', 'pg13-lo', 'pg13-old', 'pg13-x', 'pg13-none', 'pg13-tr', null],
  '1996-01-02 00:00', '1996-01-03 00:00');

select results_eq($$select drops, closes, reasons, events from t_drops where tenant_slug = 'pg13-tr'$$,
  $$values (1, 0, '{"200": 1}'::jsonb, 2)$$,
  'a transient drop (open, connecting, open) is one drop and no close; another service''s row is not an event');
select results_eq($$select drops, closes, last_drop_at from t_drops where tenant_slug = 'pg13-oc'$$,
  $$values (1, 1, '1996-01-02 10:00+00'::timestamptz)$$,
  'open, connecting, close is one drop (at the connecting) and one terminal close');
select results_eq($$select drops, closes, reasons from t_drops where tenant_slug = 'pg13-cl'$$,
  $$values (0, 1, '{}'::jsonb)$$, 'a close with no open before it is a close but no drop');
select results_eq($$select drops, closes, reasons from t_drops where tenant_slug = 'pg13-lo'$$,
  $$values (1, 1, '{"401": 1}'::jsonb)$$, 'open then close (a logout) is a drop with the logout''s reason');
select results_eq($$select drops, reasons from t_drops where tenant_slug = 'pg13-old'$$,
  $$values (1, '{"unknown": 1}'::jsonb)$$,
  'the previous state is looked up before the window, however old; a drop without statusReason counts as unknown');
select results_eq($$select drops, closes, events from t_drops where tenant_slug = 'pg13-x'$$,
  $$values (1, 1, 4)$$,
  'cross-tenant rows (old and new storage) are neither states nor events: open, connecting, connecting, close is one drop');
select results_eq($$select drops, closes, last_drop_at, reasons, events from t_drops where tenant_slug = 'pg13-none'$$,
  $$values (0, 0, null::timestamptz, '{}'::jsonb, 0)$$, 'a tenant without events has a row of zeros');
select results_eq($$select array_agg(tenant_slug order by tenant_slug) from t_drops$$,
  $$values (array['pg13-cl', 'pg13-lo', 'pg13-none', 'pg13-oc', 'pg13-old', 'pg13-tr', 'pg13-x'])$$,
  'one row per distinct slug asked for (duplicates and nulls ignored)');

select results_eq($$select drops, events from maintenance.connection_drops(array['pg13-tr'], '1996-01-02 10:00', '1996-01-02 10:01')$$,
  $$values (0, 1)$$, 'the window is (since, until]: an event at since is the previous state, one at until is in');
select results_eq($$select drops from maintenance.connection_drops(array['pg13-tr'], '1996-01-02 09:59:59', '1996-01-02 10:00')$$,
  $$values (1)$$, 'an event exactly at until is in the window');
select results_eq($$select drops, closes from maintenance.connection_drops(array['pg13-oc'], '1996-01-02 10:00', '1996-01-03')$$,
  $$values (0, 1)$$, 'a close after a connecting before the window is not a new drop');
select throws_ok($$select * from maintenance.connection_drops(array['pg13-tr'], '1996-01-03', '1996-01-02')$$,
  '22023', null, 'a window that ends before it starts is refused');
select throws_ok($$select * from maintenance.connection_drops(null, '1996-01-02', '1996-01-03')$$,
  '22023', null, 'slugs are required');

-- diagnose's view: tenant_disconnections counts drops under its old column names
insert into public.api_logs (tenant_slug, service, event, status, created_at, data)
select 'pg13-loop', 'whatsapp', 'connection.update', 'success',
  '1996-02-01 10:00'::timestamptz + make_interval(mins => g * 10),
  jsonb_build_object('state', case when g % 2 = 0 then 'open' else 'connecting' end, 'statusReason', 200)
from generate_series(0, 8) g;
select results_eq(
  $$select closes, last_close_at, reasons, events, terminal_closes
    from maintenance.tenant_disconnections('pg13-loop', '2 hours', '1996-02-01 11:30')$$,
  $$values (4, '1996-02-01 11:10+00'::timestamptz, '{"200": 4}'::jsonb, 9, 0)$$,
  'four transient drops in two hours: closes (now the drops) is 4, with no terminal close');
select results_eq(
  $$select closes, terminal_closes from maintenance.tenant_disconnections('pg13-oc', '1 day', '1996-01-03')$$,
  $$values (1, 1)$$, 'a drop ending in a logout is one disconnection and one terminal close');
select results_eq(
  $$select closes, terminal_closes from maintenance.tenant_disconnections('pg13-cl', '1 day', '1996-01-03')$$,
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
select maintenance.record_cross_tenant_attempt('pg13-ct', 'revalya-pg13-victim', 'revalya-pg13-ct', 'connection.update');
select results_eq(
  $$select event, status, error_type, data ->> 'event', data ->> 'claimedInstance' from public.api_logs
    where tenant_slug = 'pg13-ct'$$,
  $$values ('cross_tenant_attempt'::text, 'error'::text, 'cross_tenant'::text, 'connection.update'::text,
    'revalya-pg13-victim'::text)$$,
  'a cross-tenant attempt is stored as cross_tenant_attempt, the claimed event in data.event');
select results_eq(
  $$select attempts, sample ->> 'event' from maintenance.cross_tenant_attempts() where tenant_slug = 'pg13-ct'$$,
  $$values (1::bigint, 'connection.update'::text)$$, 'the isolation audit''s reader sees it, with the claimed event');
select results_eq(
  $$select kind, current_value from maintenance.dashboard_isolation_violations where tenant_slug = 'pg13-ct'$$,
  $$values ('cross_tenant'::text, 'connection.update'::text)$$, 'the dashboard lists it under cross_tenant');
insert into public.api_logs (tenant_slug, service, event, status, error_type, data) values
  ('pg13-ct', 'whatsapp', 'connection.update', 'error', 'cross_tenant', '{"claimedInstance": "revalya-pg13-victim"}');
select results_eq(
  $$select attempts, sample ->> 'event' from maintenance.cross_tenant_attempts() where tenant_slug = 'pg13-ct'$$,
  $$values (2::bigint, 'connection.update'::text)$$,
  'a row stored the old way (under the event it claimed) is still reported as an attempt');

select results_eq(
  $$select state_at_start, uptime_pct, state_changes
    from maintenance.tenant_uptime('1996-01-02 10:20', '1996-01-02 11:05') where tenant_slug = 'pg13-x'$$,
  $$values ('connecting'::text, 0.00::numeric, 1::bigint)$$,
  'the uptime report reads no state from an error row: connecting throughout, never up');

-- the purge keeps each tenant's latest real state, never a rejected event
insert into public.tenants (id, slug) values ('00000000-0000-0000-0000-000000001101', 'pg13-pg');
insert into public.tenant_integrations (tenant_id, integration_type, config)
values ('00000000-0000-0000-0000-000000001101', 'whatsapp', '{"instance_name": "revalya-pg13-pg"}');
insert into public.api_logs (tenant_slug, service, event, status, error_type, created_at, data) values
  ('pg13-pg', 'whatsapp', 'connection.update', 'success', null, '1996-03-01', '{"state": "close"}'),
  ('pg13-pg', 'whatsapp', 'connection.update', 'success', null, '1996-03-02', '{"state": "open"}'),
  ('pg13-pg', 'whatsapp', 'connection.update', 'error', 'cross_tenant', '1996-03-03',
   '{"claimedInstance": "revalya-pg13-other", "event": "connection.update"}'),
  ('pg13-pg', 'whatsapp', 'cross_tenant_attempt', 'error', 'cross_tenant', '1996-03-04',
   '{"claimedInstance": "revalya-pg13-other", "event": "connection.update"}');
select is(maintenance.count_expired_api_logs('1996-03-10') - maintenance.count_expired_api_logs('1996-03-01'), 3::bigint,
  'of the tenant''s four expired rows, three may go: the older state and both rejected events');
create temp table t_purgeable as select maintenance.count_expired_api_logs('1996-03-10') as n;
select is((select deleted::bigint from maintenance.purge_api_logs_batch('1996-03-10', 100000)), (select n from t_purgeable),
  'the purge deletes exactly what the rule allows');
select results_eq(
  $$select event, status, data ->> 'state', created_at from public.api_logs where tenant_slug = 'pg13-pg'$$,
  $$values ('connection.update'::text, 'success'::text, 'open'::text, '1996-03-02 00:00+00'::timestamptz)$$,
  'after the purge the tenant''s last real state (open) is left, the rejected events are gone');
select results_eq(
  $$select state_at_start, uptime_pct from maintenance.tenant_uptime('1996-04-01', '1996-04-02') where tenant_slug = 'pg13-pg'$$,
  $$values ('open'::text, 100.00::numeric)$$, 'so the uptime report still knows the tenant was connected');

-- health-check's frequent_disconnections (record_tenant_health) counts drops in flap_window, not close events
insert into public.tenants (id, slug) values
  ('00000000-0000-0000-0000-000000001301', 'pg13-hc-a'), ('00000000-0000-0000-0000-000000001302', 'pg13-hc-b'),
  ('00000000-0000-0000-0000-000000001303', 'pg13-hc-c');
insert into public.api_logs (tenant_slug, service, event, status, error_type, created_at, data)
-- a: four logouts of a number never seen open (closes, no drop)
select 'pg13-hc-a', 'whatsapp', 'connection.update', 'success', null,
  '1996-05-01 11:50'::timestamptz - make_interval(mins => g * 20), '{"state": "close", "statusReason": 401}'::jsonb
from generate_series(1, 4) g
union all
-- b: open before the window, then four transient drops (connecting, open) in it: no close at all
select 'pg13-hc-b', 'whatsapp', 'connection.update', 'success', null, x.at, jsonb_build_object('state', x.state)
from (values ('1996-05-01 09:00'::timestamptz, 'open')) x(at, state)
union all
select 'pg13-hc-b', 'whatsapp', 'connection.update', 'success', null,
  '1996-05-01 11:55'::timestamptz - make_interval(mins => g * 20 + o.m), jsonb_build_object('state', o.state)
from generate_series(1, 4) g, (values (5, 'connecting'), (0, 'open')) o(m, state)
union all
-- c: one real drop (open, then connecting) and forged opens between its connectings (cross-tenant rows, old and
-- new storage): counted as states they would make four drops
select 'pg13-hc-c', 'whatsapp', x.event, x.status, x.error_type, '1996-05-01 11:00'::timestamptz + x.m * interval '1 min',
  jsonb_build_object('state', x.state)
from (values (0, 'connection.update', 'success', null, 'open'), (5, 'connection.update', 'success', null, 'connecting'),
  (10, 'connection.update', 'error', 'cross_tenant', 'open'), (15, 'connection.update', 'success', null, 'connecting'),
  (20, 'cross_tenant_attempt', 'error', 'cross_tenant', 'open'), (25, 'connection.update', 'success', null, 'connecting'),
  (30, 'connection.update', 'error', 'cross_tenant', 'open'), (35, 'connection.update', 'success', null, 'connecting'))
  x(m, event, status, error_type, state);
create temp table t_health as select maintenance.record_tenant_health(gen_random_uuid(), '1996-05-01 12:00',
  (select jsonb_agg(jsonb_build_object('tenant_id', t.id, 'slug', t.slug, 'state', 'healthy', 'evolution_state', 'open'))
   from public.tenants t where t.slug like 'pg13-hc-%')) as r;
select is((select r -> 'frequentDisconnections' from t_health), '["pg13-hc-b"]'::jsonb,
  'frequent_disconnections: four drops without a close fire it; four closes never preceded by an open do not, nor do forged states');
select results_eq($$select tenant_slug, details -> 'drops', 'frequent_disconnections' = any (flags)
    from maintenance.tenant_health where tenant_slug like 'pg13-hc-%' order by 1$$,
  $$values ('pg13-hc-a'::text, null::jsonb, false), ('pg13-hc-b', '4'::jsonb, true), ('pg13-hc-c', '1'::jsonb, false)$$,
  'details.drops is each tenant''s drops in the window (absent when none)');

select * from finish();
rollback;
