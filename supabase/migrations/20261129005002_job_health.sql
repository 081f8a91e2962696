-- Job health: per scheduled job (maintenance.scheduled_jobs), the last run, the last success, when it is next due
-- from its schedule, and whether it missed a run. The missed-run rule is written here once; the dashboard, the
-- status page, whatsapp-ops /status and the dead-man check of health-check all read it.

-- why: how late a scheduled job may be before it is a missed run (on top of its own schedule); how long after the
-- last health-check run the status page still trusts it (older: status unknown), and how long after a check a
-- tenant's state still counts as known in the availability bars.
insert into maintenance.settings (key, default_value, description) values
  ('deadman_grace', '"10 minutes"', 'A scheduled job that has not succeeded by its expected run time plus this grace raises missed_run'),
  ('status_page_stale_after', '"15 minutes"', 'The status page says "unknown" when the last health-check run is older than this'),
  ('availability_gap', '"15 minutes"', 'A tenant state counts as known for this long after each health-check run (availability bars)')
on conflict (key) do update set default_value = excluded.default_value, description = excluded.description;

-- why: per job, its last run (any status but skipped) and its last success as of `as_of`: the one place that says
-- which statuses count as a success.
create or replace function maintenance.job_last_runs(as_of timestamptz default now())
returns table (
  job text, last_run_at timestamptz, last_run_status text, last_run_duration_ms integer, last_run_error text,
  last_success_at timestamptz
)
language sql
stable
set search_path = ''
as $$
  select s.job, lr.started_at, lr.status, lr.duration_ms, lr.error, ok.started_at
  from maintenance.scheduled_jobs s
  left join lateral (
    select r.started_at, r.status, r.duration_ms, r.error from maintenance.job_runs r
    where r.job = s.job and r.started_at <= as_of and r.status <> 'skipped'
    order by r.started_at desc limit 1) lr on true
  left join lateral (
    select r.started_at from maintenance.job_runs r
    where r.job = s.job and r.started_at <= as_of and r.status in ('healthy', 'degraded', 'unhealthy', 'ok')
    order by r.started_at desc limit 1) ok on true;
$$;

-- why: one row per scheduled job as of `as_of`: its schedule and whether pg_cron runs it, its last run and last
-- success, whether a run holds the lease now, when it is next due, by when it should have succeeded (the next run
-- of its schedule after the last success, or after it was scheduled, plus deadman_grace) and so whether it missed a
-- run, and the firing missed_run alert if any. Reads cron.job, hence security definer.
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
    select (maintenance.setting('deadman_grace') #>> '{}')::interval as g
  ),
  facts as (
    select s.job, s.schedule, coalesce(c.active, false) and s.enabled as active, lr.last_run_at, lr.last_run_status,
      lr.last_run_duration_ms, lr.last_run_error, lr.last_success_at,
      exists (select 1 from maintenance.job_leases l where l.job = s.job and l.expires_at > as_of) as running,
      maintenance.cron_next_run(s.schedule, coalesce(lr.last_success_at, s.created_at)) as expected_at
    from maintenance.scheduled_jobs s
    left join cron.job c on c.jobname = 'canais-' || s.job
    left join maintenance.job_last_runs(as_of) lr on lr.job = s.job
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

-- why: what the dead-man check needs beyond job_health: for each job, the facts that explain a missed run: the latest
-- pg_cron run of its command (a failed command shows here), and its failed scheduled calls of the last day (a
-- function that did not answer, or answered an error; from maintenance.scheduled_calls, which outlives pg_net's
-- six-hour record). Settles the calls pg_net has answered first, hence volatile.
create or replace function maintenance.deadman_status(as_of timestamptz default now())
returns table (
  job text, schedule text, active boolean, last_run_at timestamptz, last_run_status text, last_run_error text,
  last_success_at timestamptz, expected_by timestamptz, missed boolean,
  cron_status text, cron_message text, cron_at timestamptz,
  net_failures_24h integer, net_last_error text, net_last_error_at timestamptz
)
language plpgsql
security definer
set search_path = ''
as $$
begin
  perform maintenance.collect_scheduled_calls();
  return query
  select h.job, h.schedule, h.active, h.last_run_at, h.last_run_status, h.last_run_error, h.last_success_at,
    h.expected_by, h.missed, cr.status::text, cr.return_message::text, cr.start_time,
    coalesce(nf.failures, 0), nf.last_error, nf.last_error_at
  from maintenance.job_health(as_of) h
  left join cron.job c on c.jobname = 'canais-' || h.job
  left join lateral (
    select d.status, d.return_message, d.start_time from cron.job_run_details d
    where d.jobid = c.jobid order by d.start_time desc nulls last limit 1) cr on true
  left join lateral (
    select count(*)::integer as failures,
      (array_agg(sc.error order by sc.requested_at desc))[1] as last_error,
      max(sc.requested_at) as last_error_at
    from maintenance.scheduled_calls sc
    where sc.job = h.job and sc.requested_at > as_of - interval '24 hours' and sc.error is not null) nf on true
  order by h.job;
end;
$$;
revoke all on function maintenance.deadman_status(timestamptz) from public, anon, authenticated;
grant execute on function maintenance.deadman_status(timestamptz) to service_role;
