package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/testkit"
)

// cheap keeps the tests fast; the parameters are stored in each hash, so
// verification does not depend on them.
var cheap = auth.Argon2Params{Time: 1, Memory: 64, Threads: 1}

const pw = "a long enough password"

func TestUserCreateRejectsBadInput(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		u := auth.NewUsers(db, cheap, nil)
		if _, err := u.Create(ctx, "ann", auth.RoleAgent, pw, nil); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name, user, role, password, field string
			conflict                          bool
		}{
			{"empty name", "", "agent", pw, "name", false},
			{"NUL in name", "a\x00b", "agent", pw, "name", false},
			{"bad UTF-8", "a\xffb", "agent", pw, "name", false},
			{"spaces around", " ann ", "agent", pw, "name", false},
			{"short password", "bob", "agent", "short", "password", false},
			{"unknown role", "bob", "root", pw, "role", false},
			{"taken name", "ann", "agent", pw, "", true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := u.Create(ctx, tc.user, auth.Role(tc.role), tc.password, nil)
				var ve *cases.ValidationError
				switch {
				case tc.conflict:
					if !errors.Is(err, cases.ErrConflict) {
						t.Fatalf("err %v, want a conflict", err)
					}
				case !errors.As(err, &ve) || !strings.Contains(ve.Error(), tc.field):
					t.Fatalf("err %v, want a validation error naming %s", err, tc.field)
				}
			})
		}
	})
}

func TestLoginLockoutAndReset(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		clock := testkit.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		u := auth.NewUsers(db, cheap, clock.Now)
		ann, err := u.Create(ctx, "ann", auth.RoleAgent, pw, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := u.Login(ctx, "nobody", pw); !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatalf("unknown user: %v", err)
		}
		for i := 1; i <= auth.MaxFailedLogins; i++ {
			res, err := u.Login(ctx, "ann", "wrong password")
			if !errors.Is(err, auth.ErrBadCredentials) || res.LockedNow != (i == auth.MaxFailedLogins) {
				t.Fatalf("failure %d: %v locked now %v", i, err, res.LockedNow)
			}
		}
		if _, err := u.Login(ctx, "ann", pw); !errors.Is(err, auth.ErrLockedOut) {
			t.Fatalf("right password while locked: %v", err)
		}
		clock.Advance(auth.LockoutFor + time.Second)
		if res, err := u.Login(ctx, "ann", pw); err != nil || res.User.ID != ann.ID {
			t.Fatalf("after the lockout: %v", err)
		}
		// A success resets the count: one more failure does not lock.
		if res, _ := u.Login(ctx, "ann", "wrong password"); res.LockedNow {
			t.Fatal("the count was not reset by a success")
		}
		if err := u.SetDisabled(ctx, ann.ID, true, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := u.Login(ctx, "ann", pw); !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatalf("disabled user: %v", err)
		}
	})
}

func TestSessions(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		clock := testkit.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		u := auth.NewUsers(db, cheap, clock.Now)
		s := auth.NewSessions(db, auth.SessionTimeouts{Idle: 30 * time.Minute, Absolute: 2 * time.Hour}, clock.Now)
		ann, err := u.Create(ctx, "ann", auth.RoleAgent, pw, nil)
		if err != nil {
			t.Fatal(err)
		}
		start := func() auth.Session {
			ses, err := s.Start(ctx, ann, "127.0.0.1")
			if err != nil {
				t.Fatal(err)
			}
			return ses
		}
		live := func(ses auth.Session) bool {
			_, err := s.Resolve(ctx, ses.Secret)
			if err != nil && !errors.Is(err, auth.ErrNoSession) {
				t.Fatal(err)
			}
			return err == nil
		}

		a := start()
		if !live(a) || live(auth.Session{Secret: a.Secret + "x"}) || live(auth.Session{}) {
			t.Fatal("resolve: the session, a wrong secret, an empty one")
		}
		// Idle: activity every 20 minutes keeps it, up to the absolute end.
		for i := 0; i < 5; i++ {
			clock.Advance(20 * time.Minute)
			if !live(a) {
				t.Fatalf("active session ended after %d×20 min", i+1)
			}
		}
		clock.Advance(21 * time.Minute) // 2h01 after sign-in
		if live(a) {
			t.Fatal("the session outlived its absolute timeout")
		}
		b := start()
		clock.Advance(31 * time.Minute)
		if live(b) {
			t.Fatal("the session outlived its idle timeout")
		}
		c, d := start(), start()
		if err := s.End(ctx, c.Secret); err != nil || live(c) || !live(d) {
			t.Fatalf("sign out ends that session only: %v", err)
		}
		// a and b timed out but were never revoked; d is live: 3 revoked.
		if n, err := s.EndAll(ctx, ann.ID); err != nil || n != 3 || live(d) {
			t.Fatalf("sign out everywhere: %d %v", n, err)
		}
		e := start()
		if err := u.SetDisabled(ctx, ann.ID, true, nil); err != nil || live(e) {
			t.Fatalf("a disabled user's session still resolves: %v", err)
		}
		// A day after they all ended (signed out, timed out), every one of
		// the five sessions is pruned; one pruned twice counts once.
		if n, err := s.Prune(ctx); err != nil || n != 0 {
			t.Fatalf("prune before a day passed: %d %v", n, err)
		}
		clock.Advance(25 * time.Hour)
		if n, err := s.Prune(ctx); err != nil || n != 5 {
			t.Fatalf("prune: %d %v, want 5", n, err)
		}
	})
}
