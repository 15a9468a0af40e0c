package backup_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/archive/local"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/testkit"
)

// forgedToken is the admin token an attacker plants in a backup's tokens
// table (docs/BACKUP-FORMAT.md, "Trust model").
const forgedToken = `{"id":"01900000-0000-7000-8000-00000000f0f0","name":"attacker","role":"admin","hash":"%s","created_at":1740819600000000,"revoked_at":null}`

// forgeTable does what an attacker with write access to the repository
// (and nothing else) can do: take a table's plain content (here read with
// the identity only to keep the rest plausible), add a row, encrypt it to
// the public recipient listed in the manifest and, when patch is set,
// rewrite the table's sizes, rows and digests in manifest.json.
func forgeTable(t *testing.T, dir string, m backup.Manifest, id age.Identity, name string, edit func([]byte) []byte, patch bool) {
	t.Helper()
	var te backup.TableEntry
	for _, x := range m.Tables {
		if x.Name == name {
			te = x
		}
	}
	f, err := os.Open(filepath.Join(dir, backup.TableObject(te)))
	if err != nil {
		t.Fatal(err)
	}
	ar, err := age.Decrypt(f, id)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zstd.NewReader(ar)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	zr.Close()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	plain = edit(plain)
	rcpt, err := age.ParseX25519Recipient(m.Recipients[0])
	if err != nil {
		t.Fatal(err)
	}
	var enc bytes.Buffer
	aw, err := age.Encrypt(&enc, rcpt)
	if err != nil {
		t.Fatal(err)
	}
	zw, _ := zstd.NewWriter(aw, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if _, err := zw.Write(plain); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(zw.Close(), aw.Close()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, backup.TableObject(te)), enc.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if !patch {
		return
	}
	ps, es := sha256.Sum256(plain), sha256.Sum256(enc.Bytes())
	editManifest(t, dir, m.ID, func(doc map[string]any) {
		for _, x := range doc["tables"].([]any) {
			tab := x.(map[string]any)
			if tab["name"] == name {
				tab["rows"] = int64(bytes.Count(plain, []byte("\n")))
				tab["size"], tab["sha256"] = enc.Len(), hex.EncodeToString(es[:])
				tab["plain_size"], tab["plain_sha256"] = len(plain), hex.EncodeToString(ps[:])
				ch := tab["chunks"].([]any)[0].(map[string]any)
				ch["rows"], ch["size"] = tab["rows"], enc.Len()
				ch["plain_size"], ch["plain_sha256"] = len(plain), hex.EncodeToString(ps[:])
			}
		}
	})
}

// addAdmin appends the attacker's admin token to a tokens table.
func addAdmin(plain []byte) []byte {
	sum := sha256.Sum256([]byte("attacker's secret"))
	return append(plain, []byte(fmt.Sprintf(forgedToken, hex.EncodeToString(sum[:]))+"\n")...)
}

// editManifest rewrites manifest.json through edit, leaving its signature.
func editManifest(t *testing.T, dir, id string, edit func(doc map[string]any)) {
	t.Helper()
	p := filepath.Join(dir, "snapshots", id, "manifest.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	edit(doc)
	if b, err = json.MarshalIndent(doc, "", "  "); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// copyTree copies a repository so each tampering starts from the intact one.
func copyTree(t *testing.T, from string) string {
	t.Helper()
	to := t.TempDir()
	err := filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return to
}

func openRepoAt(t *testing.T, dir string, opts backup.RepoOptions) *backup.Repo {
	t.Helper()
	st, err := local.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	r, err := backup.OpenRepo(st, "", opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func countBlobs(t *testing.T, b archive.Blobs) int {
	t.Helper()
	n := 0
	if err := b.List(context.Background(), "", func(archive.BlobInfo) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTamperedBackupIsRefused: whatever an attacker with write access to
// the repository changes (a table re-encrypted to the manifest's own
// recipient with the manifest's digests patched to match, a manifest
// field, the signature removed, a signature by another key), verify
// --read-data reports it and restore (full, into either engine, and
// single-case) refuses with ErrDamaged and writes nothing.
func TestTamperedBackupIsRefused(t *testing.T) {
	f := newFixture(t, 3, 2)
	ctx := context.Background()
	// A token row, so the tokens table has content (a chunk) to forge.
	if _, err := f.src.db.Write.ExecContext(ctx, `INSERT INTO tokens (id, name, role, hash, created_at) VALUES ('01900000-0000-7000-8000-000000000001', 'ops', 'operator', 'x', 1)`); err != nil {
		t.Fatal(err)
	}
	m := f.backup(t)
	caseID := ""
	if err := f.src.db.Read.QueryRowContext(ctx, `SELECT id FROM cases ORDER BY id LIMIT 1`).Scan(&caseID); err != nil {
		t.Fatal(err)
	}
	other := bytes.Repeat([]byte{9}, 32)
	tampers := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		want   error  // the manifest is refused with this; nil: the manifest is fine, a file is not
		says   string // in the error or the verify problem
	}{
		{"forged tokens table, manifest digests patched", func(t *testing.T, dir string) {
			forgeTable(t, dir, m, f.keys.Identity, "tokens", addAdmin, true)
		}, backup.ErrBadSignature, "altered"},
		{"forged tokens table, manifest left alone", func(t *testing.T, dir string) {
			forgeTable(t, dir, m, f.keys.Identity, "tokens", addAdmin, false)
			// And a contact rewritten, which a single-case restore reads.
			forgeTable(t, dir, m, f.keys.Identity, "contacts", func(b []byte) []byte {
				return bytes.ReplaceAll(b, []byte("body "), []byte("BODY "))
			}, false)
		}, nil, "table tokens"},
		{"manifest field changed", func(t *testing.T, dir string) {
			editManifest(t, dir, m.ID, func(doc map[string]any) { doc["source"].(map[string]any)["instance"] = "someone-else" })
		}, backup.ErrBadSignature, "altered"},
		{"one byte of the manifest changed", func(t *testing.T, dir string) {
			p := filepath.Join(dir, "snapshots", m.ID, "manifest.json")
			b, _ := os.ReadFile(p)
			_ = os.WriteFile(p, bytes.Replace(b, []byte(`"rows": `), []byte(`"rows":  `), 1), 0o600)
		}, backup.ErrBadSignature, "altered"},
		{"signature removed", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "snapshots", m.ID, "manifest.sig")); err != nil {
				t.Fatal(err)
			}
		}, backup.ErrUnsigned, "--allow-unsigned"},
		{"signature garbage", func(t *testing.T, dir string) {
			_ = os.WriteFile(filepath.Join(dir, "snapshots", m.ID, "manifest.sig"), []byte(`{"alg":"ed25519","signature":"AAAA"}`), 0o600)
		}, backup.ErrBadSignature, "malformed"},
		{"patched manifest signed by another key", func(t *testing.T, dir string) {
			forgeTable(t, dir, m, f.keys.Identity, "tokens", addAdmin, true)
			// Re-sign with another instance's key, through a repository
			// that holds it: a valid signature, by the wrong key.
			st, _ := local.New(dir)
			p := filepath.Join(dir, "snapshots", m.ID, "manifest.json")
			b, _ := os.ReadFile(p)
			var forged backup.Manifest
			if err := json.Unmarshal(b, &forged); err != nil {
				t.Fatal(err)
			}
			if err := backup.SignManifestForTest(ctx, st, signer(t, other), forged); err != nil {
				t.Fatal(err)
			}
		}, backup.ErrBadSignature, "another key"},
	}
	for _, tc := range tampers {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyTree(t, f.dir)
			tc.tamper(t, dir)
			repo := openRepoAt(t, dir, backup.RepoOptions{Signer: signer(t, master)})

			rep, err := repo.Verify(ctx, m.ID, true, f.keys.Identity, nil)
			switch {
			case tc.want != nil:
				if !errors.Is(err, backup.ErrDamaged) || !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.says) {
					t.Fatalf("verify --read-data: %+v %v, want ErrDamaged / %v saying %q", rep, err, tc.want, tc.says)
				}
			case err != nil || rep.OK || !strings.Contains(strings.Join(rep.Problems, ";"), tc.says):
				t.Fatalf("verify --read-data: %+v %v, want a problem naming %s", rep, err, tc.says)
			}
			ms, bad, err := repo.List(ctx)
			if tc.want != nil && (err != nil || len(ms) != 0 || len(bad) != 1 || bad[0].Unsigned != (tc.want == backup.ErrUnsigned)) {
				t.Fatalf("list: %d ok, damaged %+v, %v", len(ms), bad, err)
			}

			for _, d := range sqldbtest.Dialects {
				dst := newInstance(t, d)
				_, err := repo.Restore(ctx, m.ID, backup.RestoreOptions{Target: dst.db, Blobs: dst.blobs, Identity: f.keys.Identity})
				if !errors.Is(err, backup.ErrDamaged) {
					t.Fatalf("restore into %s: %v, want ErrDamaged", d, err)
				}
				if err := backup.CheckEmpty(ctx, dst.db); err != nil {
					t.Fatalf("restore into %s left data behind: %v", d, err)
				}
				if n := countBlobs(t, dst.blobs); n != 0 {
					t.Fatalf("restore into %s left %d blobs behind", d, n)
				}
			}

			live := newInstance(t, sqldb.SQLite)
			_, err = repo.RestoreCase(ctx, m.ID, caseID, backup.CaseRestoreOptions{DB: live.db, Blobs: live.blobs, Identity: f.keys.Identity})
			if !errors.Is(err, backup.ErrDamaged) {
				t.Fatalf("restore --case: %v, want ErrDamaged", err)
			}
			if n := live.count(`SELECT COUNT(*) FROM cases`); n != 0 {
				t.Fatalf("restore --case wrote %d cases", n)
			}
		})
	}
}

