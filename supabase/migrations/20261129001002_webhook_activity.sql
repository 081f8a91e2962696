-- Webhook activity per tenant: when the last event arrived and the last connection state it reported. The health
-- check reads it to spot zombies (Evolution says "open" but no event has arrived for hours).

-- why: one row per tenant, upserted by every accepted webhook event. last_event_at is the receipt time (our clock);
-- last_state/last_state_at come from connection.update events, ordered by the envelope's date_time so a late
-- (out-of-order or retried) delivery never overwrites a newer state.
create table if not exists maintenance.webhook_activity (
  tenant_slug text primary key,
  last_event_at timestamptz not null,
  last_event text,
  last_state text,
  last_state_at timestamptz,
  events_total bigint not null default 0
);
revoke all on maintenance.webhook_activity from public, anon, authenticated;
grant all on maintenance.webhook_activity to service_role;
