package sqlstore

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
)

// Personal fields are stored sealed under the customer's data key
// (crypto-shredding, issue 15): destroying the key makes every copy of
// them unreadable, backups included. Sealed: customers.name, email, phone;
// cases.subject; case_history.changes; contacts.author, body, location,
// device. Ids, times, purposes, categories, status and tags stay clear:
// they are what retention, holds and the sweeper select on.
//
// A sealed value is text: sealedPrefix, then base64 (raw, standard) of
// nonce || AES-256-GCM ciphertext, under a key derived from the customer's
// data key for fields only (HKDF-SHA256, info fieldKeyInfo), with
// associated data binding it to its table, column and row id, so that a
// value copied to another row or column does not open. The empty string
// stays empty (nothing to hide) and NULL stays NULL (the category
// minimisation selects on it). A value without the prefix is clear text
// written before sealing existed: it reads as it is (see SealExisting).

// sealedPrefix versions the format: a new format gets a new prefix.
const sealedPrefix = "cv1:"

const fieldKeyInfo = "casevault/fields/v1"

// ErrSealed: a sealed field was read by a store given no keys.
var ErrSealed = errors.New("sealed field and no keys to open it")

// DataKeys is what sealing needs of the keyring (archive.Keyring).
type DataKeys interface {
	// DataKeyTx returns the customer's data key, creating it in tx when
	// the customer has none.
	DataKeyTx(ctx context.Context, tx *sql.Tx, customerID string) ([]byte, error)
	// ExistingDataKey returns the customer's data key; a destroyed or
	// missing one is an error (archive.ErrKeyDestroyed).
	ExistingDataKey(ctx context.Context, customerID string) ([]byte, error)
}

// Fields seals and opens personal fields. A nil *Fields (or one without
// keys) writes clear text and opens only clear text: tools and tests that
// run without the master key.
type Fields struct {
	keys   DataKeys
	lookup []byte // keys the e-mail and phone hashes (lookup.go)

	mu    sync.Mutex
	aeads map[string]fieldKey // by customer; bounded by maxFieldKeys
}

type fieldKey struct {
	data []byte // the data key it was derived from
	aead cipher.AEAD
}

// maxFieldKeys bounds the derived keys kept (one per recent customer).
const maxFieldKeys = 4096

// NewFields seals under keys' per-customer data keys; lookupKey (from
// LookupKey) keys the e-mail and phone hashes that exact lookups use.
func NewFields(keys DataKeys, lookupKey []byte) *Fields {
	return &Fields{keys: keys, lookup: lookupKey, aeads: map[string]fieldKey{}}
}

func (f *Fields) on() bool { return f != nil && f.keys != nil }

// Forget drops what is cached for the customer (after their key is
// destroyed); the keyring is asked again in any case on each use.
func (f *Fields) Forget(customerID string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	delete(f.aeads, customerID)
	f.mu.Unlock()
}

// aead returns the field cipher derived from the customer's data key,
// deriving it once per key.
func (f *Fields) aead(customerID string, data []byte) (cipher.AEAD, error) {
	f.mu.Lock()
	k, ok := f.aeads[customerID]
	f.mu.Unlock()
	if ok && bytes.Equal(k.data, data) {
		return k.aead, nil
	}

	sub, err := hkdf.Key(sha256.New, data, nil, fieldKeyInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("field key: %w", err)
	}
	block, err := aes.NewCipher(sub)
	if err != nil {
		return nil, fmt.Errorf("field key: %w", err)
	}
	a, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("field key: %w", err)
	}

	f.mu.Lock()
	if len(f.aeads) >= maxFieldKeys {
		for id := range f.aeads { // evict an arbitrary entry
			delete(f.aeads, id)
			break
		}
	}
	f.aeads[customerID] = fieldKey{data: data, aead: a}
	f.mu.Unlock()
	return a, nil
}

func fieldAD(table, column, id string) []byte {
	return []byte("casevault/field/v1\x00" + table + "\x00" + column + "\x00" + id)
}

// RowKeys is what a keyring offers when the caller read the customer's
// key row itself, in a query it makes anyway (archive.Keyring): the
// sealing of contact ingest saves a round trip with it.
type RowKeys interface {
	// DataKeyFromRow judges a customer_keys row read in tx (found: the
	// row exists) as DataKeyTx would, creating the key in tx when there
	// is no row.
	DataKeyFromRow(ctx context.Context, tx *sql.Tx, customerID string, found bool, wrapped sql.NullString, destroyed sql.NullInt64) ([]byte, error)
}

// storedKey is a customer_keys row read with another query (owner NULL:
// no row).
type storedKey struct {
	wrapped, owner sql.NullString
	destroyed      sql.NullInt64
}

