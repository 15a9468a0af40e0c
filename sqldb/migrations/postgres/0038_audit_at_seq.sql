-- The audit API lists a time range newest first by time, ties by seq
-- (audit.Filter.order): read down (at, seq) it stops at the page. In seq
-- order a range could only be read down the primary key past every event
-- after it, or gathered whole and sorted: 51 ms a page for the oldest two
-- thirds of 1,000,000 events. The index on (at) alone left the ties of one
-- microsecond unordered, which the planner sorted by gathering the range
-- where a test trail held many. Still one index for the time.
DROP INDEX audit_events_at;
CREATE INDEX audit_events_at ON audit_events(at, seq);
