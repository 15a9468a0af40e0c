package export_test

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/export"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// bodyMatcher stands in for the search engine behind query scopes: a case
// matches when one of its contacts' bodies holds every word of the query.
type bodyMatcher struct{ db *sqldb.DB }

func (m bodyMatcher) Matches(ctx context.Context, q search.Query, caseID string) (bool, error) {
	rows, err := m.db.Read.QueryContext(ctx, m.db.Rebind(`SELECT body FROM contacts WHERE case_id = ?`), caseID)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	for rows.Next() {
		var body string
		if err := rows.Scan(&body); err != nil {
			return false, err
		}
		all := true
		for _, w := range q.Words {
			all = all && strings.Contains(strings.ToLower(body), strings.ToLower(w))
		}
		if all {
			return true, nil
		}
	}
	return false, rows.Err()
}

// TestPackageDescribesScope: the manifest and summary.html of an export
// describe the scope that selected its items as the hold report does: the
// manifest carries the hold's scope as GET /holds/{id} shows it (for a
// scope export, the same scope) and why, which is the report items' why;
// every record carries that why; summary.html names each part (cases,
// customers with their names, the query, the date range). For every kind
// of scope and their combination, exported as a hold and as a scope.
func TestPackageDescribesScope(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		e := newEnv(t, db)
		ann, bob := e.customer("Ann & Co <legal>"), e.customer("Bob")
		ka, kb, kc := e.newCase(ann), e.newCase(bob), e.newCase(ann)
		e.contact(ka, "refund for the lost parcel", base)
		e.contact(kb, "refund please", base.Add(24*time.Hour))
		e.contact(kc, "hello again", base.Add(10*24*time.Hour))
		from, to := base.Add(-time.Hour), base.Add(48*time.Hour)

		for _, tc := range []struct {
			name  string
			scope retention.HoldScope
			why   string
			// in summary.html, besides the ids
			shows []string
		}{
			{"query", retention.HoldScope{Query: "refund"}, "query", []string{"<code>refund</code>"}},
			{"customers", retention.HoldScope{CustomerIDs: []string{ann}}, "customer_ids", []string{"Ann & Co <legal>"}},
			{"date range", retention.HoldScope{CustomerIDs: []string{ann, bob}, From: &from, To: &to}, "customer_ids+date_range",
				[]string{"from " + from.Format(time.RFC3339), "to " + to.Format(time.RFC3339)}},
			{"cases", retention.HoldScope{CaseIDs: []string{ka.ID, kb.ID}}, "case_ids", []string{"(#" + itoa(ka.Number) + ")", "(#" + itoa(kb.Number) + ")"}},
			{"all parts", retention.HoldScope{CaseIDs: []string{ka.ID, kb.ID, kc.ID}, CustomerIDs: []string{ann}, Query: "refund", From: &from, To: &to},
				"case_ids+customer_ids+query+date_range", []string{"<code>refund</code>", "from " + from.Format(time.RFC3339)}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				h := e.hold(tc.scope)
				held, err := e.holds.Get(e.ctx, h.ID)
				if err != nil {
					t.Fatal(err)
				}
				report, _, err := e.holds.Items(e.ctx, h.ID, retention.ItemFilter{}, 500, "")
				if err != nil || len(report) == 0 {
					t.Fatalf("hold report: %d items, %v", len(report), err)
				}
				for _, it := range report {
					if it.Why != report[0].Why {
						t.Fatalf("report items disagree on why: %q, %q", it.Why, report[0].Why)
					}
				}
				if report[0].Why != tc.why {
					t.Fatalf("report why %q, want %q", report[0].Why, tc.why)
				}
				wantScope, _ := json.Marshal(held.Scope)

				rawScope, _ := json.Marshal(tc.scope)
				for _, in := range []export.Input{{HoldID: h.ID}, {Scope: rawScope}} {
					_, _, zr := e.runInput(in)
					files := readZip(t, zr)

					var m struct {
						export.Manifest
						Scope json.RawMessage `json:"scope"`
					}
					if err := json.Unmarshal(files[export.ManifestName], &m); err != nil {
						t.Fatal(err)
					}
					var got bytes.Buffer
					if err := json.Compact(&got, m.Scope); err != nil {
						t.Fatal(err)
					}
					if got.String() != string(wantScope) || m.Why != report[0].Why {
						t.Errorf("%+v: manifest scope %s why %q; the hold report has %s, %q", in.HoldID, m.Scope, m.Why, wantScope, report[0].Why)
					}
					if in.HoldID != "" && (m.Hold == nil || m.Hold.ID != h.ID || m.Hold.Matter != h.Matter) {
						t.Errorf("manifest of a hold export: hold %+v", m.Hold)
					}
					if in.HoldID == "" && m.Hold != nil {
						t.Errorf("manifest of a scope export names a hold: %+v", m.Hold)
					}

					for line := range strings.SplitSeq(strings.TrimSpace(string(files[export.ContactsFile])), "\n") {
						var r struct{ Why string }
						if err := json.Unmarshal([]byte(line), &r); err != nil || r.Why != report[0].Why {
							t.Errorf("record why %q (%v), want %q", r.Why, err, report[0].Why)
						}
					}

					// Compared as a reader sees it (html/template escapes "+" too).
					page := string(files[export.SummaryFile])
					text := html.UnescapeString(page)
					for _, s := range append(append(append([]string{">" + report[0].Why + "<"}, tc.scope.CaseIDs...), tc.scope.CustomerIDs...), tc.shows...) {
						if !strings.Contains(text, s) {
							t.Errorf("summary.html lacks %q:\n%s", s, page)
						}
					}
					if strings.Contains(page, "<legal>") {
						t.Error("summary.html does not escape a customer's name")
					}
				}
			})
		}
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
