-- Tenant operation leases are renewed while their operation runs (issue 17): a lease no longer runs out under a slow
-- operation (a migrate waiting on a slow server), and an operation whose lease was taken over stops before its next
-- step instead of acting beside the new holder.

-- why: how long a tenant lease lasts without a renewal. The holder renews it three times per lease while it works,
-- so this is how long a tenant stays locked after its holder died (a crashed function), not a limit on how long an
-- operation may take.
insert into maintenance.settings (key, default_value, description) values
  ('tenant_lease_seconds', '300',
   'How long a tenant operation lease lasts unless renewed (its holder renews it every third of this while it runs); after a crash, the tenant is free again this long after the last renewal')
on conflict (key) do update set default_value = excluded.default_value, description = excluded.description;

-- why: the holder's heartbeat. Extends the lease by p_seconds from now only while this operation still holds it (an
-- expired lease nobody took over is still this operation's); otherwise renews nothing and says who holds it now, so
-- the operation stops before its next step.
create or replace function maintenance.renew_tenant_lease(p_tenant_slug text, p_operation_id uuid, p_seconds integer)
returns table (renewed boolean, expires_at timestamptz, holder_operation_id uuid, holder_action text,
  holder_actor text, holder_expires_at timestamptz)
language plpgsql security definer set search_path = '' as $$
declare
  until timestamptz;
begin
  if p_seconds is null or p_seconds < 1 or p_seconds > 3600 then
    raise exception 'lease seconds must be between 1 and 3600: got %', p_seconds using errcode = '22023';
  end if;
  update maintenance.tenant_operation_leases l set expires_at = now() + make_interval(secs => p_seconds)
  where l.tenant_slug = p_tenant_slug and l.operation_id = p_operation_id
  returning l.expires_at into until;
  return query
    select until is not null, until, l.operation_id, l.action, l.actor, l.expires_at
    from (select 1) one
    left join maintenance.tenant_operation_leases l on l.tenant_slug = p_tenant_slug and until is null;
end;
$$;

revoke all on function maintenance.renew_tenant_lease(text, uuid, integer) from public, anon, authenticated;
grant execute on function maintenance.renew_tenant_lease(text, uuid, integer) to service_role;
