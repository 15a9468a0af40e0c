-- Hold reports and release grace (issue 14 §2). A released hold keeps
-- preserving until grace_until (released_at + the schedule's
-- hold_release_grace at release), and may be reinstated until then; the last
-- reinstatement is kept with the hold (every one is audited).
ALTER TABLE legal_holds ADD COLUMN grace_until INTEGER;
ALTER TABLE legal_holds ADD COLUMN reinstated_by TEXT;
ALTER TABLE legal_holds ADD COLUMN reinstated_at INTEGER;
-- GET /holds?matter= and the matter view.
CREATE INDEX legal_holds_matter ON legal_holds(matter, id);
-- The report's custodian filter and counts per custodian.
CREATE INDEX hold_items_custodian ON hold_items(hold_id, customer_id, case_id, contact_id);
