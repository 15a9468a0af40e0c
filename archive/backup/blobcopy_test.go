package backup_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/archive/blobtest"
	"github.com/casevault/casevault/archive/local"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// TestBlobCopiesAreVerbatim: a backup copies each attachment blob as the
// attachment store holds it (already encrypted under its customer's data
// key), named by the digest of those bytes, with no age layer of its own,
// whether it fits the worker's buffer or is streamed; nothing is left
// under tmp/.
func TestBlobCopiesAreVerbatim(t *testing.T) {
	for _, rt := range repoTargets() {
		t.Run(rt.name, func(t *testing.T) {
			ctx := context.Background()
			src := newInstance(t, sqldb.SQLite)
			ids := src.seed(2, 1)
			// Past the 8 MiB read buffer: streamed to tmp/ and renamed.
			src.attach(src.contact(ids[0], "a large scan"), 9<<20)
			repo, _ := rt.open(t)
			keys := newKeys(t)
			m, err := src.service(repo, keys).Backup(ctx, "test", operator, nil)
			if err != nil {
				t.Fatal(err)
			}
			if m.Format != backup.ManifestFormat || len(m.Blobs) != 3 {
				t.Fatalf("format %s, %d blobs; want %s and 3", m.Format, len(m.Blobs), backup.ManifestFormat)
			}
			for _, b := range m.Blobs {
				got, err := backup.ObjectForTest(ctx, repo, b.Object)
				if err != nil {
					t.Fatal(err)
				}
				rc, err := src.blobs.Get(ctx, b.Key)
				if err != nil {
					t.Fatal(err)
				}
				want, _ := io.ReadAll(rc)
				rc.Close()
				if b.Encoding != backup.BlobStored || !bytes.Equal(got, want) || b.Size != int64(len(want)) ||
					b.Digest != b.Object[len(b.Object)-64:] || digest(t, io.NopCloser(bytes.NewReader(want))) != b.Digest {
					t.Errorf("blob %s: encoding %q, %d bytes (store %d), digest %s, object %s: want the stored bytes verbatim, named by their digest",
						b.Key, b.Encoding, len(got), len(want), b.Digest, b.Object)
				}
				if !bytes.HasPrefix(got, []byte("CVE1")) {
					t.Errorf("blob %s: object does not start with the attachment format's magic", b.Key)
				}
			}
			if n := backup.TmpObjectsForTest(ctx, repo); n != 0 {
				t.Errorf("%d objects left under tmp/", n)
			}
			dst := newInstance(t, sqldb.SQLite)
			restoreInto(t, repo, m.ID, keys, dst)
			want, got := src.blobDigests(), dst.blobDigests()
			if len(got) != 6 {
				t.Errorf("%d digests restored, want 6", len(got))
			}
			for k, d := range want {
				if got[k] != d {
					t.Errorf("%s: restored digest %s, source %s", k, got[k], d)
				}
			}
		})
	}
}

