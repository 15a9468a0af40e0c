package retention_test

import (
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// reportKeys is the keys of a hold's whole report, read page by page.
func (e *env) reportKeys(holdID string, f retention.ItemFilter) []string {
	e.t.Helper()
	return keysOf(e.allItems(holdID, f))
}

// TestReportListsWhatStartsMatchingLater: the report pages from hold_items
// only, so everything a hold comes to cover after placement must have been
// recorded by then: a contact of a held customer or period by its write, a
// case that starts matching a query hold by the report's delta over the
// cases written since the hold's mark; a case edited out of a query scope
// stays listed. The delta moves the mark only while the index is caught
// up, and prunes the changes no query hold needs.
func TestReportListsWhatStartsMatchingLater(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cust, other := e.customer(), e.customer()
		old := e.newCase(cust)
		e.contact(old, base, nil, contactOpt{})

		byCustomer := e.place(retention.HoldScope{CustomerIDs: []string{cust}})
		byPeriod := e.place(retention.HoldScope{From: tp(base.Add(10 * day)), To: tp(base.Add(20 * day))})
		byQuery := e.place(retention.HoldScope{Query: "tag:litigation"})
		if n := e.count(`SELECT COUNT(*) FROM hold_recording`); n != 3 {
			t.Fatalf("%d holds marked recorded after placement, want 3", n)
		}

		// After placement: a new case and contact of the held customer, a
		// contact of another customer in the held period, a case tagged.
		later := e.newCase(cust)
		cl := e.contact(later, base.Add(40*day), nil, contactOpt{})
		oc := e.newCase(other)
		inPeriod := e.contact(oc, base.Add(15*day), nil, contactOpt{})
		e.contact(oc, base.Add(25*day), nil, contactOpt{}) // outside the period
		tagged := e.newCase(other)
		ct := e.contact(tagged, base, nil, contactOpt{})
		e.tag(tagged, "litigation")

		tests := []struct {
			name string
			hold string
			want []string
		}{
			{"customer", byCustomer, []string{"case:" + later + "/", "contact:" + later + "/" + cl.ID}},
			{"period", byPeriod, []string{"contact:" + oc + "/" + inPeriod.ID}},
			{"query", byQuery, []string{"case:" + tagged + "/", "contact:" + tagged + "/" + ct.ID}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got := e.reportKeys(tt.hold, retention.ItemFilter{})
				for _, w := range tt.want {
					if !slices.Contains(got, w) {
						t.Errorf("report %v lacks %s", got, w)
					}
				}
			})
		}
		if n := e.count(`SELECT COUNT(*) FROM hold_changes`); n != 0 {
			t.Errorf("%d hold changes left after the only query hold evaluated them", n)
		}

		// Edited out of the query scope: still listed, and still held.
		e.tag(tagged)
		if got := e.reportKeys(byQuery, retention.ItemFilter{}); !slices.Contains(got, "case:"+tagged+"/") {
			t.Fatalf("case edited out of the query scope left the report: %v", got)
		}

		// Tagged while the index lags: recorded (this matcher reads the
		// rows), but the mark stays, so the change is evaluated again.
		late := e.newCase(other)
		e.contact(late, base, nil, contactOpt{})
		var mark int64
		if err := e.db.Read.QueryRowContext(e.ctx, e.db.Rebind(`SELECT through FROM hold_recording WHERE hold_id = ?`), byQuery).Scan(&mark); err != nil {
			t.Fatal(err)
		}
		e.tag(late, "litigation")
		e.setLag(1)
		if got := e.reportKeys(byQuery, retention.ItemFilter{}); !slices.Contains(got, "case:"+late+"/") {
			t.Fatalf("report with a lagging index: %v", got)
		}
		if n := e.count(`SELECT COUNT(*) FROM hold_recording WHERE hold_id = ? AND through = ?`, byQuery, mark); n != 1 {
			t.Fatal("the mark moved while the index lagged")
		}
		e.setLag(0)
		e.reportKeys(byQuery, retention.ItemFilter{})
		if n := e.count(`SELECT COUNT(*) FROM hold_recording WHERE hold_id = ? AND through > ?`, byQuery, mark); n != 1 {
			t.Fatal("the mark did not move once the index caught up")
		}
	})
}

