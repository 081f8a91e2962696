-- The application webhooks (20261202008500): an endpoint is an outbox channel `webhook:<8 hex digits>` (never a
-- URL), job results are rows of kind 'job', and an alert's payload carries the alert with its fix command.
begin;
select plan(11);

select lives_ok($$select maintenance.enqueue_notification('pgtap-appwh:1', '{"title":"x"}', array['webhook:0a1b2c3d'])$$,
  'a webhook channel of 8 hex digits is accepted');
select throws_ok($$select maintenance.enqueue_notification('pgtap-appwh:2', '{"title":"x"}',
  array['webhook:https://app.example.com/h?token=x'])$$, '23514', null, 'a URL is refused as a channel name');
select throws_ok($$select maintenance.enqueue_notification('pgtap-appwh:3', '{"title":"x"}', array['sms'])$$, '23514',
  null, 'any other channel is still refused');
select lives_ok($$select maintenance.enqueue_notification('job:pgtap-appwh', '{"job":"x"}', array['webhook:0a1b2c3d'],
  null, 'job')$$, 'a job result is a row of kind job');
select throws_ok($$select maintenance.enqueue_notification('pgtap-appwh:4', '{"title":"x"}', array['log'], null,
  'other')$$, '23514', null, 'an unknown kind is refused');
select is((select count(*)::int from maintenance.notification_outbox where dedupe_key like 'pgtap-appwh:%'
             or dedupe_key = 'job:pgtap-appwh'), 2, 'only the accepted rows were queued');

select is(maintenance.alert_fix_command('socket_dead', 'acme'), 'npm run ops -- fix acme',
  'a dead socket is fixed by fix');
select is(maintenance.alert_fix_command('logged_out', 'acme'), 'npm run ops -- reconnect acme',
  'a logged-out number needs reconnect (a QR scan)');
select is(maintenance.alert_fix_command('mass_disconnect', null), null, 'a platform alert has no fix command');

insert into maintenance.alerts (fingerprint, kind, scope, tenant_slug, status, severity, summary, started_at,
  last_seen_at)
values ('socket_dead:pgtap-appwh', 'socket_dead', 'tenant', 'pgtap-appwh', 'firing', 'critical', 'socket dead', now(),
  now());
select is((select maintenance.alert_payload(a, 'firing') -> 'alert' ->> 'fix' from maintenance.alerts a
           where fingerprint = 'socket_dead:pgtap-appwh'), 'npm run ops -- fix pgtap-appwh',
  'a firing alert''s payload carries its fix command');
select function_privs_are('maintenance', 'alert_fix_command', array['text', 'text'], 'anon', array[]::text[],
  'anon cannot call alert_fix_command');

select * from finish();
rollback;
