-- The reports read the rollups for closed hours and the raw rows for the rest, with exactly the raw scan's figures:
-- on 20,000 pseudo-random rows over 8 days up to the open hour (tenants, services, statuses, error types, response
-- times, connection.update states, envelopes and error rows), every report taken before the refresh (nothing rolled
-- up: the raw scan) equals the same report after it, for aligned and unaligned periods, periods reaching into the
-- future and periods starting before the first rolled-up hour. Then the raw rows older than two days are purged
-- and a weekly report over the purged days keeps its figures (from the rollups).
begin;
select plan(17);

-- a rollup covering only this fixture's time: nothing rolled up, the first rolled-up hour nine days ago
delete from maintenance.api_logs_hourly;
update maintenance.api_logs_rollup_state set watermark = date_trunc('hour', now() - interval '9 days');

select setseed(0.24);
insert into public.api_logs (created_at, tenant_slug, service, event, status, error_type, response_time, data)
select x.at, x.tenant, x.service, x.event,
  case when x.event = 'connection.update' and x.r < 0.03 then 'error'
       when x.event = 'connection.update' then 'success'
       when x.r < 0.08 then 'error' when x.r < 0.1 then 'pending' else 'success' end,
  case when x.r < 0.08 then (array['timeout', 'http_500', null, 'cross_tenant'])[1 + floor(random() * 4)::int] end,
  case when random() < 0.1 then null else 20 + floor(power(random(), 3) * 6000)::int end,
  case when x.event <> 'connection.update' then null
       when x.s < 0.05 then '{}'::jsonb
       when x.s < 0.15 then jsonb_build_object('data', jsonb_build_object('state',
         (array['open', 'connecting', 'close'])[1 + floor(random() * 3)::int]))
       else jsonb_build_object('state', (array['open', 'open', 'connecting', 'close'])[1 + floor(random() * 4)::int],
         'statusReason', (array[200, 401, 428])[1 + floor(random() * 3)::int]) end
from (
  select case when i <= 300 then now() - random() * (now() - date_trunc('hour', now()))
              else now() - random() * interval '8 days' end as at,
    case when random() < 0.03 then null else 'rr24-' || (1 + floor(power(random(), 2) * 30))::int end as tenant,
    case when random() < 0.07 then 'other' else 'whatsapp' end as service,
    case when random() < 0.2 then 'connection.update' else 'send' end as event,
    random() as r, random() as s
  from generate_series(1, 20000) i
) x;
-- rows before the first rolled-up hour (a late import of old rows): always read raw
insert into public.api_logs (created_at, tenant_slug, service, event, status, response_time)
select now() - interval '20 days' + i * interval '1 minute', 'rr24-old', 'whatsapp', 'send', 'success', i
from generate_series(1, 50) i;

create temp table t_reports (name text primary key, before jsonb, after jsonb);
create temp table t_windows as
select * from (values
  ('weekly, now', maintenance.weekly_report(7, now())),
  ('weekly, on the hour', maintenance.weekly_report(7, date_trunc('hour', now()))),
  ('usage, unaligned', maintenance.usage_report(3, now() - interval '20 hours 13 minutes', 5)),
  ('performance, unaligned', maintenance.performance_metrics(now() - interval '3 days 17 minutes',
    now() - interval '1 day 5 minutes', 'whatsapp', 5)),
  ('performance, other service', maintenance.performance_metrics(now() - interval '6 days', now(), 'other', 3)),
  ('performance, inside one hour', maintenance.performance_metrics(date_trunc('hour', now() - interval '2 days')
    + interval '7 minutes', date_trunc('hour', now() - interval '2 days') + interval '41 minutes')),
  ('performance, into the future', maintenance.performance_metrics(now() - interval '5 days',
    now() + interval '2 hours')),
  ('performance, before the first rolled-up hour', maintenance.performance_metrics(now() - interval '21 days',
    now() - interval '7 days'))
) v(name, report);
insert into t_reports (name, before) select name, report from t_windows;

select ok((select bool_and(s.rollup_from = now() and s.rollup_until = now())
    from maintenance.api_logs_rollup_span(now() - interval '7 days', now()) s),
  'before the refresh nothing of the period is rolled up: the reports above are the raw scan');

select ok((select watermark from maintenance.refresh_api_logs_rollup('0 hours', now())) > now() - interval '2 hours',
  'the refresh rolls up every closed hour of the fixture');
select ok((select s.rollup_from < s.rollup_until from maintenance.api_logs_rollup_span(now() - interval '7 days', now()) s),
  'after it the weekly period is read from the rollups');
select ok((select sum(conn_events) > 0 and sum(conn_drops) > 0 and sum(conn_closes) > 0 and sum(conn_opens) > 0
    from maintenance.api_logs_hourly where tenant_slug like 'rr24-%'),
  'the rollups hold the connection figures');