// sealerFromRow is sealerTx with the key row already read in tx.
func (f *Fields) sealerFromRow(ctx context.Context, tx *sql.Tx, customerID string, k storedKey) (sealer, error) {
	if !f.on() {
		return sealer{}, nil
	}
	rk, ok := f.keys.(RowKeys)
	if !ok {
		return f.sealerTx(ctx, tx, customerID)
	}
	data, err := rk.DataKeyFromRow(ctx, tx, customerID, k.owner.Valid, k.wrapped, k.destroyed)
	if err != nil {
		return sealer{}, fmt.Errorf("customer %s: %w", customerID, err)
	}
	a, err := f.aead(customerID, data)
	return sealer{a}, err
}

// sealer seals the fields of one customer's rows in a write transaction.
// Its zero value writes clear text.
type sealer struct{ aead cipher.AEAD }

// sealerTx reads (or creates) the customer's key in tx.
func (f *Fields) sealerTx(ctx context.Context, tx *sql.Tx, customerID string) (sealer, error) {
	if !f.on() {
		return sealer{}, nil
	}
	data, err := f.keys.DataKeyTx(ctx, tx, customerID)
	if err != nil {
		return sealer{}, fmt.Errorf("customer %s: %w", customerID, err)
	}
	a, err := f.aead(customerID, data)
	return sealer{a}, err
}

// seal returns the stored form of plain in table.column of row id.
func (s sealer) seal(table, column, id, plain string) string {
	if s.aead == nil || plain == "" {
		return plain
	}
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	out := s.aead.Seal(nonce, nonce, []byte(plain), fieldAD(table, column, id))
	return sealedPrefix + base64.RawStdEncoding.EncodeToString(out)
}

// sealNull seals a nullable JSON column's value (nil stays NULL).
func (s sealer) sealNull(table, column, id string, v any) any {
	text, ok := v.(string)
	if !ok {
		return v
	}
	return s.seal(table, column, id, text)
}

// opener opens the fields of the rows one read returns, asking the keyring
// once per customer.
type opener struct {
	ctx   context.Context
	f     *Fields
	aeads map[string]cipher.AEAD
	errs  map[string]error
}

func (f *Fields) opener(ctx context.Context) *opener {
	return &opener{ctx: ctx, f: f}
}

// IsSealed reports whether a stored value is in the sealed form.
func IsSealed(stored string) bool { return strings.HasPrefix(stored, sealedPrefix) }

// open returns the clear text of a stored value of table.column of row id,
// a row of customerID. A customer whose key was destroyed gives the
// keyring's error (archive.ErrKeyDestroyed, answered 410).
func (o *opener) open(customerID, table, column, id, stored string) (string, error) {
	if o == nil || !IsSealed(stored) { // a nil opener reads rows as stored
		return stored, nil
	}
	if !o.f.on() {
		return "", fmt.Errorf("%s.%s of %s: %w: %w", table, column, id, sqldb.ErrBadRow, ErrSealed)
	}

	a, err := o.aeadOf(customerID)
	if err != nil {
		return "", err
	}
	raw, err := base64.RawStdEncoding.DecodeString(stored[len(sealedPrefix):])
	if err != nil || len(raw) < a.NonceSize()+a.Overhead() {
		return "", fmt.Errorf("%s.%s of %s: %w: malformed sealed value", table, column, id, sqldb.ErrBadRow)
	}
	plain, err := a.Open(nil, raw[:a.NonceSize()], raw[a.NonceSize():], fieldAD(table, column, id))
	if err != nil {
		// Another row's value, or another customer's key.
		return "", fmt.Errorf("%s.%s of %s: %w: sealed value does not open", table, column, id, sqldb.ErrBadRow)
	}
	return string(plain), nil
}

// openNull opens a nullable column.
func (o *opener) openNull(customerID, table, column, id string, v *sql.NullString) error {
	if o == nil || !v.Valid {
		return nil
	}
	s, err := o.open(customerID, table, column, id, v.String)
	v.String = s
	return err
}

func (o *opener) aeadOf(customerID string) (cipher.AEAD, error) {
	if a, ok := o.aeads[customerID]; ok {
		return a, nil
	}
	if err, ok := o.errs[customerID]; ok {
		return nil, err
	}
	if o.aeads == nil {
		o.aeads, o.errs = map[string]cipher.AEAD{}, map[string]error{}
	}

	data, err := o.f.keys.ExistingDataKey(o.ctx, customerID)
	var a cipher.AEAD
	if err == nil {
		a, err = o.f.aead(customerID, data)
	}
	if err != nil {
		// A destroyed key is no outage: sqldb.Fail must not answer 503.
		if !errors.Is(err, sqldb.ErrUnavailable) {
			err = fmt.Errorf("%w: %w", sqldb.ErrBadRow, err)
		}
		err = fmt.Errorf("customer %s: %w", customerID, err)
		o.errs[customerID] = err
		return nil, err
	}
	o.aeads[customerID] = a
	return a, nil
}

