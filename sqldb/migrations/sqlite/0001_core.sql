-- Core schema. Timestamps are Unix microseconds (UTC) in both dialects so that
-- logical backups move between engines unchanged; lists are JSON arrays.
CREATE TABLE customers (
  id           TEXT PRIMARY KEY,
  external_ref TEXT NOT NULL DEFAULT '',
  name         TEXT NOT NULL,
  email        TEXT NOT NULL DEFAULT '',
  phone        TEXT NOT NULL DEFAULT '',
  locale       TEXT NOT NULL DEFAULT '',
  consent_location        INTEGER NOT NULL DEFAULT 0,
  consent_marketing       INTEGER NOT NULL DEFAULT 0,
  consent_personalization INTEGER NOT NULL DEFAULT 0,
  created_at   INTEGER NOT NULL,
  updated_at   INTEGER NOT NULL
);
CREATE INDEX customers_external_ref ON customers(external_ref) WHERE external_ref <> '';

CREATE TABLE counters (
  name  TEXT PRIMARY KEY,
  value INTEGER NOT NULL
);
INSERT INTO counters(name, value) VALUES ('case_number', 0);

CREATE TABLE cases (
  id          TEXT PRIMARY KEY,
  number      INTEGER NOT NULL UNIQUE,
  customer_id TEXT NOT NULL REFERENCES customers(id),
  subject     TEXT NOT NULL,
  status      TEXT NOT NULL,
  priority    TEXT NOT NULL,
  channel     TEXT NOT NULL,
  tags        TEXT NOT NULL DEFAULT '[]',
  assignee    TEXT NOT NULL DEFAULT '',
  created_at  INTEGER NOT NULL,
  updated_at  INTEGER NOT NULL,
  closed_at   INTEGER
);
CREATE INDEX cases_customer ON cases(customer_id, id);
CREATE INDEX cases_status ON cases(status, id);
CREATE INDEX cases_assignee ON cases(assignee, id);

CREATE TABLE contacts (
  id           TEXT PRIMARY KEY,
  case_id      TEXT NOT NULL REFERENCES cases(id),
  customer_id  TEXT NOT NULL,
  channel      TEXT NOT NULL,
  direction    TEXT NOT NULL,
  author       TEXT NOT NULL,
  body         TEXT NOT NULL,
  occurred_at  INTEGER NOT NULL,
  created_at   INTEGER NOT NULL,
  purposes     TEXT NOT NULL,
  categories   TEXT NOT NULL,
  location     TEXT,
  device       TEXT,
  retain_until INTEGER
);
CREATE INDEX contacts_case ON contacts(case_id, occurred_at, id);
CREATE INDEX contacts_retain_until ON contacts(retain_until) WHERE retain_until IS NOT NULL;

CREATE TABLE attachments (
  id           TEXT PRIMARY KEY,
  contact_id   TEXT NOT NULL REFERENCES contacts(id),
  case_id      TEXT NOT NULL,
  customer_id  TEXT NOT NULL,
  filename     TEXT NOT NULL,
  content_type TEXT NOT NULL,
  size         INTEGER NOT NULL,
  sha256       TEXT NOT NULL,
  blob_key     TEXT NOT NULL,
  created_at   INTEGER NOT NULL
);
CREATE INDEX attachments_contact ON attachments(contact_id);
CREATE INDEX attachments_blob_key ON attachments(blob_key);

CREATE TABLE tokens (
  id           TEXT PRIMARY KEY,
  name         TEXT NOT NULL,
  role         TEXT NOT NULL,
  hash         TEXT NOT NULL UNIQUE,
  created_at   INTEGER NOT NULL,
  revoked_at   INTEGER
);

-- The outbox carries case IDs only; the indexer reloads the current state.
CREATE TABLE outbox (
  seq        INTEGER PRIMARY KEY AUTOINCREMENT,
  case_id    TEXT NOT NULL,
  created_at INTEGER NOT NULL
);
