package backup

import (
	"context"
	"io"

	"filippo.io/age"

	"github.com/casevault/casevault/archive"
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
