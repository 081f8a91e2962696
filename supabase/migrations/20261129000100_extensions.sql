-- why: the scheduler (pg_cron) and the outbound HTTP queue (pg_net) drive every scheduled job. On a Supabase project
-- both are available extensions; locally pg_net is a dev stand-in installed before migrations, so it is created
-- here only where the real one exists (never a hard dependency on the stand-in).
create schema if not exists extensions;
create extension if not exists pgcrypto with schema extensions;
create extension if not exists pg_cron;
do $$
begin
  if exists (select 1 from pg_available_extensions where name = 'pg_net')
     and not exists (select 1 from pg_namespace where nspname = 'net') then
    create extension if not exists pg_net with schema extensions;
  end if;
end $$;
