-- The SQL half of `whatsapp-ops diagnose`: disconnections and performance of one tenant, and the Evolution API's
-- recent stability, aggregated in the database instead of pulling log rows into TypeScript (the seed's way).

-- why: terminal closes of a tenant's instance in a window (connection.update events
-- with state close, as the webhook receiver logs them), with the reasons; more than 3 in 2 h is a pattern.
create or replace function maintenance.tenant_disconnections(
  p_tenant_slug text, p_window interval default '2 hours', p_as_of timestamptz default now()
)
returns table (closes integer, last_close_at timestamptz, reasons jsonb, events integer)
language sql stable security definer set search_path = '' as $$
  with e as (
    select l.created_at,
      coalesce(l.data ->> 'state', l.data #>> '{data,state}') as state,
      coalesce(l.data ->> 'statusReason', l.data #>> '{data,statusReason}') as reason
    from public.api_logs l
    where l.tenant_slug = p_tenant_slug
      and l.event in ('connection.update', 'connection_update', 'CONNECTION_UPDATE')
      and l.created_at > p_as_of - p_window and l.created_at <= p_as_of
  ), c as (
    select * from e where e.state = 'close'
  ), r as (
    select coalesce(jsonb_object_agg(x.reason, x.n), '{}') as reasons
    from (select coalesce(c.reason, 'unknown') as reason, count(*) as n from c group by 1) x
  )
  select (select count(*)::integer from c), (select max(c.created_at) from c), r.reasons,
    (select count(*)::integer from e)
  from r;
$$;

-- why: for one tenant, the Evolution calls made for it in a window (p_events: the
-- client's operation names), their success rate, mean and p95 latency, and errors by type.
create or replace function maintenance.tenant_performance(
  p_tenant_slug text, p_events text[], p_window interval default '24 hours', p_as_of timestamptz default now()
)
returns table (total integer, successes integer, success_rate numeric, avg_response_ms numeric, p95_response_ms numeric,
  errors_by_type jsonb)
language sql stable security definer set search_path = '' as $$
  with l as (
    select x.status, x.error_type, x.response_time
    from public.api_logs x
    where x.tenant_slug = p_tenant_slug
      and x.event = any (p_events)
      and x.created_at > p_as_of - p_window and x.created_at <= p_as_of
  )
  select count(*)::integer,
    count(*) filter (where l.status = 'success')::integer,
    round(100.0 * count(*) filter (where l.status = 'success') / nullif(count(*), 0), 2),
    round(avg(l.response_time), 1),
    round((percentile_cont(0.95) within group (order by l.response_time))::numeric, 1),
    coalesce((select jsonb_object_agg(t.k, t.n) from (
      select coalesce(y.error_type, 'unknown') as k, count(*) as n from l y where y.status = 'error' group by 1) t), '{}')
  from l;
$$;

-- why: "is Evolution stable?": all tenants' Evolution calls in a short window.
create or replace function maintenance.evolution_stability(
  p_events text[], p_window interval default '30 minutes', p_as_of timestamptz default now()
)
returns table (total integer, errors integer, error_rate numeric, unreachable integer)
language sql stable security definer set search_path = '' as $$
  select count(*)::integer,
    count(*) filter (where x.status = 'error')::integer,
    round(100.0 * count(*) filter (where x.status = 'error') / nullif(count(*), 0), 2),
    count(*) filter (where x.error_type in ('unreachable', 'timeout', 'server_error'))::integer
  from public.api_logs x
  where x.event = any (p_events)
    and x.created_at > p_as_of - p_window and x.created_at <= p_as_of;
$$;

revoke all on function maintenance.tenant_disconnections(text, interval, timestamptz) from public, anon, authenticated;
revoke all on function maintenance.tenant_performance(text, text[], interval, timestamptz) from public, anon, authenticated;
revoke all on function maintenance.evolution_stability(text[], interval, timestamptz) from public, anon, authenticated;
grant execute on function maintenance.tenant_disconnections(text, interval, timestamptz) to service_role;
grant execute on function maintenance.tenant_performance(text, text[], interval, timestamptz) to service_role;
grant execute on function maintenance.evolution_stability(text[], interval, timestamptz) to service_role;
