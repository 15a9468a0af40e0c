-- Per-customer data keys, wrapped (AES-256-GCM) under the master key.
-- Destroying a key (crypto-shredding) nulls wrapped_key and sets
-- destroyed_at; the row stays so that no new key is made for the customer.
-- No foreign key to customers: the tombstone must outlive the customer row.
CREATE TABLE customer_keys (
  customer_id  TEXT PRIMARY KEY,
  wrapped_key  TEXT,
  created_at   INTEGER NOT NULL,
  destroyed_at INTEGER
);
