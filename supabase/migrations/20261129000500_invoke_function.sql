-- why: the one way pg_cron reaches a function: read the project URL and the secret key from Vault (never stored
-- in a cron command or a table) and queue an HTTP POST through pg_net. Returns pg_net's request id; the answer
-- lands in net._http_response. Fails loudly when a Vault secret is missing, so a misconfigured schedule shows up
-- in cron.job_run_details instead of silently doing nothing.
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
  timeout_ms := coalesce((maintenance.setting('functions_timeout_ms') #>> '{}')::integer, 120000);
  return net.http_post(
    url := rtrim(project_url, '/') || '/functions/v1/' || name,
    body := coalesce(body, '{}'::jsonb) || jsonb_build_object('trigger', 'cron'),
    params := '{}'::jsonb,
    headers := jsonb_build_object('Content-Type', 'application/json', 'apikey', secret_key,
                                  'Authorization', 'Bearer ' || secret_key),
    timeout_milliseconds := timeout_ms
  );
end;
$$;
revoke all on function maintenance.invoke_function(text, jsonb) from public, anon, authenticated;
grant execute on function maintenance.invoke_function(text, jsonb) to service_role;
