package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"filippo.io/age"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqlitebtree"
)

// Tables exposes the dump's table list to the schema test.
func Tables() map[string][]string {
	out := map[string][]string{}
	for _, t := range tables {
		out[t.Name] = t.Columns
	}
	return out
}

// SignManifestForTest writes m with a signature by k into the repository
// on st (a test forging a "valid signature by the wrong key").
func SignManifestForTest(ctx context.Context, st archive.Blobs, k *SigningKey, m Manifest) error {
	r, err := OpenRepo(st, "", RepoOptions{Signer: k})
	if err != nil {
		return err
	}
	return r.putSigned(ctx, m.ID, m)
}

// PlainDump decrypts (with the age identity id) and decompresses every
// table (file or chunks) of backup m: what someone holding the backup's private key
// reads (the erasure proof inspects it).
func PlainDump(ctx context.Context, r *Repo, m Manifest, id age.Identity) (map[string][]byte, error) {
	out := map[string][]byte{}
	for _, te := range m.Tables {
		rc, err := r.openTable(ctx, te, id)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			return nil, err
		}
		out[te.Name] = b
	}
	return out, nil
}

// TableObject is where a small table's content is stored: its one chunk
// (or the file of a casevault-backup/1 manifest).
func TableObject(te TableEntry) string {
	if te.File != "" || len(te.Chunks) == 0 {
		return te.File
	}
	if len(te.Chunks) != 1 {
		panic("TableObject: table " + te.Name + " has several chunks")
	}
	return te.Chunks[0].Object
}

