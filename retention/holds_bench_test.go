package retention_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/testkit"
)

// setMatcher answers a hold query "heldcaseK" with "case K of the list":
// an in-memory stand-in for the search engine, so that the benchmark times
// the sweep's hold evaluation and not an engine's queries. It counts its
// calls: multiply them by the engine's per-query latency to estimate a
// sweep's extra cost with a real index.
type setMatcher struct {
	cases map[string]string // query word → the case it matches
	calls atomic.Int64
}

func (m *setMatcher) Matches(_ context.Context, q search.Query, caseID string) (bool, error) {
	m.calls.Add(1)
	return slices.ContainsFunc(q.Words, func(w string) bool { return m.cases[w] == caseID }), nil
}

// MatchingCases answers for a batch of cases in one call, as the engine's
// matcher does (one search filtered by the case ids): it counts as one.
func (m *setMatcher) MatchingCases(_ context.Context, q search.Query, caseIDs []string) ([]string, error) {
	m.calls.Add(1)
	var out []string
	for _, id := range caseIDs {
		if slices.ContainsFunc(q.Words, func(w string) bool { return m.cases[w] == id }) {
			out = append(out, id)
		}
	}
	return out, nil
}

// holdsCorpus loads n due contacts (retain until base+90d) the way
// BenchmarkSweep does, in the shape the holds of placeHolds cover a small
// share of: most contacts of one customer on base, 25 further customers of
// 10 contacts, and 1% of the contacts spread over days base+1d … base+25d.
func holdsCorpus(b *testing.B, e *env, n int) {
	b.Helper()
	until := tp(base.Add(90 * day))
	spread := max(n/100/25, 1)
	bulkContacts(b, e.db, n-25*spread-25*10, base, until, true)
	for k := 1; k <= 25; k++ {
		bulkContacts(b, e.db, spread, base.Add(time.Duration(k)*day), until, true)
		bulkContacts(b, e.db, 10, base, until, true)
	}
	if _, err := e.db.Write.ExecContext(e.ctx, `ANALYZE`); err != nil {
		b.Fatal(err)
	}
}

// placeHolds places 100 active holds of mixed scopes over holdsCorpus: 25
// name two cases each, 25 a small customer each, 25 a query matching one
// case each, 25 a one-hour range of one of the spread days. It returns how
// many contacts they hold.
func placeHolds(b *testing.B, e *env, m *setMatcher) int {
	b.Helper()
	ids := func(q string) []string {
		rows, err := e.db.Read.QueryContext(e.ctx, q)
		if err != nil {
			b.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				b.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}
	// The largest customer's cases, the first 75 by id: 50 for case holds,
	// 25 for query holds.
	big := ids(`SELECT customer_id FROM cases GROUP BY customer_id ORDER BY COUNT(*) DESC LIMIT 1`)[0]
	bigCases := ids(fmt.Sprintf(`SELECT id FROM cases WHERE customer_id = '%s' ORDER BY id LIMIT 75`, big))
	small := ids(fmt.Sprintf(`SELECT customer_id FROM contacts GROUP BY customer_id HAVING COUNT(*) = 10 AND MAX(occurred_at) = %d ORDER BY customer_id LIMIT 25`, base.UnixMicro()))
	if len(bigCases) < 75 || len(small) < 25 {
		b.Fatalf("corpus too small: %d cases, %d small customers", len(bigCases), len(small))
	}
	place := func(s retention.HoldScope) {
		if _, err := e.holds.Place(e.ctx, retention.HoldInput{Matter: "bench", Reason: "r", Scope: s}, cases.Actor{}, nil); err != nil {
			b.Fatal(err)
		}
	}
	for k := range 25 {
		place(retention.HoldScope{CaseIDs: bigCases[2*k : 2*k+2]})
		place(retention.HoldScope{CustomerIDs: small[k : k+1]})
		word := fmt.Sprintf("heldcase%d", k)
		m.cases[word] = bigCases[50+k]
		place(retention.HoldScope{Query: word})
		from := base.Add(time.Duration(k+1) * day)
		place(retention.HoldScope{From: &from, To: tp(from.Add(time.Hour))})
	}
	return e.count(`SELECT COUNT(*) FROM contacts WHERE case_id IN (`+quoted(bigCases)+`) OR customer_id IN (`+quoted(small)+`) OR occurred_at > ?`, base.UnixMicro())
}

func quoted(ids []string) string { return "'" + strings.Join(ids, "','") + "'" }

// BenchmarkSweepWithHolds sweeps the same CASEVAULT_BENCH_HOLDS_CONTACTS
// (default 1,000,000, issue 14's scale) due contacts, each with an
// attachment, once with no hold and once under 100 active holds of mixed
// scopes that hold about 1.1% of them, and reports both rates (due
// contacts decided per second: deleted or skipped as held) and their ratio
// (issue 14 asks for at least 0.8), and the same ratio of the process's CPU
// time. The two runs alternate their order across iterations.
func BenchmarkSweepWithHolds(b *testing.B) {
	n := benchSize("CASEVAULT_BENCH_HOLDS_CONTACTS", 1_000_000)
	for _, d := range sqldbtest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			b.StopTimer()
			var plain, held, plainCPU, heldCPU time.Duration
			var calls int64
			sweep := func(withHolds bool) (took, cpu time.Duration) {
				e := newEnv(b, sqldbtest.Open(b, d))
				m := &setMatcher{cases: map[string]string{}}
				e.holds = retention.NewHoldsWith(e.db, retention.HoldsOptions{Matcher: m, Policy: e.policy, Now: e.clock.Now})
				e.sweeper = retention.NewSweeper(e.db, retention.SweeperOptions{Policy: e.policy, Holds: e.holds, Blobs: e.blobs})
				holdsCorpus(b, e, n)
				want := 0
				if withHolds {
					want = placeHolds(b, e, m)
				}
				m.calls.Store(0)

				start, cpu0 := time.Now(), testkit.ProcessCPU(b)
				rep, err := e.sweeper.Run(e.ctx, retention.RunOptions{Now: base.Add(200 * day)})
				took, cpu = time.Since(start), testkit.ProcessCPU(b)-cpu0

				if err != nil || rep.Errors != 0 || rep.Deleted != n-want || rep.SkippedHeld != want {
					b.Fatalf("sweep with holds=%v: deleted %d, held %d (want %d), %s, %v", withHolds, rep.Deleted, rep.SkippedHeld, want, rep.Status, err)
				}
				if withHolds {
					calls += m.calls.Load()
					b.ReportMetric(float64(want)/float64(n)*100, "%held")
				}
				return took, cpu
			}
			add := func(withHolds bool) {
				t, c := sweep(withHolds)
				if withHolds {
					held, heldCPU = held+t, heldCPU+c
				} else {
					plain, plainCPU = plain+t, plainCPU+c
				}
			}
			for i := range b.N {
				add(i%2 == 1)
				add(i%2 == 0)
			}
			rate := func(t time.Duration) float64 { return float64(n*b.N) / t.Seconds() }
			b.ReportMetric(rate(plain), "contacts/s_no_holds")
			b.ReportMetric(rate(held), "contacts/s_100_holds")
			b.ReportMetric(rate(held)/rate(plain), "ratio")
			// On a shared machine wall time follows the neighbours' load;
			// the process's CPU time per contact does less so (SQLite runs
			// in the process; PostgreSQL's own work is not counted).
			b.ReportMetric(plainCPU.Seconds()/heldCPU.Seconds(), "cpu_ratio")
			b.ReportMetric(float64(calls)/float64(b.N), "matcher_calls/sweep")
		})
	}
}

