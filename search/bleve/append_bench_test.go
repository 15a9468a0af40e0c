package bleve_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/search/bleve"
	"github.com/casevault/casevault/testkit"
)

// BenchmarkAppendCPU appends CASEVAULT_APPEND_CONTACTS contacts (default
// 20,000) over 1,000 cases to an on-disk index in batches of each size,
// and reports the CPU the process spent per contact, scorch's background
// persisting and merging included (it waits until the CPU goes idle). The
// HTTP ingest profile put Bleve at ~45% of serve's CPU, half of it in
// scorch's merger (issue 19 §3).
func BenchmarkAppendCPU(b *testing.B) {
	total := envOr("CASEVAULT_APPEND_CONTACTS", 20000)
	for _, bs := range []int{100, 500, 2000} {
		b.Run(fmt.Sprintf("batch=%d", bs), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				benchAppend(b, total, bs)
			}
		})
	}
}

func benchAppend(b *testing.B, total, batch int) {
	ctx := context.Background()
	eng, err := bleve.Open(ctx, filepath.Join(b.TempDir(), "index"))
	if err != nil {
		b.Fatal(err)
	}
	defer eng.Close()
	const ncases = 1000
	// IDs as serve makes them (time-ordered, cases.NewID): the cases
	// exist before their contacts, and each contact's ID is newer than
	// every one before it, which is what Bleve's ID lookups see.
	caseIDs := make([]string, ncases)
	for i := range caseIDs {
		caseIDs[i] = cases.NewID()
	}
	start, wall := testkit.ProcessCPU(b), time.Now()
	n := 0
	for n < total {
		byCase := map[int]int{} // case → index in docs
		var docs []search.CaseDoc
		for k := 0; k < batch && n < total; k, n = k+1, n+1 {
			c := n % ncases
			j, ok := byCase[c]
			if !ok {
				j = len(docs)
				byCase[c] = j
				docs = append(docs, search.CaseDoc{CaseID: caseIDs[c], Number: int64(c + 1), CustomerID: "cust", CustomerName: "Bench Customer",
					Subject: fmt.Sprint("bench case ", c), Status: "open", Priority: "normal", Channel: "chat", CreatedAt: time.Unix(1700000000, 0), UpdatedAt: time.Unix(1700000000, 0)})
			}
			docs[j].Contacts = append(docs[j].Contacts, search.ContactDoc{ID: cases.NewID(), Channel: "chat", Direction: "inbound", Author: "bench",
				Body:       fmt.Sprintf("Hello %d, I was charged twice for my order last week and would like a refund. 我的订单被重复扣款了，请帮我退款。", n),
				OccurredAt: time.Unix(1700000000+int64(n), 0), Purposes: []string{"customer_service"}})
		}
		if err := eng.AddContacts(ctx, docs); err != nil {
			b.Fatal(err)
		}
	}
	// scorch merges in the background: wait until the process idles
	for last := testkit.ProcessCPU(b); ; {
		time.Sleep(300 * time.Millisecond)
		now := testkit.ProcessCPU(b)
		if now-last < 15*time.Millisecond {
			break
		}
		last = now
	}
	cpu := testkit.ProcessCPU(b) - start
	b.ReportMetric(float64(cpu.Microseconds())/float64(total), "cpu-µs/contact")
	b.ReportMetric(time.Since(wall).Seconds(), "wall-s")
}
