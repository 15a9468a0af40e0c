-- Issue 15: personal fields are sealed under the customer's data key
-- (sqlstore/fields.go), so equality on e-mail and phone goes through keyed
-- hashes: HMAC-SHA256 (hex) under a key derived from the master key, of the
-- normalised value (e-mail trimmed and lower-cased, phone its digits).
-- NULL when the value is empty or the row predates sealing; such rows are
-- hashed when sealed (Store.SealExisting) or next written.
ALTER TABLE customers ADD COLUMN email_hash TEXT;
ALTER TABLE customers ADD COLUMN phone_hash TEXT;
CREATE INDEX customers_email_hash ON customers(email_hash) WHERE email_hash IS NOT NULL;
CREATE INDEX customers_phone_hash ON customers(phone_hash) WHERE phone_hash IS NOT NULL;
