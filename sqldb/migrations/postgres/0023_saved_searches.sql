-- Saved searches (issue 16 §2): a named query and filters, per owner (the
-- token that saved it; a console user later). Names are unique per owner.
-- filters is a JSON object of GET /search parameters to lists of values.
CREATE TABLE saved_searches (
  id         TEXT PRIMARY KEY,
  owner      TEXT NOT NULL,
  name       TEXT NOT NULL,
  q          TEXT NOT NULL,
  filters    TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  UNIQUE (owner, name)
);
