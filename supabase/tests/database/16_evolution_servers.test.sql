-- The fleet registry: maintenance.evolution_servers, maintenance.tenant_servers, the load view, the default server's
-- registration, register/remove, the link written by migrate and its undo, and the conversion of migrated rows.
begin;
select plan(48);

-- schema and privileges
select has_table('maintenance', 'evolution_servers', 'maintenance.evolution_servers exists');
select has_table('maintenance', 'tenant_servers', 'maintenance.tenant_servers exists');
select has_view('maintenance', 'evolution_server_load', 'maintenance.evolution_server_load exists');
select table_privs_are('maintenance', 'evolution_servers', 'anon', array[]::text[], 'anon cannot read the servers');
select table_privs_are('maintenance', 'evolution_servers', 'authenticated', array[]::text[],
  'authenticated cannot read the servers');
select table_privs_are('maintenance', 'tenant_servers', 'anon', array[]::text[], 'anon cannot read the links');
select table_privs_are('maintenance', 'tenant_servers', 'authenticated', array[]::text[],
  'authenticated cannot read the links');
select table_privs_are('maintenance', 'evolution_server_load', 'authenticated', array[]::text[],
  'authenticated cannot read the load view');
select function_privs_are('maintenance', 'ensure_default_server', array['text'], 'anon', array[]::text[],
  'anon cannot register the default server');
select function_privs_are('maintenance', 'register_evolution_server',
  array['text', 'text', 'text', 'integer', 'text'], 'authenticated', array[]::text[],
  'authenticated cannot register a server');
select function_privs_are('maintenance', 'register_evolution_server',
  array['text', 'text', 'text', 'integer', 'text'], 'anon', array[]::text[], 'anon cannot register a server');
select function_privs_are('maintenance', 'remove_evolution_server', array['text'], 'authenticated', array[]::text[],
  'authenticated cannot remove a server');
select function_privs_are('maintenance', 'link_tenant_server', array['uuid', 'text', 'uuid', 'text', 'text'],
  'authenticated', array[]::text[], 'authenticated cannot link a tenant');
select function_privs_are('maintenance', 'convert_legacy_server_links', array[]::text[], 'authenticated',
  array[]::text[], 'authenticated cannot run the conversion');
select function_privs_are('maintenance', 'drop_evolution_key', array['uuid'], 'anon', array[]::text[],
  'anon cannot drop a key');
select ok(not exists (select 1 from information_schema.columns where table_schema = 'maintenance'
    and table_name in ('evolution_servers', 'evolution_server_load') and column_name ~ '(^|_)(api_)?key$'),
  'no column of the registry holds a key (only key_secret_id, a Vault id)');

-- constraints
select throws_ok($$insert into maintenance.evolution_servers (name, base_url, key_secret_id)
  values ('Bad Name', 'http://pg16-a:1', gen_random_uuid())$$, '23514', null, 'a name is a lowercase slug');
select throws_ok($$insert into maintenance.evolution_servers (name, base_url, key_secret_id)
  values ('pg16-a', 'http://pg16-a:1/', gen_random_uuid())$$, '23514', null, 'a URL is stored without trailing slash');
select throws_ok($$insert into maintenance.evolution_servers (name, base_url, key_secret_id)
  values ('pg16-a', 'http://user:pw@pg16-a:1', gen_random_uuid())$$, '23514', null,
  'a URL never carries credentials');
select throws_ok($$insert into maintenance.evolution_servers (name, base_url, key_secret_id)
  values ('pg16-a', 'ftp://pg16-a:1', gen_random_uuid())$$, '23514', null, 'a URL is http(s)');
select throws_ok($$insert into maintenance.evolution_servers (name, base_url)
  values ('pg16-a', 'http://pg16-a:1')$$, '23514', null, 'a server other than default needs a key in Vault');
select throws_ok($$insert into maintenance.evolution_servers (name, base_url, key_secret_id, capacity)
  values ('pg16-a', 'http://pg16-a:1', gen_random_uuid(), 0)$$, '23514', null, 'capacity is at least 1');

