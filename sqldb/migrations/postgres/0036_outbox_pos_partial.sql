-- Issue 19: every contact's outbox row is inserted without a position
-- and numbered after it committed. Indexing NULL positions put each row
-- in outbox_pos twice (at the INSERT, and again at the numbering, which
-- writes a new row version); no query looks for a NULL position through
-- it (the unnumbered rows have outbox_unsequenced), and every read by
-- position (pos > $1) implies pos IS NOT NULL, so the partial index serves
-- them all: one B-tree insert per contact fewer.
DROP INDEX outbox_pos;
CREATE UNIQUE INDEX outbox_pos ON outbox (pos) WHERE pos IS NOT NULL;
