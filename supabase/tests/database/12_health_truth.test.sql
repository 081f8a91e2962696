-- Truthful health bookkeeping: the flap detection (percent state change over checks and connection.update events,
-- with hysteresis), the probes' dates carried for the rotation, the server a tenant is on.
begin;
select plan(13);

insert into public.tenants (id, slug) values
  ('00000000-0000-0000-0000-00000000b001', 'ht-flap'), ('00000000-0000-0000-0000-00000000b002', 'ht-steady');

-- one run: ht-flap in `s`, ht-steady open; returns the run's summary
create function pg_temp.run(at timestamptz, s text, extra jsonb default '{}') returns jsonb language sql as $$
  select maintenance.record_tenant_health(gen_random_uuid(), at, jsonb_build_array(
    jsonb_build_object('tenant_id', '00000000-0000-0000-0000-00000000b001', 'slug', 'ht-flap',
      'state', case when s = 'open' then 'healthy' else 'degraded' end, 'evolution_state', s) || extra,
    jsonb_build_object('tenant_id', '00000000-0000-0000-0000-00000000b002', 'slug', 'ht-steady', 'state', 'healthy',
      'evolution_state', 'open')));
$$;

-- a steady tenant and one down once: no flapping
select pg_temp.run('2026-01-01 10:00Z', 'open',
  '{"server_url": "https://evo-2.example", "live_state": "open", "socket_state": "live"}');
select pg_temp.run('2026-01-01 10:05Z', 'close');
select results_eq($$select tenant_slug, flapping, flap_percent < 10 from maintenance.tenant_health
    where tenant_slug like 'ht-%' order by 1$$,
  $$values ('ht-flap'::text, false, true), ('ht-steady'::text, false, true)$$,
  'one change is not flapping (about 6 %)');
select results_eq($$select live_state, live_checked_at, socket_state, socket_checked_at, server_url
    from maintenance.tenant_health where tenant_slug = 'ht-flap'$$,
  $$values ('open'::text, '2026-01-01 10:00Z'::timestamptz, 'live'::text, '2026-01-01 10:00Z'::timestamptz, null::text)$$,
  'a probe''s answer and date are carried to runs that did not probe; the server is the one of the last run');

-- connection.update events between checks count as samples: a reconnect loop between two checks that both see open
insert into public.api_logs (created_at, tenant_slug, service, event, status, data)
select '2026-01-01 10:06Z'::timestamptz + make_interval(secs => g * 10), 'ht-flap', 'whatsapp', 'connection.update',
  'success', jsonb_build_object('state', case when g % 2 = 0 then 'open' else 'connecting' end)
from generate_series(1, 8) g;
-- a rejected cross-tenant attempt is not the tenant's state
insert into public.api_logs (created_at, tenant_slug, service, event, status, error_type, data)
values ('2026-01-01 10:07Z', 'ht-steady', 'whatsapp', 'connection.update', 'error', 'cross_tenant',
  '{"state": "close"}');
select ok((pg_temp.run('2026-01-01 10:10Z', 'open') -> 'flapping') = '["ht-flap"]',
  'a reconnect loop seen in the webhook events makes the tenant flap, although both checks saw it open');
select results_eq($$select state, issue_code, flap_percent > 25 from maintenance.tenant_health
    where tenant_slug = 'ht-flap'$$,
  $$values ('degraded'::text, 'flapping'::text, true)$$, 'a flapping tenant is degraded, its issue is flapping');
select is((select flapping from maintenance.tenant_health where tenant_slug = 'ht-steady'), false,
  'the cross-tenant attempt did not count for the tenant it was posted to');
select is((select jsonb_array_length(samples) from maintenance.tenant_health where tenant_slug = 'ht-flap'), 11,
  'samples: the 2 earlier checks, the 8 events, this check');

-- hysteresis: quiet runs push the changes out of the window, one sample a run
create function pg_temp.quiet_until(below numeric, start timestamptz) returns integer language plpgsql as $$
declare i integer := 0;
begin
  loop
    i := i + 1;
    perform pg_temp.run(start + make_interval(mins => 5 * i), 'open');
    exit when (select flap_percent from maintenance.tenant_health where tenant_slug = 'ht-flap') <= below or i > 40;
  end loop;
  return i;
end;
$$;
select ok(pg_temp.quiet_until(25, '2026-01-01 10:10Z') <= 40, 'quiet runs bring the percentage under the high threshold');
select results_eq($$select flapping, flap_percent >= 10, state from maintenance.tenant_health
    where tenant_slug = 'ht-flap'$$,
  $$values (true, true, 'degraded'::text)$$, 'between the thresholds a flapping tenant keeps flapping (hysteresis)');
select pg_temp.quiet_until(10, '2026-01-01 14:00Z');
select results_eq($$select flapping, state, flap_percent < 10 from maintenance.tenant_health
    where tenant_slug = 'ht-flap'$$,
  $$values (false, 'healthy'::text, true)$$, 'below the low threshold it stops flapping');
select is((select jsonb_array_length(samples) from maintenance.tenant_health where tenant_slug = 'ht-flap'),
  (maintenance.setting('flap_samples') #>> '{}')::int, 'at most flap_samples samples are kept');

-- the percentage is Nagios's: weighted toward recent changes
update maintenance.tenant_health set samples = '[]', flapping = false where tenant_slug = 'ht-flap';
select pg_temp.run('2026-01-02 10:00Z'::timestamptz + make_interval(mins => 5 * g),
  case when g % 2 = 0 then 'open' else 'close' end) from generate_series(1, 21) g;
select is((select flap_percent from maintenance.tenant_health where tenant_slug = 'ht-flap'), 100.0,
  'a change at every one of 21 samples is 100 %');
update maintenance.tenant_health set samples = '[]', flapping = false where tenant_slug = 'ht-flap';
select pg_temp.run('2026-01-03 10:00Z'::timestamptz + make_interval(mins => 5 * g),
  case when g = 21 then 'close' else 'open' end) from generate_series(1, 21) g;
select is((select flap_percent from maintenance.tenant_health where tenant_slug = 'ht-flap'), 6.0,
  'one change, the newest (weight 1.2), over 20 transitions is 6 %');
select is((select issue_code from maintenance.tenant_health where tenant_slug = 'ht-flap'), null,
  'not flapping: the tenant''s own issue stands (no issue code was sent)');

select * from finish();
rollback;
