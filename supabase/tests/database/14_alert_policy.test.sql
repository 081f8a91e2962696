-- The alert policy of evaluate_alerts (issue 15), with the settings' defaults: failure and success thresholds,
-- flapping, mass disconnects per server over a sliding window, scoped runs, checks no longer configured.
-- tenant_health rows are written here directly, as a health-check run would leave them, then evaluated.
begin;
select plan(60);

select has_table('maintenance', 'tenant_alert_streaks', 'the alert rules keep their per-tenant streaks');
select has_column('maintenance', 'tenant_health', 'server_url', 'tenant_health says which Evolution server');
select has_column('maintenance', 'tenant_health', 'flapping', 'tenant_health says whether the tenant flaps');
select has_column('maintenance', 'tenant_health', 'flap_percent', 'and its percent state change');
select has_column('maintenance', 'alerts', 'clear_checks', 'an alert counts the checks without its condition');
select table_privs_are('maintenance', 'tenant_alert_streaks', 'anon', array[]::text[], 'anon cannot touch the streaks');
select results_eq($$select key, default_value from maintenance.settings
    where key in ('alert_failure_threshold', 'alert_success_threshold', 'platform_incident_window') order by key$$,
  $$values ('alert_failure_threshold'::text, '2'::jsonb), ('alert_success_threshold', '2'::jsonb),
           ('platform_incident_window', '"15 minutes"'::jsonb)$$,
  'the thresholds and the window have their explained defaults');
select ok((select bool_and(length(description) > 80) from maintenance.settings
    where key in ('alert_failure_threshold', 'alert_success_threshold', 'platform_incident_window')),
  'each is described with its reason');

-- a clean slate for global alerts, inside this rolled-back transaction; the settings as shipped
delete from maintenance.alerts;
update maintenance.settings set value = null where key in ('alert_failure_threshold', 'alert_success_threshold',
  'platform_incident_window', 'platform_incident_share', 'platform_incident_min_tenants', 'alert_repeat_interval');

-- tenants `<prefix>-<n>`, ids derived from their slugs
create function pg_temp.tid(slug text) returns uuid language sql immutable as $$ select md5(slug)::uuid $$;
create function pg_temp.tenants(prefix text, n integer) returns void language sql as $$
  insert into public.tenants (id, slug) select pg_temp.tid(prefix || '-' || g), prefix || '-' || g
  from generate_series(1, n) g $$;
-- one row per tenant as a check left it: {slug, state?, issue?, flapping?, flap_percent?, server?}
create function pg_temp.rows(prefix text, n integer, down integer[] default '{}', server text default null,
  flapping boolean default false, issue text default 'instance_disconnected') returns jsonb language sql as $$
  select jsonb_agg(jsonb_build_object('slug', prefix || '-' || g,
    'state', case when g = any (down) then case when issue = 'instance_missing' then 'unhealthy' else 'degraded' end
                  else 'healthy' end,
    'issue', case when g = any (down) then issue end, 'server', server, 'flapping', flapping,
    'flap_percent', case when flapping then 42 end))
  from generate_series(1, n) g $$;
-- writes the rows into tenant_health as run `run` at `at`, then evaluates the alerts of that run
create function pg_temp.check(run integer, at timestamptz, checked jsonb, opts jsonb default '{}')
returns jsonb language plpgsql as $$
declare rid uuid := ('30000000-0000-0000-0000-' || lpad(run::text, 12, '0'))::uuid;
begin
  insert into maintenance.tenant_health as h (tenant_id, tenant_slug, state, issue_code, issue, severity,
    evolution_state, since, last_checked_at, last_change_at, last_run_id, server_url, flapping, flap_percent)
  select pg_temp.tid(r ->> 'slug'), r ->> 'slug', r ->> 'state', r ->> 'issue', r ->> 'issue',
    case r ->> 'state' when 'unhealthy' then 'high' when 'degraded' then 'medium' end,
    case when r ->> 'issue' = 'evolution_unreachable' then 'unknown' when r ->> 'state' = 'healthy' then 'open'
         else 'close' end,
    at, at, at, rid, r ->> 'server', coalesce((r ->> 'flapping')::boolean, false), (r ->> 'flap_percent')::numeric
  from jsonb_array_elements(checked) r
  on conflict (tenant_id) do update set state = excluded.state, issue_code = excluded.issue_code,
    issue = excluded.issue, severity = excluded.severity, evolution_state = excluded.evolution_state,
    last_checked_at = excluded.last_checked_at, last_run_id = excluded.last_run_id, server_url = excluded.server_url,
    flapping = excluded.flapping, flap_percent = excluded.flap_percent;
  return maintenance.evaluate_alerts(rid, at, coalesce(opts -> 'candidates', '[]'),
    jsonb_build_object('tenantsEvaluated', true, 'fullRun', true, 'channels', jsonb_build_array('log'))
    || (opts - 'candidates'));
