-- Retention: versioned schedules, legal holds (never deleted), disposition
-- records (what was destroyed and why, never the content), sweep runs.
-- Timestamps are Unix microseconds UTC; lists and documents are JSON text.
CREATE TABLE retention_schedules (
  version    INTEGER PRIMARY KEY,
  document   TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  actor      TEXT NOT NULL DEFAULT ''
);

-- One row serializing schedule changes, hold changes and sweep batches:
-- placing a hold waits for a sweep batch in flight, and the batch re-reads
-- the holds after taking the row, so no hold can slip in between.
CREATE TABLE retention_state (
  id            INTEGER PRIMARY KEY,
  holds_version INTEGER NOT NULL,
  -- the schedule version every stored retain_until follows; the sweeper
  -- finishes a pending recompute before it trusts the dates
  recomputed_version INTEGER NOT NULL
);
INSERT INTO retention_state (id, holds_version, recomputed_version) VALUES (1, 0, 1);

CREATE TABLE legal_holds (
  id             TEXT PRIMARY KEY,
  matter         TEXT NOT NULL,
  reason         TEXT NOT NULL,
  scope          TEXT NOT NULL,
  placed_by      TEXT NOT NULL,
  placed_at      INTEGER NOT NULL,
  released_by    TEXT,
  released_at    INTEGER,
  release_reason TEXT
);
CREATE INDEX legal_holds_active ON legal_holds(id) WHERE released_at IS NULL;

CREATE TABLE dispositions (
  id             TEXT PRIMARY KEY,
  run_id         TEXT NOT NULL,
  contact_id     TEXT NOT NULL,
  case_id        TEXT NOT NULL,
  customer_id    TEXT NOT NULL,
  purposes       TEXT NOT NULL,
  rule           TEXT NOT NULL,
  action         TEXT NOT NULL,
  detail         TEXT NOT NULL DEFAULT '',
  at             INTEGER NOT NULL,
  content_sha256 TEXT NOT NULL
);
CREATE INDEX dispositions_contact ON dispositions(contact_id);
CREATE INDEX dispositions_case ON dispositions(case_id);

CREATE TABLE retention_runs (
  id          TEXT PRIMARY KEY,
  status      TEXT NOT NULL,
  dry_run     INTEGER NOT NULL,
  started_at  INTEGER NOT NULL,
  finished_at INTEGER,
  report      TEXT NOT NULL DEFAULT '{}'
);

ALTER TABLE contacts ADD COLUMN anonymized_at INTEGER;
-- Category minimization finds due rows by capture time among those that
-- still hold the category, so a sweep with nothing due reads no rows.
CREATE INDEX contacts_location_due ON contacts(occurred_at, id) WHERE location IS NOT NULL;
CREATE INDEX contacts_device_due ON contacts(occurred_at, id) WHERE device IS NOT NULL;
CREATE INDEX contacts_retain_due ON contacts(retain_until, id) WHERE retain_until IS NOT NULL;