drop table t_windows;
create temp table t_windows as
select * from (values
  ('weekly, now', maintenance.weekly_report(7, now())),
  ('weekly, on the hour', maintenance.weekly_report(7, date_trunc('hour', now()))),
  ('usage, unaligned', maintenance.usage_report(3, now() - interval '20 hours 13 minutes', 5)),
  ('performance, unaligned', maintenance.performance_metrics(now() - interval '3 days 17 minutes',
    now() - interval '1 day 5 minutes', 'whatsapp', 5)),
  ('performance, other service', maintenance.performance_metrics(now() - interval '6 days', now(), 'other', 3)),
  ('performance, inside one hour', maintenance.performance_metrics(date_trunc('hour', now() - interval '2 days')
    + interval '7 minutes', date_trunc('hour', now() - interval '2 days') + interval '41 minutes')),
  ('performance, into the future', maintenance.performance_metrics(now() - interval '5 days',
    now() + interval '2 hours')),
  ('performance, before the first rolled-up hour', maintenance.performance_metrics(now() - interval '21 days',
    now() - interval '7 days'))
) v(name, report);
update t_reports r set after = w.report from t_windows w where w.name = r.name;

select is((select after from t_reports where name = 'weekly, now'), (select before from t_reports where name = 'weekly, now'),
  'weekly_report up to now (partial first and last hours raw, the rest rolled up) equals the raw scan');
select is((select after from t_reports where name = 'weekly, on the hour'),
  (select before from t_reports where name = 'weekly, on the hour'),
  'weekly_report over whole hours (all rolled up) equals the raw scan');
select is((select after from t_reports where name = 'usage, unaligned'),
  (select before from t_reports where name = 'usage, unaligned'),
  'usage_report over an unaligned period equals the raw scan (connections, drops, closes, top tenants)');
select is((select after from t_reports where name = 'performance, unaligned'),
  (select before from t_reports where name = 'performance, unaligned'),
  'performance_metrics over an unaligned period equals the raw scan (percentiles per tenant and overall)');
select is((select after from t_reports where name = 'performance, other service'),
  (select before from t_reports where name = 'performance, other service'),
  'performance_metrics of another service equals the raw scan');
select is((select after from t_reports where name = 'performance, inside one hour'),
  (select before from t_reports where name = 'performance, inside one hour'),
  'performance_metrics inside one rolled-up hour reads the raw rows and equals the raw scan');
select is((select after from t_reports where name = 'performance, into the future'),
  (select before from t_reports where name = 'performance, into the future'),
  'performance_metrics over a period reaching past the watermark equals the raw scan');
select is((select after from t_reports where name = 'performance, before the first rolled-up hour'),
  (select before from t_reports where name = 'performance, before the first rolled-up hour'),
  'hours before the first rolled-up hour are read raw (the old imported rows count)');
select ok((select (before #>> '{performance,totalRequests}')::int > 15000
    and (before #>> '{usage,totalDisconnections}')::int > 0 and (before #>> '{usage,totalCloses}')::int > 0
    and jsonb_array_length(before #> '{performance,tenants}') > 25
    from t_reports where name = 'weekly, now'), 'the fixture is not trivial: requests, drops, closes, tenants');

-- the raw purge: rows older than two days go (capped at the watermark); the weekly report over whole hours keeps its
-- performance figures and its connection figures, now from the rollups alone
select ok((select deleted from maintenance.purge_api_logs_batch(now() - interval '2 days', 100000)) > 10000,
  'the purge removes the raw rows older than two days');
select ok((select count(*) from public.api_logs where created_at >= now() - interval '7 days'
    and created_at < now() - interval '2 days' and tenant_slug like 'rr24-%' and event = 'send') = 0,
  'the purged days hold no raw request rows anymore');
select is((select maintenance.weekly_report(7, date_trunc('hour', now())) -> 'performance'),
  (select before -> 'performance' from t_reports where name = 'weekly, on the hour'),
  'after the purge the weekly performance figures are unchanged');
select is((select jsonb_build_object('c', u -> 'totalConnections', 'd', u -> 'totalDisconnections',
      'x', u -> 'totalCloses', 't', u -> 'topActiveTenants')
    from (select maintenance.weekly_report(7, date_trunc('hour', now())) -> 'usage' as u) s),
  (select jsonb_build_object('c', u -> 'totalConnections', 'd', u -> 'totalDisconnections',
      'x', u -> 'totalCloses', 't', u -> 'topActiveTenants')
    from (select before -> 'usage' as u from t_reports where name = 'weekly, on the hour') s),
  'after the purge the weekly connection figures are unchanged (uptime is a timeline and stays raw)');

select * from finish();
rollback;