-- the default server
select is(maintenance.ensure_default_server('http://pg16-default:8080/'),
  maintenance.ensure_default_server('http://pg16-default:8080'), 'registering the default server is idempotent');
select results_eq($$select base_url, key_secret_id is null, enabled, draining from maintenance.evolution_servers
  where name = 'default'$$, $$values ('http://pg16-default:8080'::text, true, true, false)$$,
  'the default server: the normalised URL, no key in Vault (it is the environment''s)');
select throws_ok($$update maintenance.evolution_servers set key_secret_id = gen_random_uuid() where name = 'default'$$,
  '23514', null, 'the default server never names a Vault key');

-- register
create temporary table pg16 on commit drop as
  select * from maintenance.register_evolution_server('pg16-b', 'http://pg16-b:8080/', 'pg16-key-b', 10, '2.3.7');
select results_eq($$select name, base_url, tenants, capacity, version, enabled, draining from pg16$$,
  $$values ('pg16-b'::text, 'http://pg16-b:8080'::text, 0, 10, '2.3.7'::text, true, false)$$,
  'register answers the server (normalised URL, its version) and no key');
select is((select d.decrypted_secret from vault.decrypted_secrets d join maintenance.evolution_servers s
    on s.key_secret_id = d.id where s.name = 'pg16-b'), 'pg16-key-b', 'the key is in Vault, named by key_secret_id');
select throws_ok($$select * from maintenance.register_evolution_server('pg16-c', 'http://pg16-b:8080', 'k')$$,
  '23505', null, 'a URL is registered once');
select throws_ok($$select * from maintenance.register_evolution_server('pg16-b', 'http://pg16-c:8080', 'k')$$,
  '23505', null, 'a name is registered once');
select throws_ok($$select * from maintenance.register_evolution_server('default', 'http://pg16-c:8080', 'k')$$,
  '22023', null, 'nobody registers a server named default');
select is(maintenance.drop_evolution_key((select key_secret_id from maintenance.evolution_servers
    where name = 'pg16-b')), false, 'drop_evolution_key never drops a server''s key');

-- links, counts, placement order
create temporary table pg16_before on commit drop as
  select tenants from maintenance.evolution_server_load where name = 'default';
insert into public.tenants (slug) values ('pg16-t1'), ('pg16-t2'), ('pg16-t3'), ('pg16-t4');
insert into public.tenant_integrations (tenant_id, integration_type, config)
select id, 'whatsapp', jsonb_build_object('instance_name', 'revalya-' || slug) from public.tenants
where slug in ('pg16-t1', 'pg16-t2', 'pg16-t3');
select is((select tenants from maintenance.evolution_server_load where name = 'default'),
  (select tenants + 3 from pg16_before),
  'the load view counts a tenant with a WhatsApp integration and no link on the default server (not one without)');
update pg16_before set tenants = tenants + 3;
select results_eq($$select server_name, previous_server_id, server_created from maintenance.link_tenant_server(
    (select id from public.tenants where slug = 'pg16-t1'), 'http://pg16-b:8080/', null, '2.3.8', 'migrate')$$,
  $$values ('pg16-b'::text, null::bigint, false)$$, 'a link to a registered URL uses that server');
select is((select tenants from maintenance.evolution_server_load where name = 'pg16-b'), 1,
  'the linked tenant counts on its server');
select is((select tenants from maintenance.evolution_server_load where name = 'default'),
  (select tenants - 1 from pg16_before), '… and no longer on the default server');
select is((select version from maintenance.evolution_servers where name = 'pg16-b'), '2.3.8',
  'the version a migrate saw is stored');
select throws_ok($$delete from maintenance.evolution_servers where name = 'pg16-b'$$, '23503', null,
  'a server with a tenant cannot be deleted (the link''s foreign key)');
select throws_ok($$select maintenance.remove_evolution_server('default')$$, '22023', null,
  'the default server is never removed');

