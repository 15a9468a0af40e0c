package backup_test

import (
	"context"
	"testing"
	"time"

	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// BenchmarkKeyEscrow measures what the key escrow costs, on
// CASEVAULT_BENCH_ESCROW_CUSTOMERS customer keys (default 2,000; SQLite,
// local repository), each against its reference in the same run:
//
//   - backup-first: a run that escrows every key (a first backup after the
//     upgrade), against backup-next, the next run on the same data (no
//     new key: a listing of keys/ only);
//   - restore-escrow: a whole restore that reads every key from the escrow,
//     against restore-pre-escrow, the same backup rewritten in the
//     pre-escrow format (keys in the dump).
//
// The ratios are printed as escrow-first-vs-next and
// restore-escrow-vs-pre.
func BenchmarkKeyEscrow(b *testing.B) {
	n := envInt("CASEVAULT_BENCH_ESCROW_CUSTOMERS", 2000)
	ctx := context.Background()
	in := newInstance(b, sqldb.SQLite)
	for i := 0; i < n; i++ {
		if _, err := in.keys.DataKey(ctx, cases.NewID()); err != nil {
			b.Fatal(err)
		}
	}
	keys := newKeys(b)

	var first, next, restEscrow, restPre time.Duration
	for i := 0; i < b.N; i++ {
		repo, _ := newRepo(b)
		svc := in.service(repo, keys)
		t0 := time.Now()
		m, err := svc.Backup(ctx, "bench", operator, nil)
		if err != nil {
			b.Fatal(err)
		}
		first += time.Since(t0)
		if m.Stats.Escrow.Written != int64(n) {
			b.Fatalf("escrowed %d keys, want %d", m.Stats.Escrow.Written, n)
		}
		t0 = time.Now()
		m2, err := svc.Backup(ctx, "bench", operator, nil)
		if err != nil {
			b.Fatal(err)
		}
		next += time.Since(t0)

		restore := func(id string) time.Duration {
			dst := openInstance(b, sqldbtest.Open(b, sqldb.SQLite), b.TempDir())
			t0 := time.Now()
			if _, err := repo.Restore(ctx, id, backup.RestoreOptions{Target: dst.db, Blobs: dst.blobs, Identity: keys.Identity, Actor: operator}); err != nil {
				b.Fatal(err)
			}
			return time.Since(t0)
		}
		restEscrow += restore(m2.ID)
		pre, err := backup.PreEscrowBackupForTest(ctx, repo, in.db, m, keys.Recipients)
		if err != nil {
			b.Fatal(err)
		}
		restPre += restore(pre.ID)
	}
	per := func(d time.Duration) float64 { return float64(d.Milliseconds()) / float64(b.N) }
	b.ReportMetric(per(first), "backup-first-ms")
	b.ReportMetric(per(next), "backup-next-ms")
	b.ReportMetric(per(restEscrow), "restore-escrow-ms")
	b.ReportMetric(per(restPre), "restore-pre-escrow-ms")
	b.ReportMetric(float64(first)/float64(next), "escrow-first-vs-next")
	b.ReportMetric(float64(restEscrow)/float64(restPre), "restore-escrow-vs-pre")
	b.ReportMetric(float64(first-next)/float64(b.N)/float64(n)/1e3, "us/key-escrowed")
}
