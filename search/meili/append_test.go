package meili

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/casevault/casevault/search"
)

const ctA3 = "0190f5e2-a003-7000-8000-0000000000a3"

func contactA3() search.ContactDoc {
	return search.ContactDoc{ID: ctA3, Channel: "chat", Direction: "inbound", Author: "Customer",
		Body: "walrus reply", OccurredAt: t0.Add(time.Hour), Purposes: []string{"customer_service"}}
}

// caseState is fixtureA at rev holding the contacts named (a1, a2, a3).
func caseState(rev int64, contacts ...string) search.CaseDoc {
	c := fixtureA()
	c.Rev = rev
	all := map[string]search.ContactDoc{"a1": c.Contacts[0], "a2": c.Contacts[1], "a3": contactA3()}
	c.Contacts = nil
	for _, n := range contacts {
		c.Contacts = append(c.Contacts, all[n])
	}
	return c
}

// layout lists the index's documents as "kind contact@rev", sorted.
func layout(t *testing.T, f *fakeMeili) []string {
	t.Helper()
	ix := f.Index("cases_v1")
	f.Mu.Lock()
	defer f.Mu.Unlock()
	names := map[string]string{ctA1: "a1", ctA2: "a2", ctA3: "a3", "": "case"}
	var out []string
	for _, d := range ix.Docs {
		who, ok := names[fmt.Sprint(d["contact_id"])]
		if !ok {
			who = fmt.Sprint(d["contact_id"])
		}
		out = append(out, fmt.Sprintf("%v %s@%v", d["doc_kind"], who, d["rev"]))
	}
	slices.Sort(out)
	return out
}

// ctDoc is the id of contact n's (a1, a2, a3) document at rev.
func ctDoc(n string, rev int64) string {
	return docID("ct", map[string]string{"a1": ctA1, "a2": ctA2, "a3": ctA3}[n], rev)
}

// TestAddContactsWritesOnlyNewContacts: a new contact costs one document
// whatever the case holds, and afterwards the index holds each contact
// once, at the newest position that wrote it. Each write reads the index
// once (one multi-search) and deletes what it replaces by id, in one
// task, or sends no deletion when nothing is replaced: never a deletion
// by filter, which Meilisearch runs as a batch of its own.
func TestAddContactsWritesOnlyNewContacts(t *testing.T) {
	ctx := context.Background()
	caseOnly := func(rev int64) search.CaseDoc { c := fixtureB(); c.Rev = rev; return c }
	b1 := search.ContactDoc{ID: ctB1, Channel: "web", Direction: "inbound", Body: "new address", OccurredAt: t0, Purposes: []string{"customer_service"}}
	withB1 := func(rev int64) search.CaseDoc { c := caseOnly(rev); c.Contacts = []search.ContactDoc{b1}; return c }
	type write struct {
		whole bool
		doc   search.CaseDoc
		sent  int      // documents the write sends
		gone  []string // ids it deletes
	}
	tests := []struct {
		name   string
		writes []write
		want   []string
	}{
		{"a contact into an indexed case", []write{
			{true, caseState(10, "a1", "a2"), 2, nil},
			{false, caseState(11, "a3"), 1, nil},
		}, []string{"0 a1@10", "0 a2@10", "1 a3@11"}},
		{"the first contact of a case replaces its case-only document", []write{
			{true, caseOnly(10), 1, nil},
			{false, withB1(11), 1, []string{docID("cs", caseB, 10)}},
		}, []string{"1 " + ctB1 + "@11"}},
		{"a retried batch leaves one document", []write{
			{true, caseState(10, "a1", "a2"), 2, nil},
			{false, caseState(11, "a3"), 1, nil},
			{false, caseState(12, "a3"), 1, []string{ctDoc("a3", 11)}},
		}, []string{"0 a1@10", "0 a2@10", "1 a3@12"}},
		{"a whole write that already saw the contact", []write{
			{true, caseState(10, "a1", "a2", "a3"), 3, nil},
			{false, caseState(11, "a3"), 1, []string{ctDoc("a3", 10)}},
		}, []string{"0 a1@10", "0 a2@10", "1 a3@11"}},
		{"a later whole write replaces appended documents", []write{
			{true, caseState(10, "a1", "a2"), 2, nil},
			{false, caseState(11, "a3"), 1, nil},
			{true, caseState(12, "a2", "a3"), 2, []string{ctDoc("a1", 10), ctDoc("a2", 10), ctDoc("a3", 11)}}, // a1 erased
		}, []string{"0 a2@12", "0 a3@12"}},
		{"an appended contact a newer whole write already holds gives way", []write{
			{true, caseState(12, "a1", "a3"), 2, nil},
			{false, caseState(11, "a3"), 1, []string{ctDoc("a3", 11)}},
		}, []string{"0 a1@12", "0 a3@12"}},
		{"a whole write older than the case's gives way", []write{
			{true, caseState(12, "a1"), 1, nil},
			{true, caseState(10, "a1", "a2"), 2, []string{ctDoc("a1", 10), ctDoc("a2", 10)}},
		}, []string{"0 a1@12"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			e := openFake(t, f, 0)
			for i, w := range tt.writes {
				before := len(f.Requests(http.MethodPost, "/indexes/cases_v1/documents"))
				readsBefore := len(f.Requests(http.MethodPost, "/multi-search"))
				batchesBefore := len(f.Requests(http.MethodPost, "/indexes/cases_v1/documents/delete-batch"))
				var err error
				if w.whole {
					err = e.Index(ctx, []search.CaseDoc{w.doc})
				} else {
					err = e.AddContacts(ctx, []search.CaseDoc{w.doc})
				}
				if err != nil {
					t.Fatalf("write %d: %v", i, err)
				}
				adds := f.Requests(http.MethodPost, "/indexes/cases_v1/documents")[before:]
				var sent []map[string]any
				for _, a := range adds {
					var docs []map[string]any
					if err := json.Unmarshal(a.Body, &docs); err != nil {
						t.Fatal(err)
					}
					sent = append(sent, docs...)
				}
				if len(sent) != w.sent {
					t.Errorf("write %d sent %d documents, want %d", i, len(sent), w.sent)
				}

				if n := len(f.Requests(http.MethodPost, "/multi-search")) - readsBefore; n != 1 {
					t.Errorf("write %d read the index %d times, want once", i, n)
				}
				batches := f.Requests(http.MethodPost, "/indexes/cases_v1/documents/delete-batch")[batchesBefore:]
				var gone []string
				for _, b := range batches {
					var ids []string
					if err := json.Unmarshal(b.Body, &ids); err != nil {
						t.Fatal(err)
					}
					gone = append(gone, ids...)
				}
				slices.Sort(gone)
				want := slices.Sorted(slices.Values(w.gone))
				if len(batches) > 1 || !slices.Equal(gone, want) {
					t.Errorf("write %d deleted %v in %d tasks, want %v in one", i, gone, len(batches), want)
				}
			}
			if n := len(f.Requests(http.MethodPost, "/indexes/cases_v1/documents/delete")); n != 0 {
				t.Errorf("%d deletions by filter, want none", n)
			}
			if got := layout(t, f); !slices.Equal(got, tt.want) {
				t.Errorf("index holds %v, want %v", got, tt.want)
			}
		})
	}
}

