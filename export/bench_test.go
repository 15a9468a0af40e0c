package export_test

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/export"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// BenchmarkExport exports a hold over CASEVAULT_BENCH_EXPORT_CONTACTS
// contacts (default 100,000, issue 14's scale; 10 per case, one customer)
// with CASEVAULT_BENCH_EXPORT_ATTACH_MB MiB of incompressible attachments
// in 1 MiB files (default 1024) on SQLite and local blobs, and times, in
// the same run, `zip -r` and `zip -r -0` (store only: natives are stored
// uncompressed in the package, so this is the like-for-like one) of the
// same attachment files. zip_ratio and store_ratio are zip's time over the
// export's (issue 14 asks for at least 0.7 of zip -r); the export also
// reads the contacts, decrypts every native and encrypts the package.
// The timed span is Create and Run of the job, not reading the package back.
func BenchmarkExport(b *testing.B) {
	zipBin, err := exec.LookPath("zip")
	if err != nil {
		b.Skip("zip not installed")
	}
	contacts := benchSize("CASEVAULT_BENCH_EXPORT_CONTACTS", 100_000)
	files := benchSize("CASEVAULT_BENCH_EXPORT_ATTACH_MB", 1024)
	db := sqldbtest.Open(b, sqldb.SQLite)
	e := newEnv(b, db)
	cust := e.customer("Bench")
	dir := b.TempDir()
	var total int64
	var k cases.Case
	body := make([]byte, 1<<20)
	for i := range contacts {
		if i%10 == 0 {
			k = e.newCase(cust)
		}
		c := e.contact(k, fmt.Sprintf("message %d", i), base.Add(time.Duration(i)*time.Second))
		if i < files {
			_, _ = rand.Read(body)
			name := fmt.Sprintf("f%05d.bin", i)
			e.attach(c, name, body)
			if err := os.WriteFile(filepath.Join(dir, name), body, 0o600); err != nil {
				b.Fatal(err)
			}
			total += int64(len(body))
		}
	}
	h := e.hold(retention.HoldScope{CustomerIDs: []string{cust}})

	zip := func(args ...string) time.Duration {
		out := filepath.Join(b.TempDir(), "z.zip")
		start := time.Now()
		cmd := exec.Command(zipBin, append(append([]string{"-q", "-r"}, args...), out, ".")...)
		cmd.Dir = dir
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
		took := time.Since(start)
		if err := os.Remove(out); err != nil {
			b.Fatal(err)
		}
		return took
	}
	var exportTime, zipTime, storeTime time.Duration
	b.SetBytes(total)
	b.ResetTimer()
	for range b.N {
		// Timed: creating and running the job (not reading the package back).
		start := time.Now()
		x, err := e.svc.Create(e.ctx, export.Input{HoldID: h.ID}, legal)
		if err == nil {
			err = e.svc.Run(e.ctx, x.ID, func(export.Progress) {})
		}
		exportTime += time.Since(start)
		b.StopTimer()
		if err != nil {
			b.Fatal(err)
		}
		if x, err = e.svc.Get(e.ctx, x.ID); err != nil || x.Status != export.StatusComplete {
			b.Fatalf("export %+v, %v", x, err)
		}
		if err := e.svc.Delete(e.ctx, x.ID, legal); err != nil {
			b.Fatal(err)
		}
		zipTime += zip()
		storeTime += zip("-0")
		b.StartTimer()
	}
	b.ReportMetric(float64(zipTime)/float64(exportTime), "zip_ratio")
	b.ReportMetric(float64(storeTime)/float64(exportTime), "store_ratio")
	b.ReportMetric(exportTime.Seconds()/float64(b.N), "export_s")
	b.ReportMetric(zipTime.Seconds()/float64(b.N), "zip_s")
	b.ReportMetric(storeTime.Seconds()/float64(b.N), "zip0_s")
}

// benchSize reads a size from the environment (e.g. CASEVAULT_BENCH_EXPORT_CONTACTS=2000).
func benchSize(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
