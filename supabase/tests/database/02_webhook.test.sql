-- Webhook receiver storage: receipts (dedup), tenant activity, the one-statement record function and the
-- cross-tenant log, and that none of it is reachable by the Data API roles.
begin;
select plan(17);

select has_table('maintenance', 'webhook_receipts', 'maintenance.webhook_receipts exists');
select has_table('maintenance', 'webhook_activity', 'maintenance.webhook_activity exists');
select col_is_pk('maintenance', 'webhook_receipts', 'dedup_key', 'a receipt is unique by its dedup key');
select col_is_pk('maintenance', 'webhook_activity', 'tenant_slug', 'one activity row per tenant');
select has_index('maintenance', 'webhook_receipts', 'webhook_receipts_received_at_idx',
  'receipts are indexed by received_at for the retention purge');
select table_privs_are('maintenance', 'webhook_receipts', 'anon', array[]::text[], 'anon cannot touch receipts');
select table_privs_are('maintenance', 'webhook_activity', 'authenticated', array[]::text[],
  'authenticated cannot touch webhook activity');
select function_privs_are('maintenance', 'record_webhook_event',
  array['text', 'text', 'text', 'timestamptz', 'jsonb', 'boolean'], 'anon', array[]::text[],
  'anon cannot record webhook events');

select is(maintenance.record_webhook_event('pgtap-wh', 'revalya-pgtap-wh', 'connection.update',
  '2030-01-01 10:00:00+00', '{"state":"open","statusReason":200}'), true, 'a new event is recorded');
select is(maintenance.record_webhook_event('pgtap-wh', 'revalya-pgtap-wh', 'connection.update',
  '2030-01-01 10:00:00+00', '{"statusReason":200,"state":"open"}'), false,
  'the same event redelivered (same data, any key order) is recognised as a duplicate');
select is((select count(*)::int from public.api_logs where tenant_slug = 'pgtap-wh'), 1,
  'a redelivery adds no api_logs row');
select is((select data ->> 'state' from public.api_logs where tenant_slug = 'pgtap-wh'), 'open',
  'api_logs.data holds the payload data, readable as data->>''state''');

select maintenance.record_webhook_event('pgtap-wh', 'revalya-pgtap-wh', 'connection.update',
  '2030-01-01 09:00:00+00', '{"state":"close","statusReason":401}');
select is((select last_state from maintenance.webhook_activity where tenant_slug = 'pgtap-wh'), 'open',
  'an older connection.update arriving late does not overwrite the newer state');
select is(maintenance.record_webhook_event('pgtap-wh', 'revalya-pgtap-wh', 'qrcode.updated', now(), null, false), true,
  'an unlogged event is accepted');
select is((select (last_event, events_total) from maintenance.webhook_activity where tenant_slug = 'pgtap-wh'),
  row('qrcode.updated'::text, 3::bigint), 'every accepted event refreshes the activity row');
select is((select count(*)::int from public.api_logs where tenant_slug = 'pgtap-wh'), 2,
  'unlogged events add no api_logs row');

select maintenance.record_cross_tenant_attempt('pgtap-wh', 'revalya-victim', 'revalya-pgtap-wh', 'connection.update');
select is((select (status, error_type, data ->> 'claimedInstance') from public.api_logs
    where tenant_slug = 'pgtap-wh' and status = 'error'),
  row('error'::text, 'cross_tenant'::text, 'revalya-victim'::text), 'a cross-tenant attempt is logged with the claim');

select * from finish();
rollback;
