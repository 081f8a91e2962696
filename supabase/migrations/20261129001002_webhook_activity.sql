-- Webhook activity per tenant: when the last event arrived and the last connection state it reported. The health
-- check reads it to spot zombies (Evolution says "open" but no event has arrived for hours).

-- why: one row per tenant, upserted by every accepted webhook event. last_event_at and last_state_at are receipt
-- times (our clock). last_state comes from connection.update events, ordered by the envelope's date_time
-- (last_state_source_at) so a late (out-of-order or retried) delivery never overwrites a newer state: date_time is
-- the Evolution server's local wall time written with a `Z` (3 h behind UTC on the official image), good for
-- ordering one server's events and nothing else.
create table if not exists maintenance.webhook_activity (
  tenant_slug text primary key,
  last_event_at timestamptz not null,
  last_event text,
  last_state text,
  last_state_at timestamptz,
  last_state_source_at timestamptz,
  events_total bigint not null default 0
);
revoke all on maintenance.webhook_activity from public, anon, authenticated;
grant all on maintenance.webhook_activity to service_role;
