package auth_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"

	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

func TestSignInExternal(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		u := auth.NewUsers(db, cheap, nil)
		ann, err := u.Create(ctx, "ann", auth.RoleAgent, pw, nil)
		if err != nil {
			t.Fatal(err)
		}
		const iss = "https://idp.example"
		got := map[string]string{}
		var hooked []auth.ExternalResult
		hook := func(_ context.Context, _ *sql.Tx, r auth.ExternalResult) error {
			hooked = append(hooked, r)
			return nil
		}

		for _, tc := range []struct {
			name               string
			in                 auth.ExternalSignIn
			created, linked    bool
			prevRole, wantRole auth.Role
			sameUserAs         string // a step's name whose user this must be
			wantID             string
		}{
			{name: "first sign-in creates", in: auth.ExternalSignIn{Issuer: iss, Subject: "s-olga", Name: "olga", Role: auth.RoleLegal}, created: true, wantRole: auth.RoleLegal},
			{name: "the next finds", in: auth.ExternalSignIn{Issuer: iss, Subject: "s-olga", Name: "olga-renamed", Role: auth.RoleLegal}, sameUserAs: "first sign-in creates", wantRole: auth.RoleLegal},
			{name: "an existing name links", in: auth.ExternalSignIn{Issuer: iss, Subject: "s-ann", Name: "ann", Role: auth.RoleAgent}, linked: true, wantID: ann.ID, wantRole: auth.RoleAgent},
			{name: "the role follows the provider", in: auth.ExternalSignIn{Issuer: iss, Subject: "s-ann", Name: "ann", Role: auth.RoleSupervisor}, prevRole: auth.RoleAgent, wantID: ann.ID, wantRole: auth.RoleSupervisor},
		} {
			t.Run(tc.name, func(t *testing.T) {
				hooked = nil
				res, err := u.SignInExternal(ctx, tc.in, hook)
				if err != nil {
					t.Fatal(err)
				}
				got[tc.name] = res.User.ID
				if res.Created != tc.created || res.Linked != tc.linked || res.PreviousRole != tc.prevRole || res.User.Role != tc.wantRole {
					t.Fatalf("result %+v", res)
				}
				if tc.sameUserAs != "" {
					tc.wantID = got[tc.sameUserAs]
				}
				if tc.wantID != "" && res.User.ID != tc.wantID {
					t.Fatalf("user %s, want %s", res.User.ID, tc.wantID)
				}
				if len(hooked) != 1 || hooked[0].User.ID != res.User.ID {
					t.Fatalf("hook saw %+v", hooked)
				}
				stored, err := u.Get(ctx, res.User.ID)
				if err != nil || stored.Role != tc.wantRole {
					t.Fatalf("stored %+v %v", stored, err)
				}
			})
		}
		// An OIDC-created user has no password.
		if _, err := u.Login(ctx, "olga", ""); !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatalf("password login of an OIDC user: %v", err)
		}
	})
}

func TestSignInExternalRefusals(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		u := auth.NewUsers(db, cheap, nil)
		if _, err := u.SignInExternal(ctx, auth.ExternalSignIn{Issuer: "https://a", Subject: "one", Name: "taken", Role: auth.RoleAgent}, nil); err != nil {
			t.Fatal(err)
		}
		failing := func(context.Context, *sql.Tx, auth.ExternalResult) error { return errors.New("audit down") }
		for _, tc := range []struct {
			name  string
			in    auth.ExternalSignIn
			hook  func(context.Context, *sql.Tx, auth.ExternalResult) error
			field string // a validation error naming it; "" with conflict
			check func(error) bool
		}{
			{name: "no subject", in: auth.ExternalSignIn{Issuer: "https://a", Name: "x", Role: auth.RoleAgent}, field: "subject"},
			{name: "no issuer", in: auth.ExternalSignIn{Subject: "s", Name: "x", Role: auth.RoleAgent}, field: "subject"},
			{name: "long subject", in: auth.ExternalSignIn{Issuer: "https://a", Subject: strings.Repeat("s", 256), Name: "x", Role: auth.RoleAgent}, field: "subject"},
			{name: "NUL in name", in: auth.ExternalSignIn{Issuer: "https://a", Subject: "s", Name: "a\x00b", Role: auth.RoleAgent}, field: "name"},
			{name: "bad UTF-8 name", in: auth.ExternalSignIn{Issuer: "https://a", Subject: "s", Name: "a\xffb", Role: auth.RoleAgent}, field: "name"},
			{name: "unknown role", in: auth.ExternalSignIn{Issuer: "https://a", Subject: "s", Name: "x", Role: "root"}, field: "role"},
			{name: "name linked to another subject", in: auth.ExternalSignIn{Issuer: "https://a", Subject: "two", Name: "taken", Role: auth.RoleAgent},
				check: func(err error) bool {
					return errors.Is(err, auth.ErrIdentityConflict) && errors.Is(err, cases.ErrConflict)
				}},
			{name: "hook fails: nothing stored", in: auth.ExternalSignIn{Issuer: "https://a", Subject: "s3", Name: "newbie", Role: auth.RoleAgent}, hook: failing,
				check: func(err error) bool { return err != nil && strings.Contains(err.Error(), "audit down") }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := u.SignInExternal(ctx, tc.in, tc.hook)
				if tc.check != nil {
					if !tc.check(err) {
						t.Fatalf("err %v", err)
					}
					return
				}
				var ve *cases.ValidationError
				if !errors.As(err, &ve) || !strings.Contains(ve.Error(), tc.field) {
					t.Fatalf("err %v, want a validation error naming %s", err, tc.field)
				}
			})
		}
		if _, err := u.ByName(ctx, "newbie"); err == nil {
			t.Fatal("a sign-in whose audit failed left its user behind")
		}
	})
}
