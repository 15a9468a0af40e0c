package backup_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/testkit"
)

// BenchmarkRestoreTables measures the table half of a full restore alone:
// CASEVAULT_BACKUP_BENCH_CONTACTS contacts (default 20,000) in contacts/10
// cases, no attachments, backed up once and restored b.N times into a new
// SQLite file (or PostgreSQL schema with CASEVAULT_BACKUP_BENCH_DIALECT=
// postgres). It reports the process CPU time per restore (a shared machine
// stretches the wall time, hardly the CPU time) and the rows per CPU second.
func BenchmarkRestoreTables(b *testing.B) {
	nContacts := envInt("CASEVAULT_BACKUP_BENCH_CONTACTS", 20000)
	ctx := context.Background()
	dataDir := b.TempDir()
	db, err := sqldb.Open(ctx, sqldb.Config{Path: filepath.Join(dataDir, "casevault.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	in := openInstance(b, db, filepath.Join(dataDir, "blobs"))
	seedBulk(b, in, nContacts)
	repo, _ := newRepo(b)
	keys := newKeys(b)
	m, err := in.service(repo, keys).Backup(ctx, "bench", operator, nil)
	if err != nil {
		b.Fatal(err)
	}
	pg := os.Getenv("CASEVAULT_BACKUP_BENCH_DIALECT") == "postgres"
	var cpu, wall time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		dstDir := b.TempDir()
		var dst *sqldb.DB
		if pg {
			dst = sqldbtest.Open(b, sqldb.Postgres)
		} else if dst, err = sqldb.Open(ctx, sqldb.Config{Path: filepath.Join(dstDir, "casevault.db")}); err != nil {
			b.Fatal(err)
		}
		dstIn := openInstance(b, dst, filepath.Join(dstDir, "blobs"))
		resetPeakRSS()
		stop := phaseProfile(b, "tables")
		b.StartTimer()
		t0, cpu0 := time.Now(), testkit.ProcessCPU(b)
		rep, err := repo.Restore(ctx, m.ID, backup.RestoreOptions{Target: dst, Blobs: dstIn.blobs, Identity: keys.Identity})
		if err != nil {
			b.Fatal(err)
		}
		wall += time.Since(t0)
		cpu += testkit.ProcessCPU(b) - cpu0
		b.StopTimer()
		stop()
		b.ReportMetric(float64(peakRSS())/(1<<20), "peak-RSS-MiB")
		for _, tr := range rep.Tables {
			if !tr.Match {
				b.Fatalf("table %s mismatch", tr.Name)
			}
		}
		if !pg {
			dst.Close()
		}
		b.StartTimer()
	}
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(m.Stats.Rows)*float64(b.N)/cpu.Seconds(), "rows/cpu-s")
	b.ReportMetric(float64(m.Stats.Rows)*float64(b.N)/wall.Seconds(), "rows/s")
}