// EscrowEntries decrypts every entry of the key escrow with the backup
// identity: the wrapped data keys whoever holds the repository and that
// identity can read (the erasure proof's attacker).
func EscrowEntries(ctx context.Context, r *Repo, id age.Identity) (map[string]string, error) {
	have, err := r.escrowList(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for c := range have {
		w, ok, err := r.getEscrow(ctx, id, c)
		if err != nil {
			return nil, err
		}
		if ok {
			out[c] = w
		}
	}
	return out, nil
}

// EscrowObject is the store key of a customer's escrow entry.
func EscrowObject(r *Repo, customerID string) string { return r.key(escrowKey(customerID)) }

// PreEscrowBackupForTest rewrites backup m as casevault wrote backups
// before the key escrow: its customer_keys dump (one chunk, from db, which
// must still hold the snapshot's keys) carries the wrapped keys, and its
// manifest, re-signed, has no key_escrow.
func PreEscrowBackupForTest(ctx context.Context, r *Repo, db *sqldb.DB, m Manifest, recipients []age.Recipient) (Manifest, error) {
	t, _ := tableByName("customer_keys")
	t.Escrowed = ""
	tmp := tmpDir + randHex(8)
	var rows int64
	stored, plain, err := r.writeFile(ctx, tmp, recipients, true, func(w io.Writer) error {
		n, err := dumpTable(ctx, db.Read, t, "", nil, w, nil)
		rows = n
		return err
	})
	if err != nil {
		return Manifest{}, err
	}
	obj := objectKey(stored.SHA256)
	if err := r.bulk.Rename(ctx, r.key(tmp), r.key(obj)); err != nil {
		return Manifest{}, err
	}
	if err := r.seal(ctx); err != nil {
		return Manifest{}, err
	}
	for i, te := range m.Tables {
		if te.Name == t.Name {
			m.Tables[i] = TableEntry{Name: t.Name, Rows: rows, Size: stored.Size, PlainSize: plain.Size, PlainSHA256: plain.SHA256,
				Chunks: []ChunkEntry{{Object: obj, Rows: rows, Size: stored.Size, PlainSize: plain.Size, PlainSHA256: plain.SHA256}}}
		}
	}
	m.KeyEscrow = ""
	return m, r.putSigned(ctx, m.ID, m)
}

// DamageEscrowForTest overwrites a customer's escrow entry with bytes
// that are no age file (a bit rot or a bad copy).
func DamageEscrowForTest(ctx context.Context, r *Repo, customerID string) error {
	junk := []byte("not an age file")
	return r.st.Put(ctx, r.key(escrowKey(customerID)), bytes.NewReader(junk), int64(len(junk)))
}

// AgeBlobsBackupForTest rewrites backup m as casevault wrote it before
// blobs were copied verbatim (casevault-backup/2): every blob object an
// age file of the stored bytes, to recipients, and the manifest re-signed.
func AgeBlobsBackupForTest(ctx context.Context, r *Repo, m Manifest, recipients []age.Recipient) (Manifest, error) {
	for i, b := range m.Blobs {
		if b.Encoding != BlobStored {
			continue
		}
		src, err := r.st.Get(ctx, r.key(b.Object))
		if err != nil {
			return Manifest{}, err
		}
		tmp := tmpDir + randHex(8)
		stored, plain, err := r.writeFile(ctx, tmp, recipients, false, func(w io.Writer) error {
			_, err := io.Copy(w, src)
			return err
		})
		src.Close()
		if err != nil {
			return Manifest{}, err
		}
		obj := objectKey(stored.SHA256)
		if err := r.bulk.Rename(ctx, r.key(tmp), r.key(obj)); err != nil {
			return Manifest{}, err
		}
		if plain.SHA256 != b.Digest {
			return Manifest{}, fmt.Errorf("blob %s: digest %s, want %s", b.Key, plain.SHA256, b.Digest)
		}
		m.Blobs[i] = BlobEntry{Key: b.Key, Object: obj, Size: stored.Size, Digest: b.Digest}
	}
	if err := r.seal(ctx); err != nil {
		return Manifest{}, err
	}
	m.Format = formatV2
	return m, r.putSigned(ctx, m.ID, m)
}

// ObjectForTest reads a repository object's stored bytes (key relative to
// the repository, as a manifest names it).
func ObjectForTest(ctx context.Context, r *Repo, key string) ([]byte, error) {
	rc, err := r.st.Get(ctx, r.key(key))
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// PutObjectForTest overwrites a repository object (a damaged copy).
func PutObjectForTest(ctx context.Context, r *Repo, key string, b []byte) error {
	return r.st.Put(ctx, r.key(key), bytes.NewReader(b), int64(len(b)))
}

// TmpObjectsForTest counts the repository's objects under tmp/.
func TmpObjectsForTest(ctx context.Context, r *Repo) int {
	n := 0
	_ = r.st.List(ctx, r.key(tmpDir), func(archive.BlobInfo) error { n++; return nil })
	return n
}

// WithLoadCache sets the SQLite page cache of a restore's load (KiB).
func WithLoadCache(o RestoreOptions, kib int) RestoreOptions {
	o.loadCacheKiB = kib
	return o
}

// DumpTwoWays dumps table name of db in one snapshot twice: by query and
// from its SQLite pages (pages is nil when the page reader refuses the
// table's shape). Each is the NDJSON the chunks hold, with every row's
// key appended to its line's copy in keys.
func DumpTwoWays(ctx context.Context, db *sqldb.DB, name string) (query, pages []byte, queryKeys, pageKeys []string, err error) {
	t, ok := tableByName(name)
	if !ok {
		return nil, nil, nil, nil, fmt.Errorf("no table %s", name)
	}
	tx, err := snapshotTx(ctx, db)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	defer tx.Rollback()
	collect := func(src rowSource) ([]byte, []string, error) {
		var out bytes.Buffer
		var keys []string
		_, err := src(ctx, func(line []byte, key any, _ []any) error {
			out.Write(line)
			keys = append(keys, fmt.Sprintf("%T:%v", key, key))
			return nil
		})
		// Not nil when empty: nil pages means "read by query".
		return append([]byte{}, out.Bytes()...), keys, err
	}
	if query, queryKeys, err = collect(queryRows(tx, t)); err != nil {
		return nil, nil, nil, nil, err
	}
	src, err := pageRows(ctx, tx, t)
	if errors.Is(err, sqlitebtree.ErrUnsupported) {
		return query, nil, queryKeys, nil, nil
	}
	if err != nil {
		return nil, nil, nil, nil, err
	}
	pages, pageKeys, err = collect(src)
	return query, pages, queryKeys, pageKeys, err
}
