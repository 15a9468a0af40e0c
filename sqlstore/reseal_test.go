package sqlstore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/sqlstore"
	"github.com/casevault/casevault/testkit"
)

// personalColumns are every sealed column, by table.
var personalColumns = []struct{ table, col string }{
	{"customers", "name"}, {"customers", "email"}, {"customers", "phone"},
	{"cases", "subject"}, {"case_history", "changes"},
	{"contacts", "author"}, {"contacts", "body"}, {"contacts", "location"}, {"contacts", "device"},
}

// clearValues lists every non-empty personal value stored in clear.
func clearValues(t *testing.T, db *sqldb.DB) []string {
	t.Helper()
	var out []string
	for _, c := range personalColumns {
		rows, err := db.Read.QueryContext(context.Background(), `SELECT id, `+c.col+` FROM `+c.table)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id string
			var v *string
			if err := rows.Scan(&id, &v); err != nil {
				t.Fatal(err)
			}
			if v != nil && *v != "" && !sqlstore.IsSealed(*v) {
				out = append(out, c.table+"."+c.col+" of "+id+": "+*v)
			}
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// legacy writes rows as they were before sealing: a customer with a case,
// a subject change and a contact with location and device through a store
// without keys (clear text, no lookup hashes), and one customer inserted
// with raw SQL.
func legacy(t *testing.T, db *sqldb.DB) (via, raw string) {
	t.Helper()
	cust, _, _ := personal(t, cases.NewService(sqlstore.New(db, sqlstore.Options{}), nil))
	raw = cases.NewID()
	now := time.Now().UnixMicro()
	if _, err := db.Write.ExecContext(context.Background(), db.Rebind(`INSERT INTO customers (id, name, email, phone, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)`),
		raw, "Legacy Li Lei", "li.lei@legacy.example", "+86 139 0000 1111", now, now); err != nil {
		t.Fatal(err)
	}
	return cust.ID, raw
}

// TestResealLegacyRows: rows written before sealing (clear fields, no
// lookup hashes) are sealed by the pass, which resumes where a stopped run
// left it; afterwards no personal field is clear, the store reads them
// back, and the exact lookup finds the legacy customers. A second run seals
// nothing more.
func TestResealLegacyRows(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		viaStore, raw := legacy(t, db)
		st, _, svc := sealedStore(t, db)
		fresh, _, _ := personal(t, svc) // written sealed: left as it is
		if len(clearValues(t, db)) == 0 {
			t.Fatal("no legacy clear values seeded")
		}
		if got, err := st.FindCustomers(ctx, sqlstore.CustomerLookup{Email: "li.lei@legacy.example"}); err != nil || len(got) != 0 {
			t.Fatalf("lookup before the pass = %v, %v; want nothing (no hash yet)", got, err)
		}

		// A run stopped after two batches (as a kill would) ...
		stop := errors.New("stopped")
		batches := 0
		_, err := st.Reseal(ctx, sqlstore.ResealOptions{Owner: "a", BatchSize: 1, AfterBatch: func(sqlstore.ResealStatus) error {
			if batches++; batches == 2 {
				return stop
			}
			return nil
		}})
		if !errors.Is(err, stop) {
			t.Fatalf("stopped run: %v", err)
		}
		mid, err := sqlstore.ResealState(ctx, db)
		if err != nil || mid.Phase != sqlstore.ResealCustomers || mid.Scanned != 2 {
			t.Fatalf("state after two batches = %+v, %v", mid, err)
		}
		// ... resumes from its cursor (the same owner holds the lease).
		var seen []sqlstore.ResealStatus
		done, err := st.Reseal(ctx, sqlstore.ResealOptions{Owner: "a", BatchSize: 2, Progress: func(s sqlstore.ResealStatus) { seen = append(seen, s) }})
		if err != nil || !done.Done() || done.FinishedAt == nil {
			t.Fatalf("resumed run = %+v, %v", done, err)
		}
		if len(seen) == 0 || seen[0].Scanned <= mid.Scanned {
			t.Errorf("progress %+v does not continue from %d scanned", seen, mid.Scanned)
		}
		// 3 customers, 2 cases, 2 history rows, 2 contacts; the sealed ones
		// are scanned but not counted sealed.
		if done.Scanned != 9 || done.Sealed != 5 || done.Hashed != 2 || done.Skipped != 0 {
			t.Errorf("counters = %+v, want scanned 9, sealed 5 (legacy rows), hashed 2, skipped 0", done)
		}
		if left := clearValues(t, db); len(left) > 0 {
			t.Fatalf("clear personal fields left: %q", left)
		}

		for _, l := range []struct {
			lookup sqlstore.CustomerLookup
			want   string
		}{
			{sqlstore.CustomerLookup{Email: "LI.LEI@legacy.example "}, raw},
			{sqlstore.CustomerLookup{Phone: "8613900001111"}, raw},
			{sqlstore.CustomerLookup{Email: "wang.fang@example.com"}, ""}, // both the legacy and the fresh one
		} {
			got, err := st.FindCustomers(ctx, l.lookup)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, c := range got {
				ids = append(ids, c.ID)
			}
			switch {
			case l.want != "" && (len(ids) != 1 || ids[0] != l.want):
				t.Errorf("lookup %+v = %v, want [%s]", l.lookup, ids, l.want)
			case l.want == "" && len(ids) != 2:
				t.Errorf("lookup %+v = %v, want the legacy %s and the fresh %s", l.lookup, ids, viaStore, fresh.ID)
			}
		}
		c, err := st.GetCustomer(ctx, raw)
		if err != nil || c.Name != "Legacy Li Lei" || c.Phone != "+86 139 0000 1111" {
			t.Fatalf("sealed legacy customer reads %+v, %v", c, err)
		}
		cs, _, err := st.ListCases(ctx, cases.CaseFilter{CustomerID: viaStore}, cases.Page{})
		if err != nil || len(cs) != 1 || cs[0].Subject != "Parcel found in Suzhou" {
			t.Fatalf("sealed legacy case reads %+v, %v", cs, err)
		}
		tl, err := st.Timeline(ctx, cs[0].ID)
		if err != nil || len(tl) != 1 || tl[0].Body != "My parcel never arrived at West Lake road" || tl[0].Location == nil || tl[0].Location.Label != "West Lake" {
			t.Fatalf("sealed legacy contact reads %+v, %v", tl, err)
		}

		// Finished: a run does nothing; a restarted pass seals nothing more.
		again, err := st.Reseal(ctx, sqlstore.ResealOptions{Owner: "b"})
		if err != nil || !again.Done() || again.Scanned != done.Scanned {
			t.Fatalf("run after the end = %+v, %v", again, err)
		}
		re, err := st.Reseal(ctx, sqlstore.ResealOptions{Owner: "b", Restart: true})
		if err != nil || !re.Done() || re.Scanned != 9 || re.Sealed != 0 || re.Hashed != 0 {
			t.Fatalf("restarted pass = %+v, %v; want 9 scanned, nothing sealed", re, err)
		}
	})
}

