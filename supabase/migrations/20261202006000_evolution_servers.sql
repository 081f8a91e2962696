-- The fleet of Evolution servers (issue 16, first part): a registry of the servers (maintenance.evolution_servers)
-- and which server each tenant is on (maintenance.tenant_servers). Before, a second server existed only as
-- `evolution_api_url` + `evolution_api_key_secret_id` inside the config row of a tenant that `migrate` had moved;
-- those rows are converted below (one server per distinct URL, and the link). The old config keys are still
-- written by migrate and read as a fallback, so nothing breaks mid-deploy, but the registry is the source of truth.
--
-- The link is a maintenance-side table, not a column or a config key of public.tenant_integrations:
-- * public tables belong to the product: this bundle adds indexes there, never columns;
-- * a config key cannot carry a foreign key, and the config jsonb is rewritten by the product and by `reset` (which
--   drops keys it does not know: the very way a migrated tenant was silently moved back to the default server); a
--   link row survives any rewrite, and a deletion and recreation, of the integration row;
-- * a real foreign key (`on delete restrict`) makes "remove a server while tenants use it" impossible even in a race,
--   counts per server are an indexed group-by, and deleting a tenant deletes its link (`on delete cascade`).
-- It is keyed by tenant: a tenant has one WhatsApp integration (unique (tenant_id, integration_type)).
--
-- A tenant without a link is on the default server: the one of EVOLUTION_API_URL / EVOLUTION_API_KEY, the server the
-- product creates instances on, registered by the functions on their first call (ensure_default_server). Its key
-- stays in the functions' environment, never in Vault: the one row with no key_secret_id. Every other server's key is
-- a Vault secret; no table holds a key and no function here returns one (evolution_key reads it back for the
-- functions' own client, as it did for migrated tenants).

-- why: one row per Evolution server the bundle may place tenants on. `enabled = false`: out of service (no new
-- placements, no migration to it; the fleet-aware jobs will skip it); `draining`: in service for its tenants, but no
-- automatic placements (retiring it: drain, migrate its tenants away, remove; an explicit migrate to it is still the
-- operator's call). `capacity` is the number of tenants it is
-- meant to hold: placement picks the enabled, non-draining server with the lowest tenants/capacity. `version` is what
-- `GET /` said when it was last seen (register, migrate).
create table if not exists maintenance.evolution_servers (
  id bigint generated always as identity primary key,
  name text not null,
  base_url text not null,
  key_secret_id uuid,
  version text,
  version_seen_at timestamptz,
  enabled boolean not null default true,
  draining boolean not null default false,
  capacity integer not null default 1000,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now(),
  constraint evolution_servers_name_key unique (name),
  constraint evolution_servers_base_url_key unique (base_url),
  constraint evolution_servers_name_check check (name ~ '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$'),
  -- normalised as normalizeBaseUrl() does (no trailing slash); no credentials, query or fragment in it
  constraint evolution_servers_base_url_check check (
    length(base_url) <= 2048 and base_url ~ '^https?://[^/?#@[:space:]]+(/[^?#[:space:]]*)?$' and base_url !~ '/$'),
  constraint evolution_servers_key_check check ((name = 'default') = (key_secret_id is null)),
  constraint evolution_servers_capacity_check check (capacity between 1 and 1000000),
  constraint evolution_servers_version_check check (version is null or length(version) <= 100)
);
comment on table maintenance.evolution_servers is
  'The Evolution servers of the fleet; the key of each is a Vault secret (key_secret_id), the default server''s is '
  'EVOLUTION_API_KEY';
comment on column maintenance.evolution_servers.key_secret_id is
  'Vault secret holding the server''s API key (null only for the default server, whose key is in the environment)';
comment on column maintenance.evolution_servers.draining is 'No new placements; its tenants stay until moved';
comment on column maintenance.evolution_servers.capacity is 'Tenants the server is meant to hold (placement load)';
revoke all on maintenance.evolution_servers from public, anon, authenticated;
grant all on maintenance.evolution_servers to service_role;

-- why: updated_at says when an operator last changed a server (enable, drain, …) without every writer setting it.
create or replace function maintenance.touch_updated_at()
returns trigger language plpgsql set search_path = '' as $$
begin
  new.updated_at := now();
  return new;
end;
$$;
revoke all on function maintenance.touch_updated_at() from public, anon, authenticated;
drop trigger if exists evolution_servers_touch on maintenance.evolution_servers;
create trigger evolution_servers_touch before update on maintenance.evolution_servers
  for each row execute function maintenance.touch_updated_at();

-- why: which server a tenant is on (see the header for why a link table). No row: the default server.
create table if not exists maintenance.tenant_servers (
  tenant_id uuid primary key references public.tenants (id) on delete cascade,
  server_id bigint not null references maintenance.evolution_servers (id) on delete restrict,
  placed_by text not null check (placed_by in ('conversion', 'migrate', 'placement', 'operator')),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);
comment on column maintenance.tenant_servers.placed_by is
  'What put the tenant there: conversion (of a migrated config row), migrate, placement (fix of a missing '
  'instance), operator';
create index if not exists tenant_servers_server_idx on maintenance.tenant_servers (server_id);
revoke all on maintenance.tenant_servers from public, anon, authenticated;
grant all on maintenance.tenant_servers to service_role;
drop trigger if exists tenant_servers_touch on maintenance.tenant_servers;
create trigger tenant_servers_touch before update on maintenance.tenant_servers
  for each row execute function maintenance.touch_updated_at();

-- why: the one trailing-slash rule of shared/config.ts (normalizeBaseUrl), for URLs that reach SQL from a config row.
create or replace function maintenance.normalize_base_url(p_url text)
returns text language sql immutable set search_path = '' as $$
  select regexp_replace(p_url, '/+$', '')
$$;

-- why: a name for a server the bundle registers by itself (a converted config row, a migrate to an unregistered
-- URL): its host and port as a slug (`evo-2-example-com-8080`), made unique with a suffix; never `default`. Such a
-- row is created draining: it holds the tenants moved there, but nobody chose it (or its capacity) for automatic
-- placements until an operator undrains it (`whatsapp-ops /servers/undrain`).
create or replace function maintenance.server_name_for(p_url text)
returns text language plpgsql stable set search_path = '' as $$
declare
  base text;
  candidate text;
  n integer := 1;
begin
  base := lower(regexp_replace(p_url, '^[a-zA-Z]+://', ''));
  base := trim(both '-' from regexp_replace(base, '[^a-z0-9]+', '-', 'g'));
  base := trim(both '-' from left(base, 54));
  if base = '' then base := 'server'; end if;
  candidate := base;
  while candidate = 'default' or exists (select 1 from maintenance.evolution_servers s where s.name = candidate) loop
    n := n + 1;
    candidate := base || '-' || n;
  end loop;
  return candidate;
end;
$$;

-- why: the tenants each server holds, as placement and `whatsapp-ops /servers/list` count them: linked tenants, plus
-- every tenant with a WhatsApp integration and no link, on the server its legacy config names (a row written by an
-- older function mid-deploy) or else on the default server.
create or replace view maintenance.evolution_server_load as
with unlinked as (
  select ti.tenant_id,
    case when ti.config ? 'evolution_api_key_secret_id'
      then maintenance.normalize_base_url(ti.config ->> 'evolution_api_url') end as legacy_url
  from public.tenant_integrations ti
  where ti.integration_type = 'whatsapp'
    and not exists (select 1 from maintenance.tenant_servers ts where ts.tenant_id = ti.tenant_id)
),
placed as (
  select ts.server_id, ts.tenant_id from maintenance.tenant_servers ts
  union all
  select coalesce(l.id, d.id), u.tenant_id
  from unlinked u
  left join maintenance.evolution_servers l on l.base_url = u.legacy_url
  left join maintenance.evolution_servers d on d.name = 'default'
)
select s.id, s.name, s.base_url, s.version, s.version_seen_at, s.enabled, s.draining, s.capacity,
  count(p.tenant_id)::integer as tenants,
  round(count(p.tenant_id)::numeric / s.capacity, 4) as load,
  s.name = 'default' as is_default, s.created_at, s.updated_at
from maintenance.evolution_servers s
left join placed p on p.server_id = s.id
group by s.id;
revoke all on maintenance.evolution_server_load from public, anon, authenticated;
grant select on maintenance.evolution_server_load to service_role;

-- why: drops a Vault secret named by a server row, unless a tenant's legacy config still names it (that tenant's
-- fallback reads it). Internal to the functions below.
create or replace function maintenance.drop_unused_server_key(p_secret_id uuid)
returns boolean language plpgsql security definer set search_path = '' as $$
declare
  n integer;
begin
  if p_secret_id is null
    or exists (select 1 from maintenance.evolution_servers s where s.key_secret_id = p_secret_id)
    or exists (select 1 from public.tenant_integrations ti
               where ti.config ->> 'evolution_api_key_secret_id' = p_secret_id::text) then
    return false;
  end if;
  delete from vault.secrets where id = p_secret_id and name like 'evolution_api_key/%';
  get diagnostics n = row_count;
  return n > 0;
end;
$$;

-- why: the default server (EVOLUTION_API_URL) is registered by the functions on their first call: idempotent, and
-- one indexed read when nothing changed. When the URL changes, the row follows it (tenants without a link follow the
-- environment, as before the registry). A server registered under that very URL is the same server: its tenants are
-- moved onto `default` and its row removed (its key dropped unless a legacy config names it); that is also how a
-- row converted below from a tenant moved back to the default server's URL joins the default server. Never raises
-- for an existing state, so a function's first call cannot fail on it.
create or replace function maintenance.ensure_default_server(p_url text)
returns bigint language plpgsql security definer set search_path = '' as $$
declare
  u text := maintenance.normalize_base_url(p_url);
  d maintenance.evolution_servers;
  other maintenance.evolution_servers;
begin
  select * into d from maintenance.evolution_servers where name = 'default';
  if found and d.base_url = u then
    return d.id;
  end if;
  perform pg_advisory_xact_lock(hashtext('maintenance.evolution_servers'));
  select * into d from maintenance.evolution_servers where name = 'default';
  if found and d.base_url = u then
    return d.id;
  end if;
  select * into other from maintenance.evolution_servers where base_url = u and name <> 'default';
  if d.id is null then
    if other.id is not null then
      -- the server registered under that URL becomes the default one (its key is the environment's from now on)
      update maintenance.evolution_servers set name = 'default', key_secret_id = null where id = other.id
      returning * into d;
      perform maintenance.drop_unused_server_key(other.key_secret_id);
      return d.id;
    end if;
    insert into maintenance.evolution_servers (name, base_url) values ('default', u) returning * into d;
    return d.id;
  end if;
  if other.id is not null then
    update maintenance.tenant_servers set server_id = d.id where server_id = other.id;
    delete from maintenance.evolution_servers where id = other.id;
    perform maintenance.drop_unused_server_key(other.key_secret_id);
  end if;
  update maintenance.evolution_servers set base_url = u where id = d.id;
  return d.id;
end;
$$;

-- why: registering a server stores its key in Vault and the row in one transaction; the key is never returned.
-- Refuses `default` (the environment's server) and everything the table's constraints refuse (23505 names the
-- constraint of a taken name or URL).
create or replace function maintenance.register_evolution_server(
  p_name text, p_url text, p_api_key text, p_capacity integer default null, p_version text default null)
returns setof maintenance.evolution_server_load
language plpgsql security definer set search_path = '' as $$
declare
  secret_id uuid;
  new_id bigint;
begin
  if p_name = 'default' then
    raise exception 'Cannot register a server named ''default'': it is the EVOLUTION_API_URL server'
      using errcode = '22023';
  end if;
  if p_api_key is null or length(p_api_key) = 0 then
    raise exception 'the API key must not be empty' using errcode = '22023';
  end if;
  select vault.create_secret(p_api_key, 'evolution_api_key/server/' || p_name || '/' || gen_random_uuid(),
    'Evolution API key of server ' || p_name || ' (whatsapp-ops servers register)') into secret_id;
  insert into maintenance.evolution_servers (name, base_url, key_secret_id, capacity, version, version_seen_at)
  values (p_name, maintenance.normalize_base_url(p_url), secret_id, coalesce(p_capacity, 1000), p_version,
    case when p_version is not null then now() end)
  returning id into new_id;
  return query select * from maintenance.evolution_server_load l where l.id = new_id;
end;
$$;

-- why: removing a server deletes its row and its key, refused (23503, from the link's foreign key) while a tenant is
-- linked to it, and refused for the default server. The caller checks the tenant count first to say how many.
create or replace function maintenance.remove_evolution_server(p_name text)
returns boolean language plpgsql security definer set search_path = '' as $$
declare
  s maintenance.evolution_servers;
begin
  if p_name = 'default' then
    raise exception 'Cannot remove the default server: it is the EVOLUTION_API_URL server' using errcode = '22023';
  end if;
  delete from maintenance.evolution_servers where name = p_name returning * into s;
  if not found then
    return false;
  end if;
  perform maintenance.drop_unused_server_key(s.key_secret_id);
  return true;
end;
$$;

-- why: the server a tenant is being placed on (migrate to a URL; placement): the registered server of that URL, or a
-- new row for it named after its host, keyed by `p_secret_id` (the key migrate just stored) and draining (see
-- server_name_for); then the tenant's link.
-- Returns the server, the server the tenant was linked to before (null: none) and whether the row is new, which is
-- what undo_tenant_server needs to roll it back.
create or replace function maintenance.link_tenant_server(
  p_tenant_id uuid, p_url text, p_secret_id uuid, p_version text, p_placed_by text)
returns table (server_id bigint, server_name text, previous_server_id bigint, server_created boolean)
language plpgsql security definer set search_path = '' as $$
declare
  u text := maintenance.normalize_base_url(p_url);
  s maintenance.evolution_servers;
  created boolean := false;
  prev bigint;
begin
  perform pg_advisory_xact_lock(hashtext('maintenance.evolution_servers'));
  select * into s from maintenance.evolution_servers where base_url = u;
  if not found then
    if p_secret_id is null then
      raise exception 'Cannot register % without a key', u using errcode = '22023';
    end if;
    insert into maintenance.evolution_servers (name, base_url, key_secret_id, version, version_seen_at, draining)
    values (maintenance.server_name_for(u), u, p_secret_id, p_version, case when p_version is not null then now() end,
      true)
    returning * into s;
    created := true;
  elsif p_version is not null then
    update maintenance.evolution_servers set version = p_version, version_seen_at = now() where id = s.id;
  end if;
  select ts.server_id into prev from maintenance.tenant_servers ts where ts.tenant_id = p_tenant_id for update;
  insert into maintenance.tenant_servers (tenant_id, server_id, placed_by)
  values (p_tenant_id, s.id, p_placed_by)
  on conflict (tenant_id) do update set server_id = excluded.server_id, placed_by = excluded.placed_by;
  return query select s.id, s.name, prev, created;
end;
$$;

-- why: a rolled-back migrate puts the tenant's link back as it was (to `p_previous_server_id`, or no link) and
-- removes the server row it registered (`p_created_server_id`) if no tenant uses it, so that its key can go too.
create or replace function maintenance.undo_tenant_server(
  p_tenant_id uuid, p_previous_server_id bigint, p_created_server_id bigint)
returns void language plpgsql security definer set search_path = '' as $$
begin
  if p_previous_server_id is null then
    delete from maintenance.tenant_servers where tenant_id = p_tenant_id;
  else
    update maintenance.tenant_servers set server_id = p_previous_server_id where tenant_id = p_tenant_id;
  end if;
  if p_created_server_id is not null
    and not exists (select 1 from maintenance.tenant_servers where server_id = p_created_server_id) then
    delete from maintenance.evolution_servers where id = p_created_server_id;
  end if;
end;
$$;

-- why: a key a server row names is the server's, not only the tenant's that migrate stored it for: migrate drops the
-- key of the config it replaced (drop_evolution_key), and that must not take a server's key with it.
create or replace function maintenance.drop_evolution_key(p_secret_id uuid)
returns boolean language plpgsql security definer set search_path = '' as $$
declare
  n integer;
begin
  if exists (select 1 from maintenance.evolution_servers s where s.key_secret_id = p_secret_id) then
    return false;
  end if;
  delete from vault.secrets where id = p_secret_id and name like 'evolution_api_key/%';
  get diagnostics n = row_count;
  return n > 0;
end;
$$;

-- why: the conversion of tenants moved by migrate before the registry: each config row with `evolution_api_url` and
-- `evolution_api_key_secret_id` (and no link yet) gets the server of that URL (registered here when absent, keyed by
-- the secret of the most recently updated row, draining: see server_name_for) and its link. A row whose secret id is
-- not a uuid or whose secret is no longer in Vault is skipped (the functions read it as the default server, as
-- before). Idempotent: the migration runs it once, an operator may run it again
-- (`select * from maintenance.convert_legacy_server_links()`).
create or replace function maintenance.convert_legacy_server_links()
returns table (servers_created integer, tenants_linked integer, rows_skipped integer)
language plpgsql security definer set search_path = '' as $$
declare
  r record;
  s_id bigint;
  created integer := 0;
  linked integer := 0;
  skipped integer := 0;
begin
  perform pg_advisory_xact_lock(hashtext('maintenance.evolution_servers'));
  for r in
    select ti.tenant_id, maintenance.normalize_base_url(ti.config ->> 'evolution_api_url') as url,
      ti.config ->> 'evolution_api_key_secret_id' as secret
    from public.tenant_integrations ti
    where ti.integration_type = 'whatsapp' and ti.config ? 'evolution_api_url'
      and ti.config ? 'evolution_api_key_secret_id'
      and not exists (select 1 from maintenance.tenant_servers ts where ts.tenant_id = ti.tenant_id)
    order by ti.updated_at desc nulls last, ti.id
  loop
    if r.secret !~ '^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$'
      or r.url !~ '^https?://[^/?#@[:space:]]+(/[^?#[:space:]]*)?$'
      or not exists (select 1 from vault.secrets v where v.id = r.secret::uuid and v.name like 'evolution_api_key/%')
    then
      skipped := skipped + 1;
      continue;
    end if;
    select id into s_id from maintenance.evolution_servers where base_url = r.url;
    if not found then
      insert into maintenance.evolution_servers (name, base_url, key_secret_id, draining)
      values (maintenance.server_name_for(r.url), r.url, r.secret::uuid, true)
      returning id into s_id;
      created := created + 1;
    end if;
    insert into maintenance.tenant_servers (tenant_id, server_id, placed_by)
    values (r.tenant_id, s_id, 'conversion')
    on conflict (tenant_id) do nothing;
    linked := linked + 1;
  end loop;
  return query select created, linked, skipped;
end;
$$;

revoke all on function maintenance.normalize_base_url(text) from public, anon, authenticated;
revoke all on function maintenance.server_name_for(text) from public, anon, authenticated;
revoke all on function maintenance.drop_unused_server_key(uuid) from public, anon, authenticated;
revoke all on function maintenance.ensure_default_server(text) from public, anon, authenticated;
revoke all on function maintenance.register_evolution_server(text, text, text, integer, text)
  from public, anon, authenticated;
revoke all on function maintenance.remove_evolution_server(text) from public, anon, authenticated;
revoke all on function maintenance.link_tenant_server(uuid, text, uuid, text, text) from public, anon, authenticated;
revoke all on function maintenance.undo_tenant_server(uuid, bigint, bigint) from public, anon, authenticated;
revoke all on function maintenance.drop_evolution_key(uuid) from public, anon, authenticated;
revoke all on function maintenance.convert_legacy_server_links() from public, anon, authenticated;
grant execute on function maintenance.ensure_default_server(text) to service_role;
grant execute on function maintenance.register_evolution_server(text, text, text, integer, text) to service_role;
grant execute on function maintenance.remove_evolution_server(text) to service_role;
grant execute on function maintenance.link_tenant_server(uuid, text, uuid, text, text) to service_role;
grant execute on function maintenance.undo_tenant_server(uuid, bigint, bigint) to service_role;
grant execute on function maintenance.drop_evolution_key(uuid) to service_role;
grant execute on function maintenance.convert_legacy_server_links() to service_role;

-- the conversion of what migrate wrote before this migration
select * from maintenance.convert_legacy_server_links();
