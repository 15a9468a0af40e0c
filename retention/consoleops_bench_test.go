package retention_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// BenchmarkDispositionsPage: the console's disposition records page (50
// newest, then the page after a cursor) over CASEVAULT_BENCH_DISPOSITIONS
// records (default 100,000), with migration 0033's (at, id) index and,
// as the reference in the same run, without it. SQLite.
func BenchmarkDispositionsPage(b *testing.B) {
	n := 100_000
	if v, err := strconv.Atoi(os.Getenv("CASEVAULT_BENCH_DISPOSITIONS")); err == nil && v > 0 {
		n = v
	}
	db := sqldbtest.Open(b, sqldb.SQLite)
	ctx := context.Background()
	tx, err := db.Write.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		_, err := tx.ExecContext(ctx, `INSERT INTO dispositions (id, run_id, contact_id, case_id, customer_id, purposes, rule, action, at, content_sha256)
			VALUES (?, ?, ?, ?, ?, '[]', 'notification', 'delete', ?, '')`,
			fmt.Sprintf("d%09d", i), fmt.Sprintf("run%d", i/1000), fmt.Sprintf("ct%d", i), fmt.Sprintf("case%d", i/10), fmt.Sprintf("cu%d", i/50),
			sqldb.Micros(at.Add(time.Duration(i%5000)*time.Minute)))
		if err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	ex := retention.NewExplainer(db, retention.NewPolicy(retention.DefaultSchedule()), nil)
	page := func(b *testing.B) {
		for range b.N {
			items, next, err := ex.Dispositions(ctx, retention.DispositionFilter{}, 50, "")
			if err != nil || len(items) != 50 {
				b.Fatal(err)
			}
			if _, _, err := ex.Dispositions(ctx, retention.DispositionFilter{}, 50, next); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("index", page)
	if _, err := db.Write.ExecContext(ctx, `DROP INDEX dispositions_at`); err != nil {
		b.Fatal(err)
	}
	b.Run("no_index", page)
}

// BenchmarkSchedulePreview: the schedule editor's dry run over
// CASEVAULT_BENCH_PREVIEW_CONTACTS contacts (default 20,000; SQLite),
// against the reference of the same run: Recompute, the walk a saved
// schedule starts over the same contacts (here with nothing to change).
func BenchmarkSchedulePreview(b *testing.B) {
	n := 20_000
	if v, err := strconv.Atoi(os.Getenv("CASEVAULT_BENCH_PREVIEW_CONTACTS")); err == nil && v > 0 {
		n = v
	}
	e := newEnv(b, sqldbtest.Open(b, sqldb.SQLite))
	cu := e.customer()
	var k string
	for i := range n {
		if i%20 == 0 {
			k = e.newCase(cu)
		}
		e.contact(k, base.Add(time.Duration(i)*time.Minute), purposes("security"), contactOpt{device: i%3 == 0})
	}
	cand := retention.DefaultSchedule()
	for i, r := range cand.Purposes {
		if r.Purpose == "security" {
			cand.Purposes[i].Keep, _ = retention.ParseDuration("30d")
		}
	}
	now := base.Add(60 * day)
	b.Run("preview", func(b *testing.B) {
		for range b.N {
			pv, err := e.sched.Preview(e.ctx, cand, e.holds, now, 0)
			if err != nil || pv.Examined != n {
				b.Fatal(err, pv.Examined)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/contact")
	})
	b.Run("recompute", func(b *testing.B) {
		for range b.N {
			res, err := retention.Recompute(e.ctx, e.db, e.policy, retention.RecomputeOptions{})
			if err != nil || res.Examined != n {
				b.Fatal(err, res.Examined)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/contact")
	})
}
