package bleve_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/search/bleve"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/sqlstore"
	"github.com/casevault/casevault/testkit"
)

func envOr(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkIndexLag writes contacts through the store at a fixed rate
// (CASEVAULT_LAG_RATE, default 2,000/s, for CASEVAULT_LAG_SECONDS, default
// 20) over CASEVAULT_LAG_CASES cases (default 20,000, the search corpus's
// count) while the outbox indexer feeds an on-disk Bleve
// index, and samples the indexer's lag (age of the oldest unindexed outbox
// row) every 200 ms: the issue's "index lag stays under 5 s while contacts
// arrive at 2,000/s", without the HTTP layer (whose own ceiling on these
// two cores is below that rate). CASEVAULT_LAG_MAXSETTLE_MS=1 turns the
// settle window's stretching off, and CASEVAULT_LAG_BATCH sets the batch
// (default: the indexer's), for a comparison in the same build.
func BenchmarkIndexLag(b *testing.B) {
	rate := envOr("CASEVAULT_LAG_RATE", 2000)
	secs := envOr("CASEVAULT_LAG_SECONDS", 20)
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		db := sqldbtest.Open(b, sqldb.SQLite)
		eng, err := bleve.Open(ctx, filepath.Join(b.TempDir(), "index"))
		if err != nil {
			b.Fatal(err)
		}
		var ix *search.Indexer
		st := sqlstore.New(db, sqlstore.Options{Policy: retention.DefaultSchedule().Policy(), Notify: func() { ix.Kick() }})
		ix = search.NewIndexer(st, eng, nil, search.Options{Settle: time.Duration(envOr("CASEVAULT_LAG_SETTLE_MS", 200)) * time.Millisecond,
			MaxSettle: time.Duration(envOr("CASEVAULT_LAG_MAXSETTLE_MS", 1000)) * time.Millisecond, BatchSize: envOr("CASEVAULT_LAG_BATCH", 0)})
		done := make(chan struct{})
		go func() { defer close(done); _ = ix.Run(ctx) }()
		svc := cases.NewService(st, nil)
		drained := func() bool {
			s, err := ix.Status(ctx)
			if err != nil {
				b.Fatal(err)
			}
			return s.Pending == 0
		}
		ids := make([]string, envOr("CASEVAULT_LAG_CASES", 20000))
		for j := range ids {
			name, subj, ch := fmt.Sprintf("Customer %d", j), fmt.Sprintf("Order %d 订单", j), cases.ChannelEmail
			cust, err := svc.CreateCustomer(ctx, cases.NewCustomer{Name: &name}, cases.Actor{})
			if err != nil {
				b.Fatal(err)
			}
			cs, err := svc.CreateCase(ctx, cases.NewCase{CustomerID: &cust.ID, Subject: &subj, Channel: &ch}, cases.Actor{})
			if err != nil {
				b.Fatal(err)
			}
			ids[j] = cs.ID
		}
		// Optionally the search corpus's size first (CASEVAULT_LAG_PREFILL
		// contacts, e.g. 200000), so the new writes land in a full index.
		prefill := envOr("CASEVAULT_LAG_PREFILL", 0)
		var pw sync.WaitGroup
		for w := 0; w < 32; w++ {
			pw.Add(1)
			go func() {
				defer pw.Done()
				chn, dir, author := cases.ChannelEmail, cases.DirectionInbound, "customer"
				for n := w; n < prefill; n += 32 {
					body := fmt.Sprintf("Earlier message %d about invoice, refund and delivery. 之前关于发票和退款的消息。", n)
					if _, err := svc.AddContact(ctx, ids[n%len(ids)], cases.NewContact{Channel: &chn, Direction: &dir, Author: &author, Body: &body}, cases.Actor{}); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		pw.Wait()
		testkit.Eventually(b, 30*time.Minute, "outbox drained", drained)
		b.ResetTimer()
		// Writers take one token per contact; every 5 ms the feeder issues the
		// tokens due by then. Tokens not taken (writers all busy) are
		// dropped: the achieved rate is reported, not assumed.
		tokens := make(chan struct{}, rate)
		var written atomic.Int64
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for w := 0; w < 64; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				chn, dir, author := cases.ChannelChat, cases.DirectionInbound, "customer"
				for n := w; ; n += 64 {
					select {
					case <-stop:
						return
					case <-tokens:
					}
					body := fmt.Sprintf("My parcel %d never arrived, tracking says delivered. 我的包裹没有收到，请帮忙查询。", n)
					if _, err := svc.AddContact(ctx, ids[n%len(ids)], cases.NewContact{Channel: &chn, Direction: &dir, Author: &author, Body: &body}, cases.Actor{}); err != nil {
						b.Error(err)
						return
					}
					written.Add(1)
				}
			}()
		}
		var lags []float64
		start := time.Now()
		tick := time.NewTicker(5 * time.Millisecond)
		sample := time.NewTicker(200 * time.Millisecond)
		issued := 0
	feed:
		for {
			select {
			case <-tick.C:
				if time.Since(start) >= time.Duration(secs)*time.Second {
					break feed
				}
				// Issue what is due by the clock, so that a late tick
				// does not lower the rate.
				due := int(time.Since(start).Seconds()*float64(rate)) - issued
				for k := 0; k < due; k++ {
					select {
					case tokens <- struct{}{}:
					default:
					}
				}
				issued += due
			case <-sample.C:
				s, err := ix.Status(ctx)
				if err != nil {
					b.Fatal(err)
				}
				lags = append(lags, s.LagSeconds)
			}
		}
		close(stop)
		wg.Wait()
		elapsed := time.Since(start)
		drainStart := time.Now()
		testkit.Eventually(b, 30*time.Minute, "outbox drained", drained)
		drain := time.Since(drainStart)
		b.StopTimer()
		cancel()
		<-done
		_ = eng.Close()
		slices.Sort(lags)
		p99 := lags[min(len(lags)-1, len(lags)*99/100)]
		b.ReportMetric(float64(written.Load())/elapsed.Seconds(), "contacts/s")
		b.ReportMetric(lags[len(lags)-1], "max-lag-s")
		b.ReportMetric(p99, "p99-lag-s")
		b.ReportMetric(drain.Seconds(), "drain-s")
	}
}
