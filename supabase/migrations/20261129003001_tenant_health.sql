-- Latest health per tenant and the history of its state changes, written set-wise by health-check (one statement
-- for all tenants of a run), read by alerts and the status page.

-- why: the thresholds of the health rules, tunable by an operator without a deploy.
insert into maintenance.settings (key, default_value, description) values
  ('flap_threshold', '3', 'More than this many connection.update close events within flap_window = frequent_disconnections'),
  ('flap_window', '"2 hours"', 'Window of the frequent_disconnections rule'),
  ('zombie_window', '"24 hours"', 'An open instance with no webhook event for longer than this is a suspected zombie'),
  ('health_check_concurrency', '8', 'Parallel connectionState calls per health-check run (only where the listing is not conclusive)')
on conflict (key) do update set default_value = excluded.default_value, description = excluded.description;

-- why: the latest known health of every active tenant: its state, since when, and what is wrong. One row per tenant,
-- upserted by every health-check run; the status page and the alert rules read it.
create table if not exists maintenance.tenant_health (
  tenant_id uuid primary key references public.tenants (id) on delete cascade,
  tenant_slug text not null,
  state text not null check (state in ('healthy', 'degraded', 'unhealthy')),
  issue_code text,
  issue text,
  severity text check (severity in ('high', 'medium', 'low')),
  evolution_state text,
  flags text[] not null default '{}',
  details jsonb not null default '{}'::jsonb,
  since timestamptz not null,
  last_checked_at timestamptz not null,
  last_change_at timestamptz not null,
  consecutive integer not null default 1 check (consecutive >= 1),
  went_down_at timestamptz,
  last_run_id uuid
);
create index if not exists tenant_health_state_idx on maintenance.tenant_health (state) where state <> 'healthy';
create index if not exists tenant_health_last_run_idx on maintenance.tenant_health (last_run_id);
revoke all on maintenance.tenant_health from public, anon, authenticated;
grant all on maintenance.tenant_health to service_role;

-- why: every state change of a tenant (from → to, when): availability over 24 h / 7 days is drawn from it, and an
-- operator can see when a tenant flapped.
create table if not exists maintenance.tenant_health_history (
  id bigint generated always as identity primary key,
  tenant_id uuid not null references public.tenants (id) on delete cascade,
  tenant_slug text not null,
  from_state text check (from_state in ('healthy', 'degraded', 'unhealthy')),
  to_state text not null check (to_state in ('healthy', 'degraded', 'unhealthy')),
  at timestamptz not null,
  issue_code text,
  issue text,
  run_id uuid
);
create index if not exists tenant_health_history_tenant_at_idx on maintenance.tenant_health_history (tenant_id, at);
create index if not exists tenant_health_history_at_idx on maintenance.tenant_health_history (at);
revoke all on maintenance.tenant_health_history from public, anon, authenticated;
grant all on maintenance.tenant_health_history to service_role;

-- why: last webhook event per tenant, from maintenance.webhook_activity when that table exists (it is created by
-- the webhook receiver; late-bound so this migration does not depend on it). Absent table or row = unknown.
create or replace function maintenance.last_webhook_events(slugs text[])
returns table (tenant_slug text, last_event_at timestamptz)
language plpgsql stable security definer set search_path = '' as $$
begin
  if to_regclass('maintenance.webhook_activity') is null then
    return;
  end if;
  return query execute
    'select a.tenant_slug::text, max(a.last_event_at)::timestamptz from maintenance.webhook_activity a
      where a.tenant_slug = any($1) group by a.tenant_slug'
    using slugs;
end;
$$;
revoke all on function maintenance.last_webhook_events(text[]) from public, anon, authenticated;
grant execute on function maintenance.last_webhook_events(text[]) to service_role;

