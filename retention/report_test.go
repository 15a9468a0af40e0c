package retention_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
)

// allItems reads a hold's report page by page (limit 2).
func (e *env) allItems(holdID string, f retention.ItemFilter) []retention.ReportItem {
	e.t.Helper()
	var out []retention.ReportItem
	cursor := ""
	for range 100 {
		page, next, err := e.holds.Items(e.ctx, holdID, f, 2, cursor)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, page...)
		if next == "" {
			return out
		}
		cursor = next
	}
	e.t.Fatal("report pages do not end")
	return nil
}

func keysOf(items []retention.ReportItem) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.Kind+":"+it.CaseID+"/"+it.ContactID)
	}
	return out
}

// TestHoldReport: a hold's report lists the cases and contacts it covers
// with why and since, per custodian, page by page; after release, grace and
// disposal it still lists them, disposed, linked to their disposition
// records.
func TestHoldReport(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		custA, custB := e.customer(), e.customer()
		a1, b1 := e.newCase(custA), e.newCase(custB)
		short := purposes(cases.PurposeNotification) // 90 days
		ca1 := e.contact(a1, base, short, contactOpt{})
		ca2 := e.contact(a1, base.Add(day), short, contactOpt{})
		e.attachment(ca1)
		cb1 := e.contact(b1, base, short, contactOpt{})
		legal := cases.Actor{Name: "legal"}
		h, err := e.holds.Place(e.ctx, retention.HoldInput{Matter: "M-1", Reason: "r",
			Scope: retention.HoldScope{CustomerIDs: []string{custA, custB}}}, legal, nil)
		if err != nil {
			t.Fatal(err)
		}

		want := []string{"case:" + a1 + "/", "contact:" + a1 + "/" + ca1.ID, "contact:" + a1 + "/" + ca2.ID, "case:" + b1 + "/", "contact:" + b1 + "/" + cb1.ID}
		if a1 > b1 { // keys are ordered by case, then contact ("" first)
			want = append(want[3:], want[:3]...)
		}
		items := e.allItems(h.ID, retention.ItemFilter{})
		if got := keysOf(items); !slices.Equal(got, want) {
			t.Fatalf("report %v\nwant %v", got, want)
		}
		for _, it := range items {
			if it.Why != "customer_ids" || it.Since.IsZero() || it.Disposed {
				t.Errorf("item %+v: want why customer_ids, a since, not disposed", it)
			}
			if it.ContactID == ca1.ID && (len(it.Attachments) != 1 || it.Attachments[0].Filename != "label.pdf" || it.OccurredAt == nil) {
				t.Errorf("contact with attachment: %+v", it)
			}
		}

		onlyB := e.allItems(h.ID, retention.ItemFilter{Custodian: custB})
		if got := keysOf(onlyB); !slices.Equal(got, []string{"case:" + b1 + "/", "contact:" + b1 + "/" + cb1.ID}) {
			t.Fatalf("custodian B's report %v", got)
		}
		per, err := e.holds.Custodians(e.ctx, h.ID)
		if err != nil {
			t.Fatal(err)
		}
		wantPer := map[string]retention.CustodianCounts{
			custA: {CustomerID: custA, Cases: 1, Contacts: 2, Attachments: 1},
			custB: {CustomerID: custB, Cases: 1, Contacts: 1},
		}
		if len(per) != 2 || per[0] != wantPer[per[0].CustomerID] || per[1] != wantPer[per[1].CustomerID] {
			t.Fatalf("custodians %+v, want %+v", per, wantPer)
		}

		// Bad input.
		if _, _, err := e.holds.Items(e.ctx, "missing", retention.ItemFilter{}, 10, ""); !errors.Is(err, cases.ErrNotFound) {
			t.Errorf("unknown hold: %v", err)
		}
		for _, bad := range []string{"nocursor", "a b/c", "/x", a1 + "/'; DROP"} {
			if _, _, err := e.holds.Items(e.ctx, h.ID, retention.ItemFilter{}, 10, bad); !errors.Is(err, retention.ErrBadCursor) {
				t.Errorf("cursor %q: %v, want ErrBadCursor", bad, err)
			}
		}

		// Released, grace over, swept: the report still shows it all.
		if _, err := e.holds.Release(e.ctx, h.ID, "settled", legal, nil); err != nil {
			t.Fatal(err)
		}
		e.pastGrace()
		e.sweep(base.Add(400*day), false)
		if e.exists(ca1.ID) || e.exists(cb1.ID) {
			t.Fatal("contacts kept after the release")
		}
		after := e.allItems(h.ID, retention.ItemFilter{})
		if got := keysOf(after); !slices.Equal(got, want) {
			t.Fatalf("report after disposal %v\nwant %v", got, want)
		}
		for _, it := range after {
			if !it.Disposed || len(it.Disposition) == 0 || it.Disposition[0].ID == "" || it.Disposition[0].At.IsZero() {
				t.Errorf("item after disposal %+v: want disposed with its disposition record", it)
			}
			for _, d := range it.Disposition {
				if n := e.count(`SELECT COUNT(*) FROM dispositions WHERE id = ?`, d.ID); n != 1 {
					t.Errorf("disposition %s not stored", d.ID)
				}
			}
		}
		per, err = e.holds.Custodians(e.ctx, h.ID)
		if err != nil || len(per) != 2 || per[0].Disposed+per[1].Disposed != 3 {
			t.Fatalf("custodians after disposal %+v, %v; want 3 disposed contacts", per, err)
		}
	})
}

