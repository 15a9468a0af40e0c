package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
)

// User is a person who signs in to the web console (never the password or
// its hash).
type User struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Role       Role       `json:"role"`
	TimeZone   string     `json:"time_zone"`
	CreatedAt  time.Time  `json:"created_at"`
	DisabledAt *time.Time `json:"disabled_at"`
	// LockedUntil is set while failed sign-ins keep the user out.
	LockedUntil *time.Time `json:"locked_until"`
}

// Argon2Params are the argon2id cost parameters of new password hashes.
// Each hash records its own, so raising them later leaves old hashes
// verifiable.
type Argon2Params struct {
	Time    uint32 // passes
	Memory  uint32 // KiB
	Threads uint8
}

// DefaultArgon2 is RFC 9106's second recommended option (§4): t=3 passes
// over 64 MiB with 4 lanes, about 0.1 s on one core of a 2024 server.
var DefaultArgon2 = Argon2Params{Time: 3, Memory: 64 * 1024, Threads: 4}

// Lockout: after MaxFailedLogins wrong passwords in a row a user is
// locked out for LockoutFor (each later failure restarts the lock).
const (
	MaxFailedLogins = 5
	LockoutFor      = 15 * time.Minute
	minPasswordLen  = 12
	maxPasswordLen  = 1024
)

var (
	// ErrBadCredentials is every failed sign-in: unknown user, wrong
	// password, disabled user (one answer, so names cannot be probed).
	ErrBadCredentials = errors.New("wrong user name or password")
	// ErrLockedOut is a sign-in refused while the user is locked out.
	ErrLockedOut = errors.New("too many failed sign-ins; try again later")
	// ErrNoUser is an admin operation on an unknown user.
	ErrNoUser = errors.New("no such user")
)

// Users stores console users.
type Users struct {
	db     *sqldb.DB
	params Argon2Params
	now    func() time.Time
	// dummy is verified against when the user does not exist, so that an
	// unknown name costs the same time as a wrong password.
	dummy string
}

// NewUsers builds the user store; new hashes use params.
func NewUsers(db *sqldb.DB, params Argon2Params, now func() time.Time) *Users {
	if now == nil {
		now = time.Now
	}
	u := &Users{db: db, params: params, now: now}
	u.dummy = u.hashPassword("not a password of anyone")
	return u
}

const phcPrefix = "$argon2id$v=19$"

func (u *Users) hashPassword(pw string) string {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt) // crypto/rand.Read never fails (Go 1.24+)
	p := u.params
	key := argon2.IDKey([]byte(pw), salt, p.Time, p.Memory, p.Threads, 32)
	enc := base64.RawStdEncoding
	return fmt.Sprintf("%sm=%d,t=%d,p=%d$%s$%s", phcPrefix, p.Memory, p.Time, p.Threads, enc.EncodeToString(salt), enc.EncodeToString(key))
}

