package retention_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
)

// TestDispositionRecords: the console's list pages through every record
// newest first, once each, and its filters and cursor check hold on both
// engines.
func TestDispositionRecords(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cu := e.customer()
		k1, k2 := e.newCase(cu), e.newCase(cu)
		var notif []string
		for i := range 3 {
			notif = append(notif, e.contact(k1, base.Add(time.Duration(i)*time.Hour), purposes(cases.PurposeNotification), contactOpt{}).ID)
		}
		e.contact(k2, base, purposes(cases.PurposeImprovement), contactOpt{})
		e.contact(k2, base, purposes(cases.PurposeSecurity), contactOpt{location: true}) // only its location is due
		// Two sweeps, so records have two times: notifications (90d) first,
		// then improvement (1y, anonymize) and the location (30d).
		e.sweep(base.Add(100*day), false)
		e.sweep(base.Add(400*day), false)

		all, next, err := e.explain.Dispositions(e.ctx, retention.DispositionFilter{}, 100, "")
		if err != nil || next != "" {
			t.Fatalf("all: %v (next %q)", err, next)
		}
		if len(all) < 5 {
			t.Fatalf("%d records, want at least 5: %+v", len(all), all)
		}
		for i := 1; i < len(all); i++ {
			a, b := all[i-1], all[i]
			if a.At.Before(b.At) || (a.At.Equal(b.At) && a.ID < b.ID) {
				t.Fatalf("not newest first at %d: %v %s before %v %s", i, a.At, a.ID, b.At, b.ID)
			}
		}

		// Paged by 2, the pages are the whole list in order.
		var paged []string
		cursor := ""
		for range 10 {
			page, nxt, err := e.explain.Dispositions(e.ctx, retention.DispositionFilter{}, 2, cursor)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range page {
				paged = append(paged, d.ID)
			}
			if nxt == "" {
				break
			}
			cursor = nxt
		}
		want := make([]string, len(all))
		for i, d := range all {
			want[i] = d.ID
		}
		if !slices.Equal(paged, want) {
			t.Fatalf("paged %v, want %v", paged, want)
		}

		for _, tc := range []struct {
			name string
			f    retention.DispositionFilter
			want func(retention.DispositionRecord) bool
		}{
			{"action", retention.DispositionFilter{Action: retention.ItemAnonymize}, func(d retention.DispositionRecord) bool { return d.Action == retention.ItemAnonymize }},
			{"redact", retention.DispositionFilter{Action: retention.ItemRedact}, func(d retention.DispositionRecord) bool { return d.Action == retention.ItemRedact }},
			{"case", retention.DispositionFilter{CaseID: k1}, func(d retention.DispositionRecord) bool { return d.CaseID == k1 }},
			{"customer", retention.DispositionFilter{CustomerID: cu}, func(d retention.DispositionRecord) bool { return d.CustomerID == cu }},
			{"rule", retention.DispositionFilter{Rule: string(cases.PurposeNotification)}, func(d retention.DispositionRecord) bool { return d.Rule == string(cases.PurposeNotification) }},
			{"run", retention.DispositionFilter{RunID: all[0].RunID}, func(d retention.DispositionRecord) bool { return d.RunID == all[0].RunID }},
			{"before the second sweep", retention.DispositionFilter{To: base.Add(200 * day)}, func(d retention.DispositionRecord) bool { return d.At.Before(base.Add(200 * day)) }},
			{"from the second sweep", retention.DispositionFilter{From: base.Add(200 * day)}, func(d retention.DispositionRecord) bool { return !d.At.Before(base.Add(200 * day)) }},
		} {
			got, _, err := e.explain.Dispositions(e.ctx, tc.f, 100, "")
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			n := 0
			for _, d := range all {
				if tc.want(d) {
					n++
				}
			}
			if len(got) != n || n == 0 {
				t.Errorf("%s: %d records, want %d (of %d)", tc.name, len(got), n, len(all))
			}
			for _, d := range got {
				if !tc.want(d) {
					t.Errorf("%s: %+v does not match", tc.name, d)
				}
			}
		}
		if got, _, _ := e.explain.Dispositions(e.ctx, retention.DispositionFilter{CaseID: k1, Action: retention.ItemDelete}, 100, ""); len(got) != len(notif) {
			t.Errorf("the notifications' deletions: %d, want %d", len(got), len(notif))
		}

		for _, bad := range []string{"!!", "bm90LWEtY3Vyc29y", "MTIzOg", "eDp5"} { // not base64, no colon, no id, not a time
			if _, _, err := e.explain.Dispositions(e.ctx, retention.DispositionFilter{}, 2, bad); !errors.Is(err, retention.ErrBadCursor) {
				t.Errorf("cursor %q: %v, want ErrBadCursor", bad, err)
			}
		}
	})
}

