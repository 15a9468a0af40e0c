package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"time"

	"github.com/casevault/casevault/sqldb"
)

// SessionTimeouts bound a console session: it ends after Idle without a
// request or Absolute after sign-in, whichever comes first.
type SessionTimeouts struct {
	Idle     time.Duration
	Absolute time.Duration
}

// ErrNoSession is an unknown, expired, revoked or malformed session.
var ErrNoSession = errors.New("no session")

// Session is a signed-in user's session.
type Session struct {
	// Secret is the cookie value (only known when the session is created
	// or presented; the store keeps its SHA-256).
	Secret    string
	User      User
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Sessions stores console sessions server-side.
type Sessions struct {
	db  *sqldb.DB
	t   SessionTimeouts
	now func() time.Time
}

// NewSessions builds the session store.
func NewSessions(db *sqldb.DB, t SessionTimeouts, now func() time.Time) *Sessions {
	if now == nil {
		now = time.Now
	}
	return &Sessions{db: db, t: t, now: now}
}

// seenEvery bounds the writes idle tracking costs: a session's last-seen
// time moves at most once a minute (or a tenth of the idle timeout, when
// that is shorter, so activity always keeps a session alive).
const seenEvery = time.Minute

// Start creates a session for a signed-in user.
func (s *Sessions) Start(ctx context.Context, usr User, clientIP string) (Session, error) {
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	secret := base64.RawURLEncoding.EncodeToString(raw)
	now := s.now().UTC()
	ses := Session{Secret: secret, User: usr, CreatedAt: now, ExpiresAt: now.Add(s.t.Absolute)}
	_, err := s.db.Write.ExecContext(ctx, s.db.Rebind(`INSERT INTO sessions (hash, user_id, created_at, seen_at, expires_at, client_ip) VALUES (?,?,?,?,?,?)`),
		hash(secret), usr.ID, now.UnixMicro(), now.UnixMicro(), ses.ExpiresAt.UnixMicro(), clientIP)
	if err != nil {
		return Session{}, sqldb.Fail("start session", err)
	}
	return ses, nil
}

// Resolve finds the live session of a cookie and its user, and moves its
// idle clock. A disabled user's sessions resolve to ErrNoSession.
func (s *Sessions) Resolve(ctx context.Context, secret string) (Session, error) {
	if secret == "" || len(secret) > 64 {
		return Session{}, ErrNoSession
	}
	h := hash(secret)
	var seen, created, expires int64
	var revoked sql.NullInt64
	usr, err := scanUser(s.db.QueryRow(ctx, `SELECT u.id, u.name, u.role, u.time_zone, u.created_at, u.disabled_at, u.locked_until, s.seen_at, s.created_at, s.expires_at, s.revoked_at
FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.hash = ?`, h), &seen, &created, &expires, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, ErrNoSession
	}
	if err != nil {
		return Session{}, sqldb.Fail("read session", err)
	}
	now := s.now().UTC()
	seenAt := time.UnixMicro(seen)
	if revoked.Valid || usr.DisabledAt != nil || !now.Before(time.UnixMicro(expires)) || now.Sub(seenAt) >= s.t.Idle {
		return Session{}, ErrNoSession
	}
	if now.Sub(seenAt) >= min(seenEvery, s.t.Idle/10) {
		if _, err := s.db.Write.ExecContext(ctx, s.db.Rebind(`UPDATE sessions SET seen_at = ? WHERE hash = ?`), now.UnixMicro(), h); err != nil {
			return Session{}, sqldb.Fail("touch session", err)
		}
	}
	return Session{Secret: secret, User: usr, CreatedAt: time.UnixMicro(created).UTC(), ExpiresAt: time.UnixMicro(expires).UTC()}, nil
}

// End revokes one session (sign out).
func (s *Sessions) End(ctx context.Context, secret string) error {
	_, err := s.db.Write.ExecContext(ctx, s.db.Rebind(`UPDATE sessions SET revoked_at = ? WHERE hash = ? AND revoked_at IS NULL`), s.now().UTC().UnixMicro(), hash(secret))
	return sqldb.Fail("end session", err)
}

// EndAll revokes every session of a user (sign out everywhere, password
// change, disable) and reports how many it revoked (every session not
// already signed out, timed out or not).
func (s *Sessions) EndAll(ctx context.Context, userID string) (int64, error) {
	res, err := s.db.Write.ExecContext(ctx, s.db.Rebind(`UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL`), s.now().UTC().UnixMicro(), userID)
	if err != nil {
		return 0, sqldb.Fail("end sessions", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// EndAllTx is EndAll in the caller's transaction (with a password change).
func (s *Sessions) EndAllTx(ctx context.Context, tx *sql.Tx, userID string) error {
	_, err := tx.ExecContext(ctx, s.db.Rebind(`UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL`), s.now().UTC().UnixMicro(), userID)
	return err
}

// Prune deletes sessions that ended more than a day ago.
func (s *Sessions) Prune(ctx context.Context) (int64, error) {
	cut := s.now().UTC().Add(-24 * time.Hour).UnixMicro()
	idle := s.now().UTC().Add(-s.t.Idle - 24*time.Hour).UnixMicro()
	res, err := s.db.Write.ExecContext(ctx, s.db.Rebind(`DELETE FROM sessions WHERE expires_at < ? OR revoked_at < ? OR seen_at < ?`), cut, cut, idle)
	if err != nil {
		return 0, sqldb.Fail("prune sessions", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// Derive returns a value bound to a session secret for one purpose (the
// CSRF token of its forms): it is HMAC-like (SHA-256 over purpose and
// secret), so knowing it reveals nothing about the cookie.
func Derive(secret, purpose string) string {
	h := sha256.Sum256([]byte("casevault:" + purpose + ":" + secret))
	return hex.EncodeToString(h[:])
}