end $$;
create function pg_temp.sent(slug_like text, event text default null) returns integer language sql as $$
  select count(*)::integer from maintenance.notification_outbox o join maintenance.alerts a on a.id = o.alert_id
  where coalesce(a.tenant_slug, a.fingerprint) like slug_like and (event is null or o.kind = event) $$;

-- thresholds: one tenant, one check every 5 minutes
select pg_temp.tenants('hp-thr', 1);
select is((pg_temp.check(1, '2026-03-01 10:00Z', pg_temp.rows('hp-thr', 1, '{1}')) ->> 'pending')::int, 1,
  'down for one check: its condition is pending, not firing');
select pg_temp.check(2, '2026-03-01 10:05Z', pg_temp.rows('hp-thr', 1));
select is(pg_temp.sent('hp-thr-%'), 0, 'down for one check then back: no notification at all');
select pg_temp.check(3, '2026-03-01 10:10Z', pg_temp.rows('hp-thr', 1, '{1}'));
select is(pg_temp.sent('hp-thr-%'), 0, 'down again, first check: still nothing');
select pg_temp.check(4, '2026-03-01 10:15Z', pg_temp.rows('hp-thr', 1, '{1}'));
select results_eq($$select fingerprint, status, started_at from maintenance.alerts where tenant_slug = 'hp-thr-1'$$,
  $$values ('instance_disconnected:hp-thr-1'::text, 'firing'::text, '2026-03-01 10:15Z'::timestamptz)$$,
  'down for two checks in a row: the alert fires');
select is(pg_temp.sent('hp-thr-%', 'firing'), 1, 'one FIRING is queued');
select pg_temp.check(5, '2026-03-01 10:20Z', pg_temp.rows('hp-thr', 1));
select is((select status from maintenance.alerts where tenant_slug = 'hp-thr-1'), 'firing',
  'back for one check: it stays firing');
select pg_temp.check(6, '2026-03-01 10:25Z', pg_temp.rows('hp-thr', 1, '{1}'));
select is(pg_temp.sent('hp-thr-%'), 1, 'down again: no new FIRING, no RESOLVED');
select pg_temp.check(7, '2026-03-01 10:30Z', pg_temp.rows('hp-thr', 1));
select is((select clear_checks from maintenance.alerts where tenant_slug = 'hp-thr-1'), 1, 'one check without it');
select pg_temp.check(8, '2026-03-01 10:35Z', pg_temp.rows('hp-thr', 1));
select results_eq($$select status, resolved_at from maintenance.alerts where tenant_slug = 'hp-thr-1'$$,
  $$values ('resolved'::text, '2026-03-01 10:35Z'::timestamptz)$$, 'back for two checks: it resolves');
select is(pg_temp.sent('hp-thr-%'), 2, 'one RESOLVED: two notifications in all');

-- the streak counts across states (degraded, then unhealthy), and an unreachable server is not a check
select pg_temp.tenants('hp-mix', 1);
select pg_temp.check(11, '2026-03-01 11:00Z', pg_temp.rows('hp-mix', 1, '{1}'));
select pg_temp.check(12, '2026-03-01 11:05Z', pg_temp.rows('hp-mix', 1, '{1}', issue => 'instance_missing'));
select results_eq($$select fingerprint, severity from maintenance.alerts where tenant_slug = 'hp-mix-1'$$,
  $$values ('instance_missing:hp-mix-1'::text, 'critical'::text)$$,
  'disconnected then missing is two bad checks in a row: the second issue fires');
