-- The fanned-out health check's tables: not reachable by anon/authenticated; a tenant's shard part is stable; a
-- tick's overall result counts its shards and is never healthy while one is missed.
begin;
select plan(12);

select has_table('maintenance', 'health_ticks', 'maintenance.health_ticks exists');
select has_table('maintenance', 'health_shards', 'maintenance.health_shards exists');
select has_view('maintenance', 'health_tick_status', 'maintenance.health_tick_status exists');
select table_privs_are('maintenance', 'health_ticks', 'anon', array[]::text[], 'anon: nothing on health_ticks');
select table_privs_are('maintenance', 'health_ticks', 'authenticated', array[]::text[],
  'authenticated: nothing on health_ticks');
select table_privs_are('maintenance', 'health_shards', 'anon', array[]::text[], 'anon: nothing on health_shards');
select table_privs_are('maintenance', 'health_shards', 'authenticated', array[]::text[],
  'authenticated: nothing on health_shards');
select table_privs_are('maintenance', 'health_tick_status', 'anon', array[]::text[], 'anon cannot read the ticks');
select table_privs_are('maintenance', 'health_tick_status', 'authenticated', array[]::text[],
  'authenticated cannot read the ticks');

select is(maintenance.health_shard_part('21000000-0000-0000-0000-000000000001', 4),
  maintenance.health_shard_part('21000000-0000-0000-0000-000000000001', 4), 'a tenant''s part is stable');

insert into maintenance.health_ticks (id, shard_tenants, tenants, status)
values ('21000000-0000-0000-0000-0000000000aa', 3, 5, 'healthy');
insert into maintenance.health_shards (tick_id, server, part, parts, tenants, state, status, checked) values
  ('21000000-0000-0000-0000-0000000000aa', 'pg21-a', 0, 2, 3, 'done', 'healthy', 3),
  ('21000000-0000-0000-0000-0000000000aa', 'pg21-a', 1, 2, 2, 'missed', null, null);
select results_eq(
  $$select planned, done, missed, pending, checked, status from maintenance.health_tick_status
    where tick_id = '21000000-0000-0000-0000-0000000000aa'$$,
  $$values (2, 1, 1, 0, 3, 'degraded')$$,
  'one result per tick: a missed shard is counted and makes it degraded');
update maintenance.health_shards set state = 'done', status = 'unhealthy', checked = 2
where tick_id = '21000000-0000-0000-0000-0000000000aa' and part = 1;
select is((select status from maintenance.health_tick_status where tick_id = '21000000-0000-0000-0000-0000000000aa'),
  'unhealthy', 'the worst status of its shards');

select * from finish();
rollback;
