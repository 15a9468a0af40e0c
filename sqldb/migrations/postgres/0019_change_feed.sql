-- Issue 20 §3/§4: the outbox becomes an ordered change feed that every
-- index reads in full with a cursor of its own, instead of a queue whose
-- rows went to whichever replica drained them first.
--
-- A row's position (pos) is given after it committed, by the sequencer
-- (sqlstore/outbox.go): one serialized step numbers every committed row
-- without one, above the head. A BIGSERIAL seq alone commits out of order
-- (seq 5 after seq 6), and a cursor at 6 would skip 5 for ever; a row
-- numbered after its commit can never appear below a cursor.
ALTER TABLE outbox ADD COLUMN pos BIGINT;
UPDATE outbox SET pos = seq;
CREATE UNIQUE INDEX outbox_pos ON outbox (pos);
CREATE INDEX outbox_unsequenced ON outbox (seq) WHERE pos IS NULL;

-- head: the highest position assigned; pruned_through: every row at or
-- below it is gone, so a consumer behind it must rebuild.
CREATE TABLE feed_state (
  id             INTEGER PRIMARY KEY CHECK (id = 1),
  head           BIGINT NOT NULL,
  pruned_through BIGINT NOT NULL
);
INSERT INTO feed_state (id, head, pruned_through) VALUES (1, COALESCE((SELECT MAX(seq) FROM outbox), 0), 0);

-- One row per index reading the feed: each replica's embedded index, or
-- one shared Meilisearch index (written by the lease holder only).
-- position: every change at or below it is in the index; -1: the index
-- must be rebuilt before it can be trusted (new after pruning, or expired).
CREATE TABLE feed_consumers (
  id            TEXT PRIMARY KEY,
  kind          TEXT NOT NULL,
  position      BIGINT NOT NULL,
  owner         TEXT,
  lease_until   BIGINT NOT NULL DEFAULT 0,
  registered_at BIGINT NOT NULL,
  seen_at       BIGINT NOT NULL,
  expired_at    BIGINT
);
