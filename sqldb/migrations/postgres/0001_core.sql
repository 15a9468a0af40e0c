-- Core schema. Timestamps are Unix microseconds (UTC) in both dialects so that
-- logical backups move between engines unchanged; lists are JSON arrays.
CREATE TABLE customers (
  id           TEXT PRIMARY KEY,
  external_ref TEXT NOT NULL DEFAULT '',
  name         TEXT NOT NULL,
  email        TEXT NOT NULL DEFAULT '',
  phone        TEXT NOT NULL DEFAULT '',
  locale       TEXT NOT NULL DEFAULT '',
  consent_location BOOLEAN NOT NULL DEFAULT FALSE,
  consent_marketing BOOLEAN NOT NULL DEFAULT FALSE,
  consent_personalization BOOLEAN NOT NULL DEFAULT FALSE,
  created_at   BIGINT NOT NULL,
  updated_at   BIGINT NOT NULL
);
CREATE INDEX customers_external_ref ON customers(external_ref) WHERE external_ref <> '';

CREATE TABLE counters (
  name  TEXT PRIMARY KEY,
  value BIGINT NOT NULL
);
INSERT INTO counters(name, value) VALUES ('case_number', 0);

CREATE TABLE cases (
  id          TEXT PRIMARY KEY,
  number      BIGINT NOT NULL UNIQUE,
  customer_id TEXT NOT NULL REFERENCES customers(id),
  subject     TEXT NOT NULL,
  status      TEXT NOT NULL,
  priority    TEXT NOT NULL,
  channel     TEXT NOT NULL,
  tags        TEXT NOT NULL DEFAULT '[]',
  assignee    TEXT NOT NULL DEFAULT '',
  created_at  BIGINT NOT NULL,
  updated_at  BIGINT NOT NULL,
  closed_at   BIGINT
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
  occurred_at  BIGINT NOT NULL,
  created_at   BIGINT NOT NULL,
  purposes     TEXT NOT NULL,
  categories   TEXT NOT NULL,
  location     TEXT,
  device       TEXT,
  retain_until BIGINT
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
  size         BIGINT NOT NULL,
  sha256       TEXT NOT NULL,
  blob_key     TEXT NOT NULL,
  created_at   BIGINT NOT NULL
);
CREATE INDEX attachments_contact ON attachments(contact_id);
CREATE INDEX attachments_blob_key ON attachments(blob_key);

CREATE TABLE tokens (
  id           TEXT PRIMARY KEY,
  name         TEXT NOT NULL,
  role         TEXT NOT NULL,
  hash         TEXT NOT NULL UNIQUE,
  created_at   BIGINT NOT NULL,
  revoked_at   BIGINT
);

-- The outbox carries case IDs only; the indexer reloads the current state.
CREATE TABLE outbox (
  seq        BIGSERIAL PRIMARY KEY,
  case_id    TEXT NOT NULL,
  created_at BIGINT NOT NULL
);
