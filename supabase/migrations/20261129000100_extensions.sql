-- why: the scheduler (pg_cron), the outbound HTTP queue (pg_net) and the secret store (supabase_vault) drive every
-- scheduled job. On a Supabase project `postgres` runs these through supautils, which creates each extension as
-- the platform's superuser; where they exist already (enabled in the dashboard, or the local stack, which creates
-- them as supabase_admin like the platform does) these are no-ops.
create schema if not exists extensions;
create extension if not exists pgcrypto with schema extensions;
create extension if not exists pg_cron;
create extension if not exists pg_net with schema extensions;
create extension if not exists supabase_vault;
