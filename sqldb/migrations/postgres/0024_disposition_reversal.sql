-- Undo of a mistaken disposal (issue 17 §2): a disposition brought back
-- from a backup by `casevault backup restore --undo-run` (or --case --yes)
-- keeps its record, marked reversed: when, and by whom from which backup.
-- A reversed disposition is never replayed by a restore, and its blobs are
-- no longer the sweep's to remove. Erasures (destroyed customer keys) are
-- never reversed.
ALTER TABLE dispositions ADD COLUMN reversed_at BIGINT;
ALTER TABLE dispositions ADD COLUMN reversed_by TEXT;