// TestHoldReportRecordsLiveMatches: a case that starts matching after
// placement (a new case of a held customer) is in the report's first page.
func TestHoldReportRecordsLiveMatches(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cust := e.customer()
		h, err := e.holds.Place(e.ctx, retention.HoldInput{Matter: "M", Reason: "r",
			Scope: retention.HoldScope{CustomerIDs: []string{cust}}}, cases.Actor{Name: "legal"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		later := e.newCase(cust)
		c := e.contact(later, base, purposes(cases.PurposeNotification), contactOpt{})
		got := keysOf(e.allItems(h.ID, retention.ItemFilter{}))
		if !slices.Equal(got, []string{"case:" + later + "/", "contact:" + later + "/" + c.ID}) {
			t.Fatalf("report %v: want the later case and its contact", got)
		}
	})
}

// TestMatterAndReleasePreview: a matter's holds with their combined
// coverage (each item once); what releasing one would make due.
func TestMatterAndReleasePreview(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cust := e.customer()
		a, b := e.newCase(cust), e.newCase(cust)
		short := purposes(cases.PurposeNotification) // due 90 days after base: long past
		ca := e.contact(a, base, short, contactOpt{})
		e.contact(b, base, short, contactOpt{})
		legal := cases.Actor{Name: "legal"}
		place := func(matter string, caseIDs ...string) string {
			h, err := e.holds.Place(e.ctx, retention.HoldInput{Matter: matter, Reason: "r", Scope: retention.HoldScope{CaseIDs: caseIDs}}, legal, nil)
			if err != nil {
				t.Fatal(err)
			}
			return h.ID
		}
		both := place("Smith v. Shop", a, b)
		onlyB := place("Smith v. Shop", b)
		place("Other", a)

		m, err := e.holds.Matter(e.ctx, "Smith v. Shop")
		if err != nil {
			t.Fatal(err)
		}
		wantCombined := retention.CustodianCounts{Cases: 2, Contacts: 2}
		if len(m.Holds) != 2 || m.Combined != wantCombined || len(m.Custodians) != 1 {
			t.Fatalf("matter %+v, want 2 holds and combined %+v", m, wantCombined)
		}
		if _, err := e.holds.Matter(e.ctx, "Nobody v. Nothing"); !errors.Is(err, cases.ErrNotFound) {
			t.Fatalf("unknown matter: %v", err)
		}
		listed, _, err := e.holds.List(e.ctx, retention.HoldFilter{Matter: "Smith v. Shop"}, 0, "")
		if err != nil || len(listed) != 2 {
			t.Fatalf("List by matter: %d, %v", len(listed), err)
		}

		// Releasing "both" would free nothing of a (the "Other" hold) nor
		// of b (onlyB); releasing onlyB frees nothing either; with Other
		// released past its grace, releasing both frees a's contact.
		p, err := e.holds.ReleasePreview(e.ctx, both)
		if err != nil || p.Due != 0 || p.HeldByOthers != 2 || !p.DueAfter.After(p.AsOf) {
			t.Fatalf("preview %+v, %v: want nothing due, 2 held by others", p, err)
		}
		other, _, _ := e.holds.List(e.ctx, retention.HoldFilter{Matter: "Other"}, 0, "")
		if _, err := e.holds.Release(e.ctx, other[0].ID, "done", legal, nil); err != nil {
			t.Fatal(err)
		}
		e.pastGrace()
		p, err = e.holds.ReleasePreview(e.ctx, both)
		if err != nil || p.Due != 1 || len(p.Items) != 1 || p.Items[0].ContactID != ca.ID || p.HeldByOthers != 1 {
			t.Fatalf("preview %+v, %v: want a's contact due, b's held by %s", p, err, onlyB)
		}
		if _, err := e.holds.ReleasePreview(e.ctx, "missing"); !errors.Is(err, cases.ErrNotFound) {
			t.Fatalf("unknown hold: %v", err)
		}
	})
}
