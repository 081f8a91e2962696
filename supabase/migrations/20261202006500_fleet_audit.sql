-- isolation-audit and orphan-cleanup on every server of the fleet (issue 16, item 2, the audit part). Both jobs list
-- each enabled server of maintenance.evolution_servers once per run; what they keep between runs about an instance is
-- now per server, since the same name can be listed by two servers (a tenant's instance left behind on the server it
-- was moved away from, or an orphan on each):
-- * an orphan's sightings (maintenance.orphan_sightings) are per server: a run that lists server B never forgets or
--   ages the sightings of server A, and an orphan is deleted on the server it was sighted on, after its grace there;
-- * "being removed" (the deletes of ours Evolution still lists) is per server: a delete on B does not hide the
--   instance of the same name A lists (the audit rows of these deletes name the server in `before.server`; a row
--   without one is from before this migration, when both jobs only listed the default server).

-- why: the server a sighting was made on (its registry name; the rows from before are the default server's), and the
-- base URL it had then. A sighting whose server now has another URL (EVOLUTION_API_URL changed, so `default` is
-- another machine) starts again: an orphan's grace is never inherited from an instance of another server.
alter table maintenance.orphan_sightings add column if not exists server text not null default 'default';
alter table maintenance.orphan_sightings add column if not exists server_url text;
comment on column maintenance.orphan_sightings.server is 'Registry name of the server the orphan was sighted on';
comment on column maintenance.orphan_sightings.server_url is
  'That server''s base URL when sighted (a sighting made under another URL starts again)';
do $$
begin
  if not exists (
    select 1 from pg_constraint c join pg_attribute a on a.attrelid = c.conrelid and a.attnum = any (c.conkey)
    where c.conrelid = 'maintenance.orphan_sightings'::regclass and c.conname = 'orphan_sightings_pkey'
      and a.attname = 'server'
  ) then
    alter table maintenance.orphan_sightings drop constraint orphan_sightings_pkey;
    -- the same name, now (server, instance_name)
    alter table maintenance.orphan_sightings add constraint orphan_sightings_pkey primary key (server, instance_name);
  end if;
end;
$$;

-- why: one set-wise step per run and server. Given every prefixed instance one server listed (a complete list: the
-- caller calls this only when that server's listing succeeded), records a sighting of each orphan there, forgets the
-- sightings of that server's instances that are no longer orphans (and those of servers no longer registered), and
-- returns that server's orphans with their age and whether they may be deleted: seen in at least two runs, first seen
-- at least p_grace ago, and not an instance of a live tenant. Other servers' sightings are not touched.
create or replace function maintenance.sight_orphans_on(
  p_server text, p_server_url text, p_instances jsonb, p_run_id uuid, p_grace interval default '24 hours',
  p_as_of timestamptz default now()
)
returns table (instance_name text, state text, first_seen_at timestamptz, last_seen_at timestamptz,
  times_seen integer, tenant_exists boolean, eligible boolean)
language plpgsql security definer set search_path = '' as $$
begin
  if p_server is null or length(p_server) = 0 then
    raise exception 'p_server must name a server' using errcode = '22023';
  end if;
  if jsonb_typeof(p_instances) is distinct from 'array' then
    raise exception 'p_instances must be a JSON array of {name, state}' using errcode = '22023';
  end if;
  if p_grace is null or p_grace < interval '0' then
    raise exception 'grace must be a non-negative interval: got %', p_grace using errcode = '22023';
  end if;

  delete from maintenance.orphan_sightings o
  where o.server <> 'default' and not exists (select 1 from maintenance.evolution_servers s where s.name = o.server);

  delete from maintenance.orphan_sightings o
  where o.server = p_server
    and (not exists (select 1 from maintenance.orphans_among(p_instances) s where s.instance_name = o.instance_name)
      or o.server_url is distinct from p_server_url);

  insert into maintenance.orphan_sightings as o (server, server_url, instance_name, first_seen_at, last_seen_at,
    times_seen, last_run_id, last_state)
  select p_server, p_server_url, s.instance_name, p_as_of, p_as_of, 1, p_run_id, s.state
  from maintenance.orphans_among(p_instances) s
  on conflict on constraint orphan_sightings_pkey do update
    set last_seen_at = greatest(o.last_seen_at, excluded.last_seen_at),
        times_seen = o.times_seen + case when o.last_run_id is distinct from excluded.last_run_id then 1 else 0 end,
        last_run_id = excluded.last_run_id, last_state = excluded.last_state;

  return query
    select o.instance_name, o.last_state, o.first_seen_at, o.last_seen_at, o.times_seen, s.tenant_exists,
      o.times_seen >= 2 and o.first_seen_at <= p_as_of - p_grace and not s.tenant_exists
    from maintenance.orphan_sightings o
    join maintenance.orphans_among(p_instances) s on s.instance_name = o.instance_name
    where o.server = p_server
    order by o.first_seen_at, o.instance_name;
end;
$$;

-- why: the function of a deploy from before this migration (it only ever listed the default server): the same step,
-- on the default server's sightings only, so it cannot forget another server's. It knows no URL: a sighting it makes
-- and one the new function makes restart each other (while both deploys run, a deletion waits longer, never less).
create or replace function maintenance.sight_orphans(
  p_instances jsonb, p_run_id uuid, p_grace interval default '24 hours', p_as_of timestamptz default now()
)
returns table (instance_name text, state text, first_seen_at timestamptz, last_seen_at timestamptz,
  times_seen integer, tenant_exists boolean, eligible boolean)
language sql security definer set search_path = '' as $$
  select * from maintenance.sight_orphans_on('default', null, p_instances, p_run_id, p_grace, p_as_of);
$$;

-- why: after a deletion on a server, that server's sighting is done with; the audit trail keeps the record.
create or replace function maintenance.forget_orphan_on(p_server text, p_instance_name text)
returns void language sql security definer set search_path = '' as $$
  delete from maintenance.orphan_sightings where server = p_server and instance_name = p_instance_name;
$$;

-- why: the earlier deploy's forget: the default server's sighting only.
create or replace function maintenance.forget_orphan(p_instance_name text)
returns void language sql security definer set search_path = '' as $$
  select maintenance.forget_orphan_on('default', p_instance_name);
$$;

-- why: instances_being_removed for one server: our audited, applied, successful deletes on that server (the row's
-- `before.server`; none: the default server, as every such delete was before the fleet) within `within`.
create or replace function maintenance.instances_being_removed_on(
  p_server text, names text[], within interval default interval '30 minutes'
)
returns table (instance_name text, deleted_at timestamptz)
language sql stable security definer set search_path = '' as $$
  select a.before ->> 'instance', max(a.created_at)
  from maintenance.actions_audit a
  where a.action in ('isolation.delete_instance', 'orphan.delete_instance')
    and a.result = 'ok' and not a.dry_run
    and a.created_at > now() - within
    and a.before ->> 'instance' = any (names)
    and coalesce(a.before ->> 'server', 'default') = p_server
  group by 1;
$$;

-- why: which server each tenant is on, as the fleet-aware jobs read it (one row per tenant): its link; else the
-- registered server of the URL in a config row an older deploy wrote (`evolution_api_url` with
-- `evolution_api_key_secret_id`), or that URL alone when no server is registered under it (`server` null: the jobs
-- then leave the tenant's instance alone); else the default server (source `default`: not placed yet).
create or replace view maintenance.tenant_server_of as
select t.id as tenant_id, t.slug,
  case
    when s.id is not null then s.name
    when legacy.url is not null then ls.name
    else 'default'
  end as server,
  case when s.id is not null then 'link' when legacy.url is not null then 'config' else 'default' end as source,
  case when s.id is null then legacy.url end as legacy_url
from public.tenants t
left join maintenance.tenant_servers ts on ts.tenant_id = t.id
left join maintenance.evolution_servers s on s.id = ts.server_id
left join public.tenant_integrations ti on ti.tenant_id = t.id and ti.integration_type = 'whatsapp'
left join lateral (
  select maintenance.normalize_base_url(ti.config ->> 'evolution_api_url') as url
  where ts.tenant_id is null and ti.config ? 'evolution_api_url' and ti.config ? 'evolution_api_key_secret_id'
) legacy on true
left join maintenance.evolution_servers ls on ls.base_url = legacy.url;
revoke all on maintenance.tenant_server_of from public, anon, authenticated;
grant select on maintenance.tenant_server_of to service_role;

revoke all on function maintenance.sight_orphans_on(text, text, jsonb, uuid, interval, timestamptz)
  from public, anon, authenticated;
revoke all on function maintenance.sight_orphans(jsonb, uuid, interval, timestamptz) from public, anon, authenticated;
revoke all on function maintenance.forget_orphan_on(text, text) from public, anon, authenticated;
revoke all on function maintenance.forget_orphan(text) from public, anon, authenticated;
revoke all on function maintenance.instances_being_removed_on(text, text[], interval) from public, anon, authenticated;
grant execute on function maintenance.sight_orphans_on(text, text, jsonb, uuid, interval, timestamptz) to service_role;
grant execute on function maintenance.forget_orphan_on(text, text) to service_role;
grant execute on function maintenance.instances_being_removed_on(text, text[], interval) to service_role;
