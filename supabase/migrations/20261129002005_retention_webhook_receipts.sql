-- 20261129002004 removed the guessed maintenance.webhook_receipts policy, but the webhook receiver does create that
-- table (20261129001001_webhook_receipts.sql) and relies on this policy: put it back.

-- why: webhook dedup receipts go after 7 days, long after Evolution's retries (~20 minutes) have given up.
insert into maintenance.retention_policies (relation, time_column, keep, description) values
  ('maintenance.webhook_receipts', 'received_at', '7 days', 'webhook dedup receipts')
on conflict (relation) do update set time_column = excluded.time_column, keep = excluded.keep,
  description = excluded.description;
