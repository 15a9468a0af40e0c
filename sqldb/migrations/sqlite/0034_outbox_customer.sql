-- Issue 16 §2: the search index keeps a document per customer (their name,
-- which is sealed here and can be searched only there), also for customers
-- without a case. A customer's creation, rename, erasure or deletion
-- appends an outbox row naming the customer, with an empty case_id; the
-- indexer reloads the customer and writes or deletes their document.
ALTER TABLE outbox ADD COLUMN customer_id TEXT;
