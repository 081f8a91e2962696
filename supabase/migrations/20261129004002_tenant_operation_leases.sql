-- One changing action per tenant at a time (fix, reconnect, reset, migrate, isolation fixes, orphan deletes).

-- why: a changing action spans several Evolution calls, too long to hold a transaction (and the transaction pooler
-- has no session advisory locks), so a lease row guards the tenant: the second action gets 409 and sees who holds it.
-- A lease whose holder died expires and is taken over.
create table if not exists maintenance.tenant_operation_leases (
  tenant_slug text primary key,
  operation_id uuid not null,
  action text not null,
  actor text not null,
  acquired_at timestamptz not null default now(),
  expires_at timestamptz not null
);
revoke all on maintenance.tenant_operation_leases from public, anon, authenticated;
grant all on maintenance.tenant_operation_leases to service_role;

-- why: take the tenant's lease for one operation in one statement; returns acquired = false with the current
-- holder when another live operation has it.
create or replace function maintenance.acquire_tenant_lease(
  p_tenant_slug text, p_operation_id uuid, p_action text, p_actor text, p_seconds integer default 300
)
returns table (acquired boolean, holder_operation_id uuid, holder_action text, holder_actor text,
  holder_since timestamptz, holder_expires_at timestamptz)
language plpgsql security definer set search_path = '' as $$
declare
  got uuid;
begin
  if p_seconds is null or p_seconds < 1 or p_seconds > 3600 then
    raise exception 'lease seconds must be between 1 and 3600: got %', p_seconds using errcode = '22023';
  end if;
  insert into maintenance.tenant_operation_leases as l (tenant_slug, operation_id, action, actor, acquired_at, expires_at)
  values (p_tenant_slug, p_operation_id, p_action, p_actor, now(), now() + make_interval(secs => p_seconds))
  on conflict (tenant_slug) do update
    set operation_id = excluded.operation_id, action = excluded.action, actor = excluded.actor,
        acquired_at = excluded.acquired_at, expires_at = excluded.expires_at
    where l.expires_at < now() or l.operation_id = excluded.operation_id
  returning l.operation_id into got;
  return query
    select got is not null, l.operation_id, l.action, l.actor, l.acquired_at, l.expires_at
    from maintenance.tenant_operation_leases l where l.tenant_slug = p_tenant_slug;
end;
$$;

-- why: release the lease only if this operation still holds it (an expired-and-taken-over lease is not touched).
create or replace function maintenance.release_tenant_lease(p_tenant_slug text, p_operation_id uuid)
returns boolean language sql security definer set search_path = '' as $$
  with gone as (
    delete from maintenance.tenant_operation_leases
    where tenant_slug = p_tenant_slug and operation_id = p_operation_id
    returning 1
  )
  select exists (select 1 from gone);
$$;

revoke all on function maintenance.acquire_tenant_lease(text, uuid, text, text, integer) from public, anon, authenticated;
revoke all on function maintenance.release_tenant_lease(text, uuid) from public, anon, authenticated;
grant execute on function maintenance.acquire_tenant_lease(text, uuid, text, text, integer) to service_role;
grant execute on function maintenance.release_tenant_lease(text, uuid) to service_role;
