package sqlstore_test

// Every test here runs on SQLite and PostgreSQL (sqldbtest.ForEachDialect):
// the store is one conformance suite over both engines.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/sqlstore"
)

func count(t *testing.T, db *sqldb.DB, table string) int {
	t.Helper()
	var n int
	if err := db.Read.QueryRow(`SELECT COUNT(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func seed(t testing.TB, svc *cases.Service) (cases.Customer, cases.Case) {
	t.Helper()
	ctx := context.Background()
	name := "Zhang San"
	cust, err := svc.CreateCustomer(ctx, cases.NewCustomer{Name: &name}, cases.Actor{})
	if err != nil {
		t.Fatal(err)
	}
	subj, ch := "Login problem", cases.ChannelWeb
	cs, err := svc.CreateCase(ctx, cases.NewCase{CustomerID: &cust.ID, Subject: &subj, Channel: &ch}, cases.Actor{})
	if err != nil {
		t.Fatal(err)
	}
	return cust, cs
}

func addContact(t testing.TB, svc *cases.Service, caseID, body string, purposes ...cases.Purpose) cases.ContactResult {
	t.Helper()
	ch, dir, author := cases.ChannelChat, cases.DirectionInbound, "customer"
	res, err := svc.AddContact(context.Background(), caseID, cases.NewContact{Channel: &ch, Direction: &dir, Author: &author, Body: &body, Purposes: purposes}, cases.Actor{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestHookFailureRollsBackWriteAndOutbox(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		boom := errors.New("audit down")
		fail := false
		st := sqlstore.New(db, sqlstore.Options{OnChange: func(ctx context.Context, tx *sql.Tx, ch cases.Change) error {
			if fail {
				return boom
			}
			return nil
		}})
		svc := cases.NewService(st, nil)
		_, cs := seed(t, svc)
		fail = true
		ch, dir, author, body := cases.ChannelChat, cases.DirectionInbound, "x", "hello"
		_, err := svc.AddContact(context.Background(), cs.ID, cases.NewContact{Channel: &ch, Direction: &dir, Author: &author, Body: &body}, cases.Actor{})
		if !errors.Is(err, boom) {
			t.Fatalf("want the hook's error, got %v", err)
		}
		if n := count(t, db, "contacts"); n != 0 {
			t.Fatalf("contact committed although its audit hook failed (%d rows)", n)
		}
		if n := count(t, db, "outbox"); n != 2 { // only the customer's and the case's creation
			t.Fatalf("outbox rows = %d, want 2", n)
		}
	})
}

func TestOutboxSourceAndCaseDocs(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		kicks := 0
		st := sqlstore.New(db, sqlstore.Options{Notify: func() { kicks++ }})
		svc := cases.NewService(st, nil)
		_, cs := seed(t, svc)
		c1 := addContact(t, svc, cs.ID, "first")
		addContact(t, svc, cs.ID, "second")
		if kicks != 4 {
			t.Fatalf("indexer woken %d times, want 4 (customer, case, two contacts)", kicks)
		}
		rows, err := st.ReadFeed(ctx, 0, 4)
		// first the customer's creation (issue 16 §2: a customer entry, no case)
		if err != nil || len(rows) != 4 || rows[0].CaseID != "" || rows[0].CustomerID != cs.CustomerID {
			t.Fatalf("pending = %+v %v, want the customer's entry first", rows, err)
		}
		rows = rows[1:]
		if rows[0].Seq >= rows[1].Seq || rows[0].CaseID != cs.ID || rows[0].CustomerID != "" {
			t.Fatalf("pending = %+v %v", rows, err)
		}
		// the case's creation changes it wholly; a new contact only adds itself
		if rows[0].ContactID != "" || rows[1].ContactID != c1.ID || rows[2].ContactID == "" || rows[2].ContactID == c1.ID {
			t.Fatalf("outbox contact IDs = %q %q %q, want \"\", %s, the second contact's", rows[0].ContactID, rows[1].ContactID, rows[2].ContactID, c1.ID)
		}
		part, err := st.LoadContactDocs(ctx, map[string][]string{cs.ID: {rows[2].ContactID, "no-such-contact"}, "gone": {c1.ID}})
		if err != nil {
			t.Fatal(err)
		}
		if p, ok := part[cs.ID]; len(part) != 1 || !ok || p.Subject != "Login problem" || len(p.Contacts) != 1 || p.Contacts[0].ID != rows[2].ContactID || p.Contacts[0].Body != "second" {
			t.Fatalf("LoadContactDocs = %+v, want the case with its second contact only", part)
		}
		docs, err := st.LoadCaseDocs(ctx, []string{cs.ID, "gone"})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := docs["gone"]; ok || len(docs) != 1 {
			t.Fatalf("a missing case must be absent: %v", docs)
		}
		d := docs[cs.ID]
		if d.Subject != "Login problem" || len(d.Contacts) != 2 || d.Contacts[0].ID != c1.ID || d.Contacts[0].Purposes[0] != "customer_service" {
			t.Fatalf("doc = %+v", d)
		}
		if rest, err := st.ReadFeed(ctx, rows[1].Seq, 10); err != nil || len(rest) != 1 || rest[0].Seq != rows[2].Seq {
			t.Fatalf("feed after the second = %+v %v, want the third only", rest, err)
		}
		ids, err := st.ListCaseIDs(ctx, "", 10)
		if err != nil || len(ids) != 1 || ids[0] != cs.ID {
			t.Fatalf("ListCaseIDs = %v %v", ids, err)
		}
		if ids, _ := st.ListCaseIDs(ctx, cs.ID, 10); len(ids) != 0 {
			t.Fatalf("ListCaseIDs after last = %v", ids)
		}
	})
}

func TestRetentionFollowsCaseClosure(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		st := sqlstore.New(db, sqlstore.Options{Policy: retention.DefaultSchedule().Policy()})
		svc := cases.NewService(st, func() time.Time { return now })
		_, cs := seed(t, svc)
		cs1 := addContact(t, svc, cs.ID, "customer service only")
		auth := addContact(t, svc, cs.ID, "login code check", cases.PurposeAuthentication)
		if cs1.RetainUntil != nil {
			t.Fatalf("customer_service on an open case must have no end yet, got %v", cs1.RetainUntil)
		}
		if want := now.AddDate(0, 0, 365); auth.RetainUntil == nil || !auth.RetainUntil.Equal(want) {
			t.Fatalf("authentication retain_until = %v, want %v", auth.RetainUntil, want)
		}
		closed := cases.StatusClosed
		if _, err := svc.UpdateCase(ctx, cs.ID, cases.CasePatch{Status: &closed}, cases.Actor{}); err != nil {
			t.Fatal(err)
		}
		got, err := st.GetContact(ctx, cs1.ID)
		if err != nil {
			t.Fatal(err)
		}
		if want := now.AddDate(0, 0, 3*365); got.RetainUntil == nil || !got.RetainUntil.Equal(want) {
			t.Fatalf("after close retain_until = %v, want %v", got.RetainUntil, want)
		}
		open := cases.StatusOpen
		if _, err := svc.UpdateCase(ctx, cs.ID, cases.CasePatch{Status: &open}, cases.Actor{}); err != nil {
			t.Fatal(err)
		}
		if got, _ := st.GetContact(ctx, cs1.ID); got.RetainUntil != nil {
			t.Fatalf("reopening must stop the clock, retain_until = %v", got.RetainUntil)
		}
	})
}

func TestCaseNumbersUniqueUnderConcurrency(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		st := sqlstore.New(db, sqlstore.Options{})
		svc := cases.NewService(st, nil)
		cust, _ := seed(t, svc)
		var wg sync.WaitGroup
		var mu sync.Mutex
		nums := map[int64]bool{}
		for i := 0; i < 40; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				subj, ch := fmt.Sprint("c", i), cases.ChannelPhone
				cs, err := svc.CreateCase(context.Background(), cases.NewCase{CustomerID: &cust.ID, Subject: &subj, Channel: &ch}, cases.Actor{})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if nums[cs.Number] {
					t.Errorf("case number %d given twice", cs.Number)
				}
				nums[cs.Number] = true
			}(i)
		}
		wg.Wait()
		if len(nums) != 40 {
			t.Fatalf("%d distinct numbers, want 40", len(nums))
		}
	})
}

func TestNotFoundIsTyped(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		st := sqlstore.New(db, sqlstore.Options{})
		ctx := context.Background()
		_, e1 := st.GetCustomer(ctx, "x")
		_, e2 := st.GetCase(ctx, "x")
		_, e3 := st.GetContact(ctx, "x")
		_, e4 := st.UpdateCase(ctx, "x", func(*cases.Case) error { return nil }, cases.Change{})
		for i, err := range []error{e1, e2, e3, e4} {
			if !errors.Is(err, cases.ErrNotFound) {
				t.Errorf("call %d: %v is not ErrNotFound", i, err)
			}
		}
	})
}

// A stored value that does not decode is a data error, not an outage: the
// API must not answer 503 "retry later" for it.
func TestUndecodableRowIsNotAnOutage(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		st := sqlstore.New(db, sqlstore.Options{})
		svc := cases.NewService(st, nil)
		_, cs := seed(t, svc)
		res := addContact(t, svc, cs.ID, "hello", cases.PurposeCustomerService)
		if _, err := db.Write.ExecContext(ctx, db.Rebind(`UPDATE contacts SET purposes = 'not json' WHERE id = ?`), res.Contact.ID); err != nil {
			t.Fatal(err)
		}

		for name, call := range map[string]func() error{
			"get contact": func() error { _, err := st.GetContact(ctx, res.Contact.ID); return err },
			"timeline":    func() error { _, err := st.Timeline(ctx, cs.ID); return err },
		} {
			err := call()
			if err == nil || errors.Is(err, sqldb.ErrUnavailable) || !errors.Is(err, sqldb.ErrBadRow) {
				t.Errorf("%s: %v, want ErrBadRow and not ErrUnavailable", name, err)
			}
		}
	})
}
