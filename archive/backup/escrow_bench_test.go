package backup_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/archive/blobtest"
	"github.com/casevault/casevault/archive/s3"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// BenchmarkKeyEscrow measures what the key escrow costs, on
// CASEVAULT_BENCH_ESCROW_CUSTOMERS customer keys (default 2,000; SQLite,
// local repository), each against its reference in the same run:
//
//   - backup-first: a run that escrows every key (a first backup after the
//     upgrade) with the default escrow parallelism, against backup-next,
//     the next run on the same data (no new key: a listing of keys/ only),
//     and against backup-first-serial, the same first run with
//     EscrowWorkers 1 (the entries written one by one);
//   - restore-escrow: a whole restore that reads every key from the escrow,
//     against restore-pre-escrow, the same backup rewritten in the
//     pre-escrow format (keys in the dump), and restore-escrow-serial,
//     the same restore with EscrowWorkers 1.
//
// With CASEVAULT_BENCH_ESCROW_S3=1 the repositories are buckets of the
// shared versitygw (CASEVAULT_TEST_S3_*): one request per entry, as on a
// real S3 repository, where the round trips, not the CPU, bound a run.
//
// The ratios are printed as escrow-first-vs-next, restore-escrow-vs-pre,
// and the speed-ups of parallelism as first-serial-vs-parallel and
// restore-serial-vs-parallel.
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

	service := func(repo *backup.Repo, workers int) *backup.Service {
		return backup.New(in.db, repo, backup.Options{Blobs: in.blobs, Keys: keys, OnChange: auditHook(in.db.Dialect), Workers: 2, EscrowWorkers: workers})
	}
	restore := func(repo *backup.Repo, id string, workers int) time.Duration {
		dst := openInstance(b, sqldbtest.Open(b, sqldb.SQLite), b.TempDir())
		t0 := time.Now()
		rep, err := repo.Restore(ctx, id, backup.RestoreOptions{Target: dst.db, Blobs: dst.blobs, Identity: keys.Identity, Actor: operator, EscrowWorkers: workers})
		if err != nil {
			b.Fatal(err)
		}
		if rep.KeysFromEscrow != 0 && rep.KeysFromEscrow != n {
			b.Fatalf("restored %d keys from the escrow, want %d", rep.KeysFromEscrow, n)
		}
		return time.Since(t0)
	}
	// firstRun is a first backup into a new repository with the given
	// escrow parallelism (0: the default).
	openRepo := func() *backup.Repo {
		if os.Getenv("CASEVAULT_BENCH_ESCROW_S3") == "" {
			repo, _ := newRepo(b)
			return repo
		}
		srv := blobtest.EnvS3(b)
		st, err := s3.New(ctx, s3.Config{Endpoint: srv.Endpoint, Bucket: fmt.Sprintf("cv-escrow-bench-%d", time.Now().UnixNano()%1e12),
			AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, MaxRetries: 1})
		if err != nil {
			b.Fatal(err)
		}
		repo, err := backup.OpenRepo(st, "casevault/bench", backup.RepoOptions{Signer: signer(b, master)})
		if err != nil {
			b.Fatal(err)
		}
		return repo
	}
	firstRun := func(workers int) (*backup.Repo, backup.Manifest, time.Duration) {
		repo := openRepo()
		t0 := time.Now()
		m, err := service(repo, workers).Backup(ctx, "bench", operator, nil)
		if err != nil {
			b.Fatal(err)
		}
		d := time.Since(t0)
		if m.Stats.Escrow.Written != int64(n) {
			b.Fatalf("escrowed %d keys, want %d", m.Stats.Escrow.Written, n)
		}
		return repo, m, d
	}

	var first, firstSerial, next, restEscrow, restSerial, restPre time.Duration
	for i := 0; i < b.N; i++ {
		// Serial and parallel alternate within the iteration so that both
		// see the same load.
		_, _, d := firstRun(1)
		firstSerial += d
		repo, m, d := firstRun(0)
		first += d

		t0 := time.Now()
		m2, err := service(repo, 0).Backup(ctx, "bench", operator, nil)
		if err != nil {
			b.Fatal(err)
		}
		next += time.Since(t0)

		restSerial += restore(repo, m2.ID, 1)
		restEscrow += restore(repo, m2.ID, 0)
		pre, err := backup.PreEscrowBackupForTest(ctx, repo, in.db, m, keys.Recipients)
		if err != nil {
			b.Fatal(err)
		}
		restPre += restore(repo, pre.ID, 0)
	}
	per := func(d time.Duration) float64 { return float64(d.Milliseconds()) / float64(b.N) }
	b.ReportMetric(per(first), "backup-first-ms")
	b.ReportMetric(per(firstSerial), "backup-first-serial-ms")
	b.ReportMetric(per(next), "backup-next-ms")
	b.ReportMetric(per(restEscrow), "restore-escrow-ms")
	b.ReportMetric(per(restSerial), "restore-escrow-serial-ms")
	b.ReportMetric(per(restPre), "restore-pre-escrow-ms")
	b.ReportMetric(float64(first)/float64(next), "escrow-first-vs-next")
	b.ReportMetric(float64(firstSerial)/float64(first), "first-serial-vs-parallel")
	b.ReportMetric(float64(restEscrow)/float64(restPre), "restore-escrow-vs-pre")
	b.ReportMetric(float64(restSerial)/float64(restEscrow), "restore-serial-vs-parallel")
	b.ReportMetric(float64(first-next)/float64(b.N)/float64(n)/1e3, "us/key-escrowed")
}
