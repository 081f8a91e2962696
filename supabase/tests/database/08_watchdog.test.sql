-- The SQL-only watchdog of health-check: once when silent, reminders, once when back; Slack via pg_net from Vault.
begin;
select plan(12);

select has_function('maintenance', 'watchdog', array['timestamp with time zone'], 'maintenance.watchdog(as_of) exists');
select is((select schedule::text collate "default" from cron.job where jobname = 'maintenance-watchdog'), '*/10 * * * *',
  'the watchdog runs from pg_cron every 10 minutes, with no function involved');
select ok(not has_function_privilege('anon', 'maintenance.watchdog(timestamptz)', 'execute'), 'anon cannot call it');

-- a clean slate inside this transaction
delete from maintenance.job_runs where job = 'health-check';
update maintenance.watchdog_state set firing_since = null, last_notified_at = null;
update maintenance.scheduled_jobs set created_at = now() - interval '2 days' where job = 'health-check';
select cron.alter_job(jobid, active := true) from cron.job where jobname = 'canais-health-check';
do $$ begin  -- through Vault's functions: the stored secret is ciphertext
  perform vault.update_secret(id, 'http://127.0.0.1:9/slack-watchdog-test') from vault.secrets
  where name = 'slack_webhook_url';
  if not found then perform vault.create_secret('http://127.0.0.1:9/slack-watchdog-test', 'slack_webhook_url'); end if;
end $$;
insert into maintenance.job_runs (job, status, started_at, finished_at)
values ('health-check', 'healthy', now() - interval '1 hour', now() - interval '1 hour');

select is(maintenance.watchdog(now()) ->> 'decision', 'firing', 'silent for an hour (> 20 min): firing');
select is((select count(*)::int from net.http_request_queue where url = 'http://127.0.0.1:9/slack-watchdog-test'), 1,
  'one Slack message is queued through pg_net');
select is(maintenance.watchdog(now() + interval '10 minutes') ->> 'decision', 'still_firing',
  'ten minutes later it is still firing');
select is((select count(*)::int from net.http_request_queue where url = 'http://127.0.0.1:9/slack-watchdog-test'), 1,
  'and no second message is sent');
select is(maintenance.watchdog(now() + interval '4 hours 1 minute') ->> 'decision', 'reminder',
  'after the repeat interval, a reminder');
select is((select count(*)::int from net.http_request_queue where url = 'http://127.0.0.1:9/slack-watchdog-test'), 2,
  'the reminder is a second message');
insert into maintenance.job_runs (job, status, started_at, finished_at)
values ('health-check', 'degraded', now() + interval '4 hours 2 minutes', now() + interval '4 hours 2 minutes');
select is(maintenance.watchdog(now() + interval '4 hours 3 minutes') ->> 'decision', 'resolved',
  'a successful health-check resolves it');
select is((select content from (select convert_from(body, 'UTF8')::jsonb ->> 'text' as content, id
    from net.http_request_queue where url = 'http://127.0.0.1:9/slack-watchdog-test' order by id desc limit 1) x)
    like '%RESOLVED%', true, 'with one resolved message');
select is(maintenance.watchdog(now() + interval '4 hours 4 minutes') ->> 'decision', 'ok', 'then all is quiet');

select * from finish();
rollback;
