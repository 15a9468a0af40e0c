package export_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/export"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/testkit"
)

// BenchmarkExport exports a hold over CASEVAULT_BENCH_EXPORT_CONTACTS
// contacts (default 100,000, issue 14's scale; 10 per case, one customer)
// with CASEVAULT_BENCH_EXPORT_ATTACH_MB MiB of incompressible attachments
// in 1 MiB files (default 1024) on SQLite and local blobs, and times, in
// the same run, `zip -r` and `zip -r -0` (store only: natives are stored
// uncompressed in the package, so this is the like-for-like one) of the
// same attachment files. zip_ratio and store_ratio are zip's time over the
// export's (issue 14 asks for at least 0.7 of zip -r); the export also
// reads the contacts, decrypts and verifies every native, and encrypts and
// fsyncs the package. The timed span is Create and Run of the job, not
// reading the package back.
//
// Each iteration measures CASEVAULT_BENCH_EXPORT_ROUNDS (default 1)
// rounds of export, zip -r and zip -r -0 one after the other, and the
// ratios reported are the medians of the rounds' ratios: on a shared
// machine the load changes between rounds, less within one. Run it with
// -benchtime 1x: the setup (every contact through the store, audited) is
// the long part, and the testing package runs it again for each b.N.
func BenchmarkExport(b *testing.B) {
	zipBin, err := exec.LookPath("zip")
	if err != nil {
		b.Skip("zip not installed")
	}
	contacts := benchSize("CASEVAULT_BENCH_EXPORT_CONTACTS", 100_000)
	files := benchSize("CASEVAULT_BENCH_EXPORT_ATTACH_MB", 1024)
	rounds := benchSize("CASEVAULT_BENCH_EXPORT_ROUNDS", 1)
	db := sqldbtest.Open(b, sqldb.SQLite)
	e := newEnv(b, db)
	cust := e.customer("Bench")
	dir := b.TempDir()
	total := seedBench(b, e, cust, contacts, files, dir)
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
	var zipRatios, storeRatios []float64
	b.SetBytes(total)
	b.ResetTimer()
	for range b.N {
		for range rounds {
			// Timed: creating and running the job (not reading the package back).
			start := time.Now()
			x, err := e.svc.Create(e.ctx, export.Input{HoldID: h.ID}, legal)
			if err == nil {
				err = e.svc.Run(e.ctx, x.ID, func(export.Progress) {})
			}
			took := time.Since(start)
			exportTime += took
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
			z, z0 := zip(), zip("-0")
			zipTime += z
			storeTime += z0
			zipRatios = append(zipRatios, float64(z)/float64(took))
			storeRatios = append(storeRatios, float64(z0)/float64(took))
			b.Logf("round: export %.2fs, zip -r %.2fs (%.2f), zip -r -0 %.2fs (%.2f)", took.Seconds(), z.Seconds(), zipRatios[len(zipRatios)-1], z0.Seconds(), storeRatios[len(storeRatios)-1])
			b.StartTimer()
		}
	}
	n := float64(b.N * rounds)
	b.ReportMetric(testkit.Median(zipRatios), "zip_ratio")
	b.ReportMetric(testkit.Median(storeRatios), "store_ratio")
	b.ReportMetric(exportTime.Seconds()/n, "export_s")
	b.ReportMetric(zipTime.Seconds()/n, "zip_s")
	b.ReportMetric(storeTime.Seconds()/n, "zip0_s")
}

// seedBench stores contacts contacts of customer cust, 10 per case, the
// first files with a 1 MiB random attachment each, also written to dir
// for zip; it returns the attachment bytes. Cases are filled by a few
// goroutines, so that SQLite's group commit shares the fsyncs.
func seedBench(b *testing.B, e *env, cust string, contacts, files int, dir string) int64 {
	const perCase = 10
	nCases := (contacts + perCase - 1) / perCase
	var g errgroup.Group
	g.SetLimit(8)
	for k := range nCases {
		g.Go(func() error {
			c := caseValue(cust)
			if err := e.store.CreateCase(e.ctx, &c, cases.Change{Action: "case.create", TargetType: "case", TargetID: c.ID}); err != nil {
				return err
			}
			body := make([]byte, 1<<20)
			for i := k * perCase; i < min((k+1)*perCase, contacts); i++ {
				ct := contactValue(c, fmt.Sprintf("message %d", i), base.Add(time.Duration(i)*time.Second))
				if err := e.store.CreateContact(e.ctx, &ct, cases.Change{Action: "contact.create", TargetType: "contact", TargetID: ct.ID}); err != nil {
					return err
				}
				if i >= files {
					continue
				}
				_, _ = rand.Read(body)
				name := fmt.Sprintf("f%05d.bin", i)
				_, err := e.atts.Put(e.ctx, archive.AttachmentInput{ContactID: ct.ID, Filename: name, Body: bytes.NewReader(body),
					InTx: func(ctx context.Context, tx *sql.Tx, att cases.Attachment) error {
						return auditHook(e.db.Dialect)(ctx, tx, cases.Change{Action: "attachment.create", TargetType: "attachment", TargetID: att.ID})
					}})
				if err != nil {
					return err
				}
				if err := os.WriteFile(filepath.Join(dir, name), body, 0o600); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}
	return int64(min(files, contacts)) << 20
}

// benchSize reads a size from the environment (e.g. CASEVAULT_BENCH_EXPORT_CONTACTS=2000).
func benchSize(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}
