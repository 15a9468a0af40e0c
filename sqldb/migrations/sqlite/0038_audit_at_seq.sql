-- The audit API lists a time range newest first by time, ties by seq
-- (audit.Filter.order): read down (at, seq) it stops at the page. SQLite
-- keyed the index on (at) by the rowid, which seq is, so this index holds
-- what that one did; it is written out so that both engines declare the
-- order the list reads, and keep one schema version.
DROP INDEX audit_events_at;
CREATE INDEX audit_events_at ON audit_events(at, seq);
