-- The tenant-notice episodes (20261203013000) get a retention policy like every other growing table: a closed
-- episode goes 90 days after it closed (its two events were delivered long before: the outbox keeps its own rows).
-- An open episode has no closed_at and is never purged, so an owner still asked to pair is never told twice.
insert into maintenance.retention_policies (relation, time_column, keep, description)
values ('maintenance.tenant_notices', 'closed_at', '90 days',
  'closed tenant-notice episodes (an open one is never purged)')
on conflict (relation) do nothing;
