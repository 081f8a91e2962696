-- The audit trail of every action that changes something (isolation fixes, orphan deletions, fix / reconnect /
-- reset / migrate), including the ones that failed or were rolled back, and the dry runs that only planned them.

-- why: who did what to which tenant, when, with the state before and after and how it ended. Rows are written once
-- and never rewritten (a trigger refuses updates); cleanup-logs purges them after a year (retention policy below).
-- Secrets never reach this table: shared/audit.ts redacts key-like fields before the insert.
create table if not exists maintenance.actions_audit (
  id bigint generated always as identity primary key,
  created_at timestamptz not null default now(),
  actor text not null check (length(actor) between 1 and 200),
  action text not null check (action ~ '^[a-z][a-z0-9_.-]*$'),
  tenant_slug text,
  operation_id uuid,
  dry_run boolean not null default false,
  before jsonb,
  after jsonb,
  result text not null check (result in ('ok', 'planned', 'failed', 'rolled_back', 'skipped', 'refused')),
  error text,
  check (result not in ('failed', 'rolled_back', 'refused') or error is not null)
);
comment on column maintenance.actions_audit.operation_id is
  'Groups the steps of one operation (e.g. the backup, create, save and retire steps of one migrate)';
comment on column maintenance.actions_audit.result is
  'ok: done; planned: dry run, nothing changed; failed: the step failed; rolled_back: undone after a later step '
  'failed; skipped: nothing to do or not allowed now (budget, grace period); refused: the request was rejected '
  '(e.g. wrong confirm)';
create index if not exists actions_audit_tenant_created_idx on maintenance.actions_audit (tenant_slug, created_at desc);
create index if not exists actions_audit_action_created_idx on maintenance.actions_audit (action, created_at desc);
create index if not exists actions_audit_created_idx on maintenance.actions_audit (created_at);
create index if not exists actions_audit_operation_idx on maintenance.actions_audit (operation_id)
  where operation_id is not null;
revoke all on maintenance.actions_audit from public, anon, authenticated;
grant select, insert, delete on maintenance.actions_audit to service_role;
revoke update, truncate on maintenance.actions_audit from service_role;

-- why: an audit row is a record of what happened; rewriting it would make the trail lie. Deletion stays possible
-- for retention.
create or replace function maintenance.actions_audit_immutable()
returns trigger language plpgsql set search_path = '' as $$
begin
  raise exception 'maintenance.actions_audit rows are immutable (row %)', old.id using errcode = '55000';
end;
$$;
revoke all on function maintenance.actions_audit_immutable() from public, anon, authenticated;
drop trigger if exists actions_audit_immutable on maintenance.actions_audit;
create trigger actions_audit_immutable before update on maintenance.actions_audit
  for each row execute function maintenance.actions_audit_immutable();

-- why: the audit trail is kept a year, then purged by cleanup-logs like every other table with a retention.
do $$
begin
  if to_regclass('maintenance.retention_policies') is not null then
    insert into maintenance.retention_policies (relation, time_column, keep, description)
    values ('maintenance.actions_audit', 'created_at', '365 days', 'audit of changing actions (whatsapp-ops, isolation, orphans)')
    on conflict (relation) do nothing;
  end if;
end;
$$;
