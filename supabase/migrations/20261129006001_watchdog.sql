-- The watchdog of the watcher: health-check checks every other job (dead-man check), but nothing running inside the
-- functions can notice that health-check itself has stopped (functions down, Vault key rotated, pg_net broken). This
-- one runs in the database alone, from pg_cron (job 'maintenance-watchdog', outside the canais-* jobs it would
-- otherwise watch itself among), and talks to Slack straight through pg_net.

insert into maintenance.settings (key, default_value, description) values
  ('watchdog_stale_after', '"20 minutes"', 'The watchdog alerts when health-check has not succeeded for this long'),
  ('watchdog_repeat', '"4 hours"', 'How often the watchdog repeats its alert while health-check stays silent')
on conflict (key) do update set default_value = excluded.default_value, description = excluded.description;

-- why: the watchdog's own memory (one row): since when health-check is silent, when Slack was last told.
create table if not exists maintenance.watchdog_state (
  id boolean primary key default true check (id),
  firing_since timestamptz,
  last_notified_at timestamptz,
  last_checked_at timestamptz,
  last_success_at timestamptz
);
insert into maintenance.watchdog_state (id) values (true) on conflict do nothing;
revoke all on maintenance.watchdog_state from public, anon, authenticated;
grant all on maintenance.watchdog_state to service_role;

-- why: decide whether health-check is silent, and notify once when it goes silent, every watchdog_repeat while it
-- stays so, and once when it is back. The message goes to the Slack incoming webhook stored in Vault as
-- 'slack_webhook_url' (optional: without it the state is still recorded and the result says so, visible in
-- cron.job_run_details). Returns what it decided, as jsonb.
create or replace function maintenance.watchdog(as_of timestamptz default now())
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  stale_after interval := (maintenance.setting('watchdog_stale_after') #>> '{}')::interval;
  repeat_every interval := (maintenance.setting('watchdog_repeat') #>> '{}')::interval;
  scheduled boolean;
  last_ok timestamptz;
  since timestamptz;
  st maintenance.watchdog_state;
  slack_url text;
  decision text;
  message text;
begin
  select h.active, h.last_success_at into scheduled, last_ok from maintenance.job_health(as_of) h
  where h.job = 'health-check';
  scheduled := coalesce(scheduled, false);
  -- a bundle that never ran health-check is judged from when it was scheduled
  since := coalesce(last_ok, (select s.created_at from maintenance.scheduled_jobs s where s.job = 'health-check'),
                    (select min(r.started_at) from maintenance.job_runs r));
  select * into st from maintenance.watchdog_state for update;

  if not scheduled or since is null or since > as_of - stale_after then
    decision := case when st.firing_since is not null then 'resolved' else 'ok' end;
  elsif st.firing_since is null then
    decision := 'firing';
  elsif st.last_notified_at is null or st.last_notified_at <= as_of - repeat_every then
    decision := 'reminder';
  else
    decision := 'still_firing';
  end if;

  message := case decision
    when 'firing' then format(':rotating_light: CRITICAL: health-check has not succeeded since %s: the WhatsApp tenants are not being watched. Check the functions, the Vault secrets and maintenance.scheduled_calls.', coalesce(since::text, 'ever'))
    when 'reminder' then format(':rotating_light: CRITICAL (reminder): health-check still silent since %s.', coalesce(since::text, 'ever'))
    when 'resolved' then format(':white_check_mark: RESOLVED: health-check is running again (last success %s).', last_ok)
  end;

  select s.decrypted_secret into slack_url from vault.decrypted_secrets s where s.name = 'slack_webhook_url';
  if message is not null and slack_url is not null then
    perform net.http_post(url := slack_url, body := jsonb_build_object('text', message),
      headers := '{"Content-Type": "application/json"}'::jsonb, timeout_milliseconds := 10000);
  end if;

  update maintenance.watchdog_state set
    firing_since = case when decision in ('firing') then coalesce(since, as_of)
                        when decision in ('ok', 'resolved') then null else firing_since end,
    last_notified_at = case when message is not null and decision <> 'resolved' then as_of
                            when decision = 'resolved' then null else last_notified_at end,
    last_checked_at = as_of,
    last_success_at = last_ok;

  return jsonb_build_object('decision', decision, 'lastSuccessAt', last_ok, 'silentSince', since,
    'notified', message is not null and slack_url is not null,
    'reason', case when message is not null and slack_url is null then 'no slack_webhook_url in Vault' end);
end;
$$;
revoke all on function maintenance.watchdog(timestamptz) from public, anon, authenticated;
grant execute on function maintenance.watchdog(timestamptz) to service_role;

select cron.schedule('maintenance-watchdog', '*/10 * * * *', 'select maintenance.watchdog()');
