-- The partitioned purge stops at the rollup watermark as the plain one does: no day with rows not yet rolled up is
-- dropped, no such row purged row-wise; with no watermark yet (no refresh ever ran) there is no cap; a day at a time
-- when asked. The batched conversion's steps check their input and their order. All rolled back.
begin;
select plan(20);

delete from public.api_logs;
insert into public.api_logs (created_at, tenant_slug, service, event, status)
select '2026-10-01 00:00+00'::timestamptz + g * interval '1 hour', 'w' || (g % 3), 'evolution', 'x', 'success'
from generate_series(0, 24 * 5 - 1) g;   -- 2026-10-01 .. 2026-10-05, one row an hour
select is(maintenance.api_logs_set_layout(true), 'partitioned', 'converted to day partitions');

-- the watermark in the middle of 2026-10-03: days 01 and 02 are rolled up, 03 only until 12:00
update maintenance.api_logs_rollup_state set watermark = '2026-10-03 12:00+00' where id;
select is(maintenance.api_logs_drop_expired_partitions('2026-10-05 00:00+00'), 2,
  'only the days wholly before the watermark are dropped, not those before the cut-off');
select is((select count(*)::integer from pg_catalog.pg_class where relname in ('api_logs_p20261003', 'api_logs_p20261004')),
  2, 'the day holding the watermark and the day after it are kept');
select is((select min(created_at) from public.api_logs), '2026-10-03 00:00+00'::timestamptz,
  'no row of a dropped day is left, none after');

select is((select sum(deleted)::integer from maintenance.purge_api_logs_partitioned_batch('2026-10-05 00:00+00', 1000)),
  12, 'the row-wise batch deletes only the rows before the watermark');
select is((select min(created_at) from public.api_logs), '2026-10-03 12:00+00'::timestamptz,
  'every row at or after the watermark is kept');
select is((select count(*)::integer from public.api_logs where created_at >= '2026-10-03 12:00+00'), 60,
  'not one row not yet rolled up was purged');

-- a cut-off before the watermark: the cut-off rules
select is((select sum(deleted)::integer from maintenance.purge_api_logs_partitioned_batch('2026-10-03 18:00+00', 1000)),
  0, 'a cut-off below the watermark: nothing more (the rows before the cut-off are already gone)');

-- no watermark (no refresh ever ran): no cap
update maintenance.api_logs_rollup_state set watermark = null where id;
-- a batched conversion back to a plain table under way: no day is detached (its rows' delete would not be mirrored)
select is(maintenance.api_logs_convert_start(false), 'started', 'a conversion back is started');
select is(maintenance.api_logs_drop_expired_partitions('2026-10-05 00:00+00'), 0,
  'no day is dropped while a conversion is under way');
select is(maintenance.api_logs_convert_abort(), 'aborted', 'the conversion is aborted');
select throws_ok($$select maintenance.api_logs_drop_expired_partitions(now(), 0)$$, '22023', null,
  'max_partitions is checked');
select is(maintenance.api_logs_drop_expired_partitions('2026-10-05 00:00+00', 1), 1,
  'one day per call when asked (the oldest)');
select is((select count(*)::integer from pg_catalog.pg_class where relname = 'api_logs_p20261003'), 0,
  'the oldest day went first');
select is(maintenance.api_logs_drop_expired_partitions('2026-10-05 00:00+00'), 1,
  'without a watermark, every day before the cut-off is dropped');
select is((select min(created_at) from public.api_logs), '2026-10-05 00:00+00'::timestamptz, 'down to the cut-off');

-- the batched conversion's steps
select throws_ok($$select maintenance.api_logs_convert_start(null)$$, '22023', null, 'the layout is checked');
select is(maintenance.api_logs_convert_start(true), 'unchanged', 'already partitioned: unchanged');
select throws_ok($$select maintenance.api_logs_convert_finish()$$, '55000', null,
  'no swap without a conversion under way');
select is(maintenance.api_logs_convert_abort(), 'none', 'nothing to abort');

select * from finish();
rollback;
