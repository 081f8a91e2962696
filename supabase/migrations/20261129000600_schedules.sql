-- why: the five scheduled jobs (UTC). cron.schedule with a job name updates the job in place, so re-applying
-- is idempotent; change a schedule with maintenance.set_schedule('health-check', '*/10 * * * *').
create or replace function maintenance.set_schedule(job text, schedule text)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
begin
  if job not in ('health-check', 'cleanup-logs', 'isolation-audit', 'orphan-cleanup', 'weekly-report') then
    raise exception 'unknown scheduled job: %', job using errcode = '22023';
  end if;
  return cron.schedule('canais-' || job, schedule,
    format('select maintenance.invoke_function(%L, %L::jsonb)', job, '{}'));
end;
$$;
revoke all on function maintenance.set_schedule(text, text) from public, anon, authenticated;

select maintenance.set_schedule('health-check', '*/5 * * * *');
select maintenance.set_schedule('cleanup-logs', '0 2 * * *');
select maintenance.set_schedule('isolation-audit', '0 6 * * *');
select maintenance.set_schedule('orphan-cleanup', '0 3 * * *');
select maintenance.set_schedule('weekly-report', '0 8 * * 0');