// TestRestoreBothBlobEncodings: a backup whose blob objects are verbatim
// copies (format 3), one whose objects are age files (format 2, as older
// versions wrote), and an incremental that lists the old age objects next
// to a new verbatim one all restore with every blob's bytes, on both
// engines and both repository kinds; verify --read-data passes on each,
// and a flipped byte in a blob object of either kind fails verify and the
// restore (the blob's digest is checked).
func TestRestoreBothBlobEncodings(t *testing.T) {
	for _, rt := range repoTargets() {
		t.Run(rt.name, func(t *testing.T) {
			forEachDialect(t, func(t *testing.T, src *instance) {
				ctx := context.Background()
				ids := src.seed(2, 1)
				repo, _ := rt.open(t)
				keys := newKeys(t)
				svc := src.service(repo, keys)
				stored, err := svc.Backup(ctx, "test", operator, nil)
				if err != nil {
					t.Fatal(err)
				}
				aged, err := svc.Backup(ctx, "test", operator, nil)
				if err != nil {
					t.Fatal(err)
				}
				// aged's objects are shared with stored: age copies under new names.
				if aged, err = backup.AgeBlobsBackupForTest(ctx, repo, aged, keys.Recipients); err != nil {
					t.Fatal(err)
				}
				src.attach(src.contact(ids[0], "one more"), 70000) // more than one 64 KiB package
				mixed, err := svc.Backup(ctx, "test", operator, nil)
				if err != nil {
					t.Fatal(err)
				}
				encodings := map[string]int{}
				for _, b := range mixed.Blobs {
					encodings[b.Encoding]++
				}
				if mixed.Stats.BlobsNew != 1 || encodings[backup.BlobStored] != 1 || encodings[""] != 2 {
					t.Fatalf("incremental after an age backup: %+v, encodings %v; want the 2 age objects reused and 1 verbatim copy", mixed.Stats, encodings)
				}
				want := src.blobDigests()

				for _, tc := range []struct {
					name string
					m    backup.Manifest
				}{{"stored", stored}, {"age", aged}, {"mixed", mixed}} {
					t.Run(tc.name, func(t *testing.T) {
						rep, err := repo.Verify(ctx, tc.m.ID, true, keys.Identity, nil)
						if err != nil || !rep.OK {
							t.Fatalf("verify --read-data: %+v %v", rep, err)
						}
						dst := openInstance(t, sqldbtest.Open(t, src.db.Dialect), t.TempDir())
						rr := restoreInto(t, repo, tc.m.ID, keys, dst)
						if rr.Blobs != int64(len(tc.m.Blobs)) {
							t.Errorf("restored %d blobs, want %d", rr.Blobs, len(tc.m.Blobs))
						}
						got := dst.blobDigests()
						for k, d := range got {
							if want[k] != d {
								t.Errorf("%s: restored digest %s, source %s", k, d, want[k])
							}
						}
						if len(got) != 2*len(tc.m.Blobs) {
							t.Errorf("%d digests restored, want %d", len(got), 2*len(tc.m.Blobs))
						}
					})
				}

				// A flipped byte in a blob object of each kind; a verbatim
				// copy cut short or longer than the manifest says (read
				// whole into memory and checked before it is written).
				flip := func(b []byte) []byte { b[len(b)/2] ^= 0x01; return b }
				for _, tc := range []struct {
					name   string
					m      backup.Manifest
					enc    string
					damage func([]byte) []byte
				}{
					{"flipped-stored", mixed, backup.BlobStored, flip},
					{"flipped-age", mixed, "", flip},
					{"truncated-stored", mixed, backup.BlobStored, func(b []byte) []byte { return b[:len(b)-1] }},
					{"extended-stored", mixed, backup.BlobStored, func(b []byte) []byte { return append(b, 0) }},
				} {
					t.Run(tc.name, func(t *testing.T) {
						var obj string
						for _, b := range tc.m.Blobs {
							if b.Encoding == tc.enc {
								obj = b.Object
							}
						}
						orig, err := backup.ObjectForTest(ctx, repo, obj)
						if err != nil {
							t.Fatal(err)
						}
						bad := tc.damage(append([]byte(nil), orig...))
						if err := backup.PutObjectForTest(ctx, repo, obj, bad); err != nil {
							t.Fatal(err)
						}
						defer backup.PutObjectForTest(ctx, repo, obj, orig)
						rep, err := repo.Verify(ctx, tc.m.ID, true, nil, nil)
						if err != nil || rep.OK || len(rep.Problems) != 1 {
							t.Errorf("verify --read-data of a flipped byte: %+v %v; want one problem", rep, err)
						}
						dst := openInstance(t, sqldbtest.Open(t, src.db.Dialect), t.TempDir())
						_, err = repo.Restore(ctx, tc.m.ID, backup.RestoreOptions{Target: dst.db, Blobs: dst.blobs, Identity: keys.Identity, Actor: operator})
						if !errors.Is(err, backup.ErrDamaged) {
							t.Errorf("restore with a flipped byte in a blob: %v, want ErrDamaged", err)
						}
						if n := dst.count(`SELECT COUNT(*) FROM attachments`); n != 0 {
							t.Errorf("a failed restore left %d attachments", n)
						}
						if n := len(dstBlobKeys(t, dst)); n != 0 {
							t.Errorf("a failed restore left %d blobs", n)
						}
					})
				}
			})
		})
	}
}