// verifyPassword checks pw against a PHC argon2id string in constant time.
func verifyPassword(phc, pw string) bool {
	rest, ok := strings.CutPrefix(phc, phcPrefix)
	if !ok {
		return false
	}
	parts := strings.Split(rest, "$")
	if len(parts) != 3 {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[0], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil || p == 0 || t == 0 || m > 1<<22 {
		return false
	}
	enc := base64.RawStdEncoding
	salt, err1 := enc.DecodeString(parts[1])
	want, err2 := enc.DecodeString(parts[2])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

func checkUserName(name string) error {
	switch {
	case !utf8.ValidString(name) || strings.IndexByte(name, 0) >= 0:
		return cases.Invalid("name", "must be valid UTF-8 without NUL characters")
	case name == "" || utf8.RuneCountInString(name) > 64 || strings.TrimSpace(name) != name:
		return cases.Invalid("name", "must be 1 to 64 characters without surrounding spaces")
	}
	return nil
}

func checkPassword(pw string) error {
	if !utf8.ValidString(pw) || utf8.RuneCountInString(pw) < minPasswordLen || len(pw) > maxPasswordLen {
		return cases.Invalid("password", fmt.Sprintf("must be %d to %d characters", minPasswordLen, maxPasswordLen))
	}
	return nil
}

// CheckTimeZone validates an IANA time zone name ("" = the browser's or UTC).
func CheckTimeZone(tz string) error {
	if tz == "" {
		return nil
	}
	if len(tz) > 64 {
		return cases.Invalid("time_zone", "must be an IANA time zone name")
	}
	if _, err := time.LoadLocation(tz); err != nil {
		return cases.Invalid("time_zone", "must be an IANA time zone name")
	}
	return nil
}

// Create adds a user. hook runs in the same transaction (audit).
func (u *Users) Create(ctx context.Context, name string, role Role, password string, hook func(ctx context.Context, tx *sql.Tx, usr User) error) (User, error) {
	if err := errors.Join(checkUserName(name), checkPassword(password)); err != nil {
		return User{}, err
	}
	if !slices.Contains(Roles, role) {
		return User{}, cases.Invalid("role", "must be one of agent, supervisor, legal, backup, admin")
	}
	now := u.now().UTC().Truncate(time.Microsecond)
	usr := User{ID: cases.NewID(), Name: name, Role: role, CreatedAt: now}
	h := u.hashPassword(password)
	err := u.db.InTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, u.db.Rebind(`SELECT COUNT(*) FROM users WHERE name = ?`), name).Scan(&n); err != nil {
			return fmt.Errorf("check user name: %w", err)
		}
		if n > 0 {
			return fmt.Errorf("%w: a user named %q exists", cases.ErrConflict, name)
		}
		_, err := tx.ExecContext(ctx, u.db.Rebind(`INSERT INTO users (id, name, role, password_hash, created_at, updated_at) VALUES (?,?,?,?,?,?)`),
			usr.ID, usr.Name, string(role), h, now.UnixMicro(), now.UnixMicro())
		if err != nil {
			return fmt.Errorf("insert user: %w", err)
		}
		if hook != nil {
			return hook(ctx, tx, usr)
		}
		return nil
	})
	if err != nil {
		return User{}, err
	}
	return usr, nil
}

const userCols = `id, name, role, time_zone, created_at, disabled_at, locked_until`

func scanUser(sc interface{ Scan(...any) error }, extra ...any) (User, error) {
	var usr User
	var created int64
	var disabled, locked sql.NullInt64
	err := sc.Scan(append([]any{&usr.ID, &usr.Name, &usr.Role, &usr.TimeZone, &created, &disabled, &locked}, extra...)...)
	if err != nil {
		return User{}, err
	}
	usr.CreatedAt = time.UnixMicro(created).UTC()
	usr.DisabledAt = microPtr(disabled)
	usr.LockedUntil = microPtr(locked)
	return usr, nil
}

func microPtr(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := time.UnixMicro(v.Int64).UTC()
	return &t
}

// List returns every user by name.
func (u *Users) List(ctx context.Context) ([]User, error) {
	rows, err := u.db.Read.QueryContext(ctx, `SELECT `+userCols+` FROM users ORDER BY name`)
	if err != nil {
		return nil, sqldb.Fail("list users", err)
	}
	defer rows.Close()
	out := []User{}
	for rows.Next() {
		usr, err := scanUser(rows)
		if err != nil {
			return nil, sqldb.Fail("list users", err)
		}
		out = append(out, usr)
	}
	return out, sqldb.Fail("list users", rows.Err())
}

// Get reads one user by ID.
func (u *Users) Get(ctx context.Context, id string) (User, error) {
	usr, err := scanUser(u.db.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrNoUser
	}
	if err != nil {
		return User{}, sqldb.Fail("read user", err)
	}
	return usr, nil
}

