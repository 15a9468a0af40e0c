package bleve

import (
	"os"
	"testing"
	"time"

	bv "github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search/query"
)

func TestZZProbe(t *testing.T) {
	dir := os.Getenv("PROBE_DIR")
	if dir == "" {
		t.Skip()
	}
	e, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	fd, _ := e.idx.FieldDict(fText)
	n := 0
	for {
		d, err := fd.Next()
		if err != nil || d == nil {
			break
		}
		n++
	}
	fd.Close()
	t.Logf("terms in text: %d", n)
	for _, tc := range []struct {
		term      string
		fuzz, pre int
	}{{"payment", 0, 0}, {"payment", 1, 1}, {"payment", 1, 0}, {"verification", 2, 1}, {"verification", 1, 0}, {"verification", 2, 0}} {
		fq := query.NewFuzzyQuery(tc.term)
		fq.SetField(fText)
		fq.SetFuzziness(tc.fuzz)
		fq.SetPrefix(tc.pre)
		start := time.Now()
		var res *bv.SearchResult
		for range 20 {
			res, err = e.idx.Search(bv.NewSearchRequestOptions(fq, 0, 0, false))
			if err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("%s f%d p%d: %v per query, %d hits", tc.term, tc.fuzz, tc.pre, time.Since(start)/20, res.Total)
	}
}