select pg_temp.check(13, '2026-03-01 11:10Z', pg_temp.rows('hp-mix', 1, '{1}', issue => 'evolution_unreachable'));
select pg_temp.check(14, '2026-03-01 11:15Z', pg_temp.rows('hp-mix', 1, '{1}', issue => 'evolution_unreachable'));
select results_eq($$select status, clear_checks from maintenance.alerts where tenant_slug = 'hp-mix-1'$$,
  $$values ('firing'::text, 0)$$, 'checks that could not see the tenant neither resolve nor count');

-- flapping: ten checks alternating; the detector says flapping from the third on, and stops after the tenth
select pg_temp.tenants('hp-flap', 1);
select pg_temp.check(20 + g, '2026-03-01 12:00Z'::timestamptz + make_interval(mins => 5 * g),
  pg_temp.rows('hp-flap', 1, case when g % 2 = 1 then '{1}'::int[] else '{}' end, flapping => g >= 3))
from generate_series(1, 10) g;
select results_eq($$select fingerprint, status, severity from maintenance.alerts where tenant_slug = 'hp-flap-1'$$,
  $$values ('flapping:hp-flap-1'::text, 'firing'::text, 'warning'::text)$$,
  'ten alternating checks: one flapping alert, and no per-change alert');
select ok((select summary like '%keeps disconnecting and reconnecting (42% state change)%' from maintenance.alerts
  where fingerprint = 'flapping:hp-flap-1'), 'it says so, with the percent state change');
select pg_temp.check(31, '2026-03-01 12:55Z', pg_temp.rows('hp-flap', 1));
select is((select status from maintenance.alerts where fingerprint = 'flapping:hp-flap-1'), 'resolved',
  'flapping ends: the flapping alert resolves at once');
select pg_temp.check(32, '2026-03-01 13:00Z', pg_temp.rows('hp-flap', 1));
select results_eq($$select o.kind, count(*)::int from maintenance.notification_outbox o
    join maintenance.alerts a on a.id = o.alert_id where a.tenant_slug = 'hp-flap-1' group by o.kind order by o.kind$$,
  $$values ('firing'::text, 1), ('resolved', 1)$$,
  'twelve checks: one flapping FIRING, one RESOLVED (at most 3 notifications)');

-- a firing alert of a tenant that starts flapping is held: inhibited, not resolved by good checks, quiet
select pg_temp.tenants('hp-held', 1);
select pg_temp.check(40, '2026-03-01 14:00Z', pg_temp.rows('hp-held', 1, '{1}'));
select pg_temp.check(41, '2026-03-01 14:05Z', pg_temp.rows('hp-held', 1, '{1}'));
select pg_temp.check(42, '2026-03-01 14:10Z', pg_temp.rows('hp-held', 1, flapping => true));
select pg_temp.check(43, '2026-03-01 14:15Z', pg_temp.rows('hp-held', 1, flapping => true));
select pg_temp.check(44, '2026-03-01 14:20Z', pg_temp.rows('hp-held', 1, '{1}', flapping => true));
select pg_temp.check(45, '2026-03-01 14:25Z', pg_temp.rows('hp-held', 1, flapping => true));
select pg_temp.check(46, '2026-03-01 14:30Z', pg_temp.rows('hp-held', 1, flapping => true));
select results_eq($$select status, inhibited_by from maintenance.alerts
    where fingerprint = 'instance_disconnected:hp-held-1'$$,
  $$values ('firing'::text, 'flapping:hp-held-1'::text)$$,
  'while it flaps its alert neither resolves (two good checks) nor speaks: it is inhibited by the flapping alert');
select is(pg_temp.sent('hp-held-%'), 2, 'the disconnect FIRING from before, and the flapping FIRING');
select pg_temp.check(47, '2026-03-01 14:35Z', pg_temp.rows('hp-held', 1, '{1}'));
select pg_temp.check(48, '2026-03-01 14:40Z', pg_temp.rows('hp-held', 1, '{1}'));
select results_eq($$select fingerprint, status, inhibited_by from maintenance.alerts where tenant_slug = 'hp-held-1'
    order by fingerprint$$,
  $$values ('flapping:hp-held-1'::text, 'resolved'::text, null::text),
           ('instance_disconnected:hp-held-1', 'firing', null)$$,
  'flapping ends with the tenant down: the flapping alert resolves, the disconnect one is back to normal rules');
