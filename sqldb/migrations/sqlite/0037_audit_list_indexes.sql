-- The audit API lists a target type's events newest first (target=TYPE).
-- With (target_type, target_id, seq) neither engine could read them in seq
-- order: both gathered every event of the type and sorted them before the
-- LIMIT, for every page. (target_type, seq) reads them in order. A type
-- with an id (target=TYPE:ID) matches two columns of (target_id,
-- target_type, seq), which both planners prefer to the one of
-- (target_type, seq) without statistics too, and which still serves every
-- lookup by id alone (the export's scope). The count of indexes, and so
-- what each event costs to write, stays the same.
--
-- Outcomes other than ok (denials, errors) are a sliver of the trail, and a
-- filter on one read the whole trail down the primary key to fill a page.
-- A partial index of their seq lists them in order and costs an ok event
-- nothing.
DROP INDEX audit_events_target;
DROP INDEX audit_events_target_id;
CREATE INDEX audit_events_target_type ON audit_events(target_type, seq);
CREATE INDEX audit_events_target_id ON audit_events(target_id, target_type, seq);
CREATE INDEX audit_events_not_ok ON audit_events(seq) WHERE outcome <> 'ok';