// TestLongRewriteDeletesByFilter: a rewrite that replaces more documents
// than one lookup returns deletes them by its filter, and the index ends
// the same as when they fit.
func TestLongRewriteDeletesByFilter(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name           string
		page           int
		byFilter, byID int // deletion requests
		wantFilter     string
	}{
		{"three old documents, a page of two", 2, 1, 0, fmt.Sprintf(`(x_case_id IN ["%s"] AND rev < 12)`, encodeValue(caseA))},
		{"three old documents, a page of three", 3, 0, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			e := openFake(t, f, 0)
			e.lookupPage = tt.page
			if err := e.Index(ctx, []search.CaseDoc{caseState(10, "a1", "a2", "a3")}); err != nil {
				t.Fatal(err)
			}
			if err := e.Index(ctx, []search.CaseDoc{caseState(12, "a1")}); err != nil {
				t.Fatal(err)
			}

			if got, want := layout(t, f), []string{"0 a1@12"}; !slices.Equal(got, want) {
				t.Errorf("index holds %v, want %v", got, want)
			}
			filters := f.Requests(http.MethodPost, "/indexes/cases_v1/documents/delete")
			if len(filters) != tt.byFilter || len(f.Requests(http.MethodPost, "/indexes/cases_v1/documents/delete-batch")) != tt.byID {
				t.Fatalf("%d deletions by filter and %d by id, want %d and %d", len(filters),
					len(f.Requests(http.MethodPost, "/indexes/cases_v1/documents/delete-batch")), tt.byFilter, tt.byID)
			}
			if len(filters) == 1 {
				var body map[string]any
				if err := json.Unmarshal(filters[0].Body, &body); err != nil {
					t.Fatal(err)
				}
				if body["filter"] != tt.wantFilter {
					t.Errorf("filter %v, want %s", body["filter"], tt.wantFilter)
				}
			}
		})
	}
}

