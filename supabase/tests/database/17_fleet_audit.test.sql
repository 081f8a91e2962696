-- isolation-audit and orphan-cleanup on every server (20261202006500_fleet_audit): orphan sightings per server (one
-- server's run neither ages nor forgets another's; a new URL under the same name starts again; a removed server's
-- sightings go), the earlier deploy's functions confined to the default server, "being removed" per server, and
-- which server each tenant is on (maintenance.tenant_server_of).
begin;
select plan(20);

update maintenance.settings set value = '"revalya-"' where key = 'instance_prefix';
insert into maintenance.evolution_servers (name, base_url) values ('default', 'http://pg17-default.test:8080')
on conflict (name) do nothing;
insert into maintenance.evolution_servers (name, base_url, key_secret_id)
values ('pg17-b', 'http://pg17-b.test:8080', gen_random_uuid()), ('pg17-c', 'http://pg17-c.test:8080', gen_random_uuid());

-- sightings per server
select has_column('maintenance', 'orphan_sightings', 'server', 'a sighting names its server');
select col_is_pk('maintenance', 'orphan_sightings', array['server', 'instance_name'],
  'one sighting per server and instance name');
select results_eq(
  $$select instance_name, times_seen, eligible from maintenance.sight_orphans_on('pg17-b', 'http://pg17-b.test:8080',
    '[{"name":"revalya-pg17-x","state":"close"}]', '00000000-0000-0000-0000-000000001701', '24 hours')$$,
  $$values ('revalya-pg17-x'::text, 1, false)$$, 'B: a first sighting');
select results_eq(
  $$select instance_name, times_seen from maintenance.sight_orphans_on('pg17-c', 'http://pg17-c.test:8080',
    '[{"name":"revalya-pg17-x","state":"open"}]', '00000000-0000-0000-0000-000000001701', '24 hours')$$,
  $$values ('revalya-pg17-x'::text, 1)$$, 'C: the same name is its own sighting');
select results_eq(
  $$select instance_name from maintenance.sight_orphans_on('pg17-c', 'http://pg17-c.test:8080', '[]',
    '00000000-0000-0000-0000-000000001702', '24 hours')$$,
  $$select null::text where false$$, 'C lists nothing now');
select is((select count(*)::int from maintenance.orphan_sightings where server = 'pg17-b'), 1,
  'a run on C does not forget B''s sighting');
select is((select count(*)::int from maintenance.orphan_sightings where server = 'pg17-c'), 0,
  'C''s own sighting is forgotten');
update maintenance.orphan_sightings set first_seen_at = now() - interval '25 hours' where server = 'pg17-b';
select results_eq(
  $$select times_seen, eligible from maintenance.sight_orphans_on('pg17-b', 'http://pg17-b.test:8080',
    '[{"name":"revalya-pg17-x","state":"close"}]', '00000000-0000-0000-0000-000000001703', '24 hours')$$,
  $$values (2, true)$$, 'B: a second run past the grace makes it eligible');
select results_eq(
  $$select times_seen, eligible from maintenance.sight_orphans_on('pg17-b', 'http://pg17-b-moved.test:8080',
    '[{"name":"revalya-pg17-x","state":"close"}]', '00000000-0000-0000-0000-000000001704', '24 hours')$$,
  $$values (1, false)$$, 'the server now has another URL: the sighting starts again (no inherited grace)');
select maintenance.forget_orphan_on('pg17-c', 'revalya-pg17-x');
select is((select count(*)::int from maintenance.orphan_sightings where server = 'pg17-b'), 1,
  'forgetting on C leaves B''s');
select maintenance.forget_orphan_on('pg17-b', 'revalya-pg17-x');
select is((select count(*)::int from maintenance.orphan_sightings where server = 'pg17-b'), 0, 'forgotten on B');

