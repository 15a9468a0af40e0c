package audit_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/testkit"
)

// bulkEvents yields n valid, chained events, computing each on demand so
// that a million of them never sit in memory.
func bulkEvents(n int) func() (audit.Event, bool) {
	actions := []string{audit.ActionCaseRead, audit.ActionContactRead, audit.ActionSearch, audit.ActionCaseUpdate}
	outcomes := []string{audit.OutcomeDenied, audit.OutcomeOK} // one in 1,000 denied
	i, prev := 0, audit.GenesisHash
	return func() (audit.Event, bool) {
		if i >= n {
			return audit.Event{}, false
		}
		ev := audit.Event{
			Seq:        int64(i + 1),
			Time:       base.Add(time.Duration(i) * time.Second),
			ActorID:    "tok-" + strconv.Itoa(i%17),
			ActorName:  "agent " + strconv.Itoa(i%17),
			Role:       "agent",
			Action:     actions[i%len(actions)],
			TargetType: "case",
			TargetID:   "0190f5b2-7c1e-7aa1-9c1e-" + fmt.Sprintf("%012d", i%5000),
			RequestID:  "req-" + strconv.Itoa(i),
			ClientIP:   "192.0.2." + strconv.Itoa(i%250),
			Outcome:    outcomes[min(i%1000, 1)],
			Detail:     []byte(`{"hits":` + strconv.Itoa(i%40) + `,"q":"refund order"}`),
			PrevHash:   prev,
		}
		if i%10_000 == 5_000 { // a rare action: 100 in 1,000,000
			ev.Action = audit.ActionHoldCreate
		}
		ev.Hash = ev.ComputeHash()
		prev = ev.Hash
		i++
		return ev, true
	}
}

// bulkInsert writes n valid events straight into an empty trail: one
// transaction with a prepared statement on SQLite, COPY on PostgreSQL.
func bulkInsert(tb testing.TB, db *sqldb.DB, n int) {
	tb.Helper()
	ctx := context.Background()
	next := bulkEvents(n)
	var last audit.Event
	args := func(ev audit.Event) []any {
		return []any{ev.Seq, ev.Time.UnixMicro(), ev.ActorID, ev.ActorName, ev.Role, ev.Action, ev.TargetType, ev.TargetID,
			ev.RequestID, ev.ClientIP, ev.Outcome, string(ev.Detail), ev.PrevHash, ev.Hash}
	}
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		switch db.Dialect {
		case sqldb.SQLite:
			stmt, err := tx.PrepareContext(ctx, `INSERT INTO audit_events (`+cols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
			if err != nil {
				return err
			}
			defer stmt.Close()
			for ev, ok := next(); ok; ev, ok = next() {
				if _, err := stmt.ExecContext(ctx, args(ev)...); err != nil {
					return err
				}
				last = ev
			}
		case sqldb.Postgres:
			conn, err := db.Write.Conn(ctx)
			if err != nil {
				return err
			}
			defer conn.Close()
			err = conn.Raw(func(dc any) error {
				c, _ := sqldb.PgxConn(dc)
				_, err := c.CopyFrom(ctx, pgx.Identifier{"audit_events"},
					[]string{"seq", "at", "actor_id", "actor_name", "role", "action", "target_type", "target_id",
						"request_id", "client_ip", "outcome", "detail", "prev_hash", "hash"},
					pgx.CopyFromFunc(func() ([]any, error) {
						ev, ok := next()
						if !ok {
							return nil, nil
						}
						last = ev
						return args(ev), nil
					}))
				return err
			})
			if err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, db.Rebind(`UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`), last.Seq, last.Hash)
		return err
	})
	if err != nil {
		tb.Fatalf("bulk insert %d events: %v", n, err)
	}
}

// The bulk loader must produce a chain Verify accepts (else the benchmark
// measures nothing), and appends continue it.
func TestBulkInsertVerifies(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		l := logOn(t, db)
		bulkInsert(t, db, 3000)
		verifyOK(t, l, 3000)
		recordN(t, l, 0, 2)
		verifyOK(t, l, 3002)
		exec(t, db, `UPDATE audit_events SET target_id = 'x' WHERE seq = 2500`)
		res, err := l.Verify(context.Background())
		if err != nil || res.OK || *res.FirstBad != 2500 {
			t.Fatalf("tampering in a bulk-loaded chain: %+v %v", res, err)
		}
	})
}

