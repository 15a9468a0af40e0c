package backup_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/backup"
)

// TestRestoreCaseIntoAnotherMasterKey: restoring a case into an instance
// with another master key either re-wraps the customer's data key under
// the target's key (given the source key) so the files open, or refuses
// with ErrWrongMasterKey and stores nothing. Before, the key was stored as
// the backup had it and every read of the files failed.
func TestRestoreCaseIntoAnotherMasterKey(t *testing.T) {
	other := bytes.Repeat([]byte{9}, 32)
	tests := []struct {
		name   string
		source []byte
		want   error
	}{
		{"no source key: refused", nil, archive.ErrWrongMasterKey},
		{"source key: re-wrapped", master, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forEachDialect(t, func(t *testing.T, in *instance) {
				ctx := context.Background()
				ids := in.seed(1, 1)
				repo, _ := newRepo(t)
				keys := newKeys(t)
				m, err := in.service(repo, keys).Backup(ctx, "test", operator, nil)
				if err != nil {
					t.Fatal(err)
				}

				dst := newInstance(t, in.db.Dialect)
				dstKeys, err := archive.NewKeyring(dst.db, other, archive.KeyringOptions{})
				if err != nil {
					t.Fatal(err)
				}
				dstAtt := archive.NewAttachments(dst.db, dst.blobs, dstKeys, archive.AttachmentOptions{})
				_, err = repo.RestoreCase(ctx, m.ID, ids[0], backup.CaseRestoreOptions{DB: dst.db, Blobs: dst.blobs, Identity: keys.Identity, Actor: operator,
					Rewrap: func(customerID, wrapped string) (string, error) {
						return archive.RewrapDataKey(customerID, wrapped, tt.source, other)
					}})
				if !errors.Is(err, tt.want) {
					t.Fatalf("restore --case: %v, want %v", err, tt.want)
				}
				if tt.want != nil {
					if n := dst.count(`SELECT COUNT(*) FROM customer_keys`) + dst.count(`SELECT COUNT(*) FROM cases`); n != 0 {
						t.Fatalf("a refused restore stored %d rows", n)
					}
					return
				}
				var attID string
				if err := dst.db.Read.QueryRowContext(ctx, `SELECT id FROM attachments`).Scan(&attID); err != nil {
					t.Fatal(err)
				}
				_, rc, err := dstAtt.Open(ctx, attID)
				if err != nil {
					t.Fatalf("restored attachment under the target's key: %v", err)
				}
				_, _ = io.Copy(io.Discard, rc)
				rc.Close()
			})
		})
	}
}
