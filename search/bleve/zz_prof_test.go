package bleve_test

// Scratch profiling harness (temporary; not for commit).

import (
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/search/bleve"
)

func TestZZProfile(t *testing.T) {
	dir := os.Getenv("ZZ_DIR")
	if dir == "" {
		t.Skip()
	}
	n := 200000
	fmt.Sscan(os.Getenv("ZZ_N"), &n)
	ctx := t.Context()
	var eng *bleve.Engine
	var err error
	if _, serr := os.Stat(dir + "/CURRENT"); serr != nil {
		docs := benchCorpus(n)
		eng, err = bleve.Build(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		for chunk := range slices.Chunk(docs, 100) {
			if err := eng.Index(ctx, chunk); err != nil {
				t.Fatal(err)
			}
		}
		if err := eng.Activate(ctx); err != nil {
			t.Fatal(err)
		}
		if err := eng.Compact(ctx); err != nil {
			t.Fatal(err)
		}
		for chunk := range slices.Chunk(docs[:len(docs)/10], 100) {
			if err := eng.Index(ctx, chunk); err != nil {
				t.Fatal(err)
			}
		}
		eng.Close()
	}
	eng, err = bleve.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	idx, _ := eng.Stats()["index"].(map[string]any)
	t.Logf("segments %v", idx["TotFileSegmentsAtRoot"])

	rng := rand.New(rand.NewPCG(9, 9))
	bt := newBenchText(rng)
	filters := []func() search.Filter{
		func() search.Filter {
			return search.Filter{Statuses: []string{"open"}, Channels: []string{string(cases.Channels[rng.IntN(6)])}}
		},
		func() search.Filter {
			return search.Filter{Tags: []string{"vip"}, Statuses: []string{"open", "pending"}}
		},
		func() search.Filter {
			return search.Filter{Purposes: []string{string(cases.Purposes[rng.IntN(9)])}, From: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)}
		},
	}
	chineseWords := []string{"阅读", "退款", "账户", "物流", "发票", "问题", "客服", "订单"}
	mkQuery := func() search.Query {
		q := search.Query{Limit: 20, Facets: true, Filter: filters[rng.IntN(len(filters))]()}
		for range 1 + rng.IntN(3) {
			if rng.IntN(6) == 0 {
				q.Words = append(q.Words, chineseWords[rng.IntN(len(chineseWords))])
				continue
			}
			w := bt.words[rng.IntN(200)]
			if rng.IntN(4) == 0 {
				w = typo(rng, w)
			}
			q.Words = append(q.Words, w)
		}
		return q
	}
	nq := 2000
	fmt.Sscan(os.Getenv("ZZ_Q"), &nq)
	type rec struct {
		d     time.Duration
		q     search.Query
		total int64
	}
	var recs []rec
	if p := os.Getenv("ZZ_CPU"); p != "" {
		f, _ := os.Create(p)
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	for range nq {
		q := mkQuery()
		t0 := time.Now()
		res, err := eng.Search(ctx, q)
		d := time.Since(t0)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec{d, q, res.Total})
	}
	slices.SortFunc(recs, func(a, b rec) int { return int(a.d - b.d) })
	pct := func(p float64) time.Duration { return recs[min(int(float64(len(recs))*p), len(recs)-1)].d }
	t.Logf("p50 %v p90 %v p99 %v max %v", pct(.5), pct(.9), pct(.99), recs[len(recs)-1].d)
	for _, r := range recs[len(recs)-30:] {
		t.Logf("%8v total=%6d words=%q filter=%s", r.d.Round(time.Microsecond), r.total, r.q.Words, strings.ReplaceAll(fmt.Sprintf("%+v", r.q.Filter), " 0001-01-01 00:00:00 +0000 UTC", ""))
	}
}