func benchEvents() int {
	if s := os.Getenv("CASEVAULT_AUDIT_BENCH_EVENTS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			return n
		}
	}
	return 1_000_000
}

// BenchmarkVerify1M measures Verify over a bulk-loaded chain of 1,000,000
// events (CASEVAULT_AUDIT_BENCH_EVENTS to change). Loading takes longer than
// verifying; run with -benchtime=1x.
func BenchmarkVerify1M(b *testing.B) {
	n := benchEvents()
	for _, d := range sqldbtest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			db, l := newLog(b, d)
			start := time.Now()
			bulkInsert(b, db, n)
			b.Logf("%s: bulk-loaded %d events in %v", d, n, time.Since(start).Round(time.Millisecond))
			cpu0 := testkit.ProcessCPU(b)
			b.ResetTimer()
			for range b.N {
				res, err := l.Verify(context.Background())
				if err != nil || !res.OK || res.Events != int64(n) {
					b.Fatalf("verify: %+v %v", res, err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
			// CPU time of this process (PostgreSQL's share is not in it): on a
			// busy shared machine wall time says more about the neighbours.
			b.ReportMetric((testkit.ProcessCPU(b)-cpu0).Seconds()/float64(b.N), "cpu-s/op")
		})
	}
}

// BenchmarkAppend compares a small write transaction with and without its
// audit event (AppendTx), the shape of every audited change.
func BenchmarkAppend(b *testing.B) {
	for _, d := range sqldbtest.Dialects {
		for _, mode := range []string{"tx-only", "tx+audit", "tx+audit-prepared"} {
			b.Run(string(d)+"/"+mode, func(b *testing.B) {
				ctx := context.Background()
				db, l := newLog(b, d)
				if mode == "tx+audit-prepared" {
					if err := l.Prepare(ctx); err != nil {
						b.Fatal(err)
					}
				}
				ev := sample(1)
				i := 0
				b.ResetTimer()
				for range b.N {
					i++
					err := db.InTx(ctx, func(tx *sql.Tx) error {
						if _, err := tx.ExecContext(ctx, db.Rebind(`INSERT INTO counters(name, value) VALUES (?, ?)`), "b"+strconv.Itoa(i), i); err != nil {
							return err
						}
						var err error
						switch mode {
						case "tx+audit":
							_, err = audit.AppendTx(ctx, tx, d, ev)
						case "tx+audit-prepared":
							_, err = l.AppendTx(ctx, tx, ev)
						}
						return err
					})
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkRecordParallel measures Record with many concurrent callers,
// where group commit shares one commit among them.
func BenchmarkRecordParallel(b *testing.B) {
	for _, d := range sqldbtest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			_, l := newLog(b, d)
			ev := sample(1)
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := l.Record(context.Background(), ev); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkSequence measures sequencing passes per event moved, each pass
// of a size drawn from 100-300 as under load (a pass every 100 ms at 1,000
// to 3,000 audited writes a second); the pending rows are staged outside
// the timer. On PostgreSQL the database's work is in the time: the pass
// waits for each statement. The same-run reference (ref-ns/event, and
// x-ref the ratio) moves as many rows with SQL alone, one INSERT … SELECT
// and one DELETE in one transaction, into audit_events itself (numbered
// from refSeq up, apart from the chain): what the database needs to move
// them, with no hash chain and nothing sent back and forth.
func BenchmarkSequence(b *testing.B) {
	for _, d := range sqldbtest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			ctx := context.Background()
			db, l := newLog(b, d, audit.WithSequencer(0))
			rng := rand.New(rand.NewPCG(1, 2))
			next, moved := 0, 0
			var ours, ref time.Duration
			for b.Loop() {
				b.StopTimer()
				n := 100 + rng.IntN(201)
				stagePending(b, db, next, n)
				next += n
				start := time.Now()
				b.StartTimer()

				got, err := l.Sequence(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if got != n {
					b.Fatalf("sequenced %d of %d", got, n)
				}

				b.StopTimer()
				ours += time.Since(start)
				stagePending(b, db, next, n)
				next += n
				start = time.Now()
				moveBySQL(b, db, n)
				ref += time.Since(start)
				b.StartTimer()
				moved += got
			}
			b.ReportMetric(float64(ours.Nanoseconds())/float64(moved), "ns/event")
			b.ReportMetric(float64(ref.Nanoseconds())/float64(moved), "ref-ns/event")
			b.ReportMetric(float64(ours)/float64(ref), "x-ref")
		})
	}
}

// refSeq is where moveBySQL numbers its rows: far above the chain's.
const refSeq = 1_000_000_000_000

// moveBySQL moves the n pending rows into audit_events with SQL alone,
// numbered above refSeq, with hashes of a real one's size (not computed).
func moveBySQL(tb testing.TB, db *sqldb.DB, n int) {
	tb.Helper()
	ctx := context.Background()
	hash := "'" + strings.Repeat("0", 64) + "'"
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO audit_events (seq, at, actor_id, actor_name, role, action, target_type, target_id,
 request_id, client_ip, outcome, detail, prev_hash, hash)
 SELECT (SELECT COALESCE(MAX(seq), `+strconv.Itoa(refSeq)+`) FROM audit_events WHERE seq >= `+strconv.Itoa(refSeq)+`) + row_number() OVER (ORDER BY id),
 at, actor_id, actor_name, role, action, target_type, target_id, request_id, client_ip, outcome, detail, `+hash+`, `+hash+` FROM audit_pending`)
		if err != nil {
			return err
		}
		if got, err := res.RowsAffected(); err != nil || got != int64(n) {
			return fmt.Errorf("moved %d of %d: %v", got, n, err)
		}
		_, err = tx.ExecContext(ctx, `DELETE FROM audit_pending`)
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// stagePending writes n pending events, ids from first on, in one
// transaction.
func stagePending(tb testing.TB, db *sqldb.DB, first, n int) {
	tb.Helper()
	ctx := context.Background()
	err := db.InTx(ctx, func(tx *sql.Tx) error {
		for i := first; i < first+n; i++ {
			ev := sample(i)
			_, err := tx.ExecContext(ctx, db.Rebind(audit.InsertPendingQuery), fmt.Sprintf("%020d", i), ev.Time.UnixMicro(),
				ev.ActorID, ev.ActorName, ev.Role, ev.Action, ev.TargetType, ev.TargetID, ev.RequestID, ev.ClientIP, ev.Outcome, string(ev.Detail))
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkListPage reads List's first page (50 events) under each filter
// from a bulk-loaded trail of CASEVAULT_AUDIT_BENCH_EVENTS events
// (1,000,000 by default: 17 actors, every event on one of 5,000 cases, a
// case's events fewer than a page below 250,000, one in 1,000 denied),
// and reports each as a multiple of the unfiltered page in the same run.
// PostgreSQL is analyzed after the load, as autovacuum would; SQLite
// plans without statistics, as casevault runs it.
func BenchmarkListPage(b *testing.B) {
	n := benchEvents()
	filters := []struct {
		name string
		f    audit.Filter
	}{
		{"unfiltered", audit.Filter{}},
		{"actor id", audit.Filter{Actor: "tok-3"}},
		{"actor name", audit.Filter{Actor: "agent 3"}},
		{"target type", audit.Filter{TargetType: "case"}},
		{"target", audit.Filter{TargetType: "case", TargetID: "0190f5b2-7c1e-7aa1-9c1e-000000000042"}},
		{"action", audit.Filter{Action: audit.ActionSearch}},
		{"action prefix", audit.Filter{Action: "case.*"}},
		{"action prefix, rare", audit.Filter{Action: "hold.*"}},
		{"outcome denied", audit.Filter{Outcome: audit.OutcomeDenied}},
		// bulkEvents writes one event a second: the newest hour, an hour a
		// third of the way back, and everything before the newest third
		{"time newest hour", audit.Filter{From: base.Add(time.Duration(n-3600) * time.Second)}},
		{"time old hour", audit.Filter{From: base.Add(time.Duration(n/3) * time.Second), To: base.Add(time.Duration(n/3+3600) * time.Second)}},
		{"time older two thirds", audit.Filter{To: base.Add(time.Duration(2*n/3) * time.Second)}},
		{"time old hour, one actor", audit.Filter{Actor: "tok-3", From: base.Add(time.Duration(n/3) * time.Second), To: base.Add(time.Duration(n/3+3600) * time.Second)}},
	}
	for _, d := range sqldbtest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			l := benchTrail(b, d, n)

			var unfiltered float64
			for _, fl := range filters {
				b.Run(fl.name, func(b *testing.B) {
					for range b.N {
						evs, _, err := l.List(context.Background(), fl.f)
						if err != nil || len(evs) == 0 {
							b.Fatalf("list %+v: %d events, %v", fl.f, len(evs), err)
						}
					}
					per := float64(b.Elapsed()) / float64(b.N)
					if fl.name == "unfiltered" {
						unfiltered = per
					}
					b.ReportMetric(per/unfiltered, "x-unfiltered")
				})
			}
		})
	}
}

// BenchmarkExportRange measures Export under a time range (and, beside
// it, of a rare action prefix) against an export of the whole trail, per
// event written: x-whole-per-event is 1
// when the range costs nothing beyond the events it writes, and grows
// with what is read and left out. bulkEvents writes one event a second,
// so an hour is 3,600 events. Run with -benchtime=1x: the whole export
// of 1,000,000 events is the reference.
func BenchmarkExportRange(b *testing.B) {
	n := benchEvents()
	at := func(i int) time.Time { return base.Add(time.Duration(i) * time.Second) }
	ranges := []struct {
		name string
		f    audit.Filter
		want int
	}{
		{"whole", audit.Filter{}, n},
		{"oldest hour", audit.Filter{To: at(3600)}, 3600},
		{"old hour", audit.Filter{From: at(n / 3), To: at(n/3 + 3600)}, 3600},
		{"newest hour", audit.Filter{From: at(n - 3600)}, 3600},
		{"older two thirds", audit.Filter{To: at(2 * n / 3)}, 2 * n / 3},
		{"old hour, one actor", audit.Filter{Actor: "tok-3", From: at(n / 3), To: at(n/3 + 3600)}, actorEvents(n/3, n/3+3600, 3)},
		{"rare action prefix", audit.Filter{Action: "hold.*"}, (n + 4_999) / 10_000},
	}
	for _, d := range sqldbtest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			l := benchTrail(b, d, n)

			var whole float64
			for _, r := range ranges {
				b.Run(r.name, func(b *testing.B) {
					var w lineCounter
					for range b.N {
						w = 0
						if err := l.Export(context.Background(), &w, r.f); err != nil {
							b.Fatal(err)
						}
						if int(w) != r.want {
							b.Fatalf("export %+v: %d events, want %d", r.f, w, r.want)
						}
					}
					per := float64(b.Elapsed()) / float64(b.N) / float64(w)
					if r.name == "whole" {
						whole = per
					}
					b.ReportMetric(per/whole, "x-whole-per-event")
				})
			}
		})
	}
}

// benchTrail is a log on a trail of n bulk-loaded events, analyzed on
// PostgreSQL as a server's would be.
func benchTrail(b *testing.B, d sqldb.Dialect, n int) *audit.Log {
	b.Helper()
	db, l := newLog(b, d)
	bulkInsert(b, db, n)
	if d == sqldb.Postgres {
		if _, err := db.Write.Exec(`ANALYZE audit_events`); err != nil {
			b.Fatal(err)
		}
	}
	return l
}

// actorEvents counts bulkEvents' events from..to-1 whose actor is tok-k.
func actorEvents(from, to, k int) int {
	c := 0
	for i := from; i < to; i++ {
		if i%17 == k {
			c++
		}
	}
	return c
}

// lineCounter counts the lines written to it (an NDJSON export's events).
type lineCounter int

func (c *lineCounter) Write(p []byte) (int, error) {
	*c += lineCounter(bytes.Count(p, []byte("\n")))
	return len(p), nil
}
