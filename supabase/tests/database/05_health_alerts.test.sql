-- Health bookkeeping, the alert lifecycle, the outbox and the dead-man inputs.
begin;
select plan(40);

select has_table('maintenance', 'tenant_health', 'latest health per tenant exists');
select has_table('maintenance', 'tenant_health_history', 'health state history exists');
select has_table('maintenance', 'alerts', 'alerts exist');
select has_table('maintenance', 'notification_outbox', 'the notification outbox exists');
select has_table('maintenance', 'scheduled_jobs', 'the list of scheduled jobs the dead-man check watches exists');
select table_privs_are('maintenance', 'alerts', 'anon', array[]::text[], 'anon cannot touch alerts');
select table_privs_are('maintenance', 'tenant_health', 'authenticated', array[]::text[],
  'authenticated cannot touch tenant_health');
select function_privs_are('maintenance', 'evaluate_alerts', array['uuid', 'timestamp with time zone', 'jsonb', 'jsonb'],
  'authenticated', array[]::text[], 'authenticated cannot evaluate alerts');
select is((select count(*)::int from pg_proc p join pg_namespace n on n.oid = p.pronamespace
           where n.nspname = 'maintenance' and p.prosecdef
             and not coalesce(array_to_string(p.proconfig, ',') like '%search_path=""%', false)), 0,
  'every security definer function in maintenance pins search_path');

-- a clean slate for global alerts, inside this rolled-back transaction. These runs are full runs with thresholds
-- of 1 (one check fires, one resolves): the lifecycle itself is checked here, the policy (thresholds, flapping,
-- the incident window, scoped runs) in 14_alert_policy.
delete from maintenance.alerts;
insert into public.tenants (id, slug) values
  ('00000000-0000-0000-0000-00000000a001', 'hx-ok'), ('00000000-0000-0000-0000-00000000a002', 'hx-down');

create temp table t_results as select $$[
  {"tenant_id":"00000000-0000-0000-0000-00000000a001","slug":"hx-ok","state":"healthy","evolution_state":"open"},
  {"tenant_id":"00000000-0000-0000-0000-00000000a002","slug":"hx-down","state":"degraded","issue_code":"instance_disconnected",
   "issue":"WhatsApp not connected (close)","severity":"medium","evolution_state":"close"}]$$::jsonb as r;

-- run 1
select is((maintenance.record_tenant_health('10000000-0000-0000-0000-000000000001', '2026-01-01 10:00Z',
  (select r from t_results)) ->> 'degraded')::int, 1, 'run 1 records one degraded tenant');
select results_eq($$select state, since, consecutive from maintenance.tenant_health where tenant_slug = 'hx-down'$$,
  $$values ('degraded'::text, '2026-01-01 10:00Z'::timestamptz, 1)$$, 'the degraded tenant is degraded since run 1');
select is((select count(*)::int from maintenance.tenant_health_history where tenant_slug like 'hx-%'), 2,
  'first sight of each tenant is a history row');
select lives_ok($$select maintenance.evaluate_alerts('10000000-0000-0000-0000-000000000001', '2026-01-01 10:00Z',
  '[]', '{"tenantsEvaluated":true,"fullRun":true,"failureThreshold":1,"successThreshold":1,"channels":["log","slack"]}')$$, 'alerts are evaluated after run 1');
select results_eq($$select fingerprint, severity, status from maintenance.alerts where tenant_slug like 'hx-%'$$,
  $$values ('instance_disconnected:hx-down'::text, 'warning'::text, 'firing'::text)$$,
  'one warning alert fires for the disconnected tenant (medium → warning)');
select is((select count(*)::int from maintenance.notification_outbox o join maintenance.alerts a on a.id = o.alert_id
           where a.tenant_slug = 'hx-down' and o.kind = 'firing'), 2, 'its firing notification is queued once per channel');

-- run 2, five minutes later, same state
select maintenance.record_tenant_health('10000000-0000-0000-0000-000000000002', '2026-01-01 10:05Z', (select r from t_results));
select maintenance.evaluate_alerts('10000000-0000-0000-0000-000000000002', '2026-01-01 10:05Z', '[]',
  '{"tenantsEvaluated":true,"fullRun":true,"failureThreshold":1,"successThreshold":1,"channels":["log","slack"]}');
select results_eq($$select since, consecutive, last_checked_at from maintenance.tenant_health where tenant_slug = 'hx-down'$$,
  $$values ('2026-01-01 10:00Z'::timestamptz, 2, '2026-01-01 10:05Z'::timestamptz)$$,
  'run 2 keeps since, counts the second consecutive check');
