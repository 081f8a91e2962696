-- Per-tenant Evolution credentials after a migration to another server: the URL sits in the integration's config,
-- the key in Vault (never in plain text in a table, a report or a log); config.evolution_api_key_secret_id names it.

-- why: store a new server's key in Vault and return the secret's id (late-bound: vault is the real extension in a
-- Supabase project, a stand-in locally).
create or replace function maintenance.store_evolution_key(p_tenant_slug text, p_api_key text)
returns uuid language plpgsql security definer set search_path = '' as $$
declare
  secret_id uuid;
begin
  if p_api_key is null or length(p_api_key) = 0 then
    raise exception 'the API key must not be empty' using errcode = '22023';
  end if;
  select vault.create_secret(p_api_key, 'evolution_api_key/' || p_tenant_slug || '/' || gen_random_uuid(),
    'Evolution API key of tenant ' || p_tenant_slug || ' (whatsapp-ops migrate)') into secret_id;
  return secret_id;
end;
$$;

-- why: a rolled-back migration removes the key it stored; a finished one removes the key it replaced.
create or replace function maintenance.drop_evolution_key(p_secret_id uuid)
returns boolean language plpgsql security definer set search_path = '' as $$
declare
  n integer;
begin
  delete from vault.secrets where id = p_secret_id and name like 'evolution_api_key/%';
  get diagnostics n = row_count;
  return n > 0;
end;
$$;

-- why: read a tenant's stored key back (for the client that talks to that tenant's server).
create or replace function maintenance.evolution_key(p_secret_id uuid)
returns text language plpgsql stable security definer set search_path = '' as $$
declare
  k text;
begin
  select s.decrypted_secret into k from vault.decrypted_secrets s
  where s.id = p_secret_id and s.name like 'evolution_api_key/%';
  return k;
end;
$$;

revoke all on function maintenance.store_evolution_key(text, text) from public, anon, authenticated;
revoke all on function maintenance.drop_evolution_key(uuid) from public, anon, authenticated;
revoke all on function maintenance.evolution_key(uuid) from public, anon, authenticated;
grant execute on function maintenance.store_evolution_key(text, text) to service_role;
grant execute on function maintenance.drop_evolution_key(uuid) to service_role;
grant execute on function maintenance.evolution_key(uuid) to service_role;
