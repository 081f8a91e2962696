-- Retention by partition: no-ops on the plain layout; api_logs converted to day partitions and back (ids, counts,
-- indexes, grants, the purge view kept); expired days dropped whole, the boundary day kept, and each tenant's
-- latest connection.update survives. All rolled back.
begin;
select plan(20);

select is(maintenance.api_logs_is_partitioned(), false, 'the default layout is a plain table');
select is(maintenance.api_logs_ensure_partitions(3), 0, 'ensure_partitions is a no-op on the plain layout');
select is(maintenance.api_logs_drop_expired_partitions(now()), 0, 'drop_expired_partitions is a no-op there');
select throws_ok($$select maintenance.api_logs_ensure_partitions(-1)$$, '22023', null, 'days_ahead is checked');
select throws_ok($$select maintenance.api_logs_set_layout(null)$$, '22023', null, 'the layout is checked');

-- only this test's rows (whatever the stack holds is put back by the rollback)
delete from public.api_logs;
insert into public.api_logs (created_at, tenant_slug, service, event, status)
select '2026-10-01 00:00+00'::timestamptz + g * interval '1 minute', 't' || (g % 3), 'evolution', 'x', 'ok'
from generate_series(0, 99) g;
insert into public.api_logs (created_at, tenant_slug, service, event, status) values
  ('2026-10-01 10:00+00', 'quiet', 'whatsapp', 'connection.update', 'ok'),
  ('2026-10-01 11:00+00', 'busy', 'whatsapp', 'connection.update', 'ok'),
  ('2026-10-02 01:00+00', 'busy', 'whatsapp', 'connection.update', 'ok'),
  ('2026-10-02 12:00+00', 'other', 'evolution', 'x', 'ok');
create temporary table before_ids as select id from public.api_logs;
create temporary table before_idx as
  select indexname from pg_indexes where schemaname = 'public' and tablename = 'api_logs';

select is(maintenance.api_logs_set_layout(true), 'partitioned', 'converted to day partitions');
select is(maintenance.api_logs_is_partitioned(), true, 'the partitioned layout is seen');
select is(maintenance.api_logs_set_layout(true), 'unchanged', 'converting again changes nothing');
select set_eq($$select id from public.api_logs$$, $$select id from before_ids$$, 'every row kept, ids kept');
select set_eq($$select indexname from pg_indexes where schemaname = 'public' and tablename = 'api_logs'
  and indexname <> 'api_logs_pkey'$$, $$select indexname from before_idx where indexname <> 'api_logs_pkey'$$,
  'every index kept by name');
select table_privs_are('public', 'api_logs', 'service_role',
  array['DELETE', 'INSERT', 'REFERENCES', 'SELECT', 'TRIGGER', 'TRUNCATE', 'UPDATE'], 'grants kept');
select has_view('maintenance', 'api_logs_purgeable', 'the purge view is rebuilt');
select table_privs_are('maintenance', 'api_logs_purgeable', 'anon', array[]::text[], 'the view''s grants kept');
insert into public.api_logs (tenant_slug) values ('new');
select ok((select max(id) from before_ids) < (select id from public.api_logs where tenant_slug = 'new'),
  'a new row gets a new id after the old ones');
select ok(maintenance.api_logs_ensure_partitions(2) = 0, 'conversion made the days ahead already');

select is(maintenance.api_logs_drop_expired_partitions('2026-10-02 06:00+00'), 1,
  'the one day wholly before the cutoff is dropped');
select is((select array_agg(tenant_slug order by created_at) from public.api_logs where created_at < '2026-11-01' and tenant_slug <> 'new'),
  array['quiet', 'busy', 'other'], 'the quiet tenant''s latest connection.update is kept; the boundary day stays');
select is((select count(*)::integer from pg_catalog.pg_class where relname = 'api_logs_p20261001'), 0,
  'the expired day''s table is gone');

select is(maintenance.api_logs_set_layout(false), 'plain', 'converted back');
select is((select count(*)::integer from public.api_logs where created_at < '2026-11-01'), 3, 'every row of the partitioned table kept');

select * from finish();
rollback;