-- why: the per-tenant bookkeeping of one health-check run in one statement for all tenants. `results` is a jsonb
-- array of {tenant_id, slug, state, issue_code, issue, severity, evolution_state, details} as the job saw them in
-- Evolution; this adds the log-based rules (frequent_disconnections from api_logs, zombie suspicion from webhook
-- activity), upserts tenant_health (since / consecutive / last change), appends a history row per state change,
-- and returns the run's figures. `full_run` also drops the rows of tenants that are no longer active.
create or replace function maintenance.record_tenant_health(
  run_id uuid, checked_at timestamptz, results jsonb, full_run boolean default false
)
returns jsonb
language plpgsql
security definer
set search_path = ''
as $$
declare
  flap_threshold integer := (maintenance.setting('flap_threshold') #>> '{}')::integer;
  flap_window interval := (maintenance.setting('flap_window') #>> '{}')::interval;
  zombie_window interval := (maintenance.setting('zombie_window') #>> '{}')::interval;
  slugs text[];
  summary jsonb;
  removed integer := 0;
begin
  if results is null or jsonb_typeof(results) <> 'array' then
    raise exception 'results must be a jsonb array' using errcode = '22023';
  end if;
  select coalesce(array_agg(r ->> 'slug'), '{}') into slugs from jsonb_array_elements(results) r;

  with input as (
    select (r ->> 'tenant_id')::uuid as tenant_id, r ->> 'slug' as slug, r ->> 'state' as state,
           r ->> 'issue_code' as issue_code, r ->> 'issue' as issue, r ->> 'severity' as severity,
           r ->> 'evolution_state' as evolution_state, coalesce(r -> 'details', '{}'::jsonb) as details
    from jsonb_array_elements(results) r
  ),
  closes as (
    select l.tenant_slug, count(*)::integer as n
    from public.api_logs l
    where l.event = 'connection.update'
      and l.created_at > checked_at - flap_window and l.created_at <= checked_at
      and coalesce(l.data ->> 'state', l.data #>> '{data,state}') = 'close'
      and l.tenant_slug = any (slugs)
    group by l.tenant_slug
  ),
  activity as (
    select a.tenant_slug, a.last_event_at from maintenance.last_webhook_events(slugs) a
  ),
  flagged as (
    select i.*, coalesce(c.n, 0) as close_events, a.last_event_at,
      array_remove(array[
        case when coalesce(c.n, 0) > flap_threshold then 'frequent_disconnections' end,
        case when i.evolution_state = 'open' and a.last_event_at < checked_at - zombie_window
          then 'zombie_suspected' end
      ], null) as flags
    from input i
    left join closes c on c.tenant_slug = i.slug
    left join activity a on a.tenant_slug = i.slug
  ),
  final as (
    select f.tenant_id, f.slug, f.flags,
      case when f.state = 'healthy' and cardinality(f.flags) > 0 then 'degraded' else f.state end as state,
      case when f.state = 'healthy' and cardinality(f.flags) > 0 then f.flags[1] else f.issue_code end as issue_code,
      case when f.state = 'healthy' and f.flags[1] = 'frequent_disconnections'
             then format('WhatsApp disconnected %s times in %s', f.close_events, flap_window)
           when f.state = 'healthy' and f.flags[1] = 'zombie_suspected'
             then format('Connected, but no webhook event since %s', f.last_event_at)
           else f.issue end as issue,
      case when f.state = 'healthy' and cardinality(f.flags) > 0 then 'medium' else f.severity end as severity,
      f.evolution_state,
      f.details || jsonb_strip_nulls(jsonb_build_object('closeEvents', nullif(f.close_events, 0),
        'lastWebhookEventAt', f.last_event_at)) as details
    from flagged f
  ),
  prev as (
    select h.tenant_id, h.state, h.issue_code from maintenance.tenant_health h
    where h.tenant_id in (select tenant_id from input)
  ),
  upserted as (
    insert into maintenance.tenant_health as h (tenant_id, tenant_slug, state, issue_code, issue, severity,
      evolution_state, flags, details, since, last_checked_at, last_change_at, consecutive, went_down_at, last_run_id)
    select f.tenant_id, f.slug, f.state, f.issue_code, f.issue, f.severity, f.evolution_state, f.flags, f.details,
      checked_at, checked_at, checked_at, 1,
      case when f.state <> 'healthy' and f.issue_code is distinct from 'evolution_unreachable' then checked_at end,
      run_id
    from final f
    on conflict (tenant_id) do update set
      tenant_slug = excluded.tenant_slug,
      state = excluded.state,
      issue_code = excluded.issue_code,
      issue = excluded.issue,
      severity = excluded.severity,
      evolution_state = excluded.evolution_state,
      flags = excluded.flags,
      details = excluded.details,
      since = case when h.state = excluded.state then h.since else excluded.since end,
      last_checked_at = excluded.last_checked_at,
      last_change_at = case
        when (h.state, h.issue_code, h.evolution_state, h.flags)
          is distinct from (excluded.state, excluded.issue_code, excluded.evolution_state, excluded.flags)
        then excluded.last_change_at else h.last_change_at end,
      consecutive = case when h.state = excluded.state then h.consecutive + 1 else 1 end,
      went_down_at = case when excluded.state = 'healthy' then null
                          when h.state = 'healthy' or h.issue_code = 'evolution_unreachable'
                            then excluded.went_down_at
                          else h.went_down_at end,
      last_run_id = excluded.last_run_id
    returning h.tenant_id
  ),
  history as (
    insert into maintenance.tenant_health_history (tenant_id, tenant_slug, from_state, to_state, at, issue_code,
      issue, run_id)
    select f.tenant_id, f.slug, p.state, f.state, checked_at, f.issue_code, f.issue, run_id
    from final f left join prev p on p.tenant_id = f.tenant_id
    where p.state is distinct from f.state
    returning 1
  )
  select jsonb_build_object(
    'checked', (select count(*) from final),
    'written', (select count(*) from upserted),
    'healthy', (select count(*) from final where state = 'healthy'),
    'degraded', (select count(*) from final where state = 'degraded'),
    'unhealthy', (select count(*) from final where state = 'unhealthy'),
    'changed', (select count(*) from history),
    -- went down in this run: was healthy, never seen, or unknown because Evolution was unreachable
    'wentDown', (select count(*) from final f left join prev p on p.tenant_id = f.tenant_id
                 where f.state <> 'healthy' and f.issue_code is distinct from 'evolution_unreachable'
                   and (p.state is null or p.state = 'healthy' or p.issue_code = 'evolution_unreachable')),
    'flapping', (select coalesce(jsonb_agg(slug order by slug), '[]') from final
                 where 'frequent_disconnections' = any (flags)),
    'zombies', (select coalesce(jsonb_agg(slug order by slug), '[]') from final where 'zombie_suspected' = any (flags)),
    'issueCount', (select count(*) from final where state <> 'healthy'),
    'issues', (select coalesce(jsonb_agg(x order by x ->> 'tenant'), '[]') from (
                 select jsonb_build_object('tenant', slug, 'state', state, 'issue', issue_code, 'message', issue,
                   'severity', severity) as x
                 from final where state <> 'healthy' order by slug limit 200) s)
  ) into summary;

  if full_run then
    delete from maintenance.tenant_health h
    where h.tenant_id not in (
      select (r ->> 'tenant_id')::uuid from jsonb_array_elements(results) r);
    get diagnostics removed = row_count;
  end if;
  return summary || jsonb_build_object('removed', removed);
end;
$$;
revoke all on function maintenance.record_tenant_health(uuid, timestamptz, jsonb, boolean)
  from public, anon, authenticated;
grant execute on function maintenance.record_tenant_health(uuid, timestamptz, jsonb, boolean) to service_role;
