package sqlstore_test

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/sqlstore"
)

// sealedStore is a store that seals personal fields under a keyring.
func sealedStore(t *testing.T, db *sqldb.DB) (*sqlstore.Store, *archive.Keyring, *cases.Service) {
	t.Helper()
	keys, fields := sealing(t, db)
	st := sqlstore.New(db, sqlstore.Options{Fields: fields})
	return st, keys, cases.NewService(st, nil)
}

// sealing is a keyring on db and the fields it seals.
func sealing(t testing.TB, db *sqldb.DB) (*archive.Keyring, *sqlstore.Fields) {
	t.Helper()
	master := bytes.Repeat([]byte{3}, 32)
	keys, err := archive.NewKeyring(db, master, archive.KeyringOptions{})
	if err != nil {
		t.Fatal(err)
	}
	lk, err := sqlstore.LookupKey(master)
	if err != nil {
		t.Fatal(err)
	}
	return keys, sqlstore.NewFields(keys, lk)
}

// personal writes a customer with a case, a contact with location and
// device, and a subject change, through the service.
func personal(t *testing.T, svc *cases.Service) (cases.Customer, cases.Case, cases.Contact) {
	t.Helper()
	ctx := context.Background()
	name, email, phone := "Wang Fang", "Wang.Fang@Example.com", "+86 138-0013-8000"
	yes := true
	cust, err := svc.CreateCustomer(ctx, cases.NewCustomer{Name: &name, Email: &email, Phone: &phone, Consents: &cases.Consents{Location: yes}}, cases.Actor{})
	if err != nil {
		t.Fatal(err)
	}
	subj, ch := "Parcel lost in Hangzhou", cases.ChannelWeb
	cs, err := svc.CreateCase(ctx, cases.NewCase{CustomerID: &cust.ID, Subject: &subj, Channel: &ch}, cases.Actor{})
	if err != nil {
		t.Fatal(err)
	}
	subj2 := "Parcel found in Suzhou"
	if _, err := svc.UpdateCase(ctx, cs.ID, cases.CasePatch{Subject: &subj2}, cases.Actor{Name: "sup", Role: "supervisor"}); err != nil {
		t.Fatal(err)
	}
	cch, dir, author, body := cases.ChannelChat, cases.DirectionInbound, "Wang Fang herself", "My parcel never arrived at West Lake road"
	res, err := svc.AddContact(ctx, cs.ID, cases.NewContact{Channel: &cch, Direction: &dir, Author: &author, Body: &body,
		Categories: []cases.Category{cases.CategorySupportContent, cases.CategoryLocation, cases.CategoryDevice},
		Location:   &cases.Location{Lat: 30.25, Lon: 120.16, Label: "West Lake"}, Device: &cases.Device{IP: "198.51.100.23", UserAgent: "Quokka/1.0"}}, cases.Actor{})
	if err != nil {
		t.Fatal(err)
	}
	return cust, cs, res.Contact
}

// TestPersonalFieldsAreSealed: every personal column is stored sealed
// (none holds its clear text), and every read path of the store opens it.
func TestPersonalFieldsAreSealed(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		st, _, svc := sealedStore(t, db)
		cust, cs, ct := personal(t, svc)

		for _, c := range []struct{ query, id, clear string }{
			{`SELECT name FROM customers WHERE id = ?`, cust.ID, "Wang Fang"},
			{`SELECT email FROM customers WHERE id = ?`, cust.ID, "Example.com"},
			{`SELECT phone FROM customers WHERE id = ?`, cust.ID, "0013"}, // in "+86 138-0013-8000" and its normal form; 3 digits were found in a ciphertext once
			{`SELECT subject FROM cases WHERE id = ?`, cs.ID, "Suzhou"},
			{`SELECT changes FROM case_history WHERE case_id = ?`, cs.ID, "Hangzhou"},
			{`SELECT author FROM contacts WHERE id = ?`, ct.ID, "Wang"},
			{`SELECT body FROM contacts WHERE id = ?`, ct.ID, "West Lake"},
			{`SELECT location FROM contacts WHERE id = ?`, ct.ID, "West Lake"},
			{`SELECT device FROM contacts WHERE id = ?`, ct.ID, "198.51"},
		} {
			var stored string
			if err := db.Read.QueryRow(db.Rebind(c.query), c.id).Scan(&stored); err != nil {
				t.Fatalf("%s: %v", c.query, err)
			}
			if !sqlstore.IsSealed(stored) || strings.Contains(stored, c.clear) {
				t.Errorf("%s stores %q: not sealed", c.query, stored)
			}
		}
		// The audit trail outlives an erasure: the subject change names the
		// field only (sealedStore has no audit hook; the store's detail is
		// checked in TestUpdatesRecordWhatChanged).

		got, err := st.GetCustomer(ctx, cust.ID)
		if err != nil || got.Name != "Wang Fang" || got.Email != "Wang.Fang@Example.com" || got.Phone != "+86 138-0013-8000" {
			t.Errorf("GetCustomer = %+v, %v", got, err)
		}
		k, err := st.GetCase(ctx, cs.ID)
		if err != nil || k.Subject != "Parcel found in Suzhou" {
			t.Errorf("GetCase subject %q, %v", k.Subject, err)
		}
		tl, err := st.Timeline(ctx, cs.ID)
		if err != nil || len(tl) != 1 || tl[0].Body != "My parcel never arrived at West Lake road" || tl[0].Author != "Wang Fang herself" ||
			tl[0].Location == nil || tl[0].Location.Label != "West Lake" || tl[0].Device == nil || tl[0].Device.IP != "198.51.100.23" {
			t.Errorf("Timeline = %+v, %v", tl, err)
		}
		hist, err := st.History(ctx, cs.ID)
		if err != nil || len(hist) != 1 || hist[0].Changes["subject"].From != "Parcel lost in Hangzhou" {
			t.Errorf("History = %+v, %v", hist, err)
		}
		docs, err := st.LoadCaseDocs(ctx, []string{cs.ID})
		if d := docs[cs.ID]; err != nil || d.Subject != "Parcel found in Suzhou" || len(d.Contacts) != 1 || d.Contacts[0].Body != "My parcel never arrived at West Lake road" {
			t.Errorf("LoadCaseDocs = %+v, %v", docs, err)
		}
		list, _, err := st.ListCases(ctx, cases.CaseFilter{CustomerID: cust.ID}, cases.Page{})
		if err != nil || len(list) != 1 || list[0].Subject != "Parcel found in Suzhou" {
			t.Errorf("ListCases = %+v, %v", list, err)
		}
	})
}

