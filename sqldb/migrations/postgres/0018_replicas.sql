-- Issue 20 §14–16: what replicas sharing one database must agree on.

-- The master key's check value: HMAC-SHA256 of a constant under the master
-- key (hex), recorded by the first process that proves its key (a fresh
-- database, or one whose wrapped data keys the key unwraps). A process
-- whose key gives another value refuses to start instead of wrapping new
-- customers' keys under a key no other replica has. Not backed up: a
-- restored database proves the key it is started with against the data
-- keys it holds, and records it then.
CREATE TABLE key_check (
  id         INTEGER PRIMARY KEY CHECK (id = 1),
  kcv        TEXT NOT NULL,
  created_at BIGINT NOT NULL
);

-- The last claimed tick (the cron's scheduled time, unix micros) of each
-- scheduled job: the replica whose claim moves it forward runs that tick,
-- every other replica skips it, so a job runs once per tick whichever
-- replicas' crons fire.
CREATE TABLE job_ticks (
  job        TEXT PRIMARY KEY,
  tick       BIGINT NOT NULL,
  owner      TEXT NOT NULL,
  claimed_at BIGINT NOT NULL
);

-- The replicas serving this database, each renewing seen_at while it runs
-- (a row not renewed for a while is a replica that is gone). A replica
-- records where its backups go and to which recipients (a digest), so
-- that one with a local repository, or another repository or recipients,
-- refuses to back up while others are live.
CREATE TABLE replicas (
  id                TEXT PRIMARY KEY,
  host              TEXT NOT NULL,
  started_at        BIGINT NOT NULL,
  seen_at           BIGINT NOT NULL,
  backup_repo       TEXT NOT NULL,
  backup_recipients TEXT NOT NULL
);