// TestReportRecordsUnfinishedPlacement: a hold whose placement recording
// never finished (a crash, or a restore, which does not carry
// hold_recording) is walked whole by its next report.
func TestReportRecordsUnfinishedPlacement(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cust := e.customer()
		cs := e.newCase(cust)
		c := e.contact(cs, base, nil, contactOpt{})
		id := e.place(retention.HoldScope{CustomerIDs: []string{cust}})
		if _, err := e.db.Write.ExecContext(e.ctx, `DELETE FROM hold_items`); err != nil {
			t.Fatal(err)
		}
		if _, err := e.db.Write.ExecContext(e.ctx, `DELETE FROM hold_recording`); err != nil {
			t.Fatal(err)
		}
		want := []string{"case:" + cs + "/", "contact:" + cs + "/" + c.ID}
		if got := e.reportKeys(id, retention.ItemFilter{}); !slices.Equal(got, want) {
			t.Fatalf("report %v, want %v", got, want)
		}
		if n := e.count(`SELECT COUNT(*) FROM hold_recording WHERE hold_id = ?`, id); n != 1 {
			t.Fatal("the walk did not mark the hold recorded")
		}
	})
}

// TestReportPagesByKey: paging a report with any page size gives the same
// items as one big page, in key order, without repeats or gaps, across
// whole cases (whose stored and disposed contacts follow the case item),
// contact items, and with the custodian filter; the per-custodian counts
// (read by keySQL) agree with the pages.
func TestReportPagesByKey(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		custA, custB := e.customer(), e.customer()
		var gone []cases.Contact
		for k := range 6 {
			cust := custA
			if k%2 == 1 {
				cust = custB
			}
			cs := e.newCase(cust)
			for i := range 4 {
				c := e.contact(cs, base.Add(time.Duration(i)*day), nil, contactOpt{})
				if i == 1 {
					gone = append(gone, c)
				}
			}
		}
		wholeHold := e.place(retention.HoldScope{CustomerIDs: []string{custA, custB}})
		contactHold := e.place(retention.HoldScope{CustomerIDs: []string{custA, custB}, To: tp(base.Add(2 * day))})

		// Disposed of since (as a sweep after the hold's release would):
		// the contact is gone, its disposition record stays.
		for _, c := range gone {
			if _, err := e.db.Write.ExecContext(e.ctx, e.db.Rebind(`DELETE FROM contacts WHERE id = ?`), c.ID); err != nil {
				t.Fatal(err)
			}
			if _, err := e.db.Write.ExecContext(e.ctx, e.db.Rebind(`INSERT INTO dispositions (id, run_id, contact_id, case_id, customer_id, purposes, rule, action, detail, at, content_sha256)
				VALUES (?, 'run', ?, ?, ?, '[]', 'r', 'delete', '{}', 0, '')`), cases.NewID(), c.ID, c.CaseID, c.CustomerID); err != nil {
				t.Fatal(err)
			}
		}

		for _, hold := range []string{wholeHold, contactHold} {
			for _, f := range []retention.ItemFilter{{}, {Custodian: custA}, {Custodian: custB}} {
				all, next, err := e.holds.Items(e.ctx, hold, f, 500, "")
				if err != nil || next != "" {
					t.Fatalf("one page: next %q, %v", next, err)
				}
				ref := keysOf(all)
				if len(ref) == 0 || !slices.IsSortedFunc(all, func(a, b retention.ReportItem) int {
					return strings.Compare(a.CaseID+"/"+a.ContactID, b.CaseID+"/"+b.ContactID)
				}) {
					t.Fatalf("reference %v not in key order", ref)
				}
				disposed := 0
				for _, it := range all {
					if it.Disposed {
						disposed++
					}
				}
				if hold == wholeHold && f.Custodian == "" && (len(all) != 6+24 || disposed != 6) {
					t.Fatalf("whole-case report: %d items, %d disposed; want 30, 6", len(all), disposed)
				}
				for _, limit := range []int{1, 2, 3, 5, 7} {
					t.Run(fmt.Sprintf("limit %d custodian %q", limit, f.Custodian), func(t *testing.T) {
						var got []string
						cursor := ""
						for range 100 {
							page, next, err := e.holds.Items(e.ctx, hold, f, limit, cursor)
							if err != nil {
								t.Fatal(err)
							}
							got = append(got, keysOf(page)...)
							if next == "" {
								break
							}
							cursor = next
						}
						if !slices.Equal(got, ref) {
							t.Fatalf("pages %v\nwant %v", got, ref)
						}
					})
				}
			}

			counts, err := e.holds.Custodians(e.ctx, hold)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range counts {
				items := e.allItems(hold, retention.ItemFilter{Custodian: c.CustomerID})
				var contacts, disposed int64
				for _, it := range items {
					if it.Kind == "contact" {
						contacts++
						if it.Disposed {
							disposed++
						}
					}
				}
				if contacts != c.Contacts || disposed != c.Disposed {
					t.Errorf("custodian %s: counts %+v, pages %d contacts, %d disposed", c.CustomerID, c, contacts, disposed)
				}
			}
		}
	})
}

