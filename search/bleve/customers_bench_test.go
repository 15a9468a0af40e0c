package bleve

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	bv "github.com/blevesearch/bleve/v2"
	"github.com/blevesearch/bleve/v2/search/query"

	"github.com/casevault/casevault/search"
)

// BenchmarkCustomerIDsByName (issue 16 §2): the name lookup of
// GET /customers?q= on the customer index, CASEVAULT_BENCH_CUSTOMERS
// customers (default 100,000; Latin and Chinese names), 2,000 lookups of
// one or two words (a quarter with a typo, a fifth Chinese), interleaved
// with the reference: a raw bleve.Search of one exact term on the same
// index, top 10. Reports p50/p99 of both and their ratio.
func BenchmarkCustomerIDsByName(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("CASEVAULT_BENCH_CUSTOMERS")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	e, err := Open(ctx, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	first := []string{"Anna", "Bernhard", "Chen", "Dmitri", "Elena", "Farid", "Grace", "Hiroshi", "Ingrid", "Jamal", "Katarina", "Lorenzo", "Margarethe", "Nikolai", "Olga", "Priya"}
	last := []string{"Fontaine", "Müller", "Smirnova", "Okafor", "Lindqvist", "Kowalski", "Nakamura", "Rossi", "Haddad", "Johansson", "Petrova", "Gonzalez", "Schneider", "Andersen", "Novak", "Moreau"}
	han := []rune("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")
	rng := rand.New(rand.NewPCG(1, 2))
	start := time.Now()
	batch := make([]search.CustomerDoc, 0, 1000)
	for i := range n {
		name := fmt.Sprintf("%s %s %d", first[rng.IntN(len(first))], last[rng.IntN(len(last))], i%97)
		if i%5 == 0 {
			name = string([]rune{han[rng.IntN(len(han))], han[rng.IntN(len(han))], han[rng.IntN(len(han))]})
		}
		batch = append(batch, search.CustomerDoc{CustomerID: fmt.Sprintf("cus-%07d", i), Name: name})
		if len(batch) == cap(batch) || i == n-1 {
			if err := e.IndexCustomers(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.Logf("%d customers indexed in %v", n, time.Since(start))

	queries := make([]string, 2000)
	for i := range queries {
		switch {
		case i%5 == 0:
			queries[i] = string([]rune{han[rng.IntN(len(han))], han[rng.IntN(len(han))]})
		case i%4 == 0:
			queries[i] = first[rng.IntN(len(first))] + " Fontane" // a typo
		case i%2 == 0:
			queries[i] = last[rng.IntN(len(last))]
		default:
			queries[i] = first[rng.IntN(len(first))] + " " + last[rng.IntN(len(last))]
		}
	}
	b.ResetTimer()
	for b.Loop() {
		var ours, raw []time.Duration
		for _, q := range queries {
			t0 := time.Now()
			if _, err := e.CustomerIDsByName(ctx, q, 0, 51); err != nil {
				b.Fatal(err)
			}
			ours = append(ours, time.Since(t0))

			tq := query.NewTermQuery("fontaine")
			tq.SetField(fName)
			t0 = time.Now()
			if _, err := e.cust.idx.SearchInContext(ctx, bv.NewSearchRequestOptions(tq, 10, 0, false)); err != nil {
				b.Fatal(err)
			}
			raw = append(raw, time.Since(t0))
		}
		p := func(d []time.Duration, q float64) time.Duration {
			slices.Sort(d)
			return d[int(q*float64(len(d)-1))]
		}
		b.ReportMetric(float64(p(ours, 0.5).Microseconds()), "p50-µs")
		b.ReportMetric(float64(p(ours, 0.99).Microseconds()), "p99-µs")
		b.ReportMetric(float64(p(raw, 0.5).Microseconds()), "raw-p50-µs")
		b.ReportMetric(float64(p(raw, 0.99).Microseconds()), "raw-p99-µs")
	}
}
