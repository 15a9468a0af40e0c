-- The instance's identity: backups record it, so tombstones are only ever
-- replayed from backups of the same instance. Not backed up itself: a
-- restored database is a new instance with its own id.
CREATE TABLE instance (
  id          INTEGER PRIMARY KEY CHECK (id = 1),
  instance_id TEXT NOT NULL
);
INSERT INTO instance (id, instance_id) VALUES (1, md5(random()::text || clock_timestamp()::text || pg_backend_pid()::text));
