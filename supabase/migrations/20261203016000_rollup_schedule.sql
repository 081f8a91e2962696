-- The hourly rollups of api_logs (20261202010000) kept current on their own: pg_cron runs the refresh in the database
-- every 15 minutes (no Edge Function, no HTTP call: nothing but SQL), catching up a backlog in bounded steps, and
-- applies the rollups' retention.

-- why: one call of the schedule. A first call (no watermark yet) starts at the oldest raw row's hour; a backlog is
-- rolled up `step` at a time (each step one refresh_api_logs_rollup, whose own rules keep every row counted once)
-- until the last closed hour, until a step makes no progress (a transaction still writing holds the bound back), or
-- until `budget` is spent, so a large first catch-up spreads over several calls instead of one long one. Then the
-- rollups older than `keep` go. Returns what it did.
create or replace function maintenance.maintain_api_logs_rollup(
  budget interval default '60 seconds',
  step interval default '1 day',
  keep interval default '400 days'
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  started timestamptz := pg_catalog.clock_timestamp();
  wm timestamptz;
  first timestamptz;
  r record;
  refreshes integer := 0;
  written bigint := 0;
  purged bigint;
begin
  if budget is null or budget < interval '0' or budget > interval '10 minutes' then
    raise exception 'budget must be between 0 and 10 minutes: got %', budget using errcode = '22023';
  end if;
  if step is null or step < interval '1 hour' or step > interval '31 days' then
    raise exception 'step must be between 1 hour and 31 days: got %', step using errcode = '22023';
  end if;
  if keep is null or keep < interval '1 day' then
    raise exception 'keep must be at least 1 day: got %', keep using errcode = '22023';
  end if;
  -- one maintainer at a time (a second call waits here, then finds the work done)
  select s.watermark into wm from maintenance.api_logs_rollup_state s where s.id for update;
  if wm is null then
    select date_trunc('hour', min(l.created_at)) into first from public.api_logs l;
    if first is not null then
      update maintenance.api_logs_rollup_state s set watermark = first where s.id;
      wm := first;
    end if;
  end if;
  loop
    select * into r from maintenance.refresh_api_logs_rollup('2 hours', least(now(), coalesce(wm, now()) + step));
    refreshes := refreshes + 1;
    written := written + coalesce(r.rows_written, 0);
    exit when r.watermark is null or wm is null or r.watermark <= wm
      or r.watermark >= date_trunc('hour', now())
      or pg_catalog.clock_timestamp() - started >= budget;
    wm := r.watermark;
  end loop;
  purged := maintenance.purge_api_logs_rollup(keep);
  return jsonb_build_object(
    'watermark', r.watermark,
    'caughtUp', r.watermark is not null and r.watermark >= date_trunc('hour', now()),
    'refreshes', refreshes,
    'rowsWritten', written,
    'rollupsPurged', purged,
    'seconds', round(extract(epoch from pg_catalog.clock_timestamp() - started)::numeric, 3));
end;
$$;
revoke all on function maintenance.maintain_api_logs_rollup(interval, interval, interval)
  from public, anon, authenticated;
grant execute on function maintenance.maintain_api_logs_rollup(interval, interval, interval) to service_role;

-- why: every 15 minutes, so the raw part of a report (the hours after the watermark) is at most about an hour and a
-- quarter of rows. A pg_cron job of its own (like maintenance-watchdog), not a canais-* job: it calls no function.
select cron.schedule('maintenance-rollups', '*/15 * * * *', 'select maintenance.maintain_api_logs_rollup()');