// TestReportPageUsesIndex: the report's page query is served by
// hold_items' primary key (or hold_items_custodian with a custodian) in
// the ORDER BY's order, so its cost follows the page, not the hold: no
// sort step on SQLite, nor on PostgreSQL when it cannot scan the table.
func TestReportPageUsesIndex(t *testing.T) {
	const page = `SELECT case_id, contact_id, customer_id, why, since FROM hold_items WHERE hold_id = ?%s
		AND (case_id, contact_id) > (?, ?) ORDER BY case_id, contact_id LIMIT ?`
	tests := []struct {
		name, filter, index string
		args                []any
	}{
		{"all", "", "sqlite_autoindex_hold_items_1", []any{"h", "c", "", 51}},
		{"custodian", " AND customer_id = ?", "hold_items_custodian", []any{"h", "cu", "c", "", 51}},
	}
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				q := db.Rebind(fmt.Sprintf(page, tt.filter))
				if db.Dialect != sqldb.Postgres {
					plan := strings.Join(sqldbtest.QueryPlan(t, db, q, tt.args...), "; ")
					if !strings.Contains(plan, tt.index) || strings.Contains(plan, "TEMP B-TREE") {
						t.Fatalf("plan %q: want %s without a sort", plan, tt.index)
					}
					return
				}
				plan := pgPlan(t, db, q, tt.args...)
				if !strings.Contains(plan, "Index Cond") || !strings.Contains(plan, "ROW(case_id, contact_id) >") || strings.Contains(plan, "Sort") {
					t.Fatalf("plan %q: want an index scan without a sort", plan)
				}
			})
		}
	})
}

// pgPlan is PostgreSQL's EXPLAIN of q with sequential and bitmap scans
// and sorts disabled (a test table is too small for the planner to prefer
// an index otherwise): a Sort left in the plan means no index serves the
// order.
func pgPlan(t *testing.T, db *sqldb.DB, q string, args ...any) string {
	t.Helper()
	off := []string{"enable_seqscan = off", "enable_bitmapscan = off", "enable_sort = off"}
	return strings.Join(sqldbtest.PostgresPlan(t, db, off, q, args...), "; ")
}

// TestSweepBulkHoldCheckMatchesPerContact: under 100 holds of mixed scopes
// (by case, by customer, by query, by period, and combinations), some of
// whose cases were edited out of their query scope after placement, the
// sweep's bulk decision (one set query and one engine query per hold and
// batch, each contact checked against the holds that can name it) holds
// exactly the contacts a per-contact check of every hold does: recorded
// by the hold, or matching its scope now.
func TestSweepBulkHoldCheckMatchesPerContact(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		short := purposes(cases.PurposeNotification) // due after 90 days
		var custs, caseIDs []string
		for range 8 {
			custs = append(custs, e.customer())
		}
		for k := range 40 {
			cs := e.newCase(custs[k%len(custs)])
			caseIDs = append(caseIDs, cs)
			for i := range 3 {
				body := "my parcel never arrived"
				if (k+i)%5 == 0 {
					body = fmt.Sprintf("word%d and the parcel", k%10)
				}
				e.contact(cs, base.Add(time.Duration(k*3+i)*6*time.Hour), short, contactOpt{body: body})
			}
			if k%7 == 0 {
				e.tag(cs, "litigation")
			}
		}

		var holds []retention.Hold
		place := func(s retention.HoldScope) {
			h, err := e.holds.Place(e.ctx, retention.HoldInput{Matter: "M", Reason: "r", Scope: s}, cases.Actor{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			holds = append(holds, h)
		}
		for k := range 100 {
			from := base.Add(time.Duration(k%30) * day)
			switch k % 8 {
			case 0:
				place(retention.HoldScope{CaseIDs: []string{caseIDs[k%40]}})
			case 1:
				place(retention.HoldScope{CustomerIDs: []string{custs[k%8]}, From: &from, To: tp(from.Add(12 * time.Hour))})
			case 2:
				place(retention.HoldScope{Query: fmt.Sprintf("word%d", k%10)})
			case 3:
				place(retention.HoldScope{From: &from, To: tp(from.Add(6 * time.Hour))})
			case 4:
				place(retention.HoldScope{Query: "tag:litigation", CustomerIDs: []string{custs[k%8]}})
			case 5:
				place(retention.HoldScope{CaseIDs: []string{caseIDs[(k*3)%40], caseIDs[(k*7)%40]}, Query: "parcel"})
			case 6:
				place(retention.HoldScope{Query: fmt.Sprintf("word%d", k%10), From: &from, To: tp(from.Add(2 * day))})
			default:
				place(retention.HoldScope{CustomerIDs: []string{custs[k%8], custs[(k+3)%8]}, Query: "nothing-matches-this"})
			}
		}
		// Edited out of their query scope after placement: held by record.
		for k := 0; k < 40; k += 14 {
			e.tag(caseIDs[k])
		}

		want := e.perContactHolds(t, holds)
		rep := e.sweep(base.Add(400*day), true)
		got := map[string][]string{}
		for _, it := range rep.Items {
			if it.Action == retention.ItemHeld {
				got[it.ContactID] = it.HeldBy
			}
		}
		if rep.ItemsTruncated || len(want) == 0 || len(want) == 120 {
			t.Fatalf("test shape: %d of 120 held, truncated %v", len(want), rep.ItemsTruncated)
		}
		for id, hs := range want {
			if !slices.Equal(got[id], hs) {
				t.Errorf("contact %s: sweep held by %v, per-contact check %v", id, got[id], hs)
			}
		}
		for id, hs := range got {
			if _, ok := want[id]; !ok {
				t.Errorf("contact %s: sweep held by %v, per-contact check by none", id, hs)
			}
		}

		rep = e.sweep(base.Add(400*day), false)
		if rep.SkippedHeld != len(want) || rep.Deleted != 120-len(want) {
			t.Fatalf("real sweep: %+v; want %d held", rep, len(want))
		}
		for id := range want {
			if !e.exists(id) {
				t.Errorf("held contact %s was deleted", id)
			}
		}
	})
}

