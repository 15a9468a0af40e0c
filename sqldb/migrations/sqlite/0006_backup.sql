-- Backups (package archive/backup). The backups themselves live in the
-- backup repository; these rows are the bookkeeping of runs on this
-- instance, and the lease that keeps one run at a time across replicas.
CREATE TABLE backup_runs (
  id          TEXT PRIMARY KEY,
  kind        TEXT NOT NULL,
  status      TEXT NOT NULL,
  origin      TEXT NOT NULL,
  started_at  INTEGER NOT NULL,
  finished_at INTEGER,
  error       TEXT NOT NULL DEFAULT '',
  report      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX backup_runs_started ON backup_runs(started_at);

-- holder is the run that owns the lease until expires_at (Unix microseconds);
-- a crashed holder's lease simply expires.
CREATE TABLE backup_lease (
  id     INTEGER PRIMARY KEY CHECK (id = 1),
  holder TEXT,
  expires_at INTEGER NOT NULL
);
INSERT INTO backup_lease (id, holder, expires_at) VALUES (1, NULL, 0);
