package retention_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// benchSize reads a size from the environment (e.g. CASEVAULT_BENCH_DUE=100000).
func benchSize(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// bulkContacts inserts n contacts over n/10 cases of one customer, each with
// one attachment row when withAttachments, retain_until = until (nil: none).
func bulkContacts(b *testing.B, db *sqldb.DB, n int, occurred time.Time, until *time.Time, withAttachments bool) {
	b.Helper()
	ctx := context.Background()
	cust := cases.NewID()
	pre := cust[len(cust)-12:] // ids unique across calls
	var failed error
	exec := func(tx *sql.Tx, q string, args ...any) {
		if failed != nil {
			return
		}
		// Not b.Fatal: on SQLite this runs in the group-commit goroutine.
		_, failed = tx.ExecContext(ctx, db.Rebind(q), args...)
	}
	var number int64
	if err := db.Read.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'case_number'`).Scan(&number); err != nil {
		b.Fatal(err)
	}
	const chunk = 200
	for start := 0; start < n; start += chunk * 10 {
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			if start == 0 {
				exec(tx, `INSERT INTO customers (id, name, created_at, updated_at) VALUES (?, 'bench', 0, 0)`, cust)
			}
			for c := start; c < min(n, start+chunk*10); c += chunk {
				var caseVals, conVals, attVals []string
				var caseArgs, conArgs, attArgs []any
				for i := c; i < min(n, c+chunk); i++ {
					if i%10 == 0 {
						number++
						caseVals = append(caseVals, "(?,?,?,'bench','open','normal','email','[]','',0,0,NULL)")
						caseArgs = append(caseArgs, fmt.Sprintf("case-%s-%09d", pre, i/10), number+1_000_000_000, cust)
					}
					id := fmt.Sprintf("contact-%s-%09d", pre, i)
					var u any
					if until != nil {
						u = until.UnixMicro()
					}
					conVals = append(conVals, "(?,?,?,'chat','inbound','Li Lei','my parcel never arrived',?,?,'[\"notification\"]','[\"support_content\"]',NULL,NULL,?)")
					conArgs = append(conArgs, id, fmt.Sprintf("case-%s-%09d", pre, i/10), cust, occurred.UnixMicro(), occurred.UnixMicro(), u)
					if withAttachments {
						attVals = append(attVals, "(?,?,?,?,'a.pdf','application/pdf',3,'abc',?,0)")
						attArgs = append(attArgs, "att-"+id, id, fmt.Sprintf("case-%s-%09d", pre, i/10), cust, "attachments/"+cust+"/att-"+id)
					}
				}
				if len(caseVals) > 0 {
					exec(tx, `INSERT INTO cases (id, number, customer_id, subject, status, priority, channel, tags, assignee, created_at, updated_at, closed_at) VALUES `+strings.Join(caseVals, ","), caseArgs...)
				}
				exec(tx, `INSERT INTO contacts (id, case_id, customer_id, channel, direction, author, body, occurred_at, created_at, purposes, categories, location, device, retain_until) VALUES `+strings.Join(conVals, ","), conArgs...)
				if withAttachments {
					exec(tx, `INSERT INTO attachments (id, contact_id, case_id, customer_id, filename, content_type, size, sha256, blob_key, created_at) VALUES `+strings.Join(attVals, ","), attArgs...)
				}
			}
			return failed
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	if _, err := db.Write.ExecContext(ctx, db.Rebind(`UPDATE counters SET value = ? WHERE name = 'case_number'`), number+1_000_000_000); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkSweep deletes CASEVAULT_BENCH_DUE (default 20,000) due contacts,
// each with an attachment (row + blob) and an audit event, and their cases.
// CASEVAULT_BENCH_NO_AUDIT=1 leaves the audit hook out.
func BenchmarkSweep(b *testing.B) {
	n := benchSize("CASEVAULT_BENCH_DUE", 20000)
	for _, d := range sqldbtest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			var total time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				e := newEnv(b, sqldbtest.Open(b, d))
				if os.Getenv("CASEVAULT_BENCH_NO_AUDIT") == "" {
					// As wired in the server: a sweep batch's events are
					// appended under one head lock.
					log := audit.New(e.db)
					b.Cleanup(func() { log.Close(context.Background()) })
					e.sweeper = retention.NewSweeper(e.db, retention.SweeperOptions{Policy: e.policy, Holds: e.holds, Blobs: e.blobs,
						OnChanges: func(ctx context.Context, tx *sql.Tx, chs []cases.Change) error {
							evs := make([]audit.Event, len(chs))
							for i, ch := range chs {
								evs[i] = audit.Event{ActorName: ch.Actor.Name, Role: ch.Actor.Role, Action: ch.Action,
									TargetType: ch.TargetType, TargetID: ch.TargetID, Outcome: audit.OutcomeOK}
							}
							_, err := log.AppendManyTx(ctx, tx, evs)
							return err
						}})
				} else {
					// Isolates the cost of one audit append per disposition.
					e.sweeper = retention.NewSweeper(e.db, retention.SweeperOptions{Policy: e.policy, Holds: e.holds, Blobs: e.blobs})
				}
				occurred := base
				bulkContacts(b, e.db, n, occurred, tp(base.Add(90*day)), true)
				b.StartTimer()
				start := time.Now()
				rep, err := e.sweeper.Run(e.ctx, retention.RunOptions{Now: base.Add(100 * day)})
				total += time.Since(start)
				if err != nil || rep.Deleted != n || rep.Errors != 0 {
					b.Fatalf("sweep: %+v, %v", rep.Status, err)
				}
			}
			b.ReportMetric(float64(n*b.N)/total.Seconds(), "contacts/s")
		})
	}
}

// BenchmarkSweepNothingDue sweeps CASEVAULT_BENCH_TABLE (default 200,000)
// contacts none of which is due (half with a future date, half with none).
func BenchmarkSweepNothingDue(b *testing.B) {
	n := benchSize("CASEVAULT_BENCH_TABLE", 200000)
	for _, d := range sqldbtest.Dialects {
		b.Run(string(d), func(b *testing.B) {
			e := newEnv(b, sqldbtest.Open(b, d))
			bulkContacts(b, e.db, n/2, base, tp(base.Add(5*365*day)), false)
			bulkContacts(b, e.db, n-n/2, base.Add(400*day), nil, false)
			if _, err := e.db.Write.ExecContext(e.ctx, `ANALYZE`); err != nil {
				b.Fatal(err)
			}
			now := base.Add(500 * day)
			b.ResetTimer()
			var total time.Duration
			for i := 0; i < b.N; i++ {
				start := time.Now()
				rep, err := e.sweeper.Run(e.ctx, retention.RunOptions{Now: now})
				total += time.Since(start)
				if err != nil || rep.Examined != 0 {
					b.Fatalf("sweep: examined %d, %v", rep.Examined, err)
				}
			}
			b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/sweep")
		})
	}
}
