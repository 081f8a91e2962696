-- Cross-tenant attempts the webhook receiver logged (api_logs.error_type = 'cross_tenant'), for the isolation audit.

-- why: per tenant, the attempts of the last p_window not yet acknowledged. Applying the isolation audit fixes the
-- instance webhooks that caused them and acknowledges what it reported (an audit row 'isolation.acknowledge_cross_tenant'
-- whose after.until is the last attempt it saw), so the next run shows only newer attempts.
create or replace function maintenance.cross_tenant_attempts(
  p_window interval default '24 hours', p_as_of timestamptz default now()
)
returns table (tenant_slug text, attempts bigint, first_at timestamptz, last_at timestamptz, acknowledged_until timestamptz,
  sample jsonb)
language sql stable security definer set search_path = '' as $$
  with ack as (
    select a.tenant_slug, max((a.after ->> 'until')::timestamptz) as until
    from maintenance.actions_audit a
    where a.action = 'isolation.acknowledge_cross_tenant' and a.result = 'ok'
    group by a.tenant_slug
  )
  select l.tenant_slug, count(*), min(l.created_at), max(l.created_at), max(ack.until),
    (array_agg(jsonb_strip_nulls(jsonb_build_object('at', l.created_at, 'event', l.event, 'data', l.data))
      order by l.created_at desc))[1]
  from public.api_logs l
  left join ack on ack.tenant_slug is not distinct from l.tenant_slug
  where l.error_type = 'cross_tenant'
    and l.created_at > p_as_of - p_window
    and l.created_at <= p_as_of
    and (ack.until is null or l.created_at > ack.until)
  group by l.tenant_slug
  order by count(*) desc, l.tenant_slug;
$$;
revoke all on function maintenance.cross_tenant_attempts(interval, timestamptz) from public, anon, authenticated;
grant execute on function maintenance.cross_tenant_attempts(interval, timestamptz) to service_role;
