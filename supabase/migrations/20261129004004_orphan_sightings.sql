-- Orphan instances (prefixed Evolution instances that no integration row names) are deleted only after they stayed
-- orphans for a grace period across runs; the seed deleted them at first sight, racing an instance being created.

-- why: when each orphan was first and last seen. A row disappears as soon as a complete run no longer sees the
-- instance as an orphan (adopted by an integration row, or gone), so the grace period restarts from zero.
create table if not exists maintenance.orphan_sightings (
  instance_name text primary key,
  first_seen_at timestamptz not null,
  last_seen_at timestamptz not null,
  times_seen integer not null default 1 check (times_seen >= 1),
  last_run_id uuid,
  last_state text,
  check (last_seen_at >= first_seen_at)
);
revoke all on maintenance.orphan_sightings from public, anon, authenticated;
grant all on maintenance.orphan_sightings to service_role;

-- why: the instances of a list (jsonb array of {name, state}) that no whatsapp integration row names, with the
-- tenant their name maps to, if that tenant exists (an instance of a live tenant without its row is not an orphan
-- to delete but a missing config row: `whatsapp-ops fix` recreates it).
create or replace function maintenance.orphans_among(p_instances jsonb)
returns table (instance_name text, state text, tenant_exists boolean)
language sql stable security definer set search_path = '' as $$
  with p as (select maintenance.setting('instance_prefix') #>> '{}' as prefix)
  select distinct on (e ->> 'name') e ->> 'name', e ->> 'state',
    exists (select 1 from public.tenants t where p.prefix || t.slug = e ->> 'name')
  from jsonb_array_elements(case when jsonb_typeof(p_instances) = 'array' then p_instances else '[]' end) e, p
  where e ->> 'name' is not null
    and not exists (
      select 1 from public.tenant_integrations ti
      where ti.integration_type = 'whatsapp' and ti.config ->> 'instance_name' = e ->> 'name')
  order by e ->> 'name';
$$;

-- why: one set-wise step per run. Given every prefixed instance Evolution listed (a complete list: the caller only
-- calls this when fetchInstances succeeded), records a sighting of each orphan, forgets the sightings of instances
-- that are no longer orphans, and returns the orphans with their age and whether they may be deleted: seen in at
-- least two runs, first seen at least p_grace ago, and not an instance of a live tenant.
create or replace function maintenance.sight_orphans(
  p_instances jsonb, p_run_id uuid, p_grace interval default '24 hours', p_as_of timestamptz default now()
)
returns table (instance_name text, state text, first_seen_at timestamptz, last_seen_at timestamptz,
  times_seen integer, tenant_exists boolean, eligible boolean)
language plpgsql security definer set search_path = '' as $$
begin
  if jsonb_typeof(p_instances) is distinct from 'array' then
    raise exception 'p_instances must be a JSON array of {name, state}' using errcode = '22023';
  end if;
  if p_grace is null or p_grace < interval '0' then
    raise exception 'grace must be a non-negative interval: got %', p_grace using errcode = '22023';
  end if;

  delete from maintenance.orphan_sightings o
  where not exists (select 1 from maintenance.orphans_among(p_instances) s where s.instance_name = o.instance_name);

  insert into maintenance.orphan_sightings as o (instance_name, first_seen_at, last_seen_at, times_seen, last_run_id,
    last_state)
  select s.instance_name, p_as_of, p_as_of, 1, p_run_id, s.state from maintenance.orphans_among(p_instances) s
  on conflict on constraint orphan_sightings_pkey do update
    set last_seen_at = greatest(o.last_seen_at, excluded.last_seen_at),
        times_seen = o.times_seen + case when o.last_run_id is distinct from excluded.last_run_id then 1 else 0 end,
        last_run_id = excluded.last_run_id, last_state = excluded.last_state;

  return query
    select o.instance_name, o.last_state, o.first_seen_at, o.last_seen_at, o.times_seen, s.tenant_exists,
      o.times_seen >= 2 and o.first_seen_at <= p_as_of - p_grace and not s.tenant_exists
    from maintenance.orphan_sightings o
    join maintenance.orphans_among(p_instances) s on s.instance_name = o.instance_name
    order by o.first_seen_at, o.instance_name;
end;
$$;

-- why: after a deletion the sighting is done with; the audit trail keeps the record.
create or replace function maintenance.forget_orphan(p_instance_name text)
returns void language sql security definer set search_path = '' as $$
  delete from maintenance.orphan_sightings where instance_name = p_instance_name;
$$;

revoke all on function maintenance.sight_orphans(jsonb, uuid, interval, timestamptz) from public, anon, authenticated;
revoke all on function maintenance.forget_orphan(text) from public, anon, authenticated;
revoke all on function maintenance.orphans_among(jsonb) from public, anon, authenticated;
grant execute on function maintenance.orphans_among(jsonb) to service_role;
grant execute on function maintenance.sight_orphans(jsonb, uuid, interval, timestamptz) to service_role;
grant execute on function maintenance.forget_orphan(text) to service_role;
