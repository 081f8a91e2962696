-- The remediation budget: how many connection-changing remediations (create, reconnect, reset) a tenant may get per
-- window, counted from the audit trail, so repeated fixes cannot loop into a QR storm.

insert into maintenance.settings (key, default_value, description) values
  ('remediation_max_per_window', '3', 'Connection-changing remediations allowed per tenant per window (fix, reconnect)'),
  ('remediation_window_minutes', '60', 'The remediation budget window, in minutes')
on conflict (key) do update set default_value = excluded.default_value, description = excluded.description;

-- why: same budget as 20261129004003, counting the step names really written (grants are kept by create or replace).
create or replace function maintenance.remediation_budget(p_tenant_slug text, p_as_of timestamptz default now())
returns table (used integer, max_allowed integer, remaining integer, window_minutes integer,
  window_start timestamptz, resets_at timestamptz)
language sql stable security definer set search_path = '' as $$
  with s as (
    select (maintenance.setting('remediation_max_per_window') #>> '{}')::integer as max_allowed,
           (maintenance.setting('remediation_window_minutes') #>> '{}')::integer as window_minutes
  ), a as (
    select count(*)::integer as used, array_agg(x.created_at order by x.created_at) as times
    from maintenance.actions_audit x, s
    where x.tenant_slug = p_tenant_slug
      and x.action in ('fix.create_instance', 'fix.reconnect', 'reconnect.connect', 'reset.create_instance')
      and x.result in ('ok', 'failed', 'rolled_back')
      and x.created_at > p_as_of - make_interval(mins => s.window_minutes)
      and x.created_at <= p_as_of
  )
  select a.used, s.max_allowed, greatest(s.max_allowed - a.used, 0), s.window_minutes,
         p_as_of - make_interval(mins => s.window_minutes),
         -- the moment one more remediation becomes allowed: when the (used - max + 1)-th oldest leaves the window
         case when a.used >= s.max_allowed
           then a.times[a.used - s.max_allowed + 1] + make_interval(mins => s.window_minutes) end
  from a, s;
$$;
revoke all on function maintenance.remediation_budget(text, timestamptz) from public, anon, authenticated;
grant execute on function maintenance.remediation_budget(text, timestamptz) to service_role;