-- the earlier deploy's functions: the default server only
insert into maintenance.orphan_sightings (server, server_url, instance_name, first_seen_at, last_seen_at)
values ('pg17-b', 'http://pg17-b.test:8080', 'revalya-pg17-y', now(), now());
select results_eq(
  $$select instance_name from maintenance.sight_orphans('[{"name":"revalya-pg17-z","state":"close"}]',
    '00000000-0000-0000-0000-000000001705', '24 hours')$$,
  $$values ('revalya-pg17-z'::text)$$, 'sight_orphans() still works, on the default server');
select results_eq(
  $$select server from maintenance.orphan_sightings where instance_name in ('revalya-pg17-y', 'revalya-pg17-z')
    order by 1$$,
  $$values ('default'::text), ('pg17-b')$$, 'and does not forget another server''s sighting');
select maintenance.forget_orphan('revalya-pg17-y');
select is((select count(*)::int from maintenance.orphan_sightings where instance_name = 'revalya-pg17-y'), 1,
  'forget_orphan() forgets on the default server only');
delete from maintenance.evolution_servers where name = 'pg17-b';
select lives_ok($$select maintenance.sight_orphans_on('pg17-c', 'http://pg17-c.test:8080', '[]',
  '00000000-0000-0000-0000-000000001706')$$, 'the next run, on another server');
select is((select count(*)::int from maintenance.orphan_sightings where server = 'pg17-b'), 0,
  'a removed server''s sightings go at the next run');

-- being removed, per server
insert into maintenance.actions_audit (actor, action, result, dry_run, before, created_at) values
  ('pg', 'orphan.delete_instance', 'ok', false, '{"instance": "revalya-pg17-d", "server": "pg17-c"}', now()),
  ('pg', 'isolation.delete_instance', 'ok', false, '{"instance": "revalya-pg17-e"}', now());
select results_eq(
  $$select instance_name from maintenance.instances_being_removed_on('pg17-c',
    array['revalya-pg17-d', 'revalya-pg17-e'])$$,
  $$values ('revalya-pg17-d'::text)$$, 'a delete on C is being removed on C');
select results_eq(
  $$select instance_name from maintenance.instances_being_removed_on('default',
    array['revalya-pg17-d', 'revalya-pg17-e'])$$,
  $$values ('revalya-pg17-e'::text)$$,
  'not on the default server, where a delete recorded without a server (an earlier deploy''s) was made');

-- which server each tenant is on
insert into public.tenants (id, slug) values
  ('00000000-0000-0000-0000-000000001711', 'pg17-linked'), ('00000000-0000-0000-0000-000000001712', 'pg17-plain'),
  ('00000000-0000-0000-0000-000000001713', 'pg17-legacy'), ('00000000-0000-0000-0000-000000001714', 'pg17-unreg');
insert into maintenance.tenant_servers (tenant_id, server_id, placed_by)
select '00000000-0000-0000-0000-000000001711', id, 'operator' from maintenance.evolution_servers where name = 'pg17-c';
insert into public.tenant_integrations (tenant_id, integration_type, config) values
  ('00000000-0000-0000-0000-000000001712', 'whatsapp', '{"instance_name": "revalya-pg17-plain"}'),
  ('00000000-0000-0000-0000-000000001713', 'whatsapp',
    '{"evolution_api_url": "http://pg17-c.test:8080/", "evolution_api_key_secret_id": "x"}'),
  ('00000000-0000-0000-0000-000000001714', 'whatsapp',
    '{"evolution_api_url": "http://pg17-nowhere.test", "evolution_api_key_secret_id": "x"}');
select results_eq(
  $$select slug, server, source, legacy_url from maintenance.tenant_server_of where slug like 'pg17-%' order by slug$$,
  $$values ('pg17-legacy'::text, 'pg17-c'::text, 'config'::text, 'http://pg17-c.test:8080'::text),
    ('pg17-linked', 'pg17-c', 'link', null), ('pg17-plain', 'default', 'default', null),
    ('pg17-unreg', null, 'config', 'http://pg17-nowhere.test')$$,
  'link, else an older config row''s registered server (or none: null), else the default server');
select table_privs_are('maintenance', 'tenant_server_of', 'authenticated', array[]::text[],
  'authenticated cannot read which server a tenant is on');

select * from finish();
rollback;