// TestErasureShredsBlobCopies: a blob copy is ciphertext under its
// customer's data key, so an erasure (which destroys the key in the
// database and deletes its escrow entry) reaches the copies in backups
// taken before it. Before the erasure, the key a restore of the backup
// recovers opens the copy; after it, no data key that the repository, the
// master key and the backup identity together yield opens it.
func TestErasureShredsBlobCopies(t *testing.T) {
	forEachDialect(t, func(t *testing.T, in *instance) {
		ctx := context.Background()
		f := in.seal()
		in.seed(2, 1)
		victim, _, attID := in.victim()
		var blobKey string
		var size int64
		if err := in.db.Read.QueryRowContext(ctx, in.db.Rebind(`SELECT blob_key, size FROM attachments WHERE id = ?`), attID).Scan(&blobKey, &size); err != nil {
			t.Fatal(err)
		}
		_, rc, err := in.att.Open(ctx, attID)
		if err != nil {
			t.Fatal(err)
		}
		plain := digest(t, rc)
		repo, _ := newRepo(t)
		keys := newKeys(t)
		svc := in.service(repo, keys)
		old, err := svc.Backup(ctx, "test", operator, nil)
		if err != nil {
			t.Fatal(err)
		}
		var obj string
		for _, b := range old.Blobs {
			if b.Key == blobKey {
				obj = b.Object
			}
		}
		if obj == "" {
			t.Fatal("the backup holds no copy of the victim's blob: the proof would prove nothing")
		}
		copyStore, err := local.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		b, err := backup.ObjectForTest(ctx, repo, obj)
		if err != nil {
			t.Fatal(err)
		}
		if err := copyStore.Put(ctx, blobKey, bytes.NewReader(b), int64(len(b))); err != nil {
			t.Fatal(err)
		}
		// opens says whether any data key a restore of old recovers
		// decrypts the copy.
		opens := func(t *testing.T) bool {
			dst := openInstance(t, sqldbtest.Open(t, in.db.Dialect), t.TempDir())
			restoreInto(t, repo, old.ID, keys, dst)
			rows, err := dst.db.Read.QueryContext(ctx, `SELECT customer_id FROM customer_keys`)
			if err != nil {
				t.Fatal(err)
			}
			var custs []string
			for rows.Next() {
				var c string
				if err := rows.Scan(&c); err != nil {
					t.Fatal(err)
				}
				custs = append(custs, c)
			}
			rows.Close()
			for _, c := range append(custs, victim) {
				k, err := dst.keys.ExistingDataKey(ctx, c)
				if err != nil {
					continue
				}
				rc, err := archive.OpenStream(ctx, copyStore, blobKey, k, attID, size, 0, size)
				if err != nil {
					continue
				}
				h := newHash()
				_, err = io.Copy(h, rc)
				rc.Close()
				if err == nil && fmt.Sprintf("%x", h.Sum(nil)) == plain {
					return true
				}
			}
			return false
		}
		if !opens(t) {
			t.Fatal("before the erasure the restored key does not open the blob copy: the proof would prove nothing")
		}

		// As the server wires it: the erasure deletes the escrow entry.
		er := retention.NewEraser(in.db, retention.EraserOptions{Holds: in.holds, Keys: in.keys, Fields: f, OnChange: auditHook(in.db.Dialect),
			Blobs: in.blobs, Escrow: svc})
		if res, err := er.Erase(ctx, retention.EraseRequest{CustomerID: victim, Reason: "Art. 17 request", Force: true}, operator); err != nil || res.EscrowPending {
			t.Fatalf("erasure: %+v %v", res, err)
		}
		if after, err := backup.ObjectForTest(ctx, repo, obj); err != nil || !bytes.Equal(after, b) {
			t.Fatalf("the old backup's copy changed: %v", err)
		}
		if opens(t) {
			t.Error("after the erasure a key recovered from the backup still opens the erased customer's blob copy")
		}
	})
}

