-- Issue 14 leftovers. An export of an ad-hoc scope (no hold) records the
-- scope it was started with (JSON, '' for an export of a hold, whose
-- hold_id is then '').
ALTER TABLE exports ADD COLUMN scope TEXT NOT NULL DEFAULT '';
