package main

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/blobtest"
	"github.com/casevault/casevault/archive/local"
	"github.com/casevault/casevault/archive/s3"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// An export killed with the server (kill -9) is interrupted at the next
// start, never complete with half a package; the export command then
// writes the whole package of the same hold to a file. On SQLite with
// local blobs and on PostgreSQL with S3 (versitygw).
func TestExportKill9ThenCLI(t *testing.T) {
	for _, st := range []exportSetup{
		{name: "sqlite, local"},
		{name: "postgres, s3", postgres: true, s3: true},
	} {
		t.Run(st.name, func(t *testing.T) { testExportKill9ThenCLI(t, st) })
	}
}

// exportSetup is where a server keeps its data.
type exportSetup struct {
	name         string
	postgres, s3 bool

	pgURL  string
	srv    *blobtest.S3Server
	bucket string
}

// env is the server's (and the CLI's) environment for the setup.
func (st *exportSetup) env(t *testing.T) []string {
	var env []string
	if st.postgres {
		st.pgURL = sqldbtest.Config(t, sqldb.Postgres).URL
		env = append(env, "CASEVAULT_DATABASE_URL="+st.pgURL)
	}
	if st.s3 {
		st.srv = blobtest.EnvS3(t)
		st.bucket = fmt.Sprintf("cv-exp-e2e-%d", time.Now().UnixNano())
		env = append(env, "CASEVAULT_S3_ENDPOINT="+st.srv.Endpoint, "CASEVAULT_S3_BUCKET="+st.bucket,
			"CASEVAULT_S3_ACCESS_KEY="+st.srv.AccessKey, "CASEVAULT_S3_SECRET_KEY="+st.srv.SecretKey, "CASEVAULT_S3_TLS=false")
	}
	return env
}

// db opens the setup's database beside the server.
func (st *exportSetup) db(t *testing.T, dir string) *sqldb.DB {
	if !st.postgres {
		return openSQLite(t, filepath.Join(dir, "casevault.db"))
	}
	db, err := sqldb.Open(context.Background(), sqldb.Config{URL: st.pgURL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// blobs opens the setup's blob store beside the server.
func (st *exportSetup) blobs(t *testing.T, dir string) archive.Blobs {
	if !st.s3 {
		b, err := local.New(filepath.Join(dir, "blobs"))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b, err := s3.New(context.Background(), s3.Config{Endpoint: st.srv.Endpoint, Bucket: st.bucket, AccessKey: st.srv.AccessKey, SecretKey: st.srv.SecretKey, MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testExportKill9ThenCLI(t *testing.T, st exportSetup) {
	dir := t.TempDir()
	env := st.env(t)
	p, admin := startAdmin(t, dir, env...)
	base := p.api()
	var seeds []seeded
	for i := range 3 {
		seeds = append(seeds, seed(t, base, admin, "export "+string(rune('a'+i)), 8<<20))
	}
	caseIDs := []string{}
	for _, s := range seeds {
		caseIDs = append(caseIDs, s.caseID)
	}
	code, hold := call(t, "POST", base+"/holds", admin, map[string]any{"matter": "m", "reason": "r", "scope": map[string]any{"case_ids": caseIDs}})
	if code != 201 {
		t.Fatalf("hold: %d %v", code, hold)
	}
	holdID := hold["id"].(string)

	code, x := call(t, "POST", base+"/exports", admin, map[string]any{"hold_id": holdID})
	if code != 202 {
		t.Fatalf("export: %d %v", code, x)
	}
	_ = p.cmd.Process.Kill()
	_ = p.wait()
	// The killed run's lease would keep it "running" for its TTL (2
	// minutes; another replica could be running it): let it expire now.
	db := st.db(t, dir)
	if _, err := db.Write.Exec(db.Rebind(`UPDATE exports SET lease_until = 1 WHERE id = ?`), x["id"]); err != nil {
		t.Fatal(err)
	}

	p = start(t, dir, env...)
	base = p.api()
	code, got := call(t, "GET", base+"/exports/"+x["id"].(string), admin, nil)
	switch {
	case code != 200:
		t.Fatalf("export after restart: %d %v", code, got)
	case got["status"] == "interrupted":
		if code, _ := download(t, base+"/exports/"+x["id"].(string)+"/download", admin); code != 409 {
			t.Errorf("download of an interrupted export = %d", code)
		}
		if _, err := st.blobs(t, dir).Stat(context.Background(), "exp/"+x["id"].(string)+".zip"); !errors.Is(err, archive.ErrNotFound) {
			t.Errorf("interrupted export left its package (%v)", err)
		}
	case got["status"] == "complete":
		// The kill came after the package was whole and marked.
		t.Logf("export finished before the kill")
	default:
		t.Fatalf("export after kill -9 and restart is %v", got["status"])
	}
	stop(t, p)

	out := filepath.Join(t.TempDir(), "hold.zip")
	res := result(t, cvOK(t, env, "export", "--data-dir", dir, "--hold", holdID, "--out", out, "--json"))
	if res["status"] != "complete" {
		t.Fatalf("export command result %v", res)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	natives := 0
	for _, f := range zr.File {
		if filepath.Dir(f.Name) == "natives" {
			natives++
		}
	}
	if natives != 3 || int64(len(raw)) != int64(res["size"].(float64)) {
		t.Errorf("%d natives in a %d-byte file, result %v", natives, len(raw), res)
	}
	for _, s := range seeds {
		if !bytes.Contains(raw, s.content[:4096]) {
			t.Errorf("native of case %s missing", s.caseID)
		}
	}
}
