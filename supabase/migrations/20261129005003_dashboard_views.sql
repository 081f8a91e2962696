-- Dashboard views: what an operator opens in the Supabase table editor instead of reading job JSON. They share the
-- dashboard_ prefix so they sit together in the editor's list, are ordered worst first, and are closed to the Data
-- API roles like the rest of the maintenance schema.

-- why: the current health of every active tenant in one row: state (unknown until the first check), since when and
-- for how long, the issue, when it was last checked and last changed, the last webhook event that arrived, and its
-- firing alerts. Worst first, then the most recent change.
create or replace view maintenance.dashboard_tenants with (security_invoker = true) as
select
  t.slug as tenant_slug,
  t.name as tenant_name,
  coalesce(h.state, 'unknown') as state,
  h.issue_code,
  h.issue,
  h.severity,
  h.evolution_state,
  h.flags,
  h.since,
  date_trunc('second', now() - h.since) as state_for,
  h.last_checked_at,
  h.last_change_at,
  w.last_event_at,
  w.last_event,
  w.last_state as last_webhook_state,
  coalesce(a.open_alerts, 0) as open_alerts,
  a.alert_fingerprints,
  t.id as tenant_id
from public.tenants t
left join maintenance.tenant_health h on h.tenant_id = t.id
left join maintenance.webhook_activity w on w.tenant_slug = t.slug
left join (
  select al.tenant_id, count(*)::integer as open_alerts, array_agg(al.fingerprint order by al.fingerprint) as alert_fingerprints
  from maintenance.alerts al
  where al.status = 'firing' and al.scope = 'tenant'
  group by al.tenant_id
) a on a.tenant_id = t.id
where coalesce(t.is_active, true)
order by case coalesce(h.state, 'unknown') when 'unhealthy' then 0 when 'degraded' then 1 when 'unknown' then 2 else 3 end,
  h.since desc nulls last, t.slug;

-- why: the alerts firing now, critical first, with how long they have fired, whether a platform incident silences
-- them, and how often they were notified.
create or replace view maintenance.dashboard_open_alerts with (security_invoker = true) as
select
  a.severity,
  a.fingerprint,
  a.kind,
  a.scope,
  a.tenant_slug,
  a.summary,
  a.started_at,
  date_trunc('second', now() - a.started_at) as firing_for,
  a.last_seen_at,
  a.inhibited_by,
  a.notified_count,
  a.last_notified_at,
  a.details,
  a.id as alert_id
from maintenance.alerts a
where a.status = 'firing'
order by case a.severity when 'critical' then 0 else 1 end, (a.scope = 'tenant'), a.started_at desc;

-- why: every job of the bundle: last run, last success, next due from its pg_cron schedule, and whether it missed
-- a run (see maintenance.job_health).
create or replace view maintenance.dashboard_jobs with (security_invoker = true) as
select * from maintenance.job_health(now());

-- why: every isolation violation in one list, with a kind column: the seed's naming (invalid_prefix,
-- slug_mismatch), webhook URL (webhook_mismatch) and orphan integration (orphan_integration) views, plus the
-- cross-tenant webhook attempts of the last 24 h not yet acknowledged (cross_tenant).
create or replace view maintenance.dashboard_isolation_violations with (security_invoker = true) as
select v.violation as kind, v.tenant_slug, v.tenant_id, v.integration_id, v.current_name as current_value,
  v.expected_name as expected_value, null::bigint as attempts, null::timestamptz as last_seen_at
from maintenance.naming_violations v
union all
select 'webhook_mismatch', w.tenant_slug, w.tenant_id, w.integration_id, w.current_url, w.expected_url, null, null
from maintenance.webhook_mismatches w
union all
select 'orphan_integration', null, o.tenant_id, o.id, o.config ->> 'instance_name', null, null, o.updated_at
from maintenance.orphan_integrations o
union all
select 'cross_tenant', c.tenant_slug, null, null, c.sample ->> 'event', null, c.attempts, c.last_at
from maintenance.cross_tenant_attempts() c;

-- why: what changed things in the last 30 days (isolation fixes, orphan deletions, fix / reconnect / reset /
-- migrate), newest first; dry runs are left out because they changed nothing (they stay in actions_audit).
create or replace view maintenance.dashboard_recent_actions with (security_invoker = true) as
select
  a.created_at,
  a.action,
  a.tenant_slug,
  a.result,
  a.error,
  a.actor,
  a.operation_id,
  a.before,
  a.after,
  a.id as audit_id
from maintenance.actions_audit a
where not a.dry_run and a.result <> 'planned' and a.created_at > now() - interval '30 days'
order by a.created_at desc, a.id desc;

revoke all on maintenance.dashboard_tenants, maintenance.dashboard_open_alerts, maintenance.dashboard_jobs,
  maintenance.dashboard_isolation_violations, maintenance.dashboard_recent_actions
  from public, anon, authenticated, service_role;
-- read-only views: the service role (and the dashboard, as postgres) may read them, nothing else
grant select on maintenance.dashboard_tenants, maintenance.dashboard_open_alerts, maintenance.dashboard_jobs,
  maintenance.dashboard_isolation_violations, maintenance.dashboard_recent_actions to service_role;