// TestBlobCopyNamedByUploadDigest: a blob whose attachment row recorded the
// digest of its stored bytes at upload is copied under that digest without
// being hashed again, so a blob damaged in the attachment store after its
// upload (same size) is caught by verify --read-data and by the restore,
// where a digest taken at backup time would have vouched for the damage; a
// row without the digest (NULL: older rows) is hashed as before, and so is
// a blob whose size is not the one its row's size encrypts to.
func TestBlobCopyNamedByUploadDigest(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, in *instance, key string)
		damaged bool
	}{
		{name: "recorded digest", prepare: func(*testing.T, *instance, string) {}},
		{name: "recorded digest, blob damaged in the store", damaged: true, prepare: func(t *testing.T, in *instance, key string) {
			b := blobtest.ReadAll(t, in.blobs, key)
			b[len(b)/2] ^= 0x01
			blobtest.MustPut(t, in.blobs, key, b)
		}},
		{name: "no recorded digest", prepare: func(t *testing.T, in *instance, key string) {
			if _, err := in.db.Write.ExecContext(in.ctx, `UPDATE attachments SET stored_sha256 = NULL`); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "blob of another size", prepare: func(t *testing.T, in *instance, key string) {
			b := blobtest.ReadAll(t, in.blobs, key)
			blobtest.MustPut(t, in.blobs, key, b[:len(b)-1])
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			src := newInstance(t, sqldb.SQLite)
			a := src.attach(src.contact(src.newCase(src.customer("Han Meimei"), "scan"), "with a scan"), 100<<10)
			var key, recorded string
			if err := src.db.Read.QueryRowContext(ctx, `SELECT blob_key, stored_sha256 FROM attachments WHERE id = ?`, a.ID).Scan(&key, &recorded); err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("%x", sha256.Sum256(blobtest.ReadAll(t, src.blobs, key))); recorded != want {
				t.Fatalf("recorded stored digest %s, the stored bytes' %s", recorded, want)
			}
			tc.prepare(t, src, key)
			repo, _ := newRepo(t)
			keys := newKeys(t)
			m, err := src.service(repo, keys).Backup(ctx, "test", operator, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Blobs) != 1 {
				t.Fatalf("%d blobs, want 1", len(m.Blobs))
			}
			b := m.Blobs[0]
			copied, err := backup.ObjectForTest(ctx, repo, b.Object)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(copied, blobtest.ReadAll(t, src.blobs, key)) {
				t.Fatalf("the copy is not the store's bytes")
			}
			actual := fmt.Sprintf("%x", sha256.Sum256(copied))
			rep, err := repo.Verify(ctx, m.ID, true, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			dst := newInstance(t, sqldb.SQLite)
			_, rerr := repo.Restore(ctx, m.ID, backup.RestoreOptions{Target: dst.db, Blobs: dst.blobs, Identity: keys.Identity, Actor: operator})
			if tc.damaged {
				if b.Digest != recorded || rep.OK || len(rep.Problems) != 1 || !strings.Contains(rep.Problems[0], b.Object) {
					t.Errorf("digest %s (recorded %s), verify %+v: want the upload's digest and one problem naming %s", b.Digest, recorded, rep, b.Object)
				}
				if !errors.Is(rerr, backup.ErrDamaged) {
					t.Errorf("restore: %v, want ErrDamaged", rerr)
				}
				return
			}
			if b.Digest != actual || !rep.OK || rerr != nil {
				t.Errorf("digest %s, the copy's %s; verify %+v; restore %v: want the copy's digest, a clean verify and restore", b.Digest, actual, rep, rerr)
			}
		})
	}
}

// dstBlobKeys lists the blobs an instance's store holds.
func dstBlobKeys(t *testing.T, in *instance) []string {
	t.Helper()
	var keys []string
	if err := in.blobs.List(context.Background(), "", func(b archive.BlobInfo) error {
		keys = append(keys, b.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}
