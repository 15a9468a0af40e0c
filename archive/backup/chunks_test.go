package backup_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/archive/local"
)

func tableEntry(t *testing.T, m backup.Manifest, name string) backup.TableEntry {
	t.Helper()
	for _, te := range m.Tables {
		if te.Name == name {
			return te
		}
	}
	t.Fatalf("backup %s has no table %s", m.ID, name)
	return backup.TableEntry{}
}

func chunkObjects(te backup.TableEntry) []string {
	var out []string
	for _, c := range te.Chunks {
		out = append(out, c.Object)
	}
	return out
}

// TestTableChunksReused: a backup stores each table as chunks cut at rows
// chosen by key; the next backup reuses every chunk whose rows did not
// change (same object, nothing written), one changed row gives exactly one
// new chunk, new rows only touch the table's end, and the last backup
// restores on its own once every earlier one is forgotten. Both engines.
func TestTableChunksReused(t *testing.T) {
	const bulkRows = 30000
	forEachDialect(t, func(t *testing.T, src *instance) {
		ctx := context.Background()
		src.seed(2, 1) // attachments, awkward text
		// The ids are random (UUIDv7), so where chunks end is random: a
		// row ends one with probability 1/2048. At 12,000 rows fewer than
		// 3 chunks came 2% of the time per engine (CI, thirty-first
		// session: 2 chunks); at 30,000 (mean 15 boundaries) about
		// 7 in a million.
		seedBulk(t, src, bulkRows)
		repo, dir := newRepo(t)
		keys := newKeys(t)
		svc := src.service(repo, keys)
		backupNow := func() backup.Manifest {
			t.Helper()
			m, err := svc.Backup(ctx, "test", operator, nil)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}

		m1 := backupNow()
		c1 := tableEntry(t, m1, "contacts")
		if len(c1.Chunks) < 3 || c1.Rows != bulkRows+2 || m1.Stats.ChunksReused != 0 {
			t.Fatalf("first backup: contacts %d rows in %d chunks, stats %+v; want several chunks, none reused", c1.Rows, len(c1.Chunks), m1.Stats)
		}

		// Nothing changed but the audit trail (each run records itself).
		m2 := backupNow()
		for _, te := range m1.Tables {
			if te.Name == "audit_events" || te.Name == "audit_head" {
				continue
			}
			if got, want := chunkObjects(tableEntry(t, m2, te.Name)), chunkObjects(te); !equalStrings(got, want) {
				t.Errorf("table %s: chunks %v after no change, want the first backup's %v", te.Name, got, want)
			}
		}
		if m2.Stats.ChunksReused < int64(len(c1.Chunks)) || m2.Stats.ChunksNew > 2 {
			t.Fatalf("no-change backup: %+v, want every chunk but the audit trail's reused", m2.Stats)
		}

		// One row changed in a chunk cut by key at both ends: one new chunk,
		// the others reused. (A chunk cut because it reached chunkMaxBytes
		// ends at a position, not a key, so a row changed before such a cut
		// moves it and changes the next chunk too; with random ids a run of
		// rows without a key cut that long happens in some seeds.)
		c2 := tableEntry(t, m2, "contacts")
		changedID := rowInKeyCutChunk(t, src, c2)
		if _, err := src.db.Write.ExecContext(ctx, src.db.Rebind(`UPDATE contacts SET body = ? WHERE id = ?`), "changed", changedID); err != nil {
			t.Fatal(err)
		}
		m3 := backupNow()
		c3 := tableEntry(t, m3, "contacts")
		if len(c3.Chunks) != len(c2.Chunks) {
			t.Fatalf("a changed row changed the chunking: %d chunks, was %d", len(c3.Chunks), len(c2.Chunks))
		}
		changed := 0
		for i := range c3.Chunks {
			if c3.Chunks[i].Object != c2.Chunks[i].Object {
				changed++
				if c3.Chunks[i].Rows != c2.Chunks[i].Rows || c3.Chunks[i].PlainSHA256 == c2.Chunks[i].PlainSHA256 {
					t.Errorf("changed chunk %d: %+v, was %+v", i, c3.Chunks[i], c2.Chunks[i])
				}
			}
		}
		if changed != 1 || c3.PlainSHA256 == c2.PlainSHA256 {
			t.Fatalf("%d contacts chunks changed for one row, want 1", changed)
		}

		// 1,000 new contacts (UUIDv7 ids: they sort last) leave every
		// chunk but the last one alone.
		seedContacts(t, src, 1000)
		m4 := backupNow()
		c4 := tableEntry(t, m4, "contacts")
		if c4.Rows != c3.Rows+1000 {
			t.Fatalf("contacts: %d rows, want %d", c4.Rows, c3.Rows+1000)
		}
		for i, c := range c3.Chunks[:len(c3.Chunks)-1] {
			if c4.Chunks[i].Object != c.Object {
				t.Fatalf("chunk %d rewritten after rows were added at the end", i)
			}
		}

		// Only the last backup is kept: it restores on its own, verifies
		// and lists every object it needs.
		if _, err := svc.Forget(ctx, backup.KeepPolicy{Daily: 1}, false, "test", operator); err != nil {
			t.Fatal(err)
		}
		if n := countFiles(t, filepath.Join(dir, "data")); n != len(uniqueObjects(m4)) {
			t.Fatalf("%d objects after forget, want the kept backup's %d", n, len(uniqueObjects(m4)))
		}
		if vr, err := repo.Verify(ctx, m4.ID, true, keys.Identity, nil); err != nil || !vr.OK {
			t.Fatalf("verify of the incremental alone: %+v %v", vr, err)
		}
		dst := newInstance(t, src.db.Dialect)
		restoreInto(t, repo, m4.ID, keys, dst)
		if n := dst.count(`SELECT COUNT(*) FROM contacts`); int64(n) != c4.Rows {
			t.Fatalf("restored %d contacts, want %d", n, c4.Rows)
		}
	})
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestFormat1BackupRestores: a backup in the first format (one encrypted
// file per table under snapshots/<id>/, manifest "casevault-backup/1"),
// rebuilt here from a current one the way the old code wrote it, still
// verifies and restores into either engine, and the next backup beside it
// works.
func TestFormat1BackupRestores(t *testing.T) {
	forEachDialect(t, func(t *testing.T, src *instance) {
		ctx := context.Background()
		src.seed(3, 2)
		repo, dir := newRepo(t)
		keys := newKeys(t)
		m, err := src.service(repo, keys).Backup(ctx, "test", operator, nil)
		if err != nil {
			t.Fatal(err)
		}

		old := toFormat1(t, dir, m, keys.Identity)
		st, err := local.New(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := backup.SignManifestForTest(ctx, st, signer(t, master), old); err != nil {
			t.Fatal(err)
		}

		got, err := repo.Manifest(ctx, m.ID)
		if err != nil || got.Format != "casevault-backup/1" {
			t.Fatalf("format 1 manifest: %q %v", got.Format, err)
		}
		if vr, err := repo.Verify(ctx, m.ID, true, keys.Identity, nil); err != nil || !vr.OK || vr.Files != len(old.Tables)+len(old.Blobs) {
			t.Fatalf("verify format 1: %+v %v", vr, err)
		}
		dst := newInstance(t, src.db.Dialect)
		rep := restoreInto(t, repo, m.ID, keys, dst)
		if len(rep.Tables) != len(old.Tables) || dst.count(`SELECT COUNT(*) FROM contacts`) != 6 {
			t.Fatalf("format 1 restore: %+v", rep)
		}

		// A new backup next to it copies no blob again and writes chunks.
		m2, err := src.service(repo, keys).Backup(ctx, "test", operator, nil)
		if err != nil || m2.Stats.BlobsNew != 0 || m2.Format != backup.ManifestFormat {
			t.Fatalf("backup after a format 1 one: %+v %v", m2.Stats, err)
		}

		// A format 1 file altered in place is caught by the restore.
		p := filepath.Join(dir, old.Tables[0].File)
		b, _ := os.ReadFile(p)
		b[len(b)/2] ^= 1
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := repo.Restore(ctx, m.ID, backup.RestoreOptions{Target: newInstance(t, src.db.Dialect).db, Blobs: dst.blobs, Identity: keys.Identity}); !errors.Is(err, backup.ErrDamaged) {
			t.Fatalf("restore of an altered format 1 file: %v, want ErrDamaged", err)
		}
	})
}

// toFormat1 rewrites backup m as the first format stored it: each table's
// chunks joined into snapshots/<id>/<table>.ndjson.zst.age, the chunk
// objects removed.
func toFormat1(t *testing.T, dir string, m backup.Manifest, id age.Identity) backup.Manifest {
	t.Helper()
	rcpt, err := age.ParseX25519Recipient(m.Recipients[0])
	if err != nil {
		t.Fatal(err)
	}
	old := m
	old.Format = "casevault-backup/1"
	old.Tables = nil
	for _, te := range m.Tables {
		var plain bytes.Buffer
		for _, c := range te.Chunks {
			f, err := os.Open(filepath.Join(dir, c.Object))
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
			if _, err := io.Copy(&plain, zr); err != nil {
				t.Fatal(err)
			}
			zr.Close()
			f.Close()
			if err := os.Remove(filepath.Join(dir, c.Object)); err != nil {
				t.Fatal(err)
			}
		}
		var enc bytes.Buffer
		aw, err := age.Encrypt(&enc, rcpt)
		if err != nil {
			t.Fatal(err)
		}
		zw, _ := zstd.NewWriter(aw)
		if _, err := zw.Write(plain.Bytes()); err != nil {
			t.Fatal(err)
		}
		if err := errors.Join(zw.Close(), aw.Close()); err != nil {
			t.Fatal(err)
		}
		file := "snapshots/" + m.ID + "/" + te.Name + ".ndjson.zst.age"
		if err := os.WriteFile(filepath.Join(dir, file), enc.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		ps, es := sha256.Sum256(plain.Bytes()), sha256.Sum256(enc.Bytes())
		if hex.EncodeToString(ps[:]) != te.PlainSHA256 {
			t.Fatalf("table %s: joined chunks do not give the table digest", te.Name)
		}
		old.Tables = append(old.Tables, backup.TableEntry{Name: te.Name, File: file, Rows: te.Rows, Size: int64(enc.Len()), SHA256: hex.EncodeToString(es[:]),
			PlainSize: int64(plain.Len()), PlainSHA256: te.PlainSHA256})
	}
	return old
}

// rowInKeyCutChunk returns the id of a contact in the middle of a chunk of
// te whose start and end are not a size cut (it starts the table or follows
// a chunk under the size bound, and is under the bound itself: it ends at a
// key or at the table's end), in the dump's order.
func rowInKeyCutChunk(t *testing.T, src *instance, te backup.TableEntry) string {
	t.Helper()
	const bound = 4 << 20 // chunkMaxBytes
	var ids []string
	rows, err := src.db.Read.QueryContext(src.ctx, `SELECT id FROM contacts ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	var first int64
	for i, c := range te.Chunks {
		if (i == 0 || te.Chunks[i-1].PlainSize < bound) && c.PlainSize < bound {
			return ids[first+c.Rows/2]
		}
		first += c.Rows
	}
	t.Fatalf("no chunk of %d is cut by key at both ends: %+v", len(te.Chunks), te.Chunks)
	return ""
}
