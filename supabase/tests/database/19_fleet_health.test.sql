-- The fleet-aware alert rules: the name a tenant's server gets (fleet_server_key), evolution_down:<server> silencing
-- exactly that server's tenants' alerts, the unreachable tenants recorded as inhibited alerts that are never
-- notified and resolve with the outage, and the dashboard's server view.
begin;
select plan(16);

select has_function('maintenance', 'fleet_server_key', array['text'], 'maintenance.fleet_server_key exists');
select has_view('maintenance', 'dashboard_servers', 'maintenance.dashboard_servers exists');
select table_privs_are('maintenance', 'dashboard_servers', 'anon', array[]::text[], 'anon cannot read it');
select table_privs_are('maintenance', 'dashboard_servers', 'authenticated', array[]::text[],
  'authenticated cannot read it');
select function_privs_are('maintenance', 'fleet_server_key', array['text'], 'anon', array[]::text[],
  'anon cannot call fleet_server_key');

insert into maintenance.evolution_servers (name, base_url, key_secret_id)
values ('pg17-b', 'http://pg17-b:8080', gen_random_uuid());
select maintenance.ensure_default_server('http://pg17-default:8080');

select is(maintenance.fleet_server_key(null), '', 'no server URL: the default server');
select is(maintenance.fleet_server_key('http://pg17-default:8080/'), '', 'the default server''s URL: the default');
select is(maintenance.fleet_server_key('http://pg17-b:8080/'), 'pg17-b', 'a registered server: its name');
select is(maintenance.fleet_server_key('http://pg17-legacy:1'), 'http://pg17-legacy:1',
  'an unregistered server: its URL');

-- two tenants: one on pg17-b, one on the default server, each with a firing alert
insert into public.tenants (id, slug) values
  ('17000000-0000-0000-0000-00000000000b', 'pg17-on-b'), ('17000000-0000-0000-0000-00000000000d', 'pg17-on-d');
insert into maintenance.tenant_health (tenant_id, tenant_slug, state, issue_code, issue, severity, server_url,
  last_run_id, last_checked_at, since, last_change_at)
values
  ('17000000-0000-0000-0000-00000000000b', 'pg17-on-b', 'unhealthy', 'evolution_unreachable',
   'Evolution API unreachable: down', 'high', 'http://pg17-b:8080', '17000000-0000-0000-0000-0000000000aa', now(), now(),
   now()),
  ('17000000-0000-0000-0000-00000000000d', 'pg17-on-d', 'degraded', 'instance_disconnected',
   'WhatsApp not connected (close)', 'medium', null, '17000000-0000-0000-0000-0000000000aa', now(), now(), now());
insert into maintenance.alerts (fingerprint, kind, scope, tenant_id, tenant_slug, status, severity, summary,
  started_at, last_seen_at, notified_count)
values
  ('instance_disconnected:pg17-on-b', 'instance_disconnected', 'tenant', '17000000-0000-0000-0000-00000000000b',
   'pg17-on-b', 'firing', 'warning', 'pg17-on-b: down', now(), now(), 1),
  ('instance_disconnected:pg17-on-d', 'instance_disconnected', 'tenant', '17000000-0000-0000-0000-00000000000d',
   'pg17-on-d', 'firing', 'warning', 'pg17-on-d: down', now(), now(), 1);

select maintenance.evaluate_alerts('17000000-0000-0000-0000-0000000000aa', now(),
  '[{"fingerprint":"evolution_down:pg17-b","kind":"evolution_down","severity":"critical","summary":"B is down"}]',
  '{"fullRun":true,"platformKinds":["evolution_down"],"tenantsEvaluated":true,"massDetection":false,"channels":["log"]}');

select is((select inhibited_by from maintenance.alerts where fingerprint = 'instance_disconnected:pg17-on-b'
  and status = 'firing'), 'evolution_down:pg17-b', 'a tenant alert of server B is inhibited by evolution_down:B');
select is((select inhibited_by from maintenance.alerts where fingerprint = 'instance_disconnected:pg17-on-d'
  and status = 'firing'), null, 'a tenant alert of another server is not');
select is((select inhibited_by from maintenance.alerts where fingerprint = 'evolution_unreachable:pg17-on-b'
  and status = 'firing'), 'evolution_down:pg17-b', 'B''s unreachable tenant is recorded, inhibited by it');
select is((select count(*)::int from maintenance.notification_outbox o join maintenance.alerts a on a.id = o.alert_id
  where a.fingerprint = 'evolution_unreachable:pg17-on-b'), 0, 'and never notified');
select is((select down_alert from maintenance.dashboard_servers where name = 'pg17-b'), 'evolution_down:pg17-b',
  'the dashboard shows the server''s alert');

-- B is back: its tenant is seen again
update maintenance.tenant_health set issue_code = 'instance_disconnected', state = 'degraded',
  last_run_id = '17000000-0000-0000-0000-0000000000bb' where tenant_id = '17000000-0000-0000-0000-00000000000b';
update maintenance.tenant_health set last_run_id = '17000000-0000-0000-0000-0000000000bb'
  where tenant_id = '17000000-0000-0000-0000-00000000000d';
select maintenance.evaluate_alerts('17000000-0000-0000-0000-0000000000bb', now(), '[]',
  '{"fullRun":true,"platformKinds":["evolution_down"],"tenantsEvaluated":true,"massDetection":false,"channels":["log"]}');
select is((select status from maintenance.alerts where fingerprint = 'evolution_unreachable:pg17-on-b'),
  'resolved', 'the unreachable alert resolves with the outage');
select is((select inhibited_by from maintenance.alerts where fingerprint = 'instance_disconnected:pg17-on-b'
  and status = 'firing'), null, 'and B''s tenant alert is no longer inhibited');

select * from finish();
rollback;
