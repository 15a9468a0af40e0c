package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"filippo.io/age"

	"github.com/casevault/casevault/archive"
)

// VerifyReport lists what is wrong with a backup; OK when nothing is.
type VerifyReport struct {
	ID       string   `json:"id"`
	OK       bool     `json:"ok"`
	ReadData bool     `json:"read_data"`
	Files    int      `json:"files"`
	Bytes    int64    `json:"bytes_read"`
	Problems []string `json:"problems"`
	// Decrypted says the content was also decrypted and checked against
	// the plain digests (needs the identity).
	Decrypted bool `json:"decrypted"`
	// Authenticated: the manifest's signature verified, so every digest
	// checked here is the one the backup run wrote (false only for an
	// unsigned backup accepted with AllowUnsigned).
	Authenticated bool `json:"authenticated"`
	// Escrow: for a backup whose keys are in the key escrow, how many of
	// its customers still have an entry and how many were erased since
	// (expected, not a problem). Absent for a backup from before the
	// escrow, or when no identity is available to read its customers.
	Escrow *EscrowCoverage `json:"escrow,omitempty"`
}

// Verify checks backup id: every file and object the manifest lists exists
// with its size; with readData every byte is read back and hashed, and when
// identity is given decrypted and checked against the plain digests too.
func (r *Repo) Verify(ctx context.Context, id string, readData bool, identity age.Identity, progress func(Progress)) (VerifyReport, error) {
	progress = throttle(progress, time.Now)
	m, err := r.Manifest(ctx, id)
	if err != nil {
		return VerifyReport{}, err
	}

	rep := VerifyReport{ID: id, ReadData: readData, Problems: []string{}, Decrypted: readData && identity != nil, Authenticated: !m.Unsigned}
	bad := func(format string, args ...any) { rep.Problems = append(rep.Problems, fmt.Sprintf(format, args...)) }
	var total, done int64
	for _, t := range m.Tables {
		total += t.Size
	}

	for _, b := range m.Blobs {
		total += b.Size
	}

	// label names the file in a problem (a chunk with its table).
	check := func(label, key string, size int64, sum, plainSum string, compressed bool) error {
		rep.Files++
		info, err := r.st.Stat(ctx, r.key(key))
		switch {
		case errors.Is(err, archive.ErrNotFound):
			bad("%s: missing", label)
			return nil
		case err != nil:
			return fmt.Errorf("verify %s: %w", key, err)
		case info.Size != size:
			bad("%s: %d bytes, the manifest says %d", label, info.Size, size)
			return nil
		}
		if !readData {
			done += size
			progress(Progress{Phase: "verify", Done: done, Total: total, Unit: "bytes"})
			return nil
		}
		got, n, err := r.hashFile(ctx, key)
		rep.Bytes += n
		done += size
		progress(Progress{Phase: "verify", Done: done, Total: total, Unit: "bytes"})
		if err != nil {
			return err
		}
		if got != sum {
			bad("%s: SHA-256 %s, the manifest says %s", label, got, sum)
			return nil
		}
		if identity == nil || plainSum == "" {
			return nil
		}
		rc, err := r.openFile(ctx, key, identity, compressed)
		if errors.Is(err, ErrWrongKey) {
			return err
		}
		if err != nil {
			bad("%s: %v", label, err)
			return nil
		}
		defer rc.Close()
		h := sha256.New()
		if _, err := io.Copy(h, rc); err != nil {
			bad("%s: decrypt: %v", label, err)
			return nil
		}
		if p := hex.EncodeToString(h.Sum(nil)); p != plainSum {
			bad("%s: content SHA-256 %s, the manifest says %s", label, p, plainSum)
		}
		return nil
	}

	for _, t := range m.Tables {
		if t.File != "" {
			if err := check(t.File, t.File, t.Size, t.SHA256, t.PlainSHA256, true); err != nil {
				return rep, err
			}
			continue
		}
		// A chunk's name is the SHA-256 of its bytes; the table's digest
		// is checked by chunks (their concatenation is the table).
		for _, c := range t.Chunks {
			if err := check("table "+t.Name+" chunk "+c.Object, c.Object, c.Size, c.Object[len(c.Object)-64:], c.PlainSHA256, true); err != nil {
				return rep, err
			}
		}
	}

	for _, b := range m.Blobs {
		// An object's name is the SHA-256 of its bytes; an age file's
		// content is also checked against the blob's digest (a verbatim
		// copy's digest is its name: nothing more to decrypt).
		plain := b.Digest
		if b.Encoding == BlobStored {
			plain = ""
		}
		if err := check(b.Object, b.Object, b.Size, b.Object[len(b.Object)-64:], plain, false); err != nil {
			return rep, err
		}
	}

	// The escrow is shared by every backup, so its entries are not in the
	// manifest; what verify can say is which of this backup's customers a
	// restore would get keys for. With readData each entry is decrypted.
	rep.Escrow, err = r.escrowCoverage(ctx, m, identity, readData, bad)
	switch {
	case errors.Is(err, ErrDamaged):
		bad("key escrow not counted: %v", err)
	case err != nil:
		return rep, err
	}

	rep.OK = len(rep.Problems) == 0
	return rep, nil
}

func (r *Repo) hashFile(ctx context.Context, key string) (string, int64, error) {
	rc, err := r.st.Get(ctx, r.key(key))
	if err != nil {
		return "", 0, fmt.Errorf("verify %s: %w", key, err)
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return "", n, fmt.Errorf("verify %s: %w", key, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
