-- Issue 19: audit sequencing without a global writer lock. A write
-- transaction appends its event here, unsequenced, touching no shared row;
-- the sequencer (audit/sequencer.go: one at a time across replicas, under
-- an advisory lock and the audit_head row lock) moves committed rows into
-- audit_events in batches, numbering and chaining them, and deletes them
-- here in the same transaction. A kill at any point leaves each event in
-- exactly one of the two tables.
-- id is a UUIDv7 made by the appender (roughly creation order; no sequence,
-- so a backup restores rows with their ids and nothing needs resetting).
CREATE TABLE audit_pending (
  id          TEXT PRIMARY KEY,
  at          INTEGER NOT NULL,
  actor_id    TEXT NOT NULL,
  actor_name  TEXT NOT NULL,
  role        TEXT NOT NULL,
  action      TEXT NOT NULL,
  target_type TEXT NOT NULL,
  target_id   TEXT NOT NULL,
  request_id  TEXT NOT NULL,
  client_ip   TEXT NOT NULL,
  outcome     TEXT NOT NULL,
  detail      TEXT NOT NULL
);
