-- Issue 20 §3/§4: the outbox becomes an ordered change feed that every
-- index reads in full with a cursor of its own, instead of a queue whose
-- rows went to whichever replica drained them first.
--
-- On SQLite writes are serialized, so seq (AUTOINCREMENT: never reused)
-- is already in commit order: it is the feed position, and the head is
-- sqlite_sequence's value for outbox. feed_state.head is unused here (the
-- PostgreSQL sequencer keeps it there).
CREATE TABLE feed_state (
  id             INTEGER PRIMARY KEY CHECK (id = 1),
  head           INTEGER NOT NULL,
  pruned_through INTEGER NOT NULL
);
INSERT INTO feed_state (id, head, pruned_through) VALUES (1, 0, 0);

-- One row per index reading the feed: each replica's embedded index, or
-- one shared Meilisearch index (written by the lease holder only).
-- position: every change at or below it is in the index; -1: the index
-- must be rebuilt before it can be trusted (new after pruning, or expired).
CREATE TABLE feed_consumers (
  id            TEXT PRIMARY KEY,
  kind          TEXT NOT NULL,
  position      INTEGER NOT NULL,
  owner         TEXT,
  lease_until   INTEGER NOT NULL DEFAULT 0,
  registered_at INTEGER NOT NULL,
  seen_at       INTEGER NOT NULL,
  expired_at    INTEGER
);
