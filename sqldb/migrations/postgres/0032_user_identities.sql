-- Console users who sign in through the organisation's OpenID Connect
-- provider (issue 18): the provider's (issuer, subject) pair linked to
-- the users row it signs in as. Owner: package auth (identities.go).
CREATE TABLE user_identities (
  issuer       TEXT NOT NULL,
  subject      TEXT NOT NULL,
  user_id      TEXT NOT NULL REFERENCES users(id),
  created_at   BIGINT NOT NULL,
  last_seen_at BIGINT NOT NULL,
  PRIMARY KEY (issuer, subject)
);
CREATE INDEX user_identities_user ON user_identities(user_id);
