-- Webhook events in batches (maintenance.record_webhook_events): one answer per event in order, duplicates inside
-- a batch and against stored receipts, the same rows as one by one, and not reachable by the Data API roles.
begin;
select plan(7);

select function_privs_are('maintenance', 'record_webhook_events', array['jsonb'], 'anon', array[]::text[],
  'anon cannot record webhook events in batches');
select function_privs_are('maintenance', 'record_webhook_events', array['jsonb'], 'authenticated', array[]::text[],
  'authenticated cannot record webhook events in batches');

select is(maintenance.record_webhook_event('pgtap-wb', 'revalya-pgtap-wb', 'connection.update',
  '2030-02-01 10:00:00+00', '{"state":"open"}'), true, 'an event recorded alone');
select is(array(select is_new from maintenance.record_webhook_events(jsonb_build_array(
    jsonb_build_object('slug', 'pgtap-wb', 'instance', 'revalya-pgtap-wb', 'event', 'connection.update',
      'at', '2030-02-01T10:00:00Z', 'payload', '{"state":"open"}'::jsonb),
    jsonb_build_object('slug', 'pgtap-wb', 'instance', 'revalya-pgtap-wb', 'event', 'connection.update',
      'at', '2030-02-01T11:00:00Z', 'payload', '{"state":"close"}'::jsonb),
    jsonb_build_object('slug', 'pgtap-wb', 'instance', 'revalya-pgtap-wb', 'event', 'connection.update',
      'at', '2030-02-01T11:00:00Z', 'payload', '{"state":"close"}'::jsonb),
    jsonb_build_object('slug', 'pgtap-wb', 'instance', 'revalya-pgtap-wb', 'event', 'qrcode.updated',
      'at', null, 'payload', null, 'store', false)))
  order by ord), array[false, true, false, true],
  'a stored key and a repeat inside the batch are duplicates; an unlogged event never is');
select is((select count(*)::int from public.api_logs where tenant_slug = 'pgtap-wb'), 2,
  'one api_logs row per new stored event');
select is((select (last_event, last_state, events_total) from maintenance.webhook_activity
    where tenant_slug = 'pgtap-wb'),
  row('qrcode.updated'::text, 'close'::text, 3::bigint), 'the activity row folds the batch''s new events in order');
select is((select count(*)::int from maintenance.record_webhook_events('[]'::jsonb)), 0, 'an empty batch, no rows');

select * from finish();
rollback;
