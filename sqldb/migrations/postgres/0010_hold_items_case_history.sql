-- Sticky legal-hold coverage (issue 14): what a hold has ever covered, kept
-- after the hold is released for its report. contact_id is '' when the hold
-- covers the case as a whole (case, customer and query scopes), a contact
-- id when it covers that contact only (scopes bounded by a time range).
-- why names the scope parts that matched; since is when it was recorded.
CREATE TABLE hold_items (
  hold_id    TEXT NOT NULL,
  case_id    TEXT NOT NULL,
  contact_id TEXT NOT NULL DEFAULT '',
  customer_id TEXT NOT NULL,
  since      BIGINT NOT NULL,
  why        TEXT NOT NULL,
  PRIMARY KEY (hold_id, case_id, contact_id)
);
-- Sweeps and deletions ask "which holds recorded this case?".
CREATE INDEX hold_items_case ON hold_items(case_id);

-- A case's history: one row per update that changed a recorded field
-- (status, priority, assignee, tags, subject), changes as JSON
-- {"field": {"from": old, "to": new}}, who and when.
CREATE TABLE case_history (
  id         TEXT PRIMARY KEY,
  case_id    TEXT NOT NULL,
  at         BIGINT NOT NULL,
  actor_name TEXT NOT NULL,
  actor_role TEXT NOT NULL,
  changes    TEXT NOT NULL
);
CREATE INDEX case_history_case ON case_history(case_id, id);
