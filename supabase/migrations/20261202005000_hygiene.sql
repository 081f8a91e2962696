-- Nothing in `maintenance` is executable by PUBLIC, anon or authenticated: the functions that exist now, and those
-- created later.
--
-- Why the earlier `alter default privileges in schema maintenance revoke all on functions from public` did not do
-- it: Postgres grants EXECUTE to PUBLIC on every new function by its built-in, global default, and a per-schema
-- default can only add to the global one, never take from it. So a function whose migration forgot its own
-- `revoke … from public` (maintenance.job_last_runs) was executable by every role, and only the missing USAGE on the
-- schema kept anon and authenticated out; roles that do have USAGE everywhere (pg_read_all_data, and
-- supabase_read_only_user through it) could call it, and call security definer functions that write.

-- why: every function and procedure of the schema as it is now (service_role's explicit grants are untouched).
revoke execute on all routines in schema maintenance from public, anon, authenticated;

-- why: functions created later. The global default of each role that creates functions here loses PUBLIC's EXECUTE:
-- postgres (`supabase db push` and the functions connect as postgres, dev/stack.ts likewise), supabase_admin (the
-- platform's superuser), and the role running this migration. Only a member of a role may change its defaults: on a
-- Supabase project postgres is not a member of supabase_admin, so there its defaults stay as they are (it creates
-- nothing in maintenance; supabase/tests/database/15_privileges.test.sql lists any function anon or authenticated
-- could execute, whoever owns it). Outside maintenance nothing changes: in every schema where the role may create
-- functions today, a per-schema default grants PUBLIC its EXECUTE back, so your own functions in public (and the
-- other schemas that exist now) are granted exactly as before. A schema created later gets the stricter default.
do $$
declare
  r text;
  s text;
begin
  foreach r in array array(select distinct x from unnest(array[current_user::text, 'postgres', 'supabase_admin']) x) loop
    if not exists (select 1 from pg_roles where rolname = r) then
      continue;
    end if;
    if not pg_has_role(current_user, r, 'MEMBER') then
      raise notice 'default privileges of % left as they are: % is not a member of it', r, current_user;
      continue;
    end if;
    execute format('alter default privileges for role %I revoke execute on functions from public', r);
    for s in
      select n.nspname from pg_namespace n
      where n.nspname <> 'maintenance' and n.nspname <> 'information_schema' and n.nspname !~ '^pg_'
        and has_schema_privilege(r, n.oid, 'CREATE')
      order by 1
    loop
      execute format('alter default privileges for role %I in schema %I grant execute on functions to public', r, s);
    end loop;
    execute format(
      'alter default privileges for role %I in schema maintenance revoke execute on functions from anon, authenticated',
      r);
    -- service_role is what the dashboard and a secret key reach maintenance as: it keeps its grant on new functions.
    execute format('alter default privileges for role %I in schema maintenance grant execute on functions to service_role', r);
  end loop;
end;
$$;