select is(pg_temp.sent('hp-held-%'), 3, 'one more notification (the flapping RESOLVED); the disconnect was told');
select pg_temp.tenants('hp-new', 1);
select pg_temp.check(49, '2026-03-01 15:00Z', pg_temp.rows('hp-new', 1, flapping => true));
select pg_temp.check(50, '2026-03-01 15:05Z', pg_temp.rows('hp-new', 1, '{1}', flapping => true));
select pg_temp.check(51, '2026-03-01 15:10Z', pg_temp.rows('hp-new', 1, '{1}', flapping => true));
select is((select count(*)::int from maintenance.alerts where tenant_slug = 'hp-new-1' and kind <> 'flapping'), 0,
  'a flapping tenant down for two checks fires nothing besides its flapping alert');
select pg_temp.check(52, '2026-03-01 15:15Z', pg_temp.rows('hp-new', 1, '{1}'));
select is((select status from maintenance.alerts where fingerprint = 'instance_disconnected:hp-new-1'), 'firing',
  'when flapping ends with the tenant down past the threshold, its alert fires as usual');

-- mass disconnect per server, over the sliding window: 20 tenants on server A, 4 down per check, each back the
-- next check; 10 tenants on the default server, healthy
select pg_temp.tenants('hp-a', 20);
select pg_temp.tenants('hp-d', 10);
create function pg_temp.fleet(down integer[]) returns jsonb language sql as $$
  select pg_temp.rows('hp-a', 20, down, 'http://evo-a:8080') || pg_temp.rows('hp-d', 10) $$;
select pg_temp.check(60, '2026-03-02 10:00Z', pg_temp.fleet('{}'));
select pg_temp.check(61, '2026-03-02 10:05Z', pg_temp.fleet('{1,2,3,4}'));
select is(pg_temp.check(62, '2026-03-02 10:10Z', pg_temp.fleet('{5,6,7,8}')) -> 'platform', '[]'::jsonb,
  '8 of 20 within the window: not an incident yet');
select is(pg_temp.check(63, '2026-03-02 10:15Z', pg_temp.fleet('{9,10,11,12}')) -> 'platform',
  '["mass_disconnect:http://evo-a:8080"]'::jsonb, '12 of 20 gone down within 15 minutes: one incident for server A');
select pg_temp.check(64, '2026-03-02 10:20Z', pg_temp.fleet('{13,14,15,16}'));
select pg_temp.check(65, '2026-03-02 10:25Z', pg_temp.fleet('{17,18,19,20}'));
select is(pg_temp.sent('mass_disconnect%', 'firing'), 1, 'it is notified once while the outage rolls on');
select is((select count(*)::int from maintenance.alerts where tenant_slug like 'hp-a-%'), 0,
  'no tenant was down two checks in a row: no tenant alert at all');
select is(jsonb_array_length((select details -> 'tenantIds' from maintenance.alerts
    where fingerprint = 'mass_disconnect:http://evo-a:8080' and status = 'firing')), 20,
  'it explains every tenant that went down while it lasted');
select pg_temp.check(66, '2026-03-02 10:30Z', pg_temp.fleet('{}'));
select is((select resolve_reason from maintenance.alerts where fingerprint = 'mass_disconnect:http://evo-a:8080'
    and status = 'resolved'), null, 'everyone back, nobody new down: it resolves');
select pg_temp.check(67, '2026-03-02 10:35Z', pg_temp.fleet('{}'));
select results_eq($$select kind, count(*)::int from maintenance.notification_outbox
    where alert_id in (select id from maintenance.alerts where kind = 'mass_disconnect') group by kind order by kind$$,
  $$values ('firing'::text, 1), ('resolved', 1)$$,
  'one FIRING, one RESOLVED: the window that still holds those tenants does not raise it again');

