package main

import (
	"archive/zip"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// An export killed with the server (kill -9) is interrupted at the next
// start, never complete with half a package; the export command then
// writes the whole package of the same hold to a file.
func TestExportKill9ThenCLI(t *testing.T) {
	dir := t.TempDir()
	p, admin := startAdmin(t, dir)
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
	<-p.done
	p.done <- nil
	// The killed run's lease would keep it "running" for its TTL (2
	// minutes; another replica could be running it): let it expire now.
	db := openSQLite(t, filepath.Join(dir, "casevault.db"))
	if _, err := db.Write.Exec(`UPDATE exports SET lease_until = 1 WHERE id = ?`, x["id"]); err != nil {
		t.Fatal(err)
	}

	p = start(t, dir)
	base = p.api()
	code, got := call(t, "GET", base+"/exports/"+x["id"].(string), admin, nil)
	switch {
	case code != 200:
		t.Fatalf("export after restart: %d %v", code, got)
	case got["status"] == "interrupted":
		if code, _ := download(t, base+"/exports/"+x["id"].(string)+"/download", admin); code != 409 {
			t.Errorf("download of an interrupted export = %d", code)
		}
		if _, err := os.Stat(filepath.Join(dir, "blobs", "exp", x["id"].(string)+".zip")); !os.IsNotExist(err) {
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
	res := result(t, cvOK(t, nil, "export", "--data-dir", dir, "--hold", holdID, "--out", out, "--json"))
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
