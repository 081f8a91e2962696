-- Retention for the tables the other parts of the bundle created (health history, notification outbox), replacing
-- the guessed names of 20261129002001_retention.sql. Policies are late-bound rows, so this does not depend on the
-- order in which those tables' migrations run.

-- why: delivered notifications (sent_at set) go after 30 days; pending and failed rows (sent_at null) stay.
insert into maintenance.retention_policies (relation, time_column, keep, description) values
  ('maintenance.notification_outbox', 'sent_at', '30 days', 'notifications delivered more than 30 days ago'),
  ('maintenance.tenant_health_history', 'at', '90 days', 'tenant health state changes')
on conflict (relation) do update set time_column = excluded.time_column, keep = excluded.keep,
  description = excluded.description;

-- why: guessed names that no part of the bundle creates; listed only as skipped in every report.
delete from maintenance.retention_policies
where relation in ('maintenance.alert_outbox', 'maintenance.webhook_receipts');
