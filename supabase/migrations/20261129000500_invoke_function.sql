-- The one way pg_cron reaches a function, and the record of every such call.

-- why: pg_net keeps its answers (net._http_response) only for pg_net.ttl (6 hours by default) and has no column
-- saying which call an answer belongs to. This is the bundle's own record of each scheduled call: which job, when,
-- and (copied from pg_net while it still has it) how it was answered. The dead-man check reads it instead of
-- net._http_response, so a failure count or a missed-run cause does not vanish after six hours.
create table if not exists maintenance.scheduled_calls (
  request_id bigint primary key,
  job text not null,
  requested_at timestamptz not null default now(),
  -- set once the outcome is known: the answer pg_net recorded, or that none came (lost)
  settled_at timestamptz,
  responded_at timestamptz,
  status_code integer,
  timed_out boolean,
  error text,
  run_id uuid,
  -- the answer's JSON (a scheduled call's answer is small: 202 {job, runId, status}); null when not JSON or large
  response jsonb
);
create index if not exists scheduled_calls_job_idx on maintenance.scheduled_calls (job, requested_at desc);
create index if not exists scheduled_calls_pending_idx on maintenance.scheduled_calls (request_id)
  where settled_at is null;
revoke all on maintenance.scheduled_calls from public, anon, authenticated;
grant all on maintenance.scheduled_calls to service_role;

insert into maintenance.settings (key, default_value, description) values
  ('scheduled_call_lost_after', '"1 hour"',
   'A scheduled call pg_net has not answered after this long is recorded as lost (queue lost in a restart, or expired)')
on conflict (key) do update set default_value = excluded.default_value, description = excluded.description;

-- why: copy pg_net's answers to the scheduled calls into maintenance.scheduled_calls before pg_net's ttl deletes
-- them, and settle the calls that never got one. Cheap (only unsettled calls are looked at); called by every
-- scheduled call and by the dead-man check. Returns how many calls it settled.
create or replace function maintenance.collect_scheduled_calls()
returns integer
language plpgsql
security definer
set search_path = ''
as $$
declare
  r record;
  body jsonb;
  settled integer := 0;
  lost_after interval := (maintenance.setting('scheduled_call_lost_after') #>> '{}')::interval;
begin
  for r in
    select c.request_id, h.id as answered, h.status_code, h.timed_out, h.error_msg, h.content, h.created
    from maintenance.scheduled_calls c
    left join net._http_response h on h.id = c.request_id
    where c.settled_at is null and (h.id is not null or c.requested_at < now() - lost_after)
    for update of c skip locked
  loop
    body := null;
    if r.answered is not null and length(r.content) <= 16384 then
      begin
        body := r.content::jsonb;
      exception when others then
        body := null;
      end;
    end if;
    update maintenance.scheduled_calls c set
      settled_at = now(),
      responded_at = r.created,
      status_code = r.status_code,
      timed_out = coalesce(r.timed_out, false),
      error = case
        when r.answered is null then format('pg_net recorded no answer within %s (its queue is lost in a database restart, and answers expire after pg_net.ttl)', lost_after)
        when r.error_msg is not null then r.error_msg
        when coalesce(r.timed_out, false) then 'timed out'
        when r.status_code >= 400 or r.status_code is null then format('HTTP %s: %s', coalesce(r.status_code::text, '?'),
          left(coalesce(body #>> '{error,message}', body #>> '{report,error}', r.content, ''), 300))
      end,
      run_id = case when body ->> 'runId' ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                    then (body ->> 'runId')::uuid end,
      response = case when jsonb_typeof(body) = 'object' then body end
    where c.request_id = r.request_id;
    settled := settled + 1;
  end loop;
  return settled;
end;
$$;
revoke all on function maintenance.collect_scheduled_calls() from public, anon, authenticated;
grant execute on function maintenance.collect_scheduled_calls() to service_role;

-- why: the one way pg_cron reaches a function: read the project URL and the secret key from Vault (never stored
-- in a cron command or a table), queue an HTTP POST through pg_net asking for an asynchronous answer (the function
-- answers 202 at once and runs the job in the background: pg_net's single worker waits for every request of a
-- batch, so a call held open for a job's duration would delay every other pg_net request), and record the call.
-- The body gets `trigger: cron`, plus what the job's previous scheduled answer handed over (`carry`: state a
-- function could not keep in a database it could not reach). Returns pg_net's request id. Fails loudly when a
-- Vault secret is missing, so a misconfigured schedule shows up in cron.job_run_details instead of doing nothing.
create or replace function maintenance.invoke_function(name text, body jsonb default '{}'::jsonb)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
  project_url text;
  secret_key text;
  timeout_ms integer;
  carry jsonb;
  request_id bigint;
begin
  if name is null or name !~ '^[a-z][a-z0-9-]{0,62}$' then
    raise exception 'invalid function name: %', coalesce(name, 'null') using errcode = '22023';
  end if;
  select decrypted_secret into project_url from vault.decrypted_secrets where vault.decrypted_secrets.name = 'project_url';
  select decrypted_secret into secret_key from vault.decrypted_secrets where vault.decrypted_secrets.name = 'secret_key';
  if project_url is null or secret_key is null then
    raise exception 'Vault secrets project_url and secret_key must both be set (missing: %)',
      concat_ws(', ', case when project_url is null then 'project_url' end,
                      case when secret_key is null then 'secret_key' end)
      using errcode = '22023';
  end if;
  perform maintenance.collect_scheduled_calls();
  select c.response -> 'carry' into carry
  from maintenance.scheduled_calls c
  where c.job = name and c.settled_at is not null and c.responded_at is not null
  order by c.requested_at desc
  limit 1;
  timeout_ms := (maintenance.setting('functions_timeout_ms') #>> '{}')::integer;
  request_id := net.http_post(
    url := rtrim(project_url, '/') || '/functions/v1/' || name,
    body := coalesce(body, '{}'::jsonb) || jsonb_build_object('trigger', 'cron')
            || case when jsonb_typeof(carry) = 'object' then jsonb_build_object('carry', carry) else '{}'::jsonb end,
    params := '{}'::jsonb,
    headers := jsonb_build_object('Content-Type', 'application/json', 'Prefer', 'respond-async',
                                  'apikey', secret_key, 'Authorization', 'Bearer ' || secret_key),
    timeout_milliseconds := timeout_ms
  );
  insert into maintenance.scheduled_calls (request_id, job) values (request_id, name)
  on conflict on constraint scheduled_calls_pkey do nothing;
  return request_id;
end;
$$;
revoke all on function maintenance.invoke_function(text, jsonb) from public, anon, authenticated;
grant execute on function maintenance.invoke_function(text, jsonb) to service_role;
