-- Job health for the dashboard and the status page: per job, the last run, the last success, when it is next due
-- from its pg_cron schedule, and whether it missed a run (the dead-man check's rule, computed in SQL).

-- why: how long after the last health-check run the status page still trusts it (older: status unknown), and how
-- long after a check a tenant's state still counts as known in the availability bars.
insert into maintenance.settings (key, value, description) values
  ('status_page_stale_after', '"15 minutes"', 'The status page says "unknown" when the last health-check run is older than this'),
  ('availability_gap', '"15 minutes"', 'A tenant state counts as known for this long after each health-check run (availability bars)')
on conflict (key) do nothing;

-- why: one row per job of the bundle as of `as_of`: its schedule (pg_cron job canais-<job>, null when not
-- scheduled), the last run of any status, the last successful run, whether a run holds the lease now, when it is
-- next due, by when it should have succeeded (next run after the last success, or after it was first watched, plus
-- deadman_grace) and so whether it missed a run, and the firing missed_run alert if any. Reads cron.job, hence
-- security definer.
create or replace function maintenance.job_health(as_of timestamptz default now())
returns table (
  job text, schedule text, active boolean, last_run_at timestamptz, last_run_status text,
  last_run_duration_ms integer, last_run_error text, last_success_at timestamptz, running boolean,
  next_due_at timestamptz, expected_by timestamptz, missed boolean, missed_alert text
)
language sql
stable
security definer
set search_path = ''
as $$
  with grace as (
    select coalesce((maintenance.setting('deadman_grace') #>> '{}')::interval, interval '10 minutes') as g
  ),
  jobs as (
    select n.job, c.schedule::text as schedule, c.active, w.first_seen_at
    from unnest(array['health-check', 'cleanup-logs', 'isolation-audit', 'orphan-cleanup', 'weekly-report']) n(job)
    left join cron.job c on c.jobname = 'canais-' || n.job
    left join maintenance.job_watch w on w.jobname = 'canais-' || n.job
    union all
    select substr(c.jobname::text, 8), c.schedule::text, c.active, w.first_seen_at
    from cron.job c
    left join maintenance.job_watch w on w.jobname = c.jobname
    where c.jobname like 'canais-%'
      and substr(c.jobname::text, 8) not in ('health-check', 'cleanup-logs', 'isolation-audit', 'orphan-cleanup',
        'weekly-report')
  ),
  facts as (
    select j.*, lr.started_at as last_run_at, lr.status as last_run_status, lr.duration_ms as last_run_duration_ms,
      lr.error as last_run_error, ok.started_at as last_success_at,
      exists (select 1 from maintenance.job_leases l where l.job = j.job and l.expires_at > as_of) as running,
      maintenance.cron_next_run(j.schedule, coalesce(ok.started_at, j.first_seen_at)) as expected_at
    from jobs j
    left join lateral (
      select r.started_at, r.status, r.duration_ms, r.error from maintenance.job_runs r
      where r.job = j.job and r.started_at <= as_of and r.status <> 'skipped'
      order by r.started_at desc limit 1) lr on true
    left join lateral (
      select r.started_at from maintenance.job_runs r
      where r.job = j.job and r.started_at <= as_of and r.status in ('healthy', 'degraded', 'unhealthy', 'ok')
      order by r.started_at desc limit 1) ok on true
  )
  select f.job, f.schedule, f.active, f.last_run_at, f.last_run_status, f.last_run_duration_ms, f.last_run_error,
    f.last_success_at, f.running,
    case when f.active then maintenance.cron_next_run(f.schedule, as_of) end as next_due_at,
    f.expected_at + g.g as expected_by,
    coalesce(f.active and f.expected_at + g.g < as_of, false) as missed,
    (select a.fingerprint from maintenance.alerts a
     where a.status = 'firing' and a.fingerprint = 'missed_run:' || f.job) as missed_alert
  from facts f cross join grace g
  order by f.job;
$$;
revoke all on function maintenance.job_health(timestamptz) from public, anon, authenticated;
grant execute on function maintenance.job_health(timestamptz) to service_role;