-- a migrate to an unregistered URL registers it (draining), and its rollback undoes both
create temporary table pg16_link on commit drop as
  select * from maintenance.link_tenant_server((select id from public.tenants where slug = 'pg16-t2'),
    'https://Pg16-New.example.com:9000/', gen_random_uuid(), null, 'migrate');
select results_eq($$select s.name, s.draining, l.server_created from pg16_link l
    join maintenance.evolution_servers s on s.id = l.server_id$$,
  $$values ('pg16-new-example-com-9000'::text, true, true)$$,
  'an unregistered URL is registered under its host''s name, draining (no automatic placements)');
select maintenance.undo_tenant_server((select id from public.tenants where slug = 'pg16-t2'), null,
  (select server_id from pg16_link));
select ok(not exists (select 1 from maintenance.tenant_servers ts join public.tenants t on t.id = ts.tenant_id
    where t.slug = 'pg16-t2') and not exists (select 1 from maintenance.evolution_servers
    where name = 'pg16-new-example-com-9000'), 'the undo removes the link and the server it registered');

-- remove
select is(maintenance.remove_evolution_server('pg16-nope'), false, 'removing an unknown server removes nothing');
delete from maintenance.tenant_servers where tenant_id = (select id from public.tenants where slug = 'pg16-t1');
create temporary table pg16_secret on commit drop as
  select key_secret_id as id from maintenance.evolution_servers where name = 'pg16-b';
select is(maintenance.remove_evolution_server('pg16-b'), true, 'a server nobody uses is removed');
select ok(not exists (select 1 from vault.secrets where id = (select id from pg16_secret)),
  '… and its key is gone from Vault');

-- the conversion of a tenant moved by migrate before the registry
select vault.create_secret('pg16-old-key', 'evolution_api_key/pg16-t3/' || gen_random_uuid()) as id \gset pg16_
update public.tenant_integrations set config = config || jsonb_build_object(
  'evolution_api_url', 'http://pg16-old:8080/', 'evolution_api_key_secret_id', :'pg16_id')
where tenant_id = (select id from public.tenants where slug = 'pg16-t3');
update public.tenant_integrations set config = config || jsonb_build_object(
  'evolution_api_url', 'http://pg16-gone:8080', 'evolution_api_key_secret_id', gen_random_uuid()::text)
where tenant_id = (select id from public.tenants where slug = 'pg16-t2');
select results_eq($$select servers_created, tenants_linked, rows_skipped >= 1
    from maintenance.convert_legacy_server_links()$$, $$values (1, 1, true)$$,
  'the conversion registers the migrated row''s server and links it; a secret gone from Vault is skipped');
select results_eq($$select s.name, s.base_url, s.key_secret_id::text, s.draining, ts.placed_by
    from maintenance.tenant_servers ts join maintenance.evolution_servers s on s.id = ts.server_id
    join public.tenants t on t.id = ts.tenant_id where t.slug = 'pg16-t3'$$,
  format($$values ('pg16-old-8080'::text, 'http://pg16-old:8080'::text, %L::text, true, 'conversion'::text)$$,
    :'pg16_id'),
  'the converted server: named after its host, keyed by the row''s secret, draining');
select results_eq($$select servers_created, tenants_linked from maintenance.convert_legacy_server_links()$$,
  $$values (0, 0)$$, 'the conversion is idempotent');

-- the default server's URL reaching a registered server: the same server, merged
select maintenance.ensure_default_server('http://pg16-old:8080');
select results_eq($$select s.name from maintenance.tenant_servers ts join maintenance.evolution_servers s
    on s.id = ts.server_id join public.tenants t on t.id = ts.tenant_id where t.slug = 'pg16-t3'$$,
  $$values ('default'::text)$$, 'a server registered under the default URL merges into the default server');
select is((select count(*)::int from maintenance.evolution_servers where base_url = 'http://pg16-old:8080'), 1,
  'one row per URL');

select * from finish();
rollback;
