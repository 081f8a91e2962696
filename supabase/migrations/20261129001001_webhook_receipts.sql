-- Webhook receipts: Evolution retries a delivery it thinks failed (up to 10 attempts over ~20 minutes), so the
-- receiver may get the same envelope more than once. One row per distinct event makes a redelivery a no-op.

-- why: dedup of redelivered webhook events. dedup_key = sha256(instance, event, date_time, data) of the envelope;
-- the unique key makes "insert … on conflict do nothing" the whole dedup. Purged by cleanup-logs after 7 days
-- (maintenance.retention_policies), long after Evolution's retries have given up.
create table if not exists maintenance.webhook_receipts (
  dedup_key bytea primary key,
  tenant_slug text not null,
  event text not null,
  received_at timestamptz not null default now()
);
create index if not exists webhook_receipts_received_at_idx on maintenance.webhook_receipts (received_at);
revoke all on maintenance.webhook_receipts from public, anon, authenticated;
grant all on maintenance.webhook_receipts to service_role;