// TestSchedulePreview: a candidate schedule's dry run counts what it would
// newly make due (by rule), what it would stop, the fields it would redact
// and the held ones, and stores nothing.
func TestSchedulePreview(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cu := e.customer()
		k1, k2 := e.newCase(cu), e.newCase(cu)
		now := base.Add(200 * day)
		// Security contacts (2y): not due now; a 6-month rule makes them due.
		sec := []string{
			e.contact(k1, base, purposes(cases.PurposeSecurity), contactOpt{}).ID,
			e.contact(k2, base, purposes(cases.PurposeSecurity), contactOpt{}).ID,
			e.contact(k2, base.Add(190*day), purposes(cases.PurposeSecurity), contactOpt{}).ID, // too recent either way
		}
		// A notification (90d) is due now; a 1y rule would stop that.
		e.contact(k1, base, purposes(cases.PurposeNotification), contactOpt{})
		// Device data (90d) due now; location (30d) would become due under 300d→... unchanged here.
		e.contact(k1, base, purposes(cases.PurposeSecurity), contactOpt{device: true})
		e.place(retention.HoldScope{CaseIDs: []string{k2}})

		cand := retention.DefaultSchedule()
		for i, r := range cand.Purposes {
			switch r.Purpose {
			case cases.PurposeSecurity:
				cand.Purposes[i].Keep, _ = retention.ParseDuration("180d")
			case cases.PurposeNotification:
				cand.Purposes[i].Keep, _ = retention.ParseDuration("1y")
			}
		}
		for i, r := range cand.Categories {
			if r.Category == cases.CategoryDevice {
				cand.Categories[i].Keep, _ = retention.ParseDuration("400d") // later: nothing newly due
			}
		}
		if err := cand.Validate(); err != nil {
			t.Fatal(err)
		}
		before := e.snapshot()
		pv, err := e.sched.Preview(e.ctx, cand, e.holds, now, 0)
		if err != nil {
			t.Fatal(err)
		}
		if e.snapshot() != before {
			t.Fatal("the preview changed the store")
		}
		// Newly due: the two old security contacts and the device contact's
		// own security clock (base, 180d).
		if pv.NewlyDue != 3 || pv.NoLongerDue != 1 || pv.Examined != 5 || pv.Truncated {
			t.Fatalf("preview %+v", pv)
		}
		if pv.Held != 1 { // k2's old contact
			t.Errorf("held %d, want 1", pv.Held)
		}
		if len(pv.Rules) != 1 || pv.Rules[0].Purpose != cases.PurposeSecurity || pv.Rules[0].Count != 3 {
			t.Errorf("rules %+v", pv.Rules)
		}
		if len(pv.Categories) != 0 {
			t.Errorf("categories %+v, want none (the device rule got longer)", pv.Categories)
		}
		if pv.Earlier != 4 || pv.Later != 1 {
			t.Errorf("moves: %d earlier, %d later", pv.Earlier, pv.Later)
		}
		ex := map[string]bool{}
		for _, it := range pv.Examples {
			ex[it.ContactID] = true
		}
		if !ex[sec[0]] || !ex[sec[1]] || ex[sec[2]] {
			t.Errorf("examples %+v", pv.Examples)
		}

		// A shorter location rule newly redacts a stored location.
		e.contact(k1, base.Add(150*day), purposes(cases.PurposeSecurity), contactOpt{location: true})
		cand2 := retention.DefaultSchedule()
		for i, r := range cand2.Categories {
			if r.Category == cases.CategoryLocation {
				cand2.Categories[i].Keep, _ = retention.ParseDuration("30d")
			}
		}
		pv2, err := e.sched.Preview(e.ctx, cand2, e.holds, base.Add(170*day), 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(pv2.Categories) != 0 || pv2.NewlyDue != 0 {
			t.Errorf("the schedule in force again: %+v", pv2)
		}
		cand2.Categories[0].Keep, _ = retention.ParseDuration("7d")
		if cand2.Categories[0].Category != cases.CategoryLocation {
			t.Fatal("the default's first category rule is not location")
		}
		pv3, err := e.sched.Preview(e.ctx, cand2, e.holds, base.Add(170*day), 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(pv3.Categories) != 1 || pv3.Categories[0].Count != 1 {
			t.Errorf("location 7d: categories %+v", pv3.Categories)
		}

		// A limit stops the walk and says so.
		pv4, err := e.sched.Preview(e.ctx, cand, e.holds, now, 2)
		if err != nil {
			t.Fatal(err)
		}
		if pv4.Examined != 2 || !pv4.Truncated {
			t.Errorf("limit 2: examined %d, truncated %v", pv4.Examined, pv4.Truncated)
		}
	})
}
