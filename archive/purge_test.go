package archive_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/blobtest"
	"github.com/casevault/casevault/archive/s3"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
)

// lockedStore is a fresh bucket with object lock, and so versioning, on
// the shared versitygw.
func lockedStore(t *testing.T) *s3.Store {
	t.Helper()
	srv := blobtest.EnvS3(t)
	st, err := s3.New(context.Background(), s3.Config{Endpoint: srv.Endpoint, Bucket: fmt.Sprintf("cv-lock-%d", time.Now().UnixNano()),
		AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PartSize: 5 << 20, MaxRetries: 1, ObjectLock: true})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// versionsUnder lists key@version of every version and delete marker under prefix.
func versionsUnder(t *testing.T, st *s3.Store, prefix string) []string {
	t.Helper()
	var out []string
	err := st.ListVersions(context.Background(), prefix, func(v archive.VersionInfo) error {
		out = append(out, v.Key+"@"+v.VersionID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// In a versioned bucket a deleted blob leaves its data behind a delete
// marker, readable by version id. The reconciler purges every version of a
// key no row names, whether its data is current (an orphan) or only an
// earlier version (a plain delete, a purge cut short); an attachment with
// a row keeps its one version.
func TestReconcilePurgesLeftoverVersions(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		st := lockedStore(t)
		e := newEnv(t, db, st, "", archive.AttachmentOptions{})
		contactID, customerID := e.contact(t)
		keep := e.put(t, contactID, []byte("has a row"))
		gone := e.put(t, contactID, []byte("disposed of, row deleted"))
		goneKey := e.blobKey(t, gone.ID)
		if _, err := db.Write.ExecContext(ctx, db.Rebind(`DELETE FROM attachments WHERE id = ?`), gone.ID); err != nil {
			t.Fatal(err)
		}
		if err := st.Delete(ctx, goneKey); err != nil { // a delete marker only
			t.Fatal(err)
		}
		orphan := archive.BlobPrefix + customerID + "/orphan"
		blobtest.MustPut(t, e.blobs, orphan, []byte("first"))
		blobtest.MustPut(t, e.blobs, orphan, []byte("second"))

		if n := len(versionsUnder(t, st, goneKey)); n != 2 {
			t.Fatalf("after a plain delete %d versions are listed, want the data and the marker", n)
		}
		rep, err := e.att.Reconcile(ctx, 0, false)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(rep.LeftoverVersionsRemoved) != fmt.Sprint([]string{goneKey}) || fmt.Sprint(rep.OrphanBlobsRemoved) != fmt.Sprint([]string{orphan}) {
			t.Fatalf("report %+v", rep)
		}
		for _, k := range []string{goneKey, orphan} {
			if vs := versionsUnder(t, st, k); len(vs) != 0 {
				t.Fatalf("%s: versions left after reconcile: %v", k, vs)
			}
		}
		if got, err := readAll(t, e, keep.ID); err != nil || string(got) != "has a row" {
			t.Fatalf("kept attachment: %q %v", got, err)
		}
		// Deleting an attachment through the service purges every version.
		if err := e.att.Delete(ctx, keep.ID, nil); err != nil {
			t.Fatal(err)
		}
		if vs := versionsUnder(t, st, archive.BlobPrefix); len(vs) != 0 {
			t.Fatalf("versions left after deleting the last attachment: %v", vs)
		}
	})
}