select is((select count(*)::int from maintenance.notification_outbox o join maintenance.alerts a on a.id = o.alert_id
           where a.tenant_slug = 'hx-down'), 2, 'a still-firing alert queues nothing new within the repeat interval');

-- run 3, five hours later: a reminder is due
select maintenance.record_tenant_health('10000000-0000-0000-0000-000000000003', '2026-01-01 15:00Z', (select r from t_results));
select maintenance.evaluate_alerts('10000000-0000-0000-0000-000000000003', '2026-01-01 15:00Z', '[]',
  '{"tenantsEvaluated":true,"fullRun":true,"failureThreshold":1,"successThreshold":1,"channels":["log"]}');
select is((select count(*)::int from maintenance.notification_outbox o join maintenance.alerts a on a.id = o.alert_id
           where a.tenant_slug = 'hx-down' and o.kind = 'reminder'), 1, 'after the repeat interval one reminder is queued');

-- run 4: the tenant is back
select maintenance.record_tenant_health('10000000-0000-0000-0000-000000000004', '2026-01-01 15:05Z',
  jsonb_set((select r from t_results), '{1}', '{"tenant_id":"00000000-0000-0000-0000-00000000a002","slug":"hx-down","state":"healthy","evolution_state":"open"}'));
select maintenance.evaluate_alerts('10000000-0000-0000-0000-000000000004', '2026-01-01 15:05Z', '[]',
  '{"tenantsEvaluated":true,"fullRun":true,"failureThreshold":1,"successThreshold":1,"channels":["log"]}');
select results_eq($$select status, resolved_at from maintenance.alerts where fingerprint = 'instance_disconnected:hx-down'$$,
  $$values ('resolved'::text, '2026-01-01 15:05Z'::timestamptz)$$, 'the alert resolves when the tenant is healthy');
select is((select count(*)::int from maintenance.notification_outbox o join maintenance.alerts a on a.id = o.alert_id
           where a.tenant_slug = 'hx-down' and o.kind = 'resolved'), 1, 'one resolved notification is queued');
select ok((select payload ->> 'title' like '[RESOLVED] hx-down:%' from maintenance.notification_outbox o
           join maintenance.alerts a on a.id = o.alert_id where a.tenant_slug = 'hx-down' and o.kind = 'resolved'),
  'the resolved notification names the tenant');
select results_eq($$select from_state, to_state from maintenance.tenant_health_history where tenant_slug = 'hx-down' order by at$$,
  $$values (null::text, 'degraded'::text), ('degraded', 'healthy')$$, 'history holds exactly the two state changes');

-- frequent disconnections from api_logs
insert into public.api_logs (created_at, tenant_slug, service, event, status, data)
select '2026-01-01 15:00Z'::timestamptz - make_interval(mins => g * 10), 'hx-ok', 'whatsapp', 'connection.update',
  'success', '{"state":"close","statusReason":428}' from generate_series(1, 4) g;
select is(maintenance.record_tenant_health('10000000-0000-0000-0000-000000000005', '2026-01-01 15:10Z',
  (select r from t_results)) -> 'frequentDisconnections', '["hx-ok"]'::jsonb,
  'four close events in 2 h flag frequent_disconnections');
select results_eq($$select state, issue_code from maintenance.tenant_health where tenant_slug = 'hx-ok'$$,
  $$values ('degraded'::text, 'frequent_disconnections'::text)$$, 'an open but flapping tenant is degraded');

-- mass disconnect: 6 tenants go down in one run → one platform alert, tenant alerts inhibited
insert into public.tenants (id, slug)
select ('00000000-0000-0000-0000-0000000b000' || g)::uuid, 'hx-mass-' || g from generate_series(1, 6) g;
select maintenance.record_tenant_health('10000000-0000-0000-0000-000000000006', '2026-01-01 16:00Z', (
  select jsonb_agg(jsonb_build_object('tenant_id', ('00000000-0000-0000-0000-0000000b000' || g)::uuid,
    'slug', 'hx-mass-' || g, 'state', 'degraded', 'issue_code', 'instance_disconnected', 'issue', 'not connected',
    'severity', 'medium', 'evolution_state', 'close')) from generate_series(1, 6) g));
select is(maintenance.evaluate_alerts('10000000-0000-0000-0000-000000000006', '2026-01-01 16:00Z', '[]',
  '{"tenantsEvaluated":true,"fullRun":true,"failureThreshold":1,"successThreshold":1,"channels":["log"]}') -> 'platform', '["mass_disconnect"]'::jsonb,
  'six tenants down in one run raise mass_disconnect');
