-- Demo tenants for the local stack (loaded once, when the local database is new). Three tenants with a WhatsApp
-- integration named by the convention, one without any integration (healthy by the seed's rule).
insert into public.tenants (slug, name) values
  ('acme', 'Acme Comércio'), ('globex', 'Globex Serviços'), ('initech', 'Initech Ltda'), ('umbrella', 'Umbrella (sem WhatsApp)')
on conflict (slug) do nothing;

insert into public.tenant_integrations (tenant_id, integration_type, config, is_active)
select t.id, 'whatsapp', jsonb_build_object(
    'instance_name', 'revalya-' || t.slug,
    'webhook_url', 'http://127.0.0.1:54321/functions/v1/whatsapp-webhook/api/whatsapp/webhook/' || t.slug,
    'environment', 'development'), true
from public.tenants t
where t.slug in ('acme', 'globex', 'initech')
on conflict (tenant_id, integration_type) do nothing;
