-- An outbox row may name the contact whose creation it records: the indexer
-- then adds that contact's document instead of reloading the whole case,
-- whose cost grows with the case. NULL means anything about the case may
-- have changed (every other write), and the case is reloaded whole.
ALTER TABLE outbox ADD COLUMN contact_id TEXT;
