package backup

import (
	"fmt"
	"strings"
	"time"
)

// Manifest describes one complete backup. It is written last, in plain
// JSON, so that listing and structural checks need no private key; it holds
// no personal data (identifiers, sizes, digests, counts).
type Manifest struct {
	Format string `json:"format"`
	ID     string `json:"id"`
	// StartedAt is when the run began; SnapshotAt when the database
	// snapshot was taken (the state the backup restores to).
	StartedAt  time.Time `json:"started_at"`
	SnapshotAt time.Time `json:"snapshot_at"`
	FinishedAt time.Time `json:"finished_at"`
	Source     Source    `json:"source"`
	// Recipients are the age public keys the files are encrypted to.
	Recipients []string     `json:"recipients"`
	Tables     []TableEntry `json:"tables"`
	Blobs      []BlobEntry  `json:"blobs"`
	// Missing lists attachment blobs deleted between the snapshot and
	// their copy (retention or erasure ran meanwhile; their tombstones
	// remove the rows again on restore).
	Missing []string `json:"missing,omitempty"`
	// Tags are the operator's labels (`backup run --tag`), signed with the
	// rest; `forget --keep-tag` keeps the backups they name.
	Tags []string `json:"tags,omitempty"`
	// KeyEscrow is EscrowFormat when the customer_keys dump leaves the
	// wrapped keys out and restores read them from the key escrow
	// (escrow.go); empty in backups written before it.
	KeyEscrow string `json:"key_escrow,omitempty"`
	Stats     Stats  `json:"stats"`
	// Unsigned is set on a manifest read without a signature (accepted only
	// with RepoOptions.AllowUnsigned); never stored.
	Unsigned bool `json:"-"`
}

// Source describes the instance that was backed up.
type Source struct {
	// Instance identifies the database backed up (migration 0007): only
	// backups of the same instance supply tombstones to a restore.
	Instance      string `json:"instance,omitempty"`
	Engine        string `json:"engine"`
	SchemaVersion int    `json:"schema_version"`
	Host          string `json:"host,omitempty"`
}

// TableEntry is one table's dump, NDJSON (one JSON object per row,
// columns by name). A casevault-backup/2 or /3 manifest lists it as Chunks
// (chunks.go); a casevault-backup/1 one as one age-encrypted zstd File under
// snapshots/<id>/. Rows, PlainSize and PlainSHA256 are of the whole dump in
// both (read it with Repo.openTable).
type TableEntry struct {
	Name string `json:"name"`
	File string `json:"file,omitempty"`
	Rows int64  `json:"rows"`
	// Size is the stored (encrypted) size: the file's, or the sum of the
	// chunks'; SHA256 the stored file's (format 1 only). PlainSize and
	// PlainSHA256 are of the NDJSON.
	Size        int64        `json:"size"`
	SHA256      string       `json:"sha256,omitempty"`
	PlainSize   int64        `json:"plain_size"`
	PlainSHA256 string       `json:"plain_sha256"`
	Chunks      []ChunkEntry `json:"chunks,omitempty"`
	// Fingerprint is a digest of how the source database stored the
	// table at the snapshot (fingerprint.go); a later backup of the same
	// instance whose table has the same one lists this entry again
	// instead of dumping the table.
	Fingerprint string `json:"fingerprint,omitempty"`
}

// BlobEntry maps an attachment blob key to the repository object holding a
// copy of its stored bytes. Objects are named by the SHA-256 of their own
// content (data/<2 hex>/<64 hex>), written once and shared by every later
// backup that still needs them.
type BlobEntry struct {
	Key    string `json:"key"`
	Object string `json:"object"`
	Size   int64  `json:"size"`
	// Digest is the SHA-256 of the blob as the attachment store holds it
	// (restores check the bytes they put back against it).
	Digest string `json:"digest"`
	// Encoding says how the object holds the blob: BlobStored, the
	// attachment store's bytes verbatim (Digest is then the object's own
	// digest); "" (formats 1 and 2, and their objects a later backup lists
	// again), an age file of them to the backup recipients.
	Encoding string `json:"encoding,omitempty"`
}

// BlobStored is the encoding of a blob object that is the attachment
// store's bytes verbatim: already encrypted (AES-256-GCM, archive's object
// format) under the customer's data key, which only the key escrow and the
// live database hold, wrapped by the master key.
const BlobStored = "stored"

// Stats counts what a run did.
type Stats struct {
	Rows       int64 `json:"rows"`
	TableBytes int64 `json:"table_bytes"`
	// ChunksNew were written by this run; ChunksReused (and their
	// TableBytesReused) are earlier backups' unchanged chunks.
	ChunksNew        int64 `json:"chunks_new,omitempty"`
	ChunksReused     int64 `json:"chunks_reused,omitempty"`
	TableBytesReused int64 `json:"table_bytes_reused,omitempty"`
	// TablesReused were not dumped: unchanged since an earlier backup
	// (same fingerprint), whose entry is listed again.
	TablesReused int64 `json:"tables_reused,omitempty"`
	Blobs        int64 `json:"blobs"`
	BlobsNew     int64 `json:"blobs_new"`
	BlobsReused  int64 `json:"blobs_reused"`
	BytesNew     int64 `json:"bytes_new"`
	DurationMS   int64 `json:"duration_ms"`
	// Escrow: key escrow entries written and purged by the run.
	Escrow EscrowStats `json:"escrow"`
}

