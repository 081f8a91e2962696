-- The application tables the seed reads. On an existing SaaS database they already exist: everything here is
-- "if not exists", so the migration only fills in what is missing (tables, the columns the bundle reads, indexes).

-- why: one row per tenant; `slug` names the tenant's Evolution instance and webhook URL.
create table if not exists public.tenants (
  id uuid primary key default gen_random_uuid(),
  slug text unique not null,
  name text,
  is_active boolean default true,
  created_at timestamptz default now()
);
alter table public.tenants enable row level security;

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
alter table public.tenant_integrations enable row level security;
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
alter table public.api_logs enable row level security;
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
alter table public.tenant_sessions_audit enable row level security;
create index if not exists tenant_sessions_audit_expires_idx on public.tenant_sessions_audit (expires_at);
