-- Incremental legal-hold recording (issue 14, performance). hold_items is
-- recorded in full once, at placement, then kept current by the writes
-- themselves, so a hold's report pages straight from it.
--
-- hold_recording: a hold whose hold_items are complete. A hold without a
-- row has not finished its placement's recording (or comes from a restore,
-- which does not carry this table): its next report records its whole
-- scope first. through is the last hold_changes seq a query hold's items
-- account for (0 for other holds, which writes record directly).
CREATE TABLE hold_recording (
  hold_id TEXT PRIMARY KEY,
  through BIGINT NOT NULL
);

-- hold_changes: the cases written (created, updated, given a contact)
-- while a query hold preserves, in the write's transaction; a query hold's
-- report evaluates those after its through mark. Writers are serialized on
-- the audit head (the transaction prologue), so seq order is commit order.
CREATE TABLE hold_changes (
  seq     BIGSERIAL PRIMARY KEY,
  case_id TEXT NOT NULL
);
