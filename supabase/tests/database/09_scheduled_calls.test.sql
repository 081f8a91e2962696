-- maintenance.scheduled_calls: every scheduled call is recorded, its answer copied from pg_net's (which pg_net
-- drops after pg_net.ttl), a call never answered is settled as lost, and an answer's `carry` is handed to the job's
-- next scheduled call.
begin;
select plan(12);

-- three calls: answered 202, answered 503 with a carry, never answered for two hours (ids far from pg_net's own)
insert into maintenance.scheduled_calls (request_id, job, requested_at) values
  (-9100001, 'pgtap-job', now() - interval '10 minutes'),
  (-9100002, 'pgtap-job', now() - interval '5 minutes'),
  (-9100003, 'pgtap-other', now() - interval '2 hours');
insert into net._http_response (id, status_code, content, timed_out, created) values
  (-9100001, 202, '{"job":"pgtap-job","runId":"4f2a3b9c-1d2e-4f5a-8b7c-0123456789ab","status":"running"}', false,
   now() - interval '10 minutes'),
  (-9100002, 503, '{"job":"pgtap-job","status":"error","report":{"error":"Cannot record the run as the database is unavailable"},"carry":{"databaseOutage":{"since":"2026-01-01T00:00:00.000Z","notifiedAt":"2026-01-01T00:00:00.000Z"}}}',
   false, now() - interval '5 minutes');

select is(maintenance.collect_scheduled_calls(), 3, 'the two answered calls and the lost one are settled');
select is(maintenance.collect_scheduled_calls(), 0, 'a settled call is not looked at again');
select results_eq($$select status_code, error is null, run_id::text from maintenance.scheduled_calls
                    where request_id = -9100001$$,
  $$values (202, true, '4f2a3b9c-1d2e-4f5a-8b7c-0123456789ab')$$,
  'a 202 is recorded with the run it started and no error');
select matches((select error from maintenance.scheduled_calls where request_id = -9100002),
  '^HTTP 503: Cannot record the run as the database is unavailable',
  'an error answer is recorded with its status and the message of its body');
select ok((select status_code is null and responded_at is null and settled_at is not null
             and error like 'pg_net recorded no answer within 01:00:00%'
           from maintenance.scheduled_calls where request_id = -9100003),
  'a call pg_net never answered within scheduled_call_lost_after is settled as lost, saying why');
select is((select response -> 'carry' -> 'databaseOutage' ->> 'since' from maintenance.scheduled_calls
           where request_id = -9100002), '2026-01-01T00:00:00.000Z',
  'the answer''s JSON is kept, carry included');

-- the next scheduled call of the job gets the carry of the job's latest answer (and only that job's)
update maintenance.scheduled_calls set job = 'health-check', requested_at = now() + interval '1 hour'
where request_id = -9100002;
create temporary table queued on commit drop as
  select maintenance.invoke_function('health-check', '{"tenants":["pgtap-x"]}'::jsonb) as id;
select isnt((select id from queued), null, 'invoke_function queues the call');
select is((select convert_from(q.body, 'UTF8')::jsonb -> 'carry' -> 'databaseOutage' ->> 'notifiedAt'
           from net.http_request_queue q where q.id = (select id from queued)),
  '2026-01-01T00:00:00.000Z', 'the call carries what the previous answer handed over');
select is((select convert_from(q.body, 'UTF8')::jsonb - 'carry'
           from net.http_request_queue q where q.id = (select id from queued)),
  '{"tenants":["pgtap-x"],"trigger":"cron"}'::jsonb, 'its own body is kept and says it comes from the schedule');
select ok((select settled_at is null from maintenance.scheduled_calls where request_id = (select id from queued)),
  'the new call is recorded, unsettled until pg_net answers');
insert into queued select maintenance.invoke_function('weekly-report', '{}'::jsonb);
select is((select count(*)::int from net.http_request_queue q
           where q.id = (select max(id) from queued) and convert_from(q.body, 'UTF8')::jsonb ? 'carry'), 0,
  'another job''s call carries nothing of it');
select is((select count(*)::int from net.http_request_queue q where q.id in (select id from queued)), 2,
  'both calls wait in pg_net''s queue (sent only if this transaction commits)');
select * from finish();
rollback;
