-- Issue 15 §1, key escrow: customer data keys are kept out of the backups'
-- table dumps, in an escrow in the backup repository (one object per
-- customer, archive/backup/escrow.go) that erasure deletes. An erasure
-- records here, in its own transaction, that the customer's escrow entry
-- must go; the row is removed once every version of the entry is purged
-- (right after the commit, or by the next backup run when the repository
-- was unreachable: a run does not finish while a row is left). /readyz
-- shows how many are pending. Not backed up: it is this instance's work
-- queue, and a restored instance's first backup run purges the entries of
-- every destroyed key anyway.
CREATE TABLE key_escrow_pending (
  customer_id TEXT PRIMARY KEY,
  erased_at   BIGINT NOT NULL,
  attempts    BIGINT NOT NULL DEFAULT 0,
  last_error  TEXT NOT NULL DEFAULT ''
);
