package search_test

import (
	"context"
	"strings"
	"testing"

	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/testkit"
)

// poisonEngine indexes every case but those whose body holds "poison",
// which it reports as a *search.PoisonError, as the Meilisearch adapter
// does after bisecting a refused batch.
type poisonEngine struct{ search.Engine }

func (p poisonEngine) Index(ctx context.Context, docs []search.CaseDoc) error {
	var good []search.CaseDoc
	var bad []string
	for _, d := range docs {
		if len(d.Contacts) > 0 && strings.Contains(d.Contacts[0].Body, "poison") {
			bad = append(bad, d.CaseID)
			continue
		}
		good = append(good, d)
	}
	if err := p.Engine.Index(ctx, good); err != nil {
		return err
	}
	if len(bad) > 0 {
		return &search.PoisonError{CaseIDs: bad, Err: errDown}
	}
	return nil
}

// TestIndexerSetsPoisonAside: a case the engine rejects for good does not
// stall the feed (issue 20 §8): the rest is indexed, the outbox drains and
// the case is counted.
func TestIndexerSetsPoisonAside(t *testing.T) {
	src := newMemSource()
	for i := range 30 {
		words := "walrus"
		if i == 7 || i == 19 {
			words = "walrus poison"
		}
		src.put(mkCase(i, words))
	}
	eng := poisonEngine{openBleve(t, t.TempDir())}
	ix := startIndexer(t, src, eng, search.Options{BatchSize: 10})
	testkit.Eventually(t, waitFor, "outbox drained", func() bool { return src.pending() == 0 })
	if n := total(t, ix, search.Query{Words: []string{"walrus"}}); n != 28 {
		t.Errorf("%d cases searchable, want 28", n)
	}
	if got := ix.SetAside(); got != 2 {
		t.Errorf("SetAside = %d, want 2", got)
	}
}
