-- Privileges of the maintenance schema (20261202005000_hygiene): anon and authenticated (and PUBLIC, which every role
-- is part of) can execute no function there and read or write no table, view or sequence, now or for a function
-- created later; only postgres and service_role (and the platform's superuser) execute anything. Each failure names
-- its offenders.
begin;
select plan(11);

-- why: the roles that must reach nothing in maintenance.
create temp table t_outsiders (role text) on commit drop;
insert into t_outsiders values ('public'), ('anon'), ('authenticated');

select is(
  (select array_agg(o.role || ' may execute ' || p.oid::regprocedure::text order by 1)
   from pg_proc p cross join t_outsiders o
   where p.pronamespace = 'maintenance'::regnamespace and has_function_privilege(o.role, p.oid, 'execute')),
  null,
  'anon, authenticated and PUBLIC can execute no function in maintenance (offenders: role may execute function)');

select is(
  (select array_agg(o.role || ' may use ' || c.oid::regclass::text order by 1)
   from pg_class c cross join t_outsiders o
   where c.relnamespace = 'maintenance'::regnamespace and c.relkind in ('r', 'p', 'v', 'm', 'f')
     and (has_table_privilege(o.role, c.oid, 'select, insert, update, delete, truncate, references, trigger')
       or has_any_column_privilege(o.role, c.oid, 'select, insert, update, references'))),
  null,
  'anon, authenticated and PUBLIC can read or write no table or view in maintenance, not even one column');

select is(
  (select array_agg(o.role || ' may use ' || c.oid::regclass::text order by 1)
   from pg_class c cross join t_outsiders o
   where c.relnamespace = 'maintenance'::regnamespace and c.relkind = 'S'
     and has_sequence_privilege(o.role, c.oid, 'usage, select, update')),
  null,
  'anon, authenticated and PUBLIC can use no sequence in maintenance');

select is(
  (select array_agg(o.role order by 1) from t_outsiders o
   where has_schema_privilege(o.role, 'maintenance', 'usage') or has_schema_privilege(o.role, 'maintenance', 'create')),
  null,
  'anon, authenticated and PUBLIC have neither USAGE nor CREATE on the schema');

-- Every other role: only postgres, service_role, superusers and roles that inherit postgres or service_role's
-- privileges execute functions here (supabase_read_only_user, which has USAGE on every schema through
-- pg_read_all_data, must not, nor the platform's service roles).
select is(
  (select array_agg(r.rolname || ' may execute ' || p.oid::regprocedure::text order by 1)
   from pg_proc p cross join pg_roles r
   where p.pronamespace = 'maintenance'::regnamespace
     and not r.rolsuper
     and not pg_has_role(r.oid, 'postgres', 'usage') and not pg_has_role(r.oid, 'service_role', 'usage')
     and has_function_privilege(r.oid, p.oid, 'execute')),
  null,
  'no other role can execute a function in maintenance (offenders: role may execute function)');

select is(
  (select array_agg(p.oid::regprocedure::text order by 1) from pg_proc p
   where p.pronamespace = 'maintenance'::regnamespace and not has_function_privilege('service_role', p.oid, 'execute')),
  null,
  'service_role, what a secret key reaches the schema as, can execute every function in maintenance');

-- A function created after the migration, as migrations create them (as postgres).
create function maintenance.pgtap_later_function() returns integer language sql as 'select 1';

select is(
  (select array_agg(o.role order by 1) from t_outsiders o
   where has_function_privilege(o.role, 'maintenance.pgtap_later_function()', 'execute')),
  null,
  'a function created in maintenance after the migration is not executable by anon, authenticated or PUBLIC');

select ok(has_function_privilege('service_role', 'maintenance.pgtap_later_function()', 'execute'),
  'service_role can execute it (the schema''s default grant)');

select ok(
  exists (select 1 from pg_default_acl d
    where d.defaclrole = 'postgres'::regrole and d.defaclnamespace = 0 and d.defaclobjtype = 'f')
  and not exists (select 1 from pg_default_acl d, aclexplode(d.defaclacl) a
    where d.defaclrole = 'postgres'::regrole and d.defaclnamespace = 0 and d.defaclobjtype = 'f' and a.grantee = 0),
  'postgres''s global default for functions is set, and grants PUBLIC nothing (the built-in default grants it EXECUTE)');

-- Outside maintenance the platform's behaviour is kept.
create function public.pgtap_later_function() returns integer language sql as 'select 1';

select ok(has_function_privilege('public', 'public.pgtap_later_function()', 'execute'),
  'a function created in public after the migration is executable by PUBLIC as before (your schemas are unchanged)');

select ok(has_function_privilege('anon', 'public.pgtap_later_function()', 'execute')
    and has_function_privilege('authenticated', 'public.pgtap_later_function()', 'execute'),
  'and by anon and authenticated, as Supabase''s default for public grants');

select * from finish();
rollback;
