-- The audit API lists a time range newest first by time, ties by seq
-- (audit.Filter.order), read down audit_events_at. On SQLite that index,
-- on (at), already holds its entries in (at, seq) order: every index
-- entry ends with the rowid, which seq is. Declaring (at, seq) would store
-- seq twice in each entry (5% more file for 200,000 events, written again
-- on every audit insert) and rebuild the index at upgrade for nothing, so
-- this version only keeps the two engines' schema versions in step.
SELECT 1;
