-- The outbox's per-send lease (20261202003000): a claim takes one row of one channel with a token of its own, only
-- that token completes the row, a row whose lease ran out is taken over with a new token, and a channel found down
-- defers its other due rows without touching the ones in flight.
begin;
select plan(28);

select has_column('maintenance', 'notification_outbox', 'claim_token', 'a row records the token of the claim holding it');
select has_column('maintenance', 'notification_outbox', 'claimed_at', 'and when it was claimed');
select function_privs_are('maintenance', 'claim_notification', array['text', 'interval', 'bigint[]'], 'anon',
  array[]::text[], 'anon cannot claim notifications');
select function_privs_are('maintenance', 'finish_notification',
  array['bigint', 'uuid', 'boolean', 'text', 'interval', 'boolean'], 'authenticated', array[]::text[],
  'authenticated cannot complete notifications');
select function_privs_are('maintenance', 'defer_notifications', array['text', 'text', 'interval', 'bigint[]', 'integer'],
  'service_role', array['EXECUTE'], 'the service role may defer notifications');

-- four Slack rows and one email row, in id order
create temp table t_rows as
  select k, maintenance.enqueue_notification('pgtap-lease:' || k, '{"title":"x"}', array['slack']) as id
  from generate_series(1, 4) k;
insert into t_rows select 5, maintenance.enqueue_notification('pgtap-lease:5', '{"title":"x"}', array['email']);
create temp table t_ids as select array_agg(id order by id) as ids from t_rows;
create function pg_temp.row_id(n integer) returns bigint language sql as $$ select id from t_rows where k = n $$;

create temp table t_a as select * from maintenance.claim_notification('slack', interval '30 seconds',
  (select ids from t_ids));
select is((select array_agg(id) from t_a), array[pg_temp.row_id(1)], 'a claim takes one row: the oldest due one');
select ok((select claim_token is not null and attempts = 1 and next_attempt_at = now() + interval '30 seconds'
             and claimed_at = now() from t_a),
  'with a token, an attempt counted, and the row hidden for the lease');
create temp table t_b as select * from maintenance.claim_notification('slack', interval '30 seconds',
  (select ids from t_ids));
select is((select array_agg(id) from t_b), array[pg_temp.row_id(2)], 'a second drainer gets the next row, not the held one');
select is((select array_agg(id) from maintenance.claim_notification('email', interval '30 seconds',
  (select ids from t_ids))), array[pg_temp.row_id(5)], 'a claim takes only its own channel''s rows');

select is(maintenance.finish_notification(pg_temp.row_id(1), gen_random_uuid(), true), 'lost',
  'a completion with another token is refused');
select results_eq($$select status, attempts, claim_token from maintenance.notification_outbox where id = pg_temp.row_id(1)$$,
  $$select 'pending'::text, 1, claim_token from t_a$$, 'and changes nothing');
select is(maintenance.finish_notification(pg_temp.row_id(1), (select claim_token from t_a), true), 'sent',
  'the holder''s completion is recorded');
select ok((select claim_token is null and sent_at = now() from maintenance.notification_outbox
           where id = pg_temp.row_id(1)), 'and releases the claim');
select is(maintenance.finish_notification(pg_temp.row_id(1), (select claim_token from t_a), false, 'late'), 'lost',
  'a second completion with the same token is refused: a sent row stays sent');

-- row 2's drainer stalls past its lease: another drainer takes it over
update maintenance.notification_outbox set next_attempt_at = now() - interval '1 second' where id = pg_temp.row_id(2);
create temp table t_c as select * from maintenance.claim_notification('slack', interval '30 seconds',
  (select ids from t_ids));
select is((select id from t_c), pg_temp.row_id(2), 'a row whose lease ran out is claimed again');
select ok((select t_c.claim_token <> t_b.claim_token and t_c.attempts = 2 from t_c, t_b),
  'with a new token, counting another attempt');
select is(maintenance.finish_notification(pg_temp.row_id(2), (select claim_token from t_b), true), 'lost',
  'the stalled drainer cannot complete it any more');
select is(maintenance.finish_notification(pg_temp.row_id(2), (select claim_token from t_c), false, 'HTTP 500'),
  'pending', 'the new holder''s failed attempt leaves it pending');
select ok((select next_attempt_at > now() and claim_token is null and last_error = 'HTTP 500'
           from maintenance.notification_outbox where id = pg_temp.row_id(2)),
  'retried after a backoff, released, with the error');

select throws_ok($$select * from maintenance.claim_notification('slack', interval '0 seconds')$$, '22023', null,
  'a lease of zero is refused');
select throws_ok($$select * from maintenance.claim_notification('slack', null)$$, '22023', null,
  'a missing lease is refused');

-- the channel is down: rows 3 and 4 are due; row 4 is held by a drainer
create temp table t_d as select * from maintenance.claim_notification('slack', interval '30 seconds',
  array[pg_temp.row_id(4)]);
select results_eq($$select id, status from maintenance.defer_notifications('slack', 'HTTP 503', null,
                    (select ids from t_ids))$$,
  $$values (pg_temp.row_id(3), 'pending'::text)$$,
  'a down channel defers its due rows only: not the held one, not the sent one, not the one in backoff');
select ok((select attempts = 1 and last_error = 'HTTP 503' and next_attempt_at > now() and claim_token is null
           from maintenance.notification_outbox where id = pg_temp.row_id(3)),
  'a deferred row counts the attempt and waits out the backoff with the error');
select ok((select claim_token = (select claim_token from t_d) from maintenance.notification_outbox
           where id = pg_temp.row_id(4)), 'the held row keeps its claim');
update maintenance.notification_outbox set next_attempt_at = now() - interval '1 second', attempts = 19
where id = pg_temp.row_id(3);
select results_eq($$select status from maintenance.defer_notifications('slack', 'HTTP 503', interval '5 minutes',
                    (select ids from t_ids))$$,
  $$values ('failed'::text)$$, 'a deferral that uses the last attempt fails the row');

-- the batch claim and the tokenless completion of 20261129003002, kept for their callers
update maintenance.notification_outbox set status = 'pending', attempts = 0, next_attempt_at = now()
where id = any (array[pg_temp.row_id(2), pg_temp.row_id(3)]);
create temp table t_batch as select * from maintenance.claim_notifications(array['slack'], 10, interval '2 minutes',
  (select ids from t_ids));
select ok((select count(*) = 2 and count(distinct claim_token) = 2 from t_batch),
  'the batch claim gives each row a token of its own');
select is(maintenance.complete_notification(pg_temp.row_id(2), true), 'sent', 'the tokenless completion still works');
select ok((select claim_token is null from maintenance.notification_outbox where id = pg_temp.row_id(2)),
  'and releases the claim');

select * from finish();
rollback;
