// Package auth holds the roles, the API tokens (generated, stored as SHA-256
// hashes, compared in constant time) and the permission matrix.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
)

// Role is a token's job.
type Role string

const (
	RoleAgent      Role = "agent"
	RoleSupervisor Role = "supervisor"
	RoleLegal      Role = "legal"
	RoleBackup     Role = "backup"
	RoleAdmin      Role = "admin"
)

// Roles lists every role.
var Roles = []Role{RoleAgent, RoleSupervisor, RoleLegal, RoleBackup, RoleAdmin}

// ParseRole validates a role name.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !slices.Contains(Roles, r) {
		return "", fmt.Errorf("unknown role %q (want one of agent, supervisor, legal, backup, admin)", s)
	}
	return r, nil
}

// Permission is one capability checked on a route.
type Permission string

const (
	// CaseRead: read customers, cases, contacts, attachments, search.
	CaseRead Permission = "case.read"
	// CaseWrite: create customers, cases, contacts, attachments; edit cases.
	CaseWrite Permission = "case.write"
	// CaseManage: close/reassign/delete cases (supervisor work).
	CaseManage Permission = "case.manage"
	// LegalWork: holds, retention explain, audit trail, exports.
	LegalWork Permission = "legal"
	// BackupWork: backups and restores; no case content.
	BackupWork Permission = "backup"
	// SweepPreview: start a dry-run retention sweep and read sweep reports
	// (legal checks what a sweep would dispose of; a real sweep also
	// needs Admin, checked by the handler).
	SweepPreview Permission = "retention.preview"
	// SubjectAccess: download everything stored about a customer (a
	// data-subject access request, issue 15 §2): supervisors, legal, admin.
	SubjectAccess Permission = "privacy.access"
	// Admin: tokens and the retention schedule.
	Admin Permission = "admin"
	// Authenticated: any valid token, whatever its role (routes that only
	// answer that a method is not allowed still need to know who asks).
	Authenticated Permission = "authenticated"
)

// matrix is the least-privilege table of api.md (Roles); admin holds all.
var matrix = map[Role][]Permission{
	RoleAgent:      {CaseRead, CaseWrite},
	RoleSupervisor: {CaseRead, CaseWrite, CaseManage, SubjectAccess},
	RoleLegal:      {CaseRead, LegalWork, SweepPreview, SubjectAccess},
	RoleBackup:     {BackupWork},
	RoleAdmin:      {CaseRead, CaseWrite, CaseManage, LegalWork, SweepPreview, BackupWork, SubjectAccess, Admin},
}

// Allows reports whether the role holds the permission.
func (r Role) Allows(p Permission) bool {
	if p == Authenticated {
		_, known := matrix[r]
		return known
	}
	return slices.Contains(matrix[r], p)
}

// ManagesCases reports whether a role may close and reassign cases: the
// rule the cases.Service is built with (cases.WithCaseManagers).
func ManagesCases(role string) bool { return Role(role).Allows(CaseManage) }

// Token is a stored API token (never the secret itself).
type Token struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Role      Role       `json:"role"`
	CreatedAt time.Time  `json:"created_at"`
	RevokedAt *time.Time `json:"revoked_at"`
}

// ErrInvalidToken is returned for unknown, malformed or revoked tokens.
var ErrInvalidToken = errors.New("invalid token")

// tokenPrefix makes leaked tokens easy to recognise by secret scanners.
const tokenPrefix = "cvt_"

// Tokens stores tokens.
type Tokens struct {
	db *sqldb.DB

	// A short cache of successful lookups (issue 19: the per-request token
	// query was a top cost of ingest). An entry is trusted for ttl, then
	// read again, so a revocation made on any replica, which reaches the
	// others only through the database, takes effect everywhere within
	// ttl; this process's own Revoke clears the cache at once. Unknown and
	// revoked secrets are never cached.
	ttl   time.Duration
	now   func() time.Time
	mu    sync.Mutex
	cache map[string]cachedToken // by the secret's hash
}

type cachedToken struct {
	tok Token
	at  time.Time
}

// DefaultCacheTTL is how long a successful token lookup is trusted: a
// revocation takes effect on every replica within it (the issue allows 1 s).
const DefaultCacheTTL = 500 * time.Millisecond

// maxCached bounds the cache; when full it starts over.
const maxCached = 4096

// TokensOption configures Tokens.
type TokensOption func(*Tokens)

// WithCache sets how long a lookup is trusted (0 turns the cache off) and
// the clock it is measured with (nil: time.Now).
func WithCache(ttl time.Duration, now func() time.Time) TokensOption {
	return func(t *Tokens) {
		t.ttl = ttl
		if now != nil {
			t.now = now
		}
	}
}

// NewTokens builds the token store.
func NewTokens(db *sqldb.DB, opts ...TokensOption) *Tokens {
	t := &Tokens{db: db, ttl: DefaultCacheTTL, now: time.Now, cache: map[string]cachedToken{}}
	for _, o := range opts {
		o(t)
	}
	return t
}

