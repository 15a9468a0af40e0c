package sqlstore_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/sqlstore"
)

// The sweep's expiry selection is one range scan of contacts_retain_due:
// a plan that scans the table or sorts would make every batch read it all.
func TestExpiringContactsUseTheIndex(t *testing.T) {
	db := sqldbtest.Open(t, sqldb.SQLite)
	plan := sqldbtest.QueryPlan(t, db, db.Rebind(sqlstore.ExpiringQuery), 0, 0, 0, "", 10)
	got := strings.Join(plan, "; ")
	if len(plan) != 1 || !strings.Contains(got, "USING INDEX contacts_retain_due") || strings.Contains(got, "TEMP B-TREE") {
		t.Fatalf("plan %q, want one search of contacts_retain_due without a sort", got)
	}
}

// The keyset reads page in (key, id) order from just after the last row, and
// the scope and per-case reads select what they say.
func TestContactReads(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		svc := cases.NewService(sqlstore.New(db, sqlstore.Options{}), time.Now)
		cust, cs := seed(t, svc)
		a := addContact(t, svc, cs.ID, "a").Contact.ID
		b := addContact(t, svc, cs.ID, "b").Contact.ID
		c := addContact(t, svc, cs.ID, "c").Contact.ID
		if b < a {
			a, b = b, a // ids in order, for the ties below
		}
		due := func(id string, at int64) {
			t.Helper()
			if _, err := db.Write.ExecContext(ctx, db.Rebind(`UPDATE contacts SET retain_until = ? WHERE id = ?`), at, id); err != nil {
				t.Fatal(err)
			}
		}
		due(a, 10)
		due(b, 10)
		due(c, 30)

		page, err := sqlstore.ExpiringContacts(ctx, db, db.Read, 20, 0, "", 1)
		if err != nil || len(page) != 1 || page[0].ID != a || page[0].Key != 10 || page[0].CustomerID != cust.ID {
			t.Fatalf("first page %+v (%v), want %s at 10", page, err, a)
		}
		page, err = sqlstore.ExpiringContacts(ctx, db, db.Read, 20, 10, a, 5)
		if err != nil || len(page) != 1 || page[0].ID != b {
			t.Fatalf("second page %+v (%v), want only %s (%s is due after the bound)", page, err, b, c)
		}
		if _, err := sqlstore.RedactableContacts(ctx, db, db.Read, "body", 20, 0, "", 5); err == nil {
			t.Fatal("redacting the body column was accepted")
		}

		to := time.Now().Add(time.Hour)
		in, err := sqlstore.ContactsInScope(ctx, db, db.Read, sqlstore.ContactScope{CaseIDs: []string{cs.ID}, To: &to}, a, 10)
		if err != nil || len(in) != 2 || in[0].ID >= in[1].ID || in[0].ID <= a {
			t.Fatalf("scope after %s: %+v (%v), want the two contacts after it in id order", a, in, err)
		}
		counts, err := sqlstore.CountCaseContacts(ctx, db, db.Read, []string{cs.ID, "none"})
		if err != nil || len(counts) != 1 || counts[cs.ID] != 3 {
			t.Fatalf("counts %v (%v), want 3 for the case only", counts, err)
		}
		dues, err := sqlstore.ContactsDueBy(ctx, db, db.Read, sqldb.FromMicros(10), []string{c, b, a})
		if err != nil || len(dues) != 2 || dues[0].ID != a || dues[1].ID != b {
			t.Fatalf("due by 10: %+v (%v), want %s and %s", dues, err, a, b)
		}

		one, err := sqlstore.ReadContact(ctx, db, db.Read, c)
		if err != nil || one.ID != c || one.CaseID != cs.ID || one.Categories == nil || one.Body != "" || one.RetainUntil == nil {
			t.Fatalf("contact %+v (%v), want %s with its categories and without its content", one, err, c)
		}
		if _, err := sqlstore.ReadContact(ctx, db, db.Read, "nope"); !errors.Is(err, sql.ErrNoRows) {
			t.Fatalf("unknown contact: %v, want sql.ErrNoRows", err)
		}
		all, err := sqlstore.ReadCaseContacts(ctx, db, db.Read, cs.ID)
		if err != nil || len(all) != 3 || all[0].OccurredAt.After(all[2].OccurredAt) {
			t.Fatalf("case contacts %+v (%v), want 3 in capture order", all, err)
		}

		many := []string{}
		for i := range 700 { // more than one IN list
			many = append(many, fmt.Sprintf("gone-%03d", i))
		}
		recs, err := sqlstore.ContactRecords(ctx, db, db.Read, append(many, c))
		if err != nil || len(recs) != 1 || recs[0].ID != c || recs[0].Body != "c" || recs[0].Purposes == "" {
			t.Fatalf("records %+v (%v), want %s as stored", recs, err, c)
		}
		if recs, err := sqlstore.ContactRecordsOfCases(ctx, db, db.Read, []string{cs.ID}); err != nil || len(recs) != 3 {
			t.Fatalf("records of the case: %d (%v), want 3", len(recs), err)
		}
		if got, err := sqlstore.CaseRecords(ctx, db, db.Read, []string{cs.ID, "none"}); err != nil || len(got) != 1 || got[0].Number != cs.Number {
			t.Fatalf("case records %+v (%v), want case %d", got, err, cs.Number)
		}
		if got, err := sqlstore.CustomerRecords(ctx, db, db.Read, []string{cust.ID}); err != nil || len(got) != 1 || got[0].Name != cust.Name {
			t.Fatalf("customer records %+v (%v), want %q", got, err, cust.Name)
		}
	})
}
