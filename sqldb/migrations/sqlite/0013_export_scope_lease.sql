-- Issue 14 leftovers. An export of an ad-hoc scope (no hold) records the
-- scope it was started with (JSON, '' for an export of a hold, whose
-- hold_id is then '').
ALTER TABLE exports ADD COLUMN scope TEXT NOT NULL DEFAULT '';

-- A running export's lease (unix micros): the process running it renews it
-- while it runs, and start-up recovery marks interrupted only the running
-- exports whose lease has expired, not those another replica is running.
ALTER TABLE exports ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;

-- Events by target id alone: an export reads its items' events by
-- target_id IN (...), and the audit query filters target_id without
-- target_type; audit_events_target leads with target_type, so neither
-- could use it. seq second: both read in seq order.
CREATE INDEX audit_events_target_id ON audit_events(target_id, seq);

-- When the S3 object-lock legal-hold flags of a released hold were cleared
-- (unix micros): at the end of its release grace, by a sweep, not at
-- release, so the storage keeps preserving through the grace too.
ALTER TABLE legal_holds ADD COLUMN flags_cleared_at INTEGER;