func (t *Tokens) cached(h string) (Token, bool) {
	if t.ttl <= 0 {
		return Token{}, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	c, ok := t.cache[h]
	if !ok || t.now().Sub(c.at) >= t.ttl {
		return Token{}, false
	}
	return c.tok, true
}

func (t *Tokens) remember(h string, tok Token, at time.Time) {
	if t.ttl <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.cache) >= maxCached {
		clear(t.cache)
	}
	t.cache[h] = cachedToken{tok: tok, at: at}
}

func hash(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// Create makes a token and returns it with its secret, which is shown once
// and never stored. hook runs in the same transaction (audit).
func (t *Tokens) Create(ctx context.Context, name string, role Role, hook func(ctx context.Context, tx *sql.Tx, tok Token) error) (Token, string, error) {
	name = strings.TrimSpace(name)
	switch {
	case !utf8.ValidString(name):
		return Token{}, "", cases.Invalid("name", "must be valid UTF-8")
	case strings.IndexByte(name, 0) >= 0:
		// The same answer on both engines: PostgreSQL cannot store a NUL.
		return Token{}, "", cases.Invalid("name", "must not contain NUL characters")
	case name == "" || utf8.RuneCountInString(name) > 100:
		return Token{}, "", cases.Invalid("name", "must be 1 to 100 characters")
	}
	if !slices.Contains(Roles, role) {
		return Token{}, "", cases.Invalid("role", "must be one of agent, supervisor, legal, backup, admin")
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return Token{}, "", fmt.Errorf("token entropy: %w", err)
	}
	secret := tokenPrefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw))
	tok := Token{ID: cases.NewID(), Name: name, Role: role, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	err := t.db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, t.db.Rebind(`INSERT INTO tokens (id, name, role, hash, created_at) VALUES (?,?,?,?,?)`),
			tok.ID, tok.Name, string(tok.Role), hash(secret), tok.CreatedAt.UnixMicro())
		if err != nil {
			return fmt.Errorf("insert token: %w", err)
		}
		if hook != nil {
			return hook(ctx, tx, tok)
		}
		return nil
	})
	if err != nil {
		return Token{}, "", err
	}
	return tok, secret, nil
}

// Authenticate resolves a bearer secret to its token. The lookup is by hash
// (an index on a SHA-256 of a 256-bit secret reveals nothing useful through
// timing), and the stored hash is compared in constant time anyway.
func (t *Tokens) Authenticate(ctx context.Context, secret string) (Token, error) {
	if !strings.HasPrefix(secret, tokenPrefix) || len(secret) > 128 {
		return Token{}, ErrInvalidToken
	}
	want := hash(secret)
	if tok, ok := t.cached(want); ok {
		return tok, nil
	}

	// The time the entry is trusted from is taken before the read: a
	// revocation committed after it is seen by the next read, within ttl.
	readAt := t.now()
	var tok Token
	var stored string
	var created int64
	var revoked sql.NullInt64
	err := t.db.QueryRow(ctx, `SELECT id, name, role, hash, created_at, revoked_at FROM tokens WHERE hash = ?`, want).
		Scan(&tok.ID, &tok.Name, &tok.Role, &stored, &created, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, ErrInvalidToken
	}
	if err != nil {
		return Token{}, sqldb.Fail("authenticate", err)
	}
	if subtle.ConstantTimeCompare([]byte(stored), []byte(want)) != 1 || revoked.Valid {
		return Token{}, ErrInvalidToken
	}
	tok.CreatedAt = time.UnixMicro(created).UTC()
	t.remember(want, tok, readAt)
	return tok, nil
}

// List returns every token, newest first.
func (t *Tokens) List(ctx context.Context) ([]Token, error) {
	rows, err := t.db.Read.QueryContext(ctx, `SELECT id, name, role, created_at, revoked_at FROM tokens ORDER BY id DESC`)
	if err != nil {
		return nil, sqldb.Fail("list tokens", err)
	}
	defer rows.Close()
	out := []Token{}
	for rows.Next() {
		var tok Token
		var created int64
		var revoked sql.NullInt64
		if err := rows.Scan(&tok.ID, &tok.Name, &tok.Role, &created, &revoked); err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		tok.CreatedAt = time.UnixMicro(created).UTC()
		if revoked.Valid {
			r := time.UnixMicro(revoked.Int64).UTC()
			tok.RevokedAt = &r
		}
		out = append(out, tok)
	}
	return out, rows.Err()
}

// Revoke marks a token unusable; revoking twice is not an error.
func (t *Tokens) Revoke(ctx context.Context, id string, hook func(ctx context.Context, tx *sql.Tx) error) error {
	err := t.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, t.db.Rebind(`UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ?`), time.Now().UTC().UnixMicro(), id)
		if err != nil {
			return fmt.Errorf("revoke token: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("token %s: %w", id, cases.ErrNotFound)
		}
		if hook != nil {
			return hook(ctx, tx)
		}
		return nil
	})
	// Here at once; elsewhere when their entries expire. Cleared even when
	// the transaction failed: it costs one read.
	t.mu.Lock()
	clear(t.cache)
	t.mu.Unlock()
	return err
}

// Count reports how many tokens exist (first-start bootstrap).
func (t *Tokens) Count(ctx context.Context) (int, error) {
	var n int
	if err := t.db.Read.QueryRowContext(ctx, `SELECT COUNT(*) FROM tokens`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count tokens: %w", err)
	}
	return n, nil
}
