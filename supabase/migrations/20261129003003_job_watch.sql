-- The dead-man check's inputs: every scheduled job of this bundle, when it last succeeded, and what pg_cron and
-- pg_net said about its latest attempts.

-- why: how late a scheduled job may be before it is a missed run (on top of its own schedule).
insert into maintenance.settings (key, value, description) values
  ('deadman_grace', '"10 minutes"', 'A scheduled job that has not succeeded by its expected run time plus this grace raises missed_run')
on conflict (key) do nothing;

-- why: when the dead-man check first saw each schedule, so a job that has never run is judged from then (a new
-- weekly job is not "missed" on its first day).
create table if not exists maintenance.job_watch (
  jobname text primary key,
  first_seen_at timestamptz not null default now()
);
revoke all on maintenance.job_watch from public, anon, authenticated;
grant all on maintenance.job_watch to service_role;

-- why: one row per scheduled job of the bundle (pg_cron jobs named canais-<job>): its schedule, the last successful
-- run in maintenance.job_runs, the last run of any status, the latest pg_cron run (a failed command shows here) and
-- the failed scheduled calls of the last day for that job (a function that did not answer, or answered an error),
-- from maintenance.scheduled_calls, which outlives pg_net's own six-hour record of the answers.
create or replace function maintenance.scheduled_job_status()
returns table (
  jobname text, job text, schedule text, active boolean, first_seen_at timestamptz,
  last_success_at timestamptz, last_run_at timestamptz, last_run_status text, last_run_error text,
  cron_status text, cron_message text, cron_at timestamptz,
  net_failures_24h integer, net_last_error text, net_last_error_at timestamptz
)
language plpgsql
security definer
set search_path = ''
as $$
begin
  insert into maintenance.job_watch (jobname)
  select j.jobname from cron.job j where j.jobname like 'canais-%'
  on conflict on constraint job_watch_pkey do nothing;
  perform maintenance.collect_scheduled_calls();

  return query
  select j.jobname::text, substr(j.jobname::text, 8), j.schedule::text, j.active, w.first_seen_at,
    ok.started_at, lr.started_at, lr.status, lr.error,
    cr.status::text, cr.return_message::text, cr.start_time,
    coalesce(nf.failures, 0), nf.last_error, nf.last_error_at
  from cron.job j
  join maintenance.job_watch w on w.jobname = j.jobname
  left join lateral (
    select r.started_at from maintenance.job_runs r
    where r.job = substr(j.jobname::text, 8) and r.status in ('healthy', 'degraded', 'unhealthy', 'ok')
    order by r.started_at desc limit 1) ok on true
  left join lateral (
    select r.started_at, r.status, r.error from maintenance.job_runs r
    where r.job = substr(j.jobname::text, 8) order by r.started_at desc limit 1) lr on true
  left join lateral (
    select d.status, d.return_message, d.start_time from cron.job_run_details d
    where d.jobid = j.jobid order by d.start_time desc nulls last limit 1) cr on true
  left join lateral (
    select count(*)::integer as failures,
      (array_agg(c.error order by c.requested_at desc))[1] as last_error,
      max(c.requested_at) as last_error_at
    from maintenance.scheduled_calls c
    where c.job = substr(j.jobname::text, 8) and c.requested_at > now() - interval '24 hours'
      and c.error is not null) nf on true
  where j.jobname like 'canais-%'
  order by j.jobname;
end;
$$;
revoke all on function maintenance.scheduled_job_status() from public, anon, authenticated;
grant execute on function maintenance.scheduled_job_status() to service_role;
