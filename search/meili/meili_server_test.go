package meili

import (
	"context"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meilisearch/meilisearch-go"

	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/search/searchtest"
)

// TestConformance runs the shared engine suite against a real Meilisearch.
// No Meilisearch can run on the build machines, so this is the one suite
// that skips when no server is given (CASEVAULT_TEST_MEILI_URL, and
// CASEVAULT_TEST_MEILI_KEY for its master key), e.g.
//
//	docker run -p 7700:7700 getmeili/meilisearch:v1.53.0
//	CASEVAULT_TEST_MEILI_URL=http://127.0.0.1:7700 go test ./search/meili/ -run Conformance
func TestConformance(t *testing.T) {
	url := os.Getenv("CASEVAULT_TEST_MEILI_URL")
	if url == "" {
		t.Skip("CASEVAULT_TEST_MEILI_URL is not set: no Meilisearch server to run the conformance suite against " +
			"(none can run on the build machines; the adapter is covered by the OpenAPI-validated fake in the other tests)")
	}
	key := os.Getenv("CASEVAULT_TEST_MEILI_KEY")
	admin := meilisearch.New(url, meilisearch.WithAPIKey(key))
	// Every engine gets its own index; versions start from the clock so that
	// runs do not collide with leftovers of an interrupted run.
	var next atomic.Int64
	next.Store(time.Now().Unix() % 1_000_000_000)
	searchtest.RunWith(t, searchtest.Options{NoStemming: true}, func(t *testing.T) search.Engine {
		ctx := context.Background()
		e, err := Open(ctx, Config{URL: url, APIKey: key, IndexVersion: int(next.Add(1)), TaskTimeout: time.Minute})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() {
			task, err := admin.DeleteIndex(ctx, e.IndexName())
			if err == nil {
				_, err = admin.WaitForTask(ctx, task.TaskUID, 50*time.Millisecond)
			}
			if err != nil {
				t.Logf("delete index %s: %v", e.IndexName(), err)
			}
		})
		return e
	})
}

// TestConformanceAgainstFake runs the same suite against the validating fake
// (fakeserver_test.go). It cannot vouch for Meilisearch's own tokenizing,
// typo and ranking behaviour, which the fake only approximates; it does
// check, over the suite's whole corpus, that every request the adapter
// builds is one Meilisearch documents and that filters, paging, sorting,
// facets, snippets and replacement map correctly onto those requests.
func TestConformanceAgainstFake(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: the whole suite through the OpenAPI validator")
	}
	f := newFake(t)
	var n atomic.Int64
	searchtest.RunWith(t, searchtest.Options{NoStemming: true}, func(t *testing.T) search.Engine {
		return openFake(t, f, int(n.Add(1)))
	})
}
