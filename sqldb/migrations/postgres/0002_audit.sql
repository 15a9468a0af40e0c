-- Audit trail (package audit). Events form a SHA-256 hash chain in seq order.
-- seq is assigned by the appender from audit_head, never by AUTOINCREMENT, so
-- a deleted event shows as a gap. Text columns hold exactly the bytes that were
-- hashed (detail is canonical JSON text, not a JSON type that would reformat it).
CREATE TABLE audit_events (
  seq         BIGINT PRIMARY KEY,
  at          BIGINT NOT NULL,
  actor_id    TEXT NOT NULL,
  actor_name  TEXT NOT NULL,
  role        TEXT NOT NULL,
  action      TEXT NOT NULL,
  target_type TEXT NOT NULL,
  target_id   TEXT NOT NULL,
  request_id  TEXT NOT NULL,
  client_ip   TEXT NOT NULL,
  outcome     TEXT NOT NULL,
  detail      TEXT NOT NULL,
  prev_hash   TEXT NOT NULL,
  hash        TEXT NOT NULL
);
CREATE INDEX audit_events_at ON audit_events(at);
CREATE INDEX audit_events_actor_id ON audit_events(actor_id, seq);
CREATE INDEX audit_events_actor_name ON audit_events(actor_name, seq);
CREATE INDEX audit_events_action ON audit_events(action, seq);
CREATE INDEX audit_events_target ON audit_events(target_type, target_id, seq);

-- One row: the chain head (last seq and its hash) so that appending never
-- scans, and the checkpoint left by pruning (seq and hash of the last removed
-- event; 0 and 64 zeros when nothing was pruned). Appenders serialize on it.
CREATE TABLE audit_head (
  id              INTEGER PRIMARY KEY CHECK (id = 1),
  seq             BIGINT NOT NULL,
  hash            TEXT NOT NULL,
  checkpoint_seq  BIGINT NOT NULL,
  checkpoint_hash TEXT NOT NULL,
  checkpoint_at   BIGINT NOT NULL
);
INSERT INTO audit_head (id, seq, hash, checkpoint_seq, checkpoint_hash, checkpoint_at)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000',
        0, '0000000000000000000000000000000000000000000000000000000000000000', 0);