select is((select count(*)::int from maintenance.alerts where tenant_slug like 'hx-mass-%' and inhibited_by = 'mass_disconnect'), 6,
  'the six tenant alerts are inhibited by it');
select is((select count(*)::int from maintenance.notification_outbox o join maintenance.alerts a on a.id = o.alert_id
           where a.tenant_slug like 'hx-mass-%'), 0, 'inhibited tenant alerts queue no notification');
select is((select count(*)::int from maintenance.notification_outbox o join maintenance.alerts a on a.id = o.alert_id
           where a.fingerprint = 'mass_disconnect' and o.kind = 'firing'), 1, 'the incident is notified once');

-- Evolution down inhibits every tenant alert
select maintenance.evaluate_alerts('10000000-0000-0000-0000-000000000007', '2026-01-01 16:05Z',
  '[{"fingerprint":"evolution_down","kind":"evolution_down","severity":"critical","summary":"Evolution API unreachable"}]',
  '{"fullRun":true,"platformKinds":["evolution_down"],"channels":["log"]}');
select is((select count(*)::int from maintenance.alerts where status = 'firing' and scope = 'tenant'
           and inhibited_by is distinct from 'evolution_down'), 0, 'evolution_down inhibits every firing tenant alert');
select maintenance.evaluate_alerts('10000000-0000-0000-0000-000000000008', '2026-01-01 16:10Z', '[]',
  '{"fullRun":true,"platformKinds":["evolution_down"],"channels":["log"]}');
select is((select status from maintenance.alerts where fingerprint = 'evolution_down'), 'resolved',
  'evolution_down resolves when the run no longer sees it');

-- zombie suspicion is the job's judgement (silence relative to the tenant's own rate, only where no liveness probe
-- could tell): it arrives as a flag, and the bookkeeping makes an open tenant with it degraded
do $$ begin
  if to_regclass('maintenance.webhook_activity') is null then
    create table maintenance.webhook_activity (tenant_slug text primary key, last_event_at timestamptz);
  end if;
end $$;
insert into public.tenants (id, slug) values ('00000000-0000-0000-0000-00000000a003', 'hx-zombie');
insert into maintenance.webhook_activity (tenant_slug, last_event_at) values ('hx-zombie', '2025-12-30 10:00Z');
select is(maintenance.record_tenant_health('10000000-0000-0000-0000-000000000009', '2026-01-01 16:20Z',
  '[{"tenant_id":"00000000-0000-0000-0000-00000000a003","slug":"hx-zombie","state":"healthy","evolution_state":"open",
    "flags":["zombie_suspected"]}]')
  -> 'zombies', '["hx-zombie"]'::jsonb, 'a tenant the job flags as a suspected zombie is reported as one');
select results_eq($$select state, issue_code from maintenance.tenant_health where tenant_slug = 'hx-zombie'$$,
  $$values ('degraded'::text, 'zombie_suspected'::text)$$, 'a suspected zombie is degraded');

-- outbox: idempotent enqueue, claim, retry with backoff, sent
select is((select count(*)::int from maintenance.enqueue_notification('test:once', '{"title":"x"}', array['slack'])), 1,
  'a notification is queued');
select is((select count(*)::int from maintenance.enqueue_notification('test:once', '{"title":"x"}', array['slack'])), 0,
  'the same dedupe key is never queued twice');
create temp table t_claim as select * from maintenance.claim_notifications(array['slack'], 1000)
  where dedupe_key = 'test:once';
select is((select count(*)::int from t_claim), 1, 'a due row is claimed');
select is((select count(*)::int from maintenance.claim_notifications(array['slack'], 1000) where dedupe_key = 'test:once'), 0,
  'a claimed row is not handed to a second drainer');
select is(maintenance.complete_notification((select id from t_claim), false, 'HTTP 500'), 'pending',
  'a failed attempt stays pending');
select ok((select next_attempt_at > now() from maintenance.notification_outbox where dedupe_key = 'test:once'),
  'and is retried later (backoff)');
select is(maintenance.complete_notification((select id from t_claim), true), 'sent', 'a successful attempt is sent');

-- dead-man inputs
select results_eq($$select job from maintenance.deadman_status() order by job$$,
  $$select job from maintenance.scheduled_jobs order by job$$,
  'deadman_status lists every scheduled job');

select * from finish();
rollback;