-- an incident inhibits the alerts of the tenants it explains; failures further apart than the window never add up
select pg_temp.check(70, '2026-03-02 11:00Z', pg_temp.fleet('{1,2,3,4,5,6,7,8,9,10,11}'));
select pg_temp.check(71, '2026-03-02 11:05Z', pg_temp.fleet('{1,2,3,4,5,6,7,8,9,10,11}'));
select is((select count(*)::int from maintenance.alerts where tenant_slug like 'hp-a-%' and status = 'firing'
    and inhibited_by = 'mass_disconnect:http://evo-a:8080'), 11,
  'eleven tenants down two checks: their alerts fire, silenced by the incident');
select is(pg_temp.sent('hp-a-%'), 0, 'and queue nothing');
select pg_temp.check(72, '2026-03-02 11:10Z', pg_temp.fleet('{}'));
select pg_temp.check(73, '2026-03-02 11:15Z', pg_temp.fleet('{}'));
select is((select count(*)::int from maintenance.alerts where tenant_slug like 'hp-a-%' and status = 'firing'), 0,
  'the incident over and the tenants back, their alerts resolve');
select is(pg_temp.sent('hp-a-%'), 0, 'quietly: they were never announced');
select pg_temp.check(74, '2026-03-02 12:00Z', pg_temp.fleet('{1,2,3}'));
select pg_temp.check(75, '2026-03-02 12:05Z', pg_temp.fleet('{}'));
select pg_temp.check(76, '2026-03-02 12:20Z', pg_temp.fleet('{4,5,6}'));
select is((select count(*)::int from maintenance.alerts where kind = 'mass_disconnect' and status = 'firing'), 0,
  '3 tenants down, then 3 others 20 minutes later: more than the window apart, no incident');
select pg_temp.check(77, '2026-03-02 12:25Z', pg_temp.fleet('{}'));

-- scoped runs: no platform alert raised, resolved or notified
select pg_temp.check(80, '2026-03-02 13:00Z', pg_temp.fleet('{1,2,3,4,5,6,7,8,9,10,11,12}'),
  '{"fullRun":false,"candidates":[{"fingerprint":"evolution_down","kind":"evolution_down","severity":"critical","summary":"Evolution API is down"}],"platformKinds":["evolution_down"]}');
select is((select count(*)::int from maintenance.alerts where scope = 'platform' and status = 'firing'), 0,
  'a scoped run with 12 of 20 down and Evolution down raises no platform alert');
select pg_temp.check(81, '2026-03-02 13:05Z', pg_temp.fleet('{1,2,3,4,5,6,7,8,9,10,11,12}'),
  '{"candidates":[{"fingerprint":"supabase_down","kind":"supabase_down","severity":"critical","summary":"Supabase REST/Auth health check failed"}],"platformKinds":["evolution_down","supabase_down"]}');
select is((select count(*)::int from maintenance.alerts where scope = 'platform' and status = 'firing'), 2,
  'a full run raises them (the incident and supabase_down)');
select pg_temp.check(82, '2026-03-02 13:10Z', pg_temp.fleet('{}'), '{"fullRun":false,"platformKinds":["supabase_down"]}');
select is((select count(*)::int from maintenance.alerts where scope = 'platform' and status = 'firing'), 2,
  'a scoped run with everyone back resolves neither');
select pg_temp.check(83, '2026-03-02 13:15Z', pg_temp.fleet('{1,2,3,4,5,6,7,8,9,10,11,12}'),
  '{"platformKinds":["evolution_down"]}');
select is((select status from maintenance.alerts where fingerprint = 'supabase_down' order by id desc limit 1), 'firing',
  'a full run that did not evaluate supabase_down, without configuredKinds, leaves it');
select pg_temp.check(84, '2026-03-02 13:20Z', pg_temp.fleet('{1,2,3,4,5,6,7,8,9,10,11,12}'),
  '{"platformKinds":["evolution_down","missed_run"],"configuredKinds":["evolution_down","missed_run","mass_disconnect"]}');
select results_eq($$select status, resolve_reason from maintenance.alerts where fingerprint = 'supabase_down'$$,
  $$values ('resolved'::text, 'check no longer configured'::text)$$,
  'once its check is no longer configured, the next full run resolves it');
select is((select status from maintenance.alerts where fingerprint = 'mass_disconnect:http://evo-a:8080'
    order by id desc limit 1), 'firing', 'a configured kind that is still true stays');