// What export reads as stored (recordreads.go) it opens through these
// before it writes a package: the records carry the clear text then.

// OpenContacts opens the sealed columns of contact records in place.
func (f *Fields) OpenContacts(ctx context.Context, rs []ContactRecord) error {
	o := f.opener(ctx)
	for i := range rs {
		r := &rs[i]
		if err := openContact(o, r.CustomerID, r.ID, &r.Author, &r.Body, &r.Location, &r.Device); err != nil {
			return err
		}
	}
	return nil
}

// OpenCases opens the subjects of case records in place.
func (f *Fields) OpenCases(ctx context.Context, rs []CaseRecord) error {
	o := f.opener(ctx)
	for i := range rs {
		var err error
		if rs[i].Subject, err = o.open(rs[i].CustomerID, "cases", "subject", rs[i].ID, rs[i].Subject); err != nil {
			return err
		}
	}
	return nil
}

// OpenCustomers opens the name, e-mail and phone of customers in place.
func (f *Fields) OpenCustomers(ctx context.Context, cs []cases.Customer) error {
	o := f.opener(ctx)
	for i := range cs {
		if err := openCustomer(o, &cs[i]); err != nil {
			return err
		}
	}
	return nil
}

// What a disposition keeps of destroyed content is a keyed digest of its
// clear text (retention's digests): a sealed value is random per write
// (a fresh nonce each time), so a digest of it would match no copy anyone
// brings. Retention reads contacts and subjects as stored and opens them
// through these before it digests them.

// openForDigest opens one stored value; a value that does not open (the
// customer's key destroyed, a malformed value) stays as stored: it is all
// that is left to describe, and a sweep must not stop on it. An outage
// reading the key is returned.
func (o *opener) openForDigest(customerID, table, column, id, stored string) (string, error) {
	plain, err := o.open(customerID, table, column, id, stored)
	switch {
	case err == nil:
		return plain, nil
	case errors.Is(err, sqldb.ErrUnavailable), o.ctx.Err() != nil:
		return "", err
	default:
		return stored, nil
	}
}

// OpenStoredContacts opens the author, body, location and device of
// contacts read as stored (ReadStoredContacts) in place, for the digests
// of what is destroyed. A nil f leaves them as stored.
func (f *Fields) OpenStoredContacts(ctx context.Context, cs []StoredContact) error {
	if !f.on() {
		return nil
	}
	o := f.opener(ctx)
	for i := range cs {
		c := &cs[i]
		for _, v := range []struct {
			col string
			s   *string
		}{{"author", &c.Author}, {"body", &c.Body}} {
			var err error
			if *v.s, err = o.openForDigest(c.CustomerID, "contacts", v.col, c.ID, *v.s); err != nil {
				return err
			}
		}
		for _, v := range []struct {
			col string
			n   *sql.NullString
		}{{"location", &c.Location}, {"device", &c.Device}} {
			if !v.n.Valid {
				continue
			}
			var err error
			if v.n.String, err = o.openForDigest(c.CustomerID, "contacts", v.col, c.ID, v.n.String); err != nil {
				return err
			}
		}
	}
	return nil
}

// OpenSubject opens a case subject read as stored, for a digest (as
// OpenStoredContacts). A nil f returns it as stored.
func (f *Fields) OpenSubject(ctx context.Context, customerID, caseID, stored string) (string, error) {
	if !f.on() {
		return stored, nil
	}
	return f.opener(ctx).openForDigest(customerID, "cases", "subject", caseID, stored)
}

// OpenStoredCustomers opens the name, e-mail and phone of customers read
// as stored (CustomerRecords) in place, for a digest (as
// OpenStoredContacts). A nil f leaves them as stored.
func (f *Fields) OpenStoredCustomers(ctx context.Context, cs []cases.Customer) error {
	if !f.on() {
		return nil
	}
	o := f.opener(ctx)
	for i := range cs {
		c := &cs[i]
		for _, v := range []struct {
			col string
			s   *string
		}{{"name", &c.Name}, {"email", &c.Email}, {"phone", &c.Phone}} {
			var err error
			if *v.s, err = o.openForDigest(c.ID, "customers", v.col, c.ID, *v.s); err != nil {
				return err
			}
		}
	}
	return nil
}
