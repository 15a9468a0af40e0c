package main

import (
	"archive/zip"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqlstore"
)

// TestCustomerExportCLI (issue 15 §2): `casevault customer export ID --out
// FILE` writes the access export (mode 0600), audited as the CLI; an
// unknown customer exits 1 and writes nothing; --out is required.
func TestCustomerExportCLI(t *testing.T) {
	dir := t.TempDir()
	cvOK(t, nil, "migrate", "--data-dir", dir)
	db := openSQLite(t, filepath.Join(dir, "casevault.db"))
	ctx := context.Background()
	// Written as serve writes them: sealed under the customer's data key,
	// so the export must open what it reads.
	_, fields, err := openSealing(ctx, &config{DataDir: dir}, db)
	if err != nil {
		t.Fatal(err)
	}
	svc := cases.NewService(sqlstore.New(db, sqlstore.Options{Fields: fields}), nil)
	name, subject, ch := "Ada Obi", "kettle", cases.ChannelEmail
	cust, err := svc.CreateCustomer(ctx, cases.NewCustomer{Name: &name}, cases.CLIActor())
	if err != nil {
		t.Fatal(err)
	}
	cs, err := svc.CreateCase(ctx, cases.NewCase{CustomerID: &cust.ID, Subject: &subject, Channel: &ch}, cases.CLIActor())
	if err != nil {
		t.Fatal(err)
	}
	dir2, author, body := cases.DirectionInbound, "Ada", "the kettle leaks"
	if _, err := svc.AddContact(ctx, cs.ID, cases.NewContact{Channel: &ch, Direction: &dir2, Author: &author, Body: &body}, cases.CLIActor()); err != nil {
		t.Fatal(err)
	}
	db.Close()

	cvCode(t, exitUsage, nil, "customer", "export", cust.ID, "--data-dir", dir)
	missing := filepath.Join(dir, "missing.zip")
	cvCode(t, exitError, nil, "customer", "export", cases.NewID(), "--data-dir", dir, "--out", missing)
	if _, err := os.Stat(missing); !os.IsNotExist(err) {
		t.Fatalf("an unknown customer left a file: %v", err)
	}

	out := filepath.Join(dir, "ada.zip")
	cvOK(t, nil, "customer", "export", cust.ID, "--data-dir", dir, "--out", out)
	st, err := os.Stat(out)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("export file %v (%v), want mode 0600", st, err)
	}
	zr, err := zip.OpenReader(out)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	files := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		files[f.Name] = string(b)
	}
	var profile cases.Customer
	if err := json.Unmarshal([]byte(files["customer.json"]), &profile); err != nil || profile.Name != "Ada Obi" {
		t.Fatalf("customer.json %q", files["customer.json"])
	}
	if !strings.Contains(files["contacts.ndjson"], "the kettle leaks") || !strings.Contains(files["manifest.json"], `"version": 1`) {
		t.Fatalf("contacts %q, manifest %q", files["contacts.ndjson"], files["manifest.json"])
	}
	events := cvOK(t, nil, "audit", "export", "--action", "customer.export", "--data-dir", dir)
	if strings.Count(events, `"customer.export"`) != 1 || !strings.Contains(events, cust.ID) {
		t.Fatalf("audit of the export: %s", events)
	}
}