func (m Manifest) table(name string) (TableEntry, bool) {
	for _, t := range m.Tables {
		if t.Name == name {
			return t, true
		}
	}
	return TableEntry{}, false
}

// validate checks that every name in the manifest is one this format
// writes, so a tampered manifest cannot point a restore or verify anywhere
// else in the store.
func (m Manifest) validate() error {
	for _, t := range m.Tables {
		if _, ok := tableByName(t.Name); !ok {
			continue // a newer table this binary does not restore
		}
		chunked := m.Format != formatV1
		if chunked && (t.File != "" || t.Rows > 0 && len(t.Chunks) == 0) || !chunked && (len(t.Chunks) > 0 || t.File != snapshotsDir+m.ID+"/"+t.Name+".ndjson.zst.age") {
			return fmt.Errorf("table %s: unexpected file %q or %d chunks in format %s", t.Name, t.File, len(t.Chunks), m.Format)
		}
		var rows int64
		for _, c := range t.Chunks {
			if !validObject(c.Object) {
				return fmt.Errorf("table %s: unexpected chunk name %q", t.Name, c.Object)
			}
			rows += c.Rows
		}
		if chunked && rows != t.Rows {
			return fmt.Errorf("table %s: chunks hold %d rows, the table %d", t.Name, rows, t.Rows)
		}
	}
	for _, b := range m.Blobs {
		if !validObject(b.Object) {
			return fmt.Errorf("blob %s: unexpected object name %q", b.Key, b.Object)
		}
		switch b.Encoding {
		case "":
		case BlobStored:
			// The object is the blob: one digest names both.
			if b.Digest != b.Object[len(b.Object)-64:] {
				return fmt.Errorf("blob %s: a verbatim copy with digest %q in object %q", b.Key, b.Digest, b.Object)
			}
		default:
			return fmt.Errorf("blob %s: unknown encoding %q", b.Key, b.Encoding)
		}
	}
	return nil
}

// validObject: data/<2 hex>/<64 hex>, the two hex digits the first two of the 64.
func validObject(o string) bool {
	sum := strings.TrimPrefix(o, dataDir)
	return len(sum) == 67 && sum[2] == '/' && objectKey(sum[3:]) == o && isHex(sum[3:])
}

// Objects lists every repository object the backup needs (attachment
// copies and table chunks): what forget must keep while the backup is kept.
func (m Manifest) Objects() []string {
	var out []string
	for _, b := range m.Blobs {
		out = append(out, b.Object)
	}
	for _, t := range m.Tables {
		for _, c := range t.Chunks {
			out = append(out, c.Object)
		}
	}
	return out
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func objectKey(sum string) string { return dataDir + sum[:2] + "/" + sum }

// Summary is a complete backup as listed (CLI and API): the manifest
// without its blob list and, unless asked for, its table list.
type Summary struct {
	ID         string    `json:"id"`
	Status     string    `json:"status"` // always "complete": incomplete runs are not backups
	StartedAt  time.Time `json:"started_at"`
	SnapshotAt time.Time `json:"snapshot_at"`
	FinishedAt time.Time `json:"finished_at"`
	Source     Source    `json:"source"`
	Stats      Stats     `json:"stats"`
	Blobs      int       `json:"blobs"`
	Missing    int       `json:"missing"`
	Recipients []string  `json:"recipients"`
	// Tags are the labels given by `backup run --tag`.
	Tags []string `json:"tags,omitempty"`
	// Authenticated: the manifest's signature verified (false only for an
	// unsigned backup accepted with --allow-unsigned).
	Authenticated bool         `json:"authenticated"`
	Tables        []TableEntry `json:"tables,omitempty"`
}

// Summary lists m; withTables keeps the per-table files and digests.
func (m Manifest) Summary(withTables bool) Summary {
	s := Summary{ID: m.ID, Status: "complete", StartedAt: m.StartedAt, SnapshotAt: m.SnapshotAt, FinishedAt: m.FinishedAt,
		Source: m.Source, Stats: m.Stats, Blobs: len(m.Blobs), Missing: len(m.Missing), Recipients: m.Recipients,
		Tags: m.Tags, Authenticated: !m.Unsigned}
	if withTables {
		// per table, without the chunk list (object names, like the blob
		// list, stay in the manifest)
		s.Tables = make([]TableEntry, len(m.Tables))
		for i, t := range m.Tables {
			t.Chunks = nil
			s.Tables[i] = t
		}
	}
	return s
}
