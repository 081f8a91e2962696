-- Retention by partition: no-ops on the plain layout; on a partitioned api_logs (built here by hand, rolled back),
-- expired days are dropped whole, the boundary day stays, and each tenant's latest connection.update survives.
begin;
select plan(9);

select is(maintenance.api_logs_is_partitioned(), false, 'the default layout is a plain table');
select is(maintenance.api_logs_ensure_partitions(3), 0, 'ensure_partitions is a no-op on the plain layout');
select is(maintenance.api_logs_drop_expired_partitions(now()), 0, 'drop_expired_partitions is a no-op there');
select throws_ok($$select maintenance.api_logs_ensure_partitions(-1)$$, '22023', null, 'days_ahead is checked');

alter table public.api_logs rename to api_logs_plain;
create table public.api_logs (like public.api_logs_plain including defaults including identity,
  primary key (id, created_at)) partition by range (created_at);
create table public.api_logs_default partition of public.api_logs default;
create table public.api_logs_p20261001 partition of public.api_logs
  for values from ('2026-10-01 00:00+00') to ('2026-10-02 00:00+00');
create table public.api_logs_p20261002 partition of public.api_logs
  for values from ('2026-10-02 00:00+00') to ('2026-10-03 00:00+00');

select is(maintenance.api_logs_is_partitioned(), true, 'the partitioned layout is seen');
select ok(maintenance.api_logs_ensure_partitions(2) = 3, 'today and two days ahead are made');

insert into public.api_logs (created_at, tenant_slug, service, event, status)
select '2026-10-01 00:00+00'::timestamptz + g * interval '1 minute', 't' || (g % 3), 'evolution', 'x', 'ok'
from generate_series(0, 99) g;
insert into public.api_logs (created_at, tenant_slug, service, event, status) values
  ('2026-10-01 10:00+00', 'quiet', 'whatsapp', 'connection.update', 'ok'),
  ('2026-10-01 11:00+00', 'busy', 'whatsapp', 'connection.update', 'ok'),
  ('2026-10-02 01:00+00', 'busy', 'whatsapp', 'connection.update', 'ok'),
  ('2026-10-02 12:00+00', 'other', 'evolution', 'x', 'ok');

select is(maintenance.api_logs_drop_expired_partitions('2026-10-02 06:00+00'), 1,
  'the one day wholly before the cutoff is dropped');
select is((select array_agg(tenant_slug order by created_at) from public.api_logs),
  array['quiet', 'busy', 'other'], 'the quiet tenant''s latest connection.update is kept; the boundary day stays');
select is((select count(*)::integer from pg_catalog.pg_class where relname = 'api_logs_p20261001'), 0,
  'the expired day''s table is gone');

select * from finish();
rollback;
