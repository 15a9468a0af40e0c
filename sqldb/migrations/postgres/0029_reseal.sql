-- Issue 15 §1 (legacy rows): the resumable pass that seals personal fields
-- written in clear before sealing existed and fills missing e-mail/phone
-- lookup hashes (sqlstore/reseal.go). One row: where the pass is (the
-- table being walked and the last id done in it), its counters, and the
-- lease of the one process running it (replicas and the CLI share it).
CREATE TABLE reseal_state (
  id          INTEGER PRIMARY KEY CHECK (id = 1),
  phase       TEXT NOT NULL,            -- customers, cases, case_history, contacts, done
  after_id    TEXT NOT NULL,            -- last id done in phase ('' = from the start)
  scanned     BIGINT NOT NULL DEFAULT 0,
  sealed      BIGINT NOT NULL DEFAULT 0, -- rows with a field sealed
  hashed      BIGINT NOT NULL DEFAULT 0, -- customers given a lookup hash
  skipped     BIGINT NOT NULL DEFAULT 0, -- rows left (changed meanwhile, or no key)
  owner       TEXT,
  lease_until BIGINT,
  started_at  BIGINT NOT NULL,
  updated_at  BIGINT NOT NULL,
  finished_at BIGINT
);

-- The exact lookup (sqlstore/lookup.go) orders its matches by id: an index
-- on the hash alone let PostgreSQL, before the table's first ANALYZE (a
-- bulk load, a restore), walk the primary key in id order filtering every
-- row (513 ms at 1M customers, seen in the lookup benchmark). With id in
-- the index the match and its order come from one index range.
DROP INDEX customers_email_hash;
DROP INDEX customers_phone_hash;
CREATE INDEX customers_email_hash ON customers(email_hash, id) WHERE email_hash IS NOT NULL;
CREATE INDEX customers_phone_hash ON customers(phone_hash, id) WHERE phone_hash IS NOT NULL;