-- tenants going down one at a time, each long after the one before, and staying down: not an incident, however many
select pg_temp.tenants('hp-b', 10);
select pg_temp.check(90 + g, '2026-03-03 08:00Z'::timestamptz + make_interval(mins => 20 * g),
  pg_temp.rows('hp-b', 10, array(select generate_series(1, g)), 'http://evo-b:8080'))
from generate_series(0, 6) g;
select is((select count(*)::int from maintenance.tenant_health where tenant_slug like 'hp-b-%' and state <> 'healthy'),
  6, 'six of the ten tenants of server B are down');
select is((select count(*)::int from maintenance.alerts where kind = 'mass_disconnect' and status = 'firing'
    and labels ->> 'server' = 'http://evo-b:8080'), 0,
  'one every 20 minutes, each still down: never more than one within the window, no incident');
select is((select count(*)::int from maintenance.alerts where tenant_slug like 'hp-b-%' and status = 'firing'
    and inhibited_by is null), 5, 'their own alerts fire (the sixth has been down for one check)');

-- an incident lasts while most of the tenants it explains are still down, past the window; when it ends, the
-- alerts of those still down are told then
select pg_temp.tenants('hp-c', 20);
select pg_temp.check(100 + g, '2026-03-03 12:00Z'::timestamptz + make_interval(mins => 5 * g),
  pg_temp.rows('hp-c', 20, '{1,2,3,4,5,6,7,8,9,10,11,12}', 'http://evo-c:8080'))
from generate_series(0, 5) g;
select results_eq($$select status, (details ->> 'stillDown')::int from maintenance.alerts
    where fingerprint = 'mass_disconnect:http://evo-c:8080'$$, $$values ('firing'::text, 12)$$,
  'twelve of twenty down for 25 minutes, longer than the window: still one firing incident');
select is(pg_temp.sent('hp-c-%'), 0, 'their own alerts (firing for 20 minutes) are silenced by it');
select pg_temp.check(106, '2026-03-03 12:30Z', pg_temp.rows('hp-c', 20, '{1,2,3,4,5}', 'http://evo-c:8080'));
select results_eq($$select status, resolved_at from maintenance.alerts
    where fingerprint = 'mass_disconnect:http://evo-c:8080'$$,
  $$values ('resolved'::text, '2026-03-03 12:30Z'::timestamptz)$$,
  'seven back, five still down (not more than half): the incident is over');
select is(pg_temp.sent('hp-c-%', 'firing'), 5, 'the five still down are told now, one FIRING each');
select is((select count(*)::int from maintenance.alerts where tenant_slug like 'hp-c-%' and status = 'firing'
    and clear_checks = 1), 7, 'the seven back are counting their good checks, unannounced');
select pg_temp.check(107, '2026-03-03 12:35Z', pg_temp.rows('hp-c', 20, '{1,2,3,4,5}', 'http://evo-c:8080'));
select is(pg_temp.sent('hp-c-%'), 5, 'and resolve quietly: nobody was told about them');
select is((select count(*)::int from maintenance.alerts where kind = 'mass_disconnect' and status = 'firing'
    and labels ->> 'server' = 'http://evo-c:8080'), 0, 'the five still down do not raise it again');

-- frequent_disconnections of a tenant whose flapping alert just ended: its closes are the flap's, already told
select pg_temp.tenants('hp-fd', 1);
select pg_temp.check(110 + g, '2026-03-03 14:00Z'::timestamptz + make_interval(mins => 5 * g),
  pg_temp.rows('hp-fd', 1, '{1}', flapping => g < 3, issue => 'frequent_disconnections'))
from generate_series(0, 5) g;
select results_eq($$select fingerprint, status from maintenance.alerts where tenant_slug = 'hp-fd-1'$$,
  $$values ('flapping:hp-fd-1'::text, 'resolved'::text)$$,
  'flapping ended 15 minutes ago, the closes still counted: no frequent_disconnections alert');
select pg_temp.check(116, '2026-03-03 16:20Z', pg_temp.rows('hp-fd', 1, '{1}', issue => 'frequent_disconnections'));
select is((select status from maintenance.alerts where fingerprint = 'frequent_disconnections:hp-fd-1'), 'firing',
  'closes counted more than flap_window after the flap are new: it fires');

select * from finish();
rollback;
