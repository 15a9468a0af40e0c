package sqlstore

import (
	"context"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"strings"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
)

// Exact lookup of a customer by e-mail or phone (issue 15 §4). The columns
// are sealed, so equality goes through keyed hashes stored beside them
// (customers.email_hash, phone_hash; migration 0020): HMAC-SHA256 under a
// key derived from the master key, which no database or backup holds, so a
// stolen dump cannot confirm a guessed address by hashing it.

// LookupKey derives the key of the e-mail and phone hashes from the master
// key.
func LookupKey(master []byte) ([]byte, error) {
	if len(master) == 0 {
		return nil, errors.New("lookup key: no master key")
	}
	return hkdf.Key(sha256.New, master, nil, "casevault/customer-lookup/v1", 32)
}

// NormalizeEmail is the form an e-mail address is hashed in: trimmed and
// lower-cased (the local part is case-insensitive in practice).
func NormalizeEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// NormalizePhone is the form a phone number is hashed in: its digits only,
// so "+44 20 7946-0000" and "442079460000" are the same number.
func NormalizePhone(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// hash is the stored hash of a normalised value: NULL (nil) for an empty
// one or when there is no lookup key.
func (f *Fields) hash(kind, norm string) any {
	if f == nil || len(f.lookup) == 0 || norm == "" {
		return nil
	}
	m := hmac.New(sha256.New, f.lookup)
	m.Write([]byte(kind + "\x00" + norm))
	return hex.EncodeToString(m.Sum(nil))
}

func (f *Fields) emailHash(email string) any { return f.hash("email", NormalizeEmail(email)) }
func (f *Fields) phoneHash(phone string) any { return f.hash("phone", NormalizePhone(phone)) }

// CustomerLookup is an exact lookup; an empty field is not a condition.
type CustomerLookup struct {
	Email, Phone string
}

// maxLookup bounds the customers one lookup returns (duplicates of one
// address are rare; a page would hide that they exist).
const maxLookup = 100

// FindCustomers returns the customers whose e-mail and phone (those given)
// equal the lookup's after normalisation, oldest first. Without a lookup
// key (a store run without the master key) nothing is found.
func (s *Store) FindCustomers(ctx context.Context, l CustomerLookup) ([]cases.Customer, error) {
	var where []string
	var args []any
	if l.Email != "" {
		h := s.fields.emailHash(l.Email)
		if h == nil {
			return []cases.Customer{}, nil
		}
		where, args = append(where, "email_hash = ?"), append(args, h)
	}
	if l.Phone != "" {
		h := s.fields.phoneHash(l.Phone)
		if h == nil {
			return []cases.Customer{}, nil
		}
		where, args = append(where, "phone_hash = ?"), append(args, h)
	}
	if len(where) == 0 {
		return nil, cases.Invalid("email", "give email or phone")
	}

	o := s.fields.opener(ctx)
	out, err := sqldb.Collect(ctx, s.db.CachedRead(), s.q(`SELECT `+customerCols+` FROM customers WHERE `+strings.Join(where, " AND ")+` ORDER BY id LIMIT ?`), append(args, maxLookup),
		func(rows *sql.Rows) (cases.Customer, error) { return scanCustomer(o, rows) })
	if err != nil {
		return nil, s.fail("find customers", err)
	}
	if out == nil {
		out = []cases.Customer{}
	}
	return out, nil
}