// BenchmarkHoldItems times the first page (50 items, as the API's default)
// of a hold's report, Holds.Items, for a hold covering
// CASEVAULT_BENCH_HOLD_ITEMS (default 100,000, issue 14's scale) contacts,
// each with an attachment: a customer and date-range hold, so one recorded
// item per contact. Each first page also brings the hold's recording up to
// date first, as the API route does. Reports p50 and p99 (issue 14 asks p99
// < 50 ms for the route) and the same of the reference.
func BenchmarkHoldItems(b *testing.B) {
	n := benchSize("CASEVAULT_BENCH_HOLD_ITEMS", 100_000)
	for _, d := range sqldbtest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			e := newEnv(b, sqldbtest.Open(b, d))
			bulkContacts(b, e.db, n, base, nil, true)
			bulkContacts(b, e.db, n/10, base, nil, true) // another custodian, not held
			if _, err := e.db.Write.ExecContext(e.ctx, `ANALYZE`); err != nil {
				b.Fatal(err)
			}
			var cust string
			if err := e.db.Read.QueryRowContext(e.ctx, `SELECT customer_id FROM cases GROUP BY customer_id ORDER BY COUNT(*) DESC LIMIT 1`).Scan(&cust); err != nil {
				b.Fatal(err)
			}
			id := e.place(retention.HoldScope{CustomerIDs: []string{cust}, From: tp(base.Add(-day)), To: tp(base.Add(day))})
			if got := e.count(`SELECT COUNT(*) FROM hold_items WHERE hold_id = ?`, id); got != n {
				b.Fatalf("hold recorded %d items, want %d", got, n)
			}

			// The reference, timed in the same loop on the same data: the
			// first page of the customer's case list, a keyset page the API
			// serves already (so the ratio carries over between machines).
			lat := make([]time.Duration, 0, b.N)
			ref := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				items, next, err := e.holds.Items(e.ctx, id, retention.ItemFilter{}, 50, "")
				lat = append(lat, time.Since(start))
				if err != nil || len(items) != 50 || next == "" || len(items[0].Attachments) != 1 {
					b.Fatalf("first page: %d items, next %q, %v", len(items), next, err)
				}

				start = time.Now()
				page, _, err := e.store.ListCases(e.ctx, cases.CaseFilter{CustomerID: cust}, cases.Page{Limit: 50})
				ref = append(ref, time.Since(start))
				if err != nil || len(page) == 0 {
					b.Fatalf("reference page: %d cases, %v", len(page), err)
				}
			}
			b.StopTimer()
			pct := func(d []time.Duration, p float64) float64 {
				slices.Sort(d)
				return float64(d[int(p*float64(len(d)-1))].Microseconds()) / 1000
			}
			b.ReportMetric(pct(lat, 0.5), "p50_ms")
			b.ReportMetric(pct(lat, 0.99), "p99_ms")
			b.ReportMetric(pct(ref, 0.5), "ref_p50_ms")
			b.ReportMetric(pct(ref, 0.99), "ref_p99_ms")
			b.ReportMetric(pct(lat, 0.99)/pct(ref, 0.99), "p99_over_ref")
		})
	}
}
