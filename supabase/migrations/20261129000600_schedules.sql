-- The scheduled jobs: one table is the list. Each job's own migration inserts its row; pg_cron follows the table.

-- why: the one list of the bundle's scheduled jobs (UTC cron schedules). A row is a pg_cron job `canais-<job>`
-- calling maintenance.invoke_function('<job>'); `enabled = false` pauses it; `created_at` is when the job was
-- scheduled, from which the dead-man check judges a job that has never run (a new weekly job is not "missed" on its
-- first day). maintenance.job_health, the dead-man check, the watchdog and the dashboard read it.
create table if not exists maintenance.scheduled_jobs (
  job text primary key check (job ~ '^[a-z][a-z0-9-]{0,62}$'),
  schedule text not null,
  enabled boolean not null default true,
  description text,
  created_at timestamptz not null default now()
);
revoke all on maintenance.scheduled_jobs from public, anon, authenticated;
grant all on maintenance.scheduled_jobs to service_role;

-- why: keep pg_cron in step with maintenance.scheduled_jobs: a new or changed row (re)schedules `canais-<job>` (an
-- invalid schedule is refused by pg_cron, so the row is refused too), `enabled` sets the pg_cron job active or not,
-- a deleted row unschedules it.
create or replace function maintenance.scheduled_jobs_to_cron()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  id bigint;
begin
  if tg_op = 'DELETE' then
    perform cron.unschedule(j.jobid) from cron.job j where j.jobname = 'canais-' || old.job;
    return old;
  end if;
  if tg_op = 'UPDATE' and new.job <> old.job then
    raise exception 'a scheduled job cannot be renamed: delete % and insert %', old.job, new.job using errcode = '22023';
  end if;
  id := cron.schedule('canais-' || new.job, new.schedule,
    format('select maintenance.invoke_function(%L, %L::jsonb)', new.job, '{}'));
  perform cron.alter_job(id, active := new.enabled);
  return new;
end;
$$;
revoke all on function maintenance.scheduled_jobs_to_cron() from public, anon, authenticated;

drop trigger if exists scheduled_jobs_to_cron on maintenance.scheduled_jobs;
create trigger scheduled_jobs_to_cron after insert or delete or update of schedule, enabled
  on maintenance.scheduled_jobs for each row execute function maintenance.scheduled_jobs_to_cron();

-- why: change a job's schedule: `select maintenance.set_schedule('health-check', '*/10 * * * *')`. Refuses a job
-- that is not in maintenance.scheduled_jobs; returns the pg_cron job id.
create or replace function maintenance.set_schedule(job text, schedule text)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  id bigint;
begin
  update maintenance.scheduled_jobs s set schedule = set_schedule.schedule where s.job = set_schedule.job;
  if not found then
    raise exception 'unknown scheduled job: % (the jobs are the rows of maintenance.scheduled_jobs)', job
      using errcode = '22023';
  end if;
  select j.jobid into id from cron.job j where j.jobname = 'canais-' || set_schedule.job;
  return id;
end;
$$;
revoke all on function maintenance.set_schedule(text, text) from public, anon, authenticated;

-- The five jobs of the bundle, a row each (a new job adds its row in its own migration).
insert into maintenance.scheduled_jobs (job, schedule, description) values
  ('health-check', '*/5 * * * *', 'Evolution, database and every active tenant; alerts'),
  ('cleanup-logs', '0 2 * * *', 'Retention purge, expired sessions, pg_cron history, orphan integrations report'),
  ('isolation-audit', '0 6 * * *', 'Naming, slug and webhook isolation between tenants (dry run)'),
  ('orphan-cleanup', '0 3 * * *', 'Prefixed Evolution instances with no integration: quarantine, then delete'),
  ('weekly-report', '0 8 * * 0', 'Usage and performance report, sent to the notifiers')
on conflict (job) do nothing;
