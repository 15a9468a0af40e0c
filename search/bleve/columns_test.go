package bleve_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/casevault/casevault/search"
)

// Filters are checked either as query clauses (selective values) or on the
// decoded per-segment columns (common values, date ranges). Both must give
// exactly what a brute-force pass over the data gives, on an index of
// several segments holding deleted documents (cases rewritten later).
func TestFiltersAcrossSegments(t *testing.T) {
	ctx := t.Context()
	eng := openTemp(t)
	rng := rand.New(rand.NewPCG(3, 3))
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	// "rare" values are on few documents (query clauses), the others on
	// many (column filters)
	statuses := []string{"open", "open", "open", "pending", "pending", "closed", "rare-status"}
	channels := []string{"email", "email", "chat", "chat", "phone", "rare-channel"}
	tags := []string{"vip", "vip", "billing", "legal"}
	cs := make([]search.CaseDoc, 300)
	for i := range cs {
		c := search.CaseDoc{CaseID: fmt.Sprintf("c%03d", i), Number: int64(i + 1), Subject: "printer trouble",
			Status: statuses[rng.IntN(len(statuses))], Priority: "normal", Channel: "email",
			CreatedAt: t0, UpdatedAt: t0.Add(time.Duration(i) * time.Minute)}
		if rng.IntN(3) > 0 {
			c.Tags = []string{tags[rng.IntN(len(tags))]}
		}
		for j := range rng.IntN(4) { // some cases have no contact
			c.Contacts = append(c.Contacts, search.ContactDoc{ID: fmt.Sprintf("c%03d-k%d", i, j), Channel: channels[rng.IntN(len(channels))],
				Body: "refund please", OccurredAt: t0.Add(time.Duration(rng.IntN(30*24)) * time.Hour), Purposes: []string{"customer_service"}})
		}
		cs[i] = c
	}
	for chunk := range slices.Chunk(cs, 100) { // a segment per batch
		if err := eng.Index(ctx, chunk); err != nil {
			t.Fatal(err)
		}
	}
	// rewrite a third of the cases: their old documents become deleted ones
	for i := 0; i < len(cs); i += 3 {
		cs[i].Status = statuses[rng.IntN(len(statuses))]
		cs[i].UpdatedAt = cs[i].UpdatedAt.Add(time.Hour)
	}
	var changed []search.CaseDoc
	for i := 0; i < len(cs); i += 3 {
		changed = append(changed, cs[i])
	}
	if err := eng.Index(ctx, changed); err != nil {
		t.Fatal(err)
	}

	mid := t0.Add(15 * 24 * time.Hour)
	filters := []search.Filter{
		{Statuses: []string{"open"}},
		{Statuses: []string{"rare-status"}},
		{Statuses: []string{"open", "pending"}, Tags: []string{"vip"}},
		{Channels: []string{"email"}},
		{Channels: []string{"rare-channel"}, Statuses: []string{"open"}},
		{Tags: []string{"legal"}, Channels: []string{"chat", "phone"}},
		{From: mid},
		{To: mid, Statuses: []string{"pending"}},
		{From: mid, To: mid.Add(48 * time.Hour), Channels: []string{"email"}},
	}
	for _, f := range filters {
		for _, words := range [][]string{nil, {"refund"}} {
			want := map[string]bool{}
			for _, c := range cs {
				caseOK := (len(f.Statuses) == 0 || slices.Contains(f.Statuses, c.Status)) &&
					(len(f.Tags) == 0 || slices.ContainsFunc(c.Tags, func(t string) bool { return slices.Contains(f.Tags, t) }))
				if !caseOK {
					continue
				}
				contactFilter := len(f.Channels) > 0 || !f.From.IsZero() || !f.To.IsZero()
				if len(c.Contacts) == 0 && !contactFilter && words == nil {
					want[c.CaseID] = true
				}
				for _, ct := range c.Contacts {
					if (len(f.Channels) == 0 || slices.Contains(f.Channels, ct.Channel)) &&
						(f.From.IsZero() || !ct.OccurredAt.Before(f.From)) && (f.To.IsZero() || ct.OccurredAt.Before(f.To)) {
						want[c.CaseID] = true
					}
				}
			}
			res, err := eng.Search(ctx, search.Query{Words: words, Filter: f, Limit: 1000, Facets: true})
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]bool{}
			for _, h := range res.Hits {
				got[h.CaseID] = true
			}
			if res.Total != int64(len(want)) || len(got) != len(want) {
				t.Errorf("%+v words %v: total %d, %d hits, want %d", f, words, res.Total, len(got), len(want))
				continue
			}
			for id := range want {
				if !got[id] {
					t.Errorf("%+v words %v: %s missing", f, words, id)
				}
			}
			// Facets are disjunctive within a field (issue 16): a status
			// filter still counts the other statuses, so the selected
			// statuses (all of them when none is) sum to the total.
			var statusSum int64
			for st, n := range res.Facets["status"] {
				if len(f.Statuses) == 0 || slices.Contains(f.Statuses, st) {
					statusSum += n
				}
			}
			if statusSum != res.Total {
				t.Errorf("%+v words %v: status facets sum to %d, total %d", f, words, statusSum, res.Total)
			}
		}
	}
	n, err := eng.InternalKeys()
	if err != nil {
		t.Fatal(err)
	}
	if n > 4 { // fixed keys: Bleve's mapping and our mapping version
		t.Errorf("internal store holds %d entries; it must not grow per document or case", n)
	}
}
