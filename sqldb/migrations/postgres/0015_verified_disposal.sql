-- Disposal that is verified, and records that do not tell what they
-- destroyed (issue 21 §1, §3).
-- blob_keys: the attachment blobs an act disposed of (JSON list; NULL when
-- none); blobs_gone_at: when every version of each was removed and a
-- listing confirmed none is left. A NULL blobs_gone_at with blob_keys set
-- is a disposal the next sweep finishes.
ALTER TABLE dispositions ADD COLUMN blob_keys TEXT;
ALTER TABLE dispositions ADD COLUMN blobs_gone_at BIGINT;
CREATE INDEX dispositions_blobs_pending ON dispositions(at, id) WHERE blob_keys IS NOT NULL AND blobs_gone_at IS NULL;
-- content_sha256 is now an HMAC-SHA256 under a key derived from the master
-- key. The unkeyed SHA-256 sums written before were recoverable by guessing
-- (a redacted IP address in under a second): they are erased.
UPDATE dispositions SET content_sha256 = '';