// TestSealedFieldsRefuseMisuse: a sealed value opens only in its own row
// and column and under its customer's live key; a row written before
// sealing reads as it is.
func TestSealedFieldsRefuseMisuse(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		st, keys, svc := sealedStore(t, db)
		cust, cs, ct := personal(t, svc)
		other, ocs, _ := personal(t, svc)

		// Clear text from before sealing existed.
		now := sqldb.Micros(time.Now())
		if _, err := db.Write.Exec(db.Rebind(`INSERT INTO customers (id, name, email, phone, created_at, updated_at) VALUES (?, 'Legacy Li', 'li@example.com', '', ?, ?)`), "legacy-1", now, now); err != nil {
			t.Fatal(err)
		}
		if got, err := st.GetCustomer(ctx, "legacy-1"); err != nil || got.Name != "Legacy Li" {
			t.Errorf("legacy clear row: %+v %v", got, err)
		}

		// The subject of one case copied onto another: it does not open.
		if _, err := db.Write.Exec(db.Rebind(`UPDATE cases SET subject = (SELECT subject FROM cases WHERE id = ?) WHERE id = ?`), cs.ID, ocs.ID); err != nil {
			t.Fatal(err)
		}
		_, err := st.GetCase(ctx, ocs.ID)
		if err == nil || errors.Is(err, sqldb.ErrUnavailable) {
			t.Errorf("a subject moved to another case read: %v (want an error that is no outage)", err)
		}

		// A store without keys cannot read sealed rows.
		plain := sqlstore.New(db, sqlstore.Options{})
		if _, err := plain.GetContact(ctx, ct.ID); !errors.Is(err, sqlstore.ErrSealed) {
			t.Errorf("keyless store read a sealed contact: %v", err)
		}

		// Crypto-shredding: the customer's rows no longer open; the other's do.
		if err := keys.Destroy(ctx, cust.ID); err != nil {
			t.Fatal(err)
		}
		for what, read := range map[string]func() error{
			"customer": func() error { _, err := st.GetCustomer(ctx, cust.ID); return err },
			"case":     func() error { _, err := st.GetCase(ctx, cs.ID); return err },
			"contact":  func() error { _, err := st.GetContact(ctx, ct.ID); return err },
		} {
			if err := read(); !errors.Is(err, archive.ErrKeyDestroyed) || errors.Is(err, sqldb.ErrUnavailable) {
				t.Errorf("%s of a shredded customer: %v, want ErrKeyDestroyed (not an outage)", what, err)
			}
		}
		if got, err := st.GetCustomer(ctx, other.ID); err != nil || got.Name != "Wang Fang" {
			t.Errorf("other customer after the shredding: %+v %v", got, err)
		}
	})
}

// TestFindCustomers: exact lookup on the keyed hashes, e-mail case and
// phone punctuation ignored; no partial matches.
func TestFindCustomers(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		st, _, svc := sealedStore(t, db)
		cust, _, _ := personal(t, svc)
		for _, c := range []struct {
			name  string
			l     sqlstore.CustomerLookup
			found bool
		}{
			{"email as stored", sqlstore.CustomerLookup{Email: "Wang.Fang@Example.com"}, true},
			{"email other case and spaces", sqlstore.CustomerLookup{Email: "  wang.fang@EXAMPLE.COM "}, true},
			{"phone digits only", sqlstore.CustomerLookup{Phone: "8613800138000"}, true},
			{"phone punctuated", sqlstore.CustomerLookup{Phone: "(86) 138 0013 8000"}, true},
			{"both", sqlstore.CustomerLookup{Email: "wang.fang@example.com", Phone: "+86 13800138000"}, true},
			{"email right phone wrong", sqlstore.CustomerLookup{Email: "wang.fang@example.com", Phone: "1"}, false},
			{"partial email", sqlstore.CustomerLookup{Email: "wang.fang@example"}, false},
			{"other email", sqlstore.CustomerLookup{Email: "someone@example.com"}, false},
		} {
			t.Run(c.name, func(t *testing.T) {
				got, err := st.FindCustomers(ctx, c.l)
				if err != nil {
					t.Fatal(err)
				}
				if c.found != (len(got) == 1 && got[0].ID == cust.ID && got[0].Email == "Wang.Fang@Example.com") {
					t.Errorf("found %+v, want found=%v", got, c.found)
				}
			})
		}
		var ve *cases.ValidationError
		if _, err := st.FindCustomers(ctx, sqlstore.CustomerLookup{}); !errors.As(err, &ve) {
			t.Errorf("empty lookup: %v, want a validation error", err)
		}
	})
}
