package auth

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
)

// External sign-in (the console's OpenID Connect): the provider vouches
// for a person, identified by its (issuer, subject) pair; the pair is
// linked to a users row (user_identities, migration 0032). The role is the
// provider's: it is set from the sign-in every time, so a change at the
// provider takes effect at the next sign-in.

// ExternalSignIn is what a provider said about the person signing in.
type ExternalSignIn struct {
	Issuer, Subject string
	// Name is the user name a first sign-in creates or links (the
	// provider's preferred_username or e-mail).
	Name string
	Role Role
}

// ExternalResult is the user signed in and what the sign-in changed.
type ExternalResult struct {
	User User
	// Created: a new users row; Linked: an existing user of that name was
	// linked to the identity now.
	Created, Linked bool
	// PreviousRole is the role before this sign-in changed it ("" when
	// unchanged).
	PreviousRole Role
}

// ErrIdentityConflict: the user of that name is already linked to another
// identity of the same provider.
var ErrIdentityConflict = errors.New("the user name is linked to another account of this provider")

// SignInExternal finds the user linked to the identity; at its first
// sign-in links the user of the same name (one not linked to another
// identity of this issuer) or creates one without a password. The role
// becomes the provider's. hook runs in the transaction (audit). A
// disabled user is returned as found: the caller refuses the sign-in.
func (u *Users) SignInExternal(ctx context.Context, in ExternalSignIn, hook func(ctx context.Context, tx *sql.Tx, res ExternalResult) error) (ExternalResult, error) {
	if in.Issuer == "" || in.Subject == "" || len(in.Issuer) > 1000 || len(in.Subject) > 255 {
		return ExternalResult{}, cases.Invalid("subject", "the provider's issuer and subject are required (subject at most 255 bytes)")
	}
	if err := checkUserName(in.Name); err != nil {
		return ExternalResult{}, err
	}
	if !slices.Contains(Roles, in.Role) {
		return ExternalResult{}, cases.Invalid("role", "must be one of agent, supervisor, legal, backup, admin")
	}
	now := u.now().UTC().Truncate(time.Microsecond)
	var res ExternalResult
	err := u.db.InTx(ctx, func(tx *sql.Tx) error {
		res = ExternalResult{}
		var userID string
		err := tx.QueryRowContext(ctx, u.db.Rebind(`SELECT user_id FROM user_identities WHERE issuer = ? AND subject = ?`), in.Issuer, in.Subject).Scan(&userID)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			usr, linked, err := u.linkOrCreate(ctx, tx, in, now)
			if err != nil {
				return err
			}
			res.User, res.Linked, res.Created = usr, linked, !linked
			_, err = tx.ExecContext(ctx, u.db.Rebind(`INSERT INTO user_identities (issuer, subject, user_id, created_at, last_seen_at) VALUES (?,?,?,?,?)`),
				in.Issuer, in.Subject, usr.ID, now.UnixMicro(), now.UnixMicro())
			if err != nil {
				return fmt.Errorf("link identity: %w", err)
			}
		case err != nil:
			return fmt.Errorf("read identity: %w", err)
		default:
			usr, err := scanUser(tx.QueryRowContext(ctx, u.db.Rebind(`SELECT `+userCols+` FROM users WHERE id = ?`), userID))
			if err != nil {
				return fmt.Errorf("read linked user: %w", err)
			}
			res.User = usr
			if _, err := tx.ExecContext(ctx, u.db.Rebind(`UPDATE user_identities SET last_seen_at = ? WHERE issuer = ? AND subject = ?`),
				now.UnixMicro(), in.Issuer, in.Subject); err != nil {
				return fmt.Errorf("touch identity: %w", err)
			}
		}
		if res.User.Role != in.Role {
			if !res.Created {
				res.PreviousRole = res.User.Role
			}
			if _, err := tx.ExecContext(ctx, u.db.Rebind(`UPDATE users SET role = ?, updated_at = ? WHERE id = ?`), string(in.Role), now.UnixMicro(), res.User.ID); err != nil {
				return fmt.Errorf("set role: %w", err)
			}
			res.User.Role = in.Role
		}
		if hook != nil {
			return hook(ctx, tx, res)
		}
		return nil
	})
	if err != nil {
		return ExternalResult{}, sqldb.Fail("external sign-in", err)
	}
	return res, nil
}

// linkOrCreate returns the user named in.Name when no other identity of
// the issuer holds it (linked), or a new user without a password.
func (u *Users) linkOrCreate(ctx context.Context, tx *sql.Tx, in ExternalSignIn, now time.Time) (User, bool, error) {
	usr, err := scanUser(tx.QueryRowContext(ctx, u.db.Rebind(`SELECT `+userCols+` FROM users WHERE name = ?`), in.Name))
	switch {
	case err == nil:
		var n int
		if err := tx.QueryRowContext(ctx, u.db.Rebind(`SELECT COUNT(*) FROM user_identities WHERE user_id = ? AND issuer = ?`), usr.ID, in.Issuer).Scan(&n); err != nil {
			return User{}, false, fmt.Errorf("check link: %w", err)
		}
		if n > 0 {
			return User{}, false, fmt.Errorf("%w: %w", cases.ErrConflict, ErrIdentityConflict)
		}
		return usr, true, nil
	case !errors.Is(err, sql.ErrNoRows):
		return User{}, false, fmt.Errorf("read user: %w", err)
	}
	usr = User{ID: cases.NewID(), Name: in.Name, Role: in.Role, CreatedAt: now}
	// No password: password_hash '' never verifies (verifyPassword wants
	// a PHC string), so this user signs in through the provider only
	// until an admin sets a password.
	_, err = tx.ExecContext(ctx, u.db.Rebind(`INSERT INTO users (id, name, role, password_hash, created_at, updated_at) VALUES (?,?,?,?,?,?)`),
		usr.ID, usr.Name, string(in.Role), "", now.UnixMicro(), now.UnixMicro())
	if err != nil {
		return User{}, false, fmt.Errorf("insert user: %w", err)
	}
	return usr, false, nil
}
