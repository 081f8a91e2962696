-- Dev-only: what a Supabase project's database has beyond the pinned role SQL that dev/stack.ts runs first
-- (supabase/postgres at 7db7e1a: init-scripts 00-03, then the demote, pg_cron/pg_net permission and cron.job
-- revoke migrations, as `migrations/db/migrate.sh` does). Run once, as supabase_admin, on a new cluster.
-- Each statement names the supabase/postgres migration or extension script it reproduces; nothing here grants
-- `postgres` more than a Supabase project does.

-- Later role grants of migrations/db/migrations/:
grant supabase_auth_admin, supabase_storage_admin to postgres;    -- 20220609081115_grant-supabase-auth-admin-and-…
alter role authenticator set statement_timeout = '8s';             -- 20221028101028_set_authenticator_timeout
revoke supabase_admin from authenticator;                          -- 20221103090837_revoke_admin
grant anon, authenticated, service_role to postgres;               -- 20230201083204_grant_auth_roles_to_postgres
grant all privileges on all tables in schema extensions to postgres with grant option;   -- 20230224042246_grant_…
grant all privileges on all routines in schema extensions to postgres with grant option;
grant all privileges on all sequences in schema extensions to postgres with grant option;
alter default privileges in schema extensions grant all on tables to postgres with grant option;
alter default privileges in schema extensions grant all on routines to postgres with grant option;
alter default privileges in schema extensions grant all on sequences to postgres with grant option;
grant pg_monitor to postgres;                                      -- 20230306081037_grant_pg_monitor_to_postgres
alter role authenticated inherit;                                  -- 20230529180330_alter_api_roles_for_inherit
alter role anon inherit;                                           --   (its pgsodium grant is left out: no pgsodium)
alter role service_role inherit;
grant pg_read_all_data, pg_signal_backend to postgres;             -- 20240606060239_grant_predefined_roles_to_postgres

-- The extensions the bundle needs, created by the platform's superuser as enabling them in the dashboard does
-- (on Supabase, supautils runs a `create extension` of postgres's as supabase_admin). The event triggers of the
-- init scripts (issue_pg_cron_access, issue_pg_net_access) fire here and grant postgres what it may use.
create extension if not exists pg_cron;
create extension if not exists pg_net with schema extensions;
create extension if not exists supabase_vault;

-- supabase_vault's after-create script (ansible/files/postgresql_extension_custom_scripts/supabase_vault/
-- after-create.sql, from vault 0.3 on; supabase/postgres#1539): postgres manages secrets, service_role may too.
grant usage on schema vault to postgres with grant option;
grant select, delete on vault.secrets, vault.decrypted_secrets to postgres with grant option;
grant execute on function vault.create_secret, vault.update_secret, vault._crypto_aead_det_decrypt
  to postgres with grant option;
grant usage on schema vault to service_role;
grant select, delete on vault.secrets, vault.decrypted_secrets to service_role;
grant execute on function vault.create_secret, vault.update_secret, vault._crypto_aead_det_decrypt to service_role;