// TestResealLease: one process runs the pass; another is refused while its
// lease lives, takes over once it expired, and the first then stops
// before it writes.
func TestResealLease(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		legacy(t, db)
		st, _, _ := sealedStore(t, db)
		clock := testkit.NewClock(time.Now().UTC())
		stop := errors.New("stopped")
		first := func(sqlstore.ResealStatus) error { return stop }
		if _, err := st.Reseal(ctx, sqlstore.ResealOptions{Owner: "a", BatchSize: 1, Now: clock.Now, AfterBatch: first}); !errors.Is(err, stop) {
			t.Fatal(err)
		}
		if _, err := st.Reseal(ctx, sqlstore.ResealOptions{Owner: "b", BatchSize: 1, Now: clock.Now}); !errors.Is(err, sqlstore.ErrResealBusy) {
			t.Fatalf("second owner during the lease: %v, want ErrResealBusy", err)
		}
		clock.Advance(31 * time.Second)
		// b takes over; a (its lease gone) is refused at its next batch.
		bStop := 0
		if _, err := st.Reseal(ctx, sqlstore.ResealOptions{Owner: "b", BatchSize: 1, Now: clock.Now, AfterBatch: func(sqlstore.ResealStatus) error {
			if bStop++; bStop == 1 {
				return stop
			}
			return nil
		}}); !errors.Is(err, stop) {
			t.Fatal(err)
		}
		if _, err := st.Reseal(ctx, sqlstore.ResealOptions{Owner: "a", BatchSize: 1, Now: clock.Now}); !errors.Is(err, sqlstore.ErrResealBusy) {
			t.Fatalf("first owner after losing the lease: %v, want ErrResealBusy", err)
		}
		done, err := st.Reseal(ctx, sqlstore.ResealOptions{Owner: "b", BatchSize: 1, Now: clock.Now})
		if err != nil || !done.Done() || !strings.HasPrefix(done.Phase, "done") {
			t.Fatalf("b's run = %+v, %v", done, err)
		}
		if left := clearValues(t, db); len(left) > 0 {
			t.Fatalf("clear personal fields left: %q", left)
		}
	})
}
