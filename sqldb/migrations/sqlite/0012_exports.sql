-- E-discovery exports (issue 14 §3). A row per export job, kept after the
-- package is deleted or expires (chain of custody). status: running,
-- complete, failed, interrupted (the process died while it ran), expired,
-- deleted. size and sha256 describe the plaintext ZIP; the stored object
-- is encrypted under a key derived from the master key.
CREATE TABLE exports (
  id          TEXT PRIMARY KEY,
  hold_id     TEXT NOT NULL,
  format      TEXT NOT NULL,
  status      TEXT NOT NULL,
  created_by  TEXT NOT NULL,
  created_at  INTEGER NOT NULL,
  finished_at INTEGER,
  expires_at  INTEGER NOT NULL,
  items_total INTEGER NOT NULL DEFAULT 0,
  items_done  INTEGER NOT NULL DEFAULT 0,
  bytes_total INTEGER NOT NULL DEFAULT 0,
  bytes_done  INTEGER NOT NULL DEFAULT 0,
  size        INTEGER NOT NULL DEFAULT 0,
  sha256      TEXT NOT NULL DEFAULT '',
  error       TEXT NOT NULL DEFAULT '',
  summary     TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX exports_status ON exports(status, expires_at);
