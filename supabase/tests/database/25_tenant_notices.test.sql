-- Tenant-facing notices (20261203013000): what a tenant_health row asks of the number's owner, one open episode per
-- tenant opened and closed by the tenant_health triggers, and the events queued once per episode on the
-- application webhook channels only.
begin;
select plan(18);

select is(maintenance.tenant_action_reason('logged_out', 'close', '{"listed":"close","reason":401}'), 'logged_out',
  'a logout asks for a new pairing');
select is(maintenance.tenant_action_reason('instance_disconnected', 'close', '{"listed":"close","reason":403}'),
  'banned', 'a stored 403 close is a ban');
select is(maintenance.tenant_action_reason('instance_disconnected', 'close', '{"listed":"connecting"}'), 'qr_limit',
  'stored connecting with the socket closed: the QR limit');
select is(maintenance.tenant_action_reason('instance_disconnected', 'close', '{"listed":"open","webhook":"refused"}'),
  'qr_limit', 'a refused connection.update: the QR limit');
select is(maintenance.tenant_action_reason('instance_disconnected', 'connecting', '{"listed":"connecting"}'),
  'pairing_pending', 'QR codes shown, waiting for a scan or a code');
select is(maintenance.tenant_action_reason('instance_disconnected', 'close', '{"listed":"open"}'), null,
  'a transient drop of a paired number asks nothing of its owner');
select is(maintenance.tenant_action_reason('evolution_unreachable', 'unknown', '{}'), null,
  'the server being down is the operator''s, not the owner''s');
select is(maintenance.tenant_action_reason('logged_out', 'open', '{}'), null, 'open asks nothing');

insert into public.tenants (id, slug) values
  ('00000000-0000-0000-0000-0000000025a1', 'tn25-a'), ('00000000-0000-0000-0000-0000000025a2', 'tn25-b');
insert into maintenance.tenant_health (tenant_id, tenant_slug, state, issue_code, issue, evolution_state, details,
  since, last_checked_at, last_change_at)
values
  ('00000000-0000-0000-0000-0000000025a1', 'tn25-a', 'degraded', 'logged_out', 'x', 'close',
   '{"listed":"close","reason":401}', now(), now(), now()),
  ('00000000-0000-0000-0000-0000000025a2', 'tn25-b', 'healthy', null, null, 'open', '{}', now(), now(), now());
select is((select count(*)::int from maintenance.tenant_notices where tenant_slug like 'tn25-%'), 1,
  'only the logged-out tenant opens an episode');

update maintenance.tenant_health set issue_code = 'instance_disconnected', evolution_state = 'connecting',
  details = '{"listed":"connecting"}' where tenant_slug = 'tn25-a';
select results_eq($$select reason, last_reason, closed_at is null from maintenance.tenant_notices
  where tenant_slug = 'tn25-a'$$, $$values ('logged_out', 'pairing_pending', true)$$,
  'a QR shown after the logout is the same episode, its latest reason noted');

select is(maintenance.queue_tenant_notices(array['slack', 'log']), '{"required": 0, "done": 0}'::jsonb,
  'no application webhook: nothing queued');
select is(maintenance.queue_tenant_notices(array['slack', 'webhook:25a1b2c3']), '{"required": 1, "done": 0}'::jsonb,
  'one required queued');
select is(maintenance.queue_tenant_notices(array['webhook:25a1b2c3']), '{"required": 0, "done": 0}'::jsonb,
  'and not twice');
select results_eq($$select channel, kind, payload -> 'tenant' ->> 'slug' from maintenance.notification_outbox
  where dedupe_key like 'tenant_action_%' and payload -> 'tenant' ->> 'slug' like 'tn25-%'$$,
  $$values ('webhook:25a1b2c3', 'tenant_action_required', 'tn25-a')$$, 'on the webhook channel only, for that tenant');

update maintenance.tenant_health set state = 'healthy', issue_code = null, evolution_state = 'open', details = '{}'
  where tenant_slug = 'tn25-a';
select is(maintenance.queue_tenant_notices(array['webhook:25a1b2c3']), '{"required": 0, "done": 1}'::jsonb,
  'open again: one done');
select throws_ok($$insert into maintenance.tenant_notices (tenant_id, tenant_slug, reason, last_reason, opened_at,
  last_seen_at) select tenant_id, tenant_slug, 'banned', 'banned', now(), now() from maintenance.tenant_notices
  where tenant_slug = 'tn25-a' union all select tenant_id, tenant_slug, 'banned', 'banned', now(), now()
  from maintenance.tenant_notices where tenant_slug = 'tn25-a'$$, '23505', null,
  'at most one open episode per tenant');

update maintenance.tenant_notices set opened_at = now() - interval '200 days', closed_at = now() - interval '100 days'
  where tenant_slug = 'tn25-a';
insert into maintenance.tenant_notices (tenant_id, tenant_slug, reason, last_reason, opened_at, last_seen_at)
values ('00000000-0000-0000-0000-0000000025a2', 'tn25-b', 'banned', 'banned', now() - interval '200 days', now());
select is(maintenance.purge_policy_batch('maintenance.tenant_notices', now(), 100, false), 1::bigint,
  'cleanup-logs purges the episode closed 100 days ago');
select results_eq($$select tenant_slug from maintenance.tenant_notices where tenant_slug like 'tn25-%'$$,
  $$values ('tn25-b'::text)$$, 'an open episode is never purged, however old');

select * from finish();
rollback;