// perContactHolds decides, contact by contact and hold by hold, which
// holds cover each contact: what the hold recorded (its case, or the
// contact), or its scope evaluated now (criteria here, the query by the
// test matcher). It returns the sorted hold ids by contact, for the held.
func (e *env) perContactHolds(t *testing.T, holds []retention.Hold) map[string][]string {
	t.Helper()
	type row struct {
		id, caseID, customerID string
		occurred               int64
	}
	rows, err := sqldb.Collect(e.ctx, e.db.Read, `SELECT id, case_id, customer_id, occurred_at FROM contacts`, nil, func(r *sql.Rows) (row, error) {
		var c row
		return c, r.Scan(&c.id, &c.caseID, &c.customerID, &c.occurred)
	})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, c := range rows {
		for _, h := range holds {
			s := h.Scope
			recorded := e.count(`SELECT COUNT(*) FROM hold_items WHERE hold_id = ? AND case_id = ? AND (contact_id = '' OR contact_id = ?)`, h.ID, c.caseID, c.id) > 0
			live := (len(s.CaseIDs) == 0 || slices.Contains(s.CaseIDs, c.caseID)) &&
				(len(s.CustomerIDs) == 0 || slices.Contains(s.CustomerIDs, c.customerID)) &&
				(s.From == nil || c.occurred >= s.From.UnixMicro()) && (s.To == nil || c.occurred < s.To.UnixMicro())
			if live && s.Query != "" {
				q, err := search.ParseQuery(s.Query)
				if err != nil {
					t.Fatal(err)
				}
				q.Exact, q.Filter.CaseIDs = true, []string{c.caseID}
				if live, err = e.matcher.Matches(e.ctx, q, c.caseID); err != nil {
					t.Fatal(err)
				}
			}
			if recorded || live {
				out[c.id] = append(out[c.id], h.ID)
			}
		}
		slices.Sort(out[c.id])
	}
	return out
}

// TestSweepCatchesUpQueryHolds: a sweep records what query holds match
// among the cases written since their mark and prunes hold_changes, so the
// table does not grow while nobody reads the reports; a dry run writes
// neither.
func TestSweepCatchesUpQueryHolds(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cust := e.customer()
		id := e.place(retention.HoldScope{Query: "tag:litigation"})
		cs := e.newCase(cust)
		e.contact(cs, base, nil, contactOpt{})
		e.tag(cs, "litigation")
		if n := e.count(`SELECT COUNT(*) FROM hold_changes`); n == 0 {
			t.Fatal("writes under a query hold noted no change")
		}

		e.sweep(base, true)
		if n := e.count(`SELECT COUNT(*) FROM hold_items WHERE hold_id = ?`, id); n != 0 {
			t.Fatalf("dry run recorded %d items", n)
		}
		e.sweep(base, false)
		if n := e.count(`SELECT COUNT(*) FROM hold_items WHERE hold_id = ? AND case_id = ?`, id, cs); n != 1 {
			t.Fatalf("sweep recorded %d items of the tagged case, want 1", n)
		}
		if n := e.count(`SELECT COUNT(*) FROM hold_changes`); n != 0 {
			t.Fatalf("%d hold changes left after the sweep", n)
		}
	})
}
