package export_test

import (
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// BenchmarkExport exports a hold over 200 contacts with 64 attachments of
// 512 KiB (32 MiB of incompressible natives) on SQLite and local blobs, and
// times `zip -r` of the same files in the same run: zip_ratio is zip -r's
// time over the export's (issue 14 asks for at least 0.7; the export also
// decrypts every native and encrypts the package).
func BenchmarkExport(b *testing.B) {
	zipBin, err := exec.LookPath("zip")
	if err != nil {
		b.Skip("zip not installed")
	}
	db := sqldbtest.Open(b, sqldb.SQLite)
	e := newEnv(b, db)
	k := e.newCase(e.customer("Bench"))
	dir := b.TempDir()
	var total int64
	for i := range 200 {
		c := e.contact(k, fmt.Sprintf("message %d", i), base.Add(time.Duration(i)*time.Minute))
		if i < 64 {
			body := make([]byte, 512<<10)
			_, _ = rand.Read(body)
			e.attach(c, fmt.Sprintf("f%03d.bin", i), body)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d.bin", i)), body, 0o600); err != nil {
				b.Fatal(err)
			}
			total += int64(len(body))
		}
	}
	h := e.hold(retention.HoldScope{CaseIDs: []string{k.ID}})

	var exportTime, zipTime time.Duration
	b.SetBytes(total)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		x, _, _ := e.run(h.ID)
		exportTime += time.Since(start)
		b.StopTimer()
		if err := e.svc.Delete(e.ctx, x.ID, legal); err != nil {
			b.Fatal(err)
		}
		out := filepath.Join(b.TempDir(), "z.zip")
		start = time.Now()
		cmd := exec.Command(zipBin, "-q", "-r", out, ".")
		cmd.Dir = dir
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
		zipTime += time.Since(start)
		b.StartTimer()
	}
	b.ReportMetric(float64(zipTime)/float64(exportTime), "zip_ratio")
}
