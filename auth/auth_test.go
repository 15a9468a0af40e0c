package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/testkit"
)

func TestTokensAreStoredHashedAndRevocable(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		toks := auth.NewTokens(db)
		tok, secret, err := toks.Create(ctx, "alice", auth.RoleAgent, nil)
		if err != nil {
			t.Fatal(err)
		}
		var stored string
		if err := db.Read.QueryRow(db.Rebind(`SELECT hash FROM tokens WHERE id = ?`), tok.ID).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(stored, secret) || strings.Contains(secret, stored) || len(stored) != 64 {
			t.Fatalf("token stored as %q; want a SHA-256 hex digest, not the secret", stored)
		}
		got, err := toks.Authenticate(ctx, secret)
		if err != nil || got.ID != tok.ID || got.Role != auth.RoleAgent {
			t.Fatalf("authenticate = %+v, %v", got, err)
		}
		for _, bad := range []string{"", "cvt_", secret + "x", strings.ToUpper(secret), "Bearer " + secret, strings.Repeat("a", 500)} {
			if _, err := toks.Authenticate(ctx, bad); !errors.Is(err, auth.ErrInvalidToken) {
				t.Errorf("Authenticate(%.20q) = %v, want ErrInvalidToken", bad, err)
			}
		}
		if err := toks.Revoke(ctx, tok.ID, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := toks.Authenticate(ctx, secret); !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("revoked token still authenticates: %v", err)
		}
		if err := toks.Revoke(ctx, "nope", nil); err == nil {
			t.Fatal("revoking an unknown token succeeded")
		}
	})
}

func TestRoleMatrixIsLeastPrivilege(t *testing.T) {
	cases := []struct {
		role  auth.Role
		allow []auth.Permission
	}{
		{auth.RoleAgent, []auth.Permission{auth.CaseRead, auth.CaseWrite}},
		{auth.RoleSupervisor, []auth.Permission{auth.CaseRead, auth.CaseWrite, auth.CaseManage}},
		{auth.RoleLegal, []auth.Permission{auth.CaseRead, auth.LegalWork, auth.SweepPreview}},
		{auth.RoleBackup, []auth.Permission{auth.BackupWork}},
		{auth.RoleAdmin, []auth.Permission{auth.CaseRead, auth.CaseWrite, auth.CaseManage, auth.LegalWork, auth.SweepPreview, auth.BackupWork, auth.Admin}},
	}
	all := []auth.Permission{auth.CaseRead, auth.CaseWrite, auth.CaseManage, auth.LegalWork, auth.SweepPreview, auth.BackupWork, auth.Admin}
	for _, c := range cases {
		for _, p := range all {
			want := false
			for _, a := range c.allow {
				want = want || a == p
			}
			if got := c.role.Allows(p); got != want {
				t.Errorf("%s allows %s = %v, want %v", c.role, p, got, want)
			}
		}
	}
	if _, err := auth.ParseRole("root"); err == nil {
		t.Fatal("unknown role accepted")
	}
}

// A lookup the caller cancelled is not a database outage (no 503 and
// Retry-After for a client that went away); a closed database is.
func TestLookupErrorsAreClassified(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		toks := auth.NewTokens(db)
		_, secret, err := toks.Create(context.Background(), "alice", auth.RoleAgent, nil)
		if err != nil {
			t.Fatal(err)
		}

		cancelled, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := toks.Authenticate(cancelled, secret); !errors.Is(err, context.Canceled) || errors.Is(err, sqldb.ErrUnavailable) {
			t.Fatalf("authenticate with a cancelled context: %v, want context.Canceled and not ErrUnavailable", err)
		}
		if _, err := toks.List(cancelled); !errors.Is(err, context.Canceled) || errors.Is(err, sqldb.ErrUnavailable) {
			t.Fatalf("list with a cancelled context: %v, want context.Canceled and not ErrUnavailable", err)
		}

		db.Close()
		if _, err := toks.Authenticate(context.Background(), secret); !errors.Is(err, sqldb.ErrUnavailable) {
			t.Fatalf("authenticate on a closed database: %v, want ErrUnavailable", err)
		}
	})
}

// TestRevocationReachesEveryReplicaWithinTheCacheTTL (issue 19): lookups
// are cached for a short time. A revocation through one replica takes
// effect there at once and on another replica, which learns of it only
// through the database, as soon as its entry is older than the TTL; a
// token created elsewhere works at once (failures are never cached).
func TestRevocationReachesEveryReplicaWithinTheCacheTTL(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		clock := testkit.NewClock(time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC))
		a := auth.NewTokens(db, auth.WithCache(auth.DefaultCacheTTL, clock.Now))
		b := auth.NewTokens(db, auth.WithCache(auth.DefaultCacheTTL, clock.Now))

		if _, err := b.Authenticate(ctx, "cvt_notyetcreated"); !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("unknown token: %v", err)
		}
		tok, secret, err := a.Create(ctx, "bob", auth.RoleAgent, nil)
		if err != nil {
			t.Fatal(err)
		}
		for name, r := range map[string]*auth.Tokens{"a": a, "b": b} {
			if got, err := r.Authenticate(ctx, secret); err != nil || got.ID != tok.ID {
				t.Fatalf("replica %s: a new token does not authenticate: %+v %v", name, got, err)
			}
		}

		if err := a.Revoke(ctx, tok.ID, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Authenticate(ctx, secret); !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("the revoking replica still accepts the token: %v", err)
		}
		clock.Advance(auth.DefaultCacheTTL)
		if _, err := b.Authenticate(ctx, secret); !errors.Is(err, auth.ErrInvalidToken) {
			t.Fatalf("the other replica accepts a token revoked %s ago: %v", auth.DefaultCacheTTL, err)
		}
		if auth.DefaultCacheTTL > time.Second {
			t.Fatalf("cache TTL %s: a revocation must take effect within 1 s", auth.DefaultCacheTTL)
		}
	})
}