// TestAddContactsRejectsWhatItCannotPlace: an appended contact needs its
// case, its own id and a feed position (the newer-state checks compare
// positions); nothing is sent otherwise.
func TestAddContactsRejectsWhatItCannotPlace(t *testing.T) {
	tests := []struct {
		name string
		doc  search.CaseDoc
		want string
	}{
		{"no case id", search.CaseDoc{Rev: 3, Contacts: []search.ContactDoc{{ID: ctA1}}}, "case without ID"},
		{"no contact id", search.CaseDoc{CaseID: caseA, Rev: 3, Contacts: []search.ContactDoc{{Body: "x"}}}, "contact without ID"},
		{"no feed position", caseState(0, "a3"), "without a feed position"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(t)
			e := openFake(t, f, 0)
			err := e.AddContacts(context.Background(), []search.CaseDoc{tt.doc})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("AddContacts: %v, want an error about %q", err, tt.want)
			}
			if n := len(f.Requests(http.MethodPost, "/indexes/cases_v1/documents")); n != 0 {
				t.Errorf("%d additions sent", n)
			}
		})
	}
}

// TestAppendsAndWholeWritesRace runs an appended contact (writer A) against
// a whole write of its case (writer B), in every order of their additions
// and their reads of the index (what each then deletes follows from its
// read), as two replicas indexing during a lease handover
// could: the newest state of every contact survives, and a contact that
// a newer whole write no longer holds (erased) does not come back.
func TestAppendsAndWholeWritesRace(t *testing.T) {
	ctx := context.Background()
	schedules := [][]string{
		{"A add", "A check", "B add", "B check"},
		{"B add", "B check", "A add", "A check"},
		{"A add", "B add", "A check", "B check"},
		{"A add", "B add", "B check", "A check"},
		{"B add", "A add", "A check", "B check"},
		{"B add", "A add", "B check", "A check"},
	}
	tests := []struct {
		name   string
		a      search.CaseDoc // appended
		bWhole bool
		b      search.CaseDoc
		want   []string // contacts left, each exactly once
	}{
		// B's older whole write must not give way to A's newer contact:
		// only a newer whole write stands for the case.
		{"older whole write, newer appended contact", caseState(12, "a3"), true, caseState(10, "a1", "a2"), []string{"a1", "a2", "a3"}},
		// a3 was erased before B's newer whole write: A's late append must not bring it back.
		{"newer whole write without the contact", caseState(11, "a3"), true, caseState(12, "a1"), []string{"a1"}},
		{"the same contact appended twice", caseState(11, "a3"), false, caseState(12, "a3"), []string{"a3"}},
		// B saw a3 too, but its write is older: a3 is left once, at 12
		{"older whole write that saw the appended contact", caseState(12, "a3"), true, caseState(10, "a1", "a2", "a3"), []string{"a1", "a2", "a3"}},
		// a newer appended document holds its own contact only, not the case
		{"another contact appended later", caseState(11, "a3"), false, caseState(12, "a2"), []string{"a2", "a3"}},
	}
	for _, tt := range tests {
		for _, sched := range schedules {
			t.Run(tt.name+": "+strings.Join(sched, ", "), func(t *testing.T) {
				f := newFake(t)
				g := newGate(sched...)
				a, b := openGated(t, f, g, "A"), openGated(t, f, g, "B")
				var wg sync.WaitGroup
				errs := make([]error, 2)
				wg.Add(2)
				go func() { defer wg.Done(); errs[0] = a.AddContacts(ctx, []search.CaseDoc{tt.a}) }()
				go func() {
					defer wg.Done()
					if tt.bWhole {
						errs[1] = b.Index(ctx, []search.CaseDoc{tt.b})
					} else {
						errs[1] = b.AddContacts(ctx, []search.CaseDoc{tt.b})
					}
				}()
				wg.Wait()
				if err := errors.Join(errs...); err != nil {
					t.Fatal(err)
				}
				counts := map[string]int{}
				for _, l := range layout(t, f) {
					who := strings.SplitN(strings.Fields(l)[1], "@", 2)[0]
					counts[who]++
				}
				want := map[string]int{}
				for _, c := range tt.want {
					want[c] = 1
				}
				if !maps.Equal(counts, want) {
					t.Errorf("index holds %v, want each of %v once", layout(t, f), tt.want)
				}
				res, err := a.Search(ctx, search.Query{Words: []string{"walrus"}})
				if err != nil {
					t.Fatal(err)
				}
				if found, wantFound := res.Total == 1, want["a3"] == 1; found != wantFound {
					t.Errorf("walrus (a3's word): %d hits, want found %v", res.Total, wantFound)
				}
			})
		}
	}
}