// TestUnsignedBackups: a backup written before manifests were signed is
// refused by default with a message naming the reason, accepted with
// AllowUnsigned (never with a bad signature), not reused by later runs,
// and kept by forget until the backup retention removes it.
func TestUnsignedBackups(t *testing.T) {
	f := newFixture(t, 2, 1)
	ctx := context.Background()
	old := f.backup(t)
	if err := os.Remove(filepath.Join(f.dir, "snapshots", old.ID, "manifest.sig")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.repo.Manifest(ctx, old.ID); !errors.Is(err, backup.ErrUnsigned) || !strings.Contains(err.Error(), "written before casevault signed backups") {
		t.Fatalf("unsigned manifest: %v, want ErrUnsigned naming the reason", err)
	}
	lenient := openRepoAt(t, f.dir, backup.RepoOptions{Signer: signer(t, master), AllowUnsigned: true})
	ms, bad, err := lenient.List(ctx)
	if err != nil || len(bad) != 0 || len(ms) != 1 || !ms[0].Unsigned || ms[0].Summary(false).Authenticated {
		t.Fatalf("list with AllowUnsigned: %+v %+v %v", ms, bad, err)
	}
	if rep, err := lenient.Verify(ctx, old.ID, true, f.keys.Identity, nil); err != nil || !rep.OK {
		t.Fatalf("verify with AllowUnsigned: %+v %v", rep, err)
	}
	dst := newInstance(t, sqldb.SQLite)
	if _, err := lenient.Restore(ctx, old.ID, backup.RestoreOptions{Target: dst.db, Blobs: dst.blobs, Identity: f.keys.Identity}); err != nil {
		t.Fatalf("restore with AllowUnsigned: %v", err)
	}

	// A later run (backup ids order by the second they started in) copies
	// every blob again rather than vouch for the unsigned manifest's objects.
	later := testkit.NewClock(old.StartedAt.Add(time.Second))
	next, err := backup.New(f.src.db, f.repo, backup.Options{Blobs: f.src.blobs, Keys: f.keys, Now: later.Now}).Backup(ctx, "test", operator, nil)
	if err != nil {
		t.Fatal(err)
	}
	if next.Stats.BlobsReused != 0 || next.Stats.BlobsNew == 0 {
		t.Fatalf("a run after an unsigned backup reused %d blobs, copied %d", next.Stats.BlobsReused, next.Stats.BlobsNew)
	}
	// A signed backup restores next to the older unsigned one.
	dst2 := newInstance(t, sqldb.SQLite)
	if _, err := f.repo.Restore(ctx, next.ID, backup.RestoreOptions{Target: dst2.db, Blobs: dst2.blobs, Identity: f.keys.Identity}); err != nil {
		t.Fatalf("restore of a signed backup beside an unsigned one: %v", err)
	}
	// Forget keeps the unsigned backup (and its objects) by default.
	rep, err := f.src.service(f.repo, f.keys).Forget(ctx, backup.KeepPolicy{Daily: 1}, false, "test", operator)
	if err != nil || len(rep.Removed) != 0 {
		t.Fatalf("forget: %+v %v", rep, err)
	}
	if r, err := lenient.Verify(ctx, old.ID, true, f.keys.Identity, nil); err != nil || !r.OK {
		t.Fatalf("the unsigned backup after forget: %+v %v", r, err)
	}

	// A tampered unsigned-looking manifest (signature removed after a
	// change) is only ever accepted as unsigned; a bad signature never is.
	editManifest(t, f.dir, next.ID, func(doc map[string]any) { doc["host"] = "x" })
	if _, err := lenient.Manifest(ctx, next.ID); !errors.Is(err, backup.ErrBadSignature) {
		t.Fatalf("altered signed manifest with AllowUnsigned: %v, want ErrBadSignature", err)
	}
}

// TestNoSigningKey: without the master key nothing is written or trusted.
func TestNoSigningKey(t *testing.T) {
	f := newFixture(t, 1, 1)
	ctx := context.Background()
	m := f.backup(t)
	bare := openRepoAt(t, f.dir, backup.RepoOptions{})
	if _, err := bare.Manifest(ctx, m.ID); !errors.Is(err, backup.ErrNoSigningKey) {
		t.Fatalf("manifest without a signing key: %v", err)
	}
	if _, err := f.src.service(bare, f.keys).Backup(ctx, "test", operator, nil); !errors.Is(err, backup.ErrNoSigningKey) {
		t.Fatalf("backup without a signing key: %v", err)
	}
}

// TestSigningKeyDerivation: one master key, one signing key; another
// master key, another.
func TestSigningKeyDerivation(t *testing.T) {
	a, b, c := signer(t, master), signer(t, master), signer(t, bytes.Repeat([]byte{8}, 32))
	if a.PublicKey() != b.PublicKey() || a.PublicKey() == c.PublicKey() {
		t.Fatalf("derivation: %s %s %s", a.PublicKey(), b.PublicKey(), c.PublicKey())
	}
	if _, err := backup.DeriveSigningKey([]byte("short")); err == nil {
		t.Fatal("a short master key was accepted")
	}
}