// ByName reads one user by name.
func (u *Users) ByName(ctx context.Context, name string) (User, error) {
	usr, err := scanUser(u.db.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE name = ?`, name))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, ErrNoUser
	}
	if err != nil {
		return User{}, sqldb.Fail("read user", err)
	}
	return usr, nil
}

// LoginResult says what a sign-in attempt did, for the audit trail.
type LoginResult struct {
	User User
	// LockedNow: this failure locked the user out.
	LockedNow bool
}

// Login checks a name and password. A wrong password counts towards the
// lockout; a right one resets the count. While locked out even the right
// password is refused (ErrLockedOut), so guessing cannot go on.
func (u *Users) Login(ctx context.Context, name, password string) (LoginResult, error) {
	var phc string
	var failed int
	usr, err := scanUser(u.db.QueryRow(ctx, `SELECT `+userCols+`, password_hash, failed_logins FROM users WHERE name = ?`, name), &phc, &failed)
	if errors.Is(err, sql.ErrNoRows) || len(password) > maxPasswordLen {
		verifyPassword(u.dummy, password)
		return LoginResult{}, ErrBadCredentials
	}
	if err != nil {
		return LoginResult{}, sqldb.Fail("read user", err)
	}
	now := u.now().UTC()
	if usr.LockedUntil != nil && now.Before(*usr.LockedUntil) {
		return LoginResult{User: usr}, ErrLockedOut
	}
	ok := verifyPassword(phc, password)
	if ok && usr.DisabledAt == nil {
		_, err := u.db.Write.ExecContext(ctx, u.db.Rebind(`UPDATE users SET failed_logins = 0, locked_until = NULL WHERE id = ?`), usr.ID)
		usr.LockedUntil = nil
		return LoginResult{User: usr}, sqldb.Fail("reset failed logins", err)
	}
	if !ok {
		failed++
		var lock any
		res := LoginResult{User: usr}
		if failed >= MaxFailedLogins {
			lock = now.Add(LockoutFor).UnixMicro()
			res.LockedNow = true
		}
		if _, err := u.db.Write.ExecContext(ctx, u.db.Rebind(`UPDATE users SET failed_logins = ?, locked_until = ? WHERE id = ?`), failed, lock, usr.ID); err != nil {
			return res, sqldb.Fail("count failed login", err)
		}
		return res, ErrBadCredentials
	}
	return LoginResult{User: usr}, ErrBadCredentials
}

// SetPassword replaces a user's password and ends the lockout; the
// caller revokes their sessions.
func (u *Users) SetPassword(ctx context.Context, id, password string, hook func(ctx context.Context, tx *sql.Tx) error) error {
	if err := checkPassword(password); err != nil {
		return err
	}
	h := u.hashPassword(password)
	return u.update(ctx, id, `password_hash = ?, failed_logins = 0, locked_until = NULL`, []any{h}, hook)
}

// SetDisabled disables (or re-enables) a user.
func (u *Users) SetDisabled(ctx context.Context, id string, disabled bool, hook func(ctx context.Context, tx *sql.Tx) error) error {
	var at any
	if disabled {
		at = u.now().UTC().UnixMicro()
	}
	return u.update(ctx, id, `disabled_at = ?`, []any{at}, hook)
}

// SetRole changes a user's role.
func (u *Users) SetRole(ctx context.Context, id string, role Role, hook func(ctx context.Context, tx *sql.Tx) error) error {
	if !slices.Contains(Roles, role) {
		return cases.Invalid("role", "must be one of agent, supervisor, legal, backup, admin")
	}
	return u.update(ctx, id, `role = ?`, []any{string(role)}, hook)
}

// SetTimeZone records the zone the user's dates are shown in.
func (u *Users) SetTimeZone(ctx context.Context, id, tz string) error {
	if err := CheckTimeZone(tz); err != nil {
		return err
	}
	return u.update(ctx, id, `time_zone = ?`, []any{tz}, nil)
}

func (u *Users) update(ctx context.Context, id, set string, args []any, hook func(ctx context.Context, tx *sql.Tx) error) error {
	return u.db.InTx(ctx, func(tx *sql.Tx) error {
		args = append(args, u.now().UTC().UnixMicro(), id)
		res, err := tx.ExecContext(ctx, u.db.Rebind(`UPDATE users SET `+set+`, updated_at = ? WHERE id = ?`), args...)
		if err != nil {
			return fmt.Errorf("update user: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return ErrNoUser
		}
		if hook != nil {
			return hook(ctx, tx)
		}
		return nil
	})
}
