-- S3 legal-hold flags as casevault last set them (issue 21 §5-6): one row
-- per blob whose flag is on, with the object version it is on (a flag is
-- per version) and when it was last read back from the bucket. Not backed
-- up: it describes one bucket, and after a restore the flags are set again
-- and recorded anew.
CREATE TABLE legal_hold_flags (
  blob_key   TEXT PRIMARY KEY,
  version_id TEXT NOT NULL,
  set_at     INTEGER NOT NULL,
  checked_at INTEGER NOT NULL
);
-- The reconciler reads back the flags checked longest ago first.
CREATE INDEX legal_hold_flags_checked ON legal_hold_flags(checked_at, blob_key);

-- Each hold's mirroring onto those flags as the last pass (placement,
-- upload, reconciler) left it: complete, or pending with the count of
-- blobs whose flag could not be set (or cleared) and why.
CREATE TABLE hold_mirroring (
  hold_id    TEXT PRIMARY KEY,
  state      TEXT NOT NULL,
  blobs      INTEGER NOT NULL,
  pending    INTEGER NOT NULL,
  missing    INTEGER NOT NULL,
  checked_at INTEGER NOT NULL,
  error      TEXT NOT NULL DEFAULT ''
);
