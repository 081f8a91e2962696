-- why: this bundle's own objects live in one schema that only the service role and postgres can reach; the
-- Data API roles (anon, authenticated) get nothing, now or for objects created later.
create schema if not exists maintenance;
revoke all on schema maintenance from public, anon, authenticated;
grant usage on schema maintenance to service_role;
alter default privileges in schema maintenance revoke all on tables from public, anon, authenticated;
alter default privileges in schema maintenance revoke all on functions from public, anon, authenticated;
alter default privileges in schema maintenance revoke all on sequences from public, anon, authenticated;
alter default privileges in schema maintenance grant all on tables to service_role;
alter default privileges in schema maintenance grant all on functions to service_role;
alter default privileges in schema maintenance grant all on sequences to service_role;

-- why: key/value settings the SQL side needs (instance prefix, webhook base URL, retention, thresholds). Each key's
-- default is written once, by the migration that introduces it (`default_value`); an operator or the functions set
-- `value` (null: the default applies). maintenance.setting(key) is the one way to read them, so no reader repeats
-- a default of its own.
create table if not exists maintenance.settings (
  key text primary key,
  value jsonb,
  default_value jsonb,
  description text,
  updated_at timestamptz not null default now()
);

insert into maintenance.settings (key, default_value, description) values
  ('instance_prefix', '"revalya-"', 'Evolution instance name prefix (INSTANCE_PREFIX)'),
  ('webhook_base_url', 'null', 'Base URL of the webhook receiver (WEBHOOK_BASE_URL); null until a function has run'),
  ('functions_timeout_ms', '15000', 'How long pg_net waits for a scheduled function to answer (it answers 202 at once; this covers a cold start)')
on conflict (key) do update set default_value = excluded.default_value, description = excluded.description;

-- why: one row per job run (scheduled or manual): the response every job function returns, as stored.
create table if not exists maintenance.job_runs (
  id uuid primary key default gen_random_uuid(),
  job text not null,
  status text not null check (status in ('running', 'healthy', 'degraded', 'unhealthy', 'ok', 'error', 'skipped')),
  started_at timestamptz not null default now(),
  finished_at timestamptz,
  duration_ms integer,
  dry_run boolean not null default false,
  trigger text not null default 'manual',
  input jsonb not null default '{}'::jsonb,
  report jsonb not null default '{}'::jsonb,
  error text
);
create index if not exists job_runs_job_started_idx on maintenance.job_runs (job, started_at desc);
create index if not exists job_runs_started_idx on maintenance.job_runs (started_at);

-- why: a lease per job so two runs of the same job never overlap (works behind the transaction pooler, where
-- session advisory locks do not); a lease whose holder died expires and is taken over.
create table if not exists maintenance.job_leases (
  job text primary key,
  run_id uuid not null,
  acquired_at timestamptz not null default now(),
  expires_at timestamptz not null
);

-- why: the value of a setting: what was set, else the default its migration wrote. An unknown key is an error
-- (a misspelt key must not silently read as null).
create or replace function maintenance.setting(setting_key text)
returns jsonb language plpgsql stable set search_path = '' as $$
declare
  v jsonb;
begin
  select coalesce(nullif(s.value, 'null'::jsonb), s.default_value) into v from maintenance.settings s
  where s.key = setting_key;
  if not found then
    raise exception 'unknown setting: %', setting_key using errcode = '22023';
  end if;
  return v;
end;
$$;

revoke all on all tables in schema maintenance from public, anon, authenticated;
revoke all on all functions in schema maintenance from public, anon, authenticated;
grant all on all tables in schema maintenance to service_role;
grant execute on all functions in schema maintenance to service_role;
