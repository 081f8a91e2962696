-- The application tables the seed reads. On an existing SaaS database they already exist: everything here is
-- "if not exists", so the migration only fills in what is missing (tables, indexes). Row level security is switched
-- on only for a table this migration creates: on an existing table it is the application's decision, not ours.
create temporary table if not exists _created_here (name text);
insert into _created_here
select t from unnest(array['tenants', 'tenant_integrations', 'api_logs', 'tenant_sessions_audit']) t
where to_regclass('public.' || t) is null;

-- why: one row per tenant; `slug` names the tenant's Evolution instance and webhook URL.
create table if not exists public.tenants (
  id uuid primary key default gen_random_uuid(),
  slug text unique not null,
  name text,
  is_active boolean default true,
  created_at timestamptz default now()
);

-- why: a tenant's WhatsApp integration (config jsonb holds instance_name, webhook_url, environment).
create table if not exists public.tenant_integrations (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid references public.tenants (id) on delete cascade,
  integration_type text,
  config jsonb default '{}'::jsonb,
  is_active boolean default true,
  created_at timestamptz default now(),
  updated_at timestamptz default now(),
  unique (tenant_id, integration_type)
);
create index if not exists tenant_integrations_type_idx on public.tenant_integrations (integration_type);
create index if not exists tenant_integrations_instance_name_idx
  on public.tenant_integrations ((config ->> 'instance_name'));

-- why: every call to Evolution and every webhook event, read by health checks, diagnoses and weekly reports.
create table if not exists public.api_logs (
  id bigint generated always as identity primary key,
  created_at timestamptz default now(),
  tenant_slug text,
  service text,
  event text,
  status text,
  error_type text,
  response_time integer,
  data jsonb
);
-- the seed's queries: retention (created_at), per-tenant windows, per-service/event windows.
create index if not exists api_logs_created_at_idx on public.api_logs (created_at);
create index if not exists api_logs_tenant_created_idx on public.api_logs (tenant_slug, created_at);
create index if not exists api_logs_service_event_created_idx on public.api_logs (service, event, created_at);

-- why: session audit trail with an expiry, purged daily by cleanup-logs.
create table if not exists public.tenant_sessions_audit (
  id uuid primary key default gen_random_uuid(),
  tenant_id uuid references public.tenants (id) on delete cascade,
  created_at timestamptz default now(),
  expires_at timestamptz
);
create index if not exists tenant_sessions_audit_expires_idx on public.tenant_sessions_audit (expires_at);

do $$
declare t text;
begin
  for t in select name from _created_here loop
    execute format('alter table public.%I enable row level security', t);
  end loop;
end $$;
drop table _created_here;
