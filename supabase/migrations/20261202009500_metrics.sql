-- why: the `metrics` function (OpenMetrics/Prometheus text) reads everything it serves in this one call, so a scrape
-- costs one round trip and a bounded amount of work at 50,000 tenants: per-tenant series are emitted only for
-- tenants that are not healthy (at most tenant_limit, worst first), and every tenant is counted in the aggregates.
-- Windowed figures (Evolution latency, job outcomes, webhook events) cover a fixed trailing window (window_seconds)
-- read from indexed time columns; they are gauges over that window, not counters since start.
create or replace function maintenance.metrics_snapshot(
  as_of timestamptz default now(),
  tenant_limit integer default 500,
  window_seconds integer default 3600
)
returns jsonb
language sql
stable
set search_path = ''
as $$
  with since as (select as_of - make_interval(secs => window_seconds) as t)
  select jsonb_build_object(
    'asOf', extract(epoch from as_of),
    'windowSeconds', window_seconds,
    'tenantStates', coalesce((
      select jsonb_agg(jsonb_build_object('server', h.server, 'state', h.state, 'count', h.n, 'maxCheckAge', h.max_age))
      from (
        select coalesce(nullif(maintenance.fleet_server_key(h.server_url), ''), 'default') as server, h.state,
          count(*) as n,
          max(extract(epoch from as_of - h.last_checked_at)) as max_age
        from maintenance.tenant_health h group by 1, 2
      ) h), '[]'::jsonb),
    'tenantsNotHealthy', coalesce((
      select jsonb_agg(jsonb_build_object('tenant', h.tenant_slug, 'state', h.state,
        'server', coalesce(nullif(maintenance.fleet_server_key(h.server_url), ''), 'default'),
        'issue', coalesce(h.issue_code, 'none'), 'consecutive', h.consecutive,
        'checkAge', extract(epoch from as_of - h.last_checked_at)))
      from (
        select * from maintenance.tenant_health h where h.state <> 'healthy'
        order by h.state = 'unhealthy' desc, h.consecutive desc, h.tenant_slug limit tenant_limit
      ) h), '[]'::jsonb),
    'tenantsNotHealthyTotal', (select count(*) from maintenance.tenant_health where state <> 'healthy'),
    'servers', coalesce((
      select jsonb_agg(jsonb_build_object('server', s.name, 'state', s.state, 'enabled', s.enabled,
        'draining', s.draining, 'tenants', s.tenants))
      from maintenance.dashboard_servers s), '[]'::jsonb),
    'alertsOpen', coalesce((
      select jsonb_agg(jsonb_build_object('kind', a.kind, 'severity', a.severity, 'count', a.n))
      from (select kind, severity, count(*) as n from maintenance.alerts where status = 'firing' group by 1, 2) a
    ), '[]'::jsonb),
    'jobsLast', coalesce((
      select jsonb_agg(jsonb_build_object('job', r.job, 'status', r.status,
        'durationSeconds', r.duration_ms / 1000.0, 'startedAt', extract(epoch from r.started_at),
        'lastSuccessAt', (select extract(epoch from max(s.started_at)) from maintenance.job_runs s
          where s.job = r.job and s.status in ('healthy', 'degraded', 'ok'))))
      from (
        select distinct on (job) job, status, duration_ms, started_at from maintenance.job_runs
        where status <> 'running' and started_at <= as_of order by job, started_at desc
      ) r), '[]'::jsonb),
    'jobRuns', coalesce((
      select jsonb_agg(jsonb_build_object('job', r.job, 'status', r.status, 'count', r.n,
        'durationSecondsSum', r.total))
      from (
        select job, status, count(*) as n, coalesce(sum(duration_ms), 0) / 1000.0 as total
        from maintenance.job_runs, since
        where started_at > since.t and started_at <= as_of and status <> 'running' group by 1, 2
      ) r), '[]'::jsonb),
    'evolutionCalls', coalesce((
      select jsonb_agg(jsonb_build_object('route', c.event, 'status', c.status, 'count', c.n,
        'sumSeconds', c.total, 'buckets', c.buckets))
      from (
        select l.event, l.status, count(*) as n, sum(l.response_time) / 1000.0 as total,
          jsonb_build_array(
            count(*) filter (where l.response_time <= 50), count(*) filter (where l.response_time <= 100),
            count(*) filter (where l.response_time <= 250), count(*) filter (where l.response_time <= 500),
            count(*) filter (where l.response_time <= 1000), count(*) filter (where l.response_time <= 2500),
            count(*) filter (where l.response_time <= 5000), count(*) filter (where l.response_time <= 10000)
          ) as buckets
        from public.api_logs l, since
        where l.created_at > since.t and l.created_at <= as_of and l.service = 'whatsapp'
          and l.response_time is not null
        group by 1, 2
      ) c), '[]'::jsonb),
    'outbox', coalesce((
      select jsonb_agg(jsonb_build_object('channel', o.channel, 'status', o.status, 'count', o.n,
        'oldestAge', o.oldest))
      from (
        select channel, status, count(*) as n, max(extract(epoch from as_of - created_at)) as oldest
        from maintenance.notification_outbox where status in ('pending', 'failed') group by 1, 2
      ) o), '[]'::jsonb),
    'webhooksReceived', (
      select count(*) from maintenance.webhook_receipts, since where received_at > since.t and received_at <= as_of),
    'webhooksRejected', coalesce((
      select jsonb_agg(jsonb_build_object('reason', r.reason, 'count', r.n))
      from (
        select coalesce(l.error_type, l.event) as reason, count(*) as n
        from public.api_logs l, since
        where l.created_at > since.t and l.created_at <= as_of and l.event = 'cross_tenant_attempt' group by 1
      ) r), '[]'::jsonb)
  )
$$;

revoke all on function maintenance.metrics_snapshot(timestamptz, integer, integer) from public, anon, authenticated;
grant execute on function maintenance.metrics_snapshot(timestamptz, integer, integer) to service_role;
