-- The seed's daily isolation checks (instance status, naming, webhook URLs, orphan
-- integrations) as views, so the audit job, the status page and the dashboard read one definition.

-- why: every WhatsApp integration with its status: Stale (not updated for 24 h), Active or Inactive.
create or replace view maintenance.instance_status with (security_invoker = true) as
select
  t.slug as tenant_slug,
  ti.tenant_id,
  ti.id as integration_id,
  ti.config ->> 'instance_name' as instance_name,
  ti.is_active,
  ti.updated_at,
  case
    when ti.updated_at < now() - interval '24 hours' then 'Stale'
    when ti.is_active then 'Active'
    else 'Inactive'
  end as status
from public.tenant_integrations ti
join public.tenants t on t.id = ti.tenant_id
where ti.integration_type = 'whatsapp';

-- why: integrations whose instance name lacks the prefix (invalid_prefix) or names another
-- slug (slug_mismatch). A name with the wrong prefix is reported once, as invalid_prefix, with the expected name.
create or replace view maintenance.naming_violations with (security_invoker = true) as
with p as (select maintenance.setting('instance_prefix') #>> '{}' as prefix)
select
  t.slug as tenant_slug,
  ti.tenant_id,
  ti.id as integration_id,
  case
    when coalesce(ti.config ->> 'instance_name', '') not like replace(replace(p.prefix, '_', '\_'), '%', '\%') || '%'
      then 'invalid_prefix'
    else 'slug_mismatch'
  end as violation,
  ti.config ->> 'instance_name' as current_name,
  p.prefix || t.slug as expected_name
from public.tenant_integrations ti
join public.tenants t on t.id = ti.tenant_id
cross join p
where ti.integration_type = 'whatsapp'
  and (ti.config ->> 'instance_name') is distinct from p.prefix || t.slug;

-- why: integrations whose stored webhook URL is not {WEBHOOK_BASE_URL}/api/whatsapp/webhook/{slug}.
create or replace view maintenance.webhook_mismatches with (security_invoker = true) as
with b as (select rtrim(maintenance.setting('webhook_base_url') #>> '{}', '/') as base)
select
  t.slug as tenant_slug,
  ti.tenant_id,
  ti.id as integration_id,
  ti.config ->> 'webhook_url' as current_url,
  b.base || '/api/whatsapp/webhook/' || t.slug as expected_url
from public.tenant_integrations ti
join public.tenants t on t.id = ti.tenant_id
cross join b
where ti.integration_type = 'whatsapp'
  and b.base is not null
  and (ti.config ->> 'webhook_url') is distinct from b.base || '/api/whatsapp/webhook/' || t.slug;

-- why: integration rows whose tenant no longer exists (possible where the FK is absent or was
-- added after the fact on an existing database).
create or replace view maintenance.orphan_integrations with (security_invoker = true) as
select ti.*
from public.tenant_integrations ti
left join public.tenants t on t.id = ti.tenant_id
where t.id is null;

revoke all on maintenance.instance_status, maintenance.naming_violations, maintenance.webhook_mismatches,
  maintenance.orphan_integrations from public, anon, authenticated;
grant select on maintenance.instance_status, maintenance.naming_violations, maintenance.webhook_mismatches,
  maintenance.orphan_integrations to service_role;
