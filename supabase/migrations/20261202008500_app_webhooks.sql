-- Signed webhooks to the application (issue 19): each URL of APP_WEBHOOK_URLS is an outbox channel of its own,
-- `webhook:<8 hex digits>` (a hash of the URL, never the URL: it may carry a token), so every endpoint has its own
-- rows, retries, backoff and claims; job results are queued for those channels only (kind 'job'); and an alert's
-- payload carries the alert itself (tenant, kind, severity, summary, fix command) for the application to read.

-- why: the outbox took slack, email and log only; an application endpoint is `webhook:` and 8 hex digits.
alter table maintenance.notification_outbox drop constraint if exists notification_outbox_channel_check;
alter table maintenance.notification_outbox add constraint notification_outbox_channel_check
  check (channel in ('slack', 'email', 'log') or channel ~ '^webhook:[0-9a-f]{8}$');

-- why: a job's result (the runner's completion) is a row of its own kind, queued only on the application webhooks.
alter table maintenance.notification_outbox drop constraint if exists notification_outbox_kind_check;
alter table maintenance.notification_outbox add constraint notification_outbox_kind_check
  check (kind in ('firing', 'reminder', 'resolved', 'message', 'job'));

-- why: the command that repairs an alert's condition, where one exists (what the Slack text already says for
-- socket_dead and logged_out, and what `fix` does for a missing instance or one that is not open); null otherwise.
-- A slug outside [A-Za-z0-9_.-] is single-quoted for a POSIX shell, so a copied command cannot run anything else.
create or replace function maintenance.alert_fix_command(kind text, tenant_slug text)
returns text
language sql
immutable
set search_path = ''
as $$
  select case when tenant_slug is null then null
    else 'npm run ops -- ' || case kind
        when 'socket_dead' then 'fix'
        when 'instance_missing' then 'fix'
        when 'instance_disconnected' then 'fix'
        when 'logged_out' then 'reconnect'
      end || ' ' || case when tenant_slug ~ '^[A-Za-z0-9_.-]+$' then tenant_slug
                         else '''' || replace(tenant_slug, '''', '''\''''') || '''' end
  end;
$$;
revoke all on function maintenance.alert_fix_command(text, text) from public, anon, authenticated;
grant execute on function maintenance.alert_fix_command(text, text) to service_role;

-- why: the notification payload of an alert event, as in 20261129003002 (severity, title, text, fields, alertId,
-- event: what Slack, email and the log show, unchanged), plus `alert`: the facts the application webhook sends.
create or replace function maintenance.alert_payload(a maintenance.alerts, event text)
returns jsonb
language sql
stable
set search_path = ''
as $$
  select jsonb_build_object(
    'severity', case when event = 'resolved' then 'info' else a.severity end,
    'title', case event when 'firing' then '[FIRING] ' when 'reminder' then '[FIRING, still] ' else '[RESOLVED] ' end
      || a.summary,
    'text', case when event = 'resolved'
      then format('Resolved at %s after %s%s.', to_char(a.resolved_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"'),
        justify_interval(date_trunc('second', a.resolved_at - a.started_at)),
        coalesce(' (' || a.resolve_reason || ')', ''))
      else coalesce(a.details ->> 'text', a.summary) || format(' Firing since %s.',
        to_char(a.started_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI "UTC"')) end,
    'fields', jsonb_strip_nulls(jsonb_build_object(
      'alert', a.kind, 'tenant', a.tenant_slug, 'severity', a.severity, 'fingerprint', a.fingerprint,
      'since', to_char(a.started_at at time zone 'UTC', 'YYYY-MM-DD HH24:MI:SS "UTC"'),
      'status', case when event = 'resolved' then 'resolved' else 'firing' end)),
    'alertId', a.id, 'event', event,
    'alert', jsonb_build_object(
      'id', a.id, 'fingerprint', a.fingerprint, 'kind', a.kind, 'scope', a.scope,
      'tenant', case when a.scope = 'tenant' then jsonb_build_object('id', a.tenant_id, 'slug', a.tenant_slug) end,
      'severity', a.severity, 'summary', a.summary, 'startedAt', a.started_at,
      'resolvedAt', case when event = 'resolved' then a.resolved_at end,
      'resolveReason', case when event = 'resolved' then a.resolve_reason end,
      'fix', case when event <> 'resolved' then maintenance.alert_fix_command(a.kind, a.tenant_slug) end));
$$;
revoke all on function maintenance.alert_payload(maintenance.alerts, text) from public, anon, authenticated;
grant execute on function maintenance.alert_payload(maintenance.alerts, text) to service_role;
