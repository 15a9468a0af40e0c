-- Issue 17 §4: the SHA-256 of an attachment's blob as the store holds it
-- (its encrypted bytes), recorded at upload. A backup copies blobs
-- verbatim and names each copy by this digest, so it reads the bytes
-- without hashing them again; NULL (rows from before this migration, or
-- restored from an older backup) means the backup hashes the blob.
ALTER TABLE attachments ADD COLUMN stored_sha256 TEXT;
