package s3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/blobtest"
	"github.com/casevault/casevault/archive/s3"
)

func config(srv *blobtest.S3Server) s3.Config {
	return s3.Config{Endpoint: srv.Endpoint, Bucket: srv.Bucket, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey,
		Region: "us-east-1", PartSize: 5 << 20, MaxRetries: 1}
}

func TestConformance(t *testing.T) {
	srv := blobtest.EnvS3(t)
	store, err := s3.New(context.Background(), config(srv))
	if err != nil {
		t.Fatal(err)
	}
	blobtest.Suite{Store: store}.Run(t)
}

func TestConformancePrivateServer(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	srv := blobtest.StartVersityGW(t)
	store, err := s3.New(context.Background(), config(srv))
	if err != nil {
		t.Fatal(err)
	}
	blobtest.Suite{Store: store}.Run(t)
}

func TestCreatesBucketAndAcceptsURL(t *testing.T) {
	srv := blobtest.StartVersityGW(t)
	ctx := context.Background()
	cfg := config(srv)
	cfg.Endpoint = "http://" + srv.Endpoint
	store, err := s3.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := store.Client().BucketExists(ctx, srv.Bucket)
	if err != nil || !ok {
		t.Fatalf("bucket not created: %v %v", ok, err)
	}
	// Starting again with the bucket present is fine.
	if _, err := s3.New(ctx, cfg); err != nil {
		t.Fatalf("second New: %v", err)
	}
	for _, bad := range []string{"ftp://" + srv.Endpoint, "http://" + srv.Endpoint + "/path"} {
		cfg.Endpoint = bad
		if _, err := s3.New(ctx, cfg); err == nil {
			t.Errorf("New with endpoint %q succeeded", bad)
		}
	}
	cfg = config(srv)
	cfg.SecretKey = "wrong-secret"
	if _, err := s3.New(ctx, cfg); !errors.Is(err, archive.ErrUnavailable) {
		t.Errorf("New with a wrong secret: %v, want ErrUnavailable", err)
	}
}

// killAfter kills the server once n bytes have been read from it.
type killAfter struct {
	r    io.Reader
	n    int
	kill func()
}

func (k *killAfter) Read(p []byte) (int, error) {
	if k.n <= 0 && k.kill != nil {
		k.kill()
		k.kill = nil
	}
	n, err := k.r.Read(p)
	k.n -= n
	return n, err
}

func TestServerDown(t *testing.T) {
	srv := blobtest.StartVersityGW(t)
	ctx := context.Background()
	store, err := s3.New(ctx, config(srv))
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Put(ctx, "k/present", strings.NewReader("hello"), -1); err != nil {
		t.Fatal(err)
	}

	// Killed in the middle of a multipart upload: an error wrapping
	// ErrUnavailable, and after a restart no object and no upload.
	big := blobtest.RandBytes(12 << 20)
	err = store.Put(ctx, "k/midway", &killAfter{r: bytes.NewReader(big), n: 7 << 20, kill: srv.Kill}, -1)
	if !errors.Is(err, archive.ErrUnavailable) {
		t.Fatalf("Put while the server dies: %v, want ErrUnavailable", err)
	}

	checks := everyCall(ctx, store, "k/", big, func() error { _, err := s3.New(ctx, config(srv)); return err })
	for name, fn := range checks {
		t.Run(name, func(t *testing.T) {
			if err := fn(); !errors.Is(err, archive.ErrUnavailable) {
				t.Fatalf("%s with the server down: %v, want ErrUnavailable", name, err)
			}
		})
	}

	srv.Restart(t)
	var keys []string
	if err := store.List(ctx, "k/", func(b archive.BlobInfo) error { keys = append(keys, b.Key); return nil }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(keys, ",") != "k/present" {
		t.Fatalf("after the outage the bucket holds %v, want only k/present", keys)
	}
	// Aborting the multipart upload needed the server, which was down, so
	// an incomplete upload may remain; it is invisible to readers and is
	// reported here for information only.
	n := 0
	for range store.Client().ListIncompleteUploads(ctx, srv.Bucket, "k/", true) {
		n++
	}
	t.Logf("incomplete multipart uploads left after the outage: %d", n)
}

func TestDownloadInterrupted(t *testing.T) {
	srv := blobtest.StartVersityGW(t)
	ctx := context.Background()
	store, err := s3.New(ctx, config(srv))
	if err != nil {
		t.Fatal(err)
	}
	data := blobtest.RandBytes(64 << 20)
	if err := store.Put(ctx, "d/big", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	rc, err := store.Get(ctx, "d/big")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.ReadFull(rc, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	_, err = io.Copy(io.Discard, rc)
	if err == nil {
		// 63 MiB cannot sit in socket buffers: a clean end means the
		// reader hid the outage.
		t.Fatal("read the rest of a 64 MiB object after the server was killed without an error")
	}
	if !errors.Is(err, archive.ErrUnavailable) {
		t.Fatalf("read after kill: %v, want ErrUnavailable", err)
	}
}

func TestLegalHold(t *testing.T) {
	srv := blobtest.StartVersityGW(t)
	ctx := context.Background()
	cfg := config(srv)
	plain, err := s3.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if on, err := plain.ObjectLockEnabled(ctx); err != nil || on {
		t.Fatalf("ObjectLockEnabled on a plain bucket = %v, %v; want false", on, err)
	}
	cfg.Bucket += "-lock"
	cfg.ObjectLock = true
	locked, err := s3.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if on, err := locked.ObjectLockEnabled(ctx); err != nil || !on {
		t.Fatalf("ObjectLockEnabled on a lock bucket = %v, %v; want true", on, err)
	}
	if err := locked.Put(ctx, "h/x", strings.NewReader("held"), 4); err != nil {
		t.Fatal(err)
	}
	if err := locked.SetLegalHold(ctx, "h/x", true); err != nil {
		t.Fatalf("SetLegalHold on: %v", err)
	}
	if on, err := locked.LegalHold(ctx, "h/x"); err != nil || !on {
		t.Fatalf("LegalHold = %v, %v; want true", on, err)
	}
	// The held version cannot be removed.
	info, err := locked.Client().StatObject(ctx, cfg.Bucket, "h/x", minio.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	err = locked.Client().RemoveObject(ctx, cfg.Bucket, "h/x", minio.RemoveObjectOptions{VersionID: info.VersionID})
	if err == nil {
		t.Fatalf("removing a held version succeeded")
	}
	if err := locked.SetLegalHold(ctx, "h/x", false); err != nil {
		t.Fatalf("SetLegalHold off: %v", err)
	}
	if on, err := locked.LegalHold(ctx, "h/x"); err != nil || on {
		t.Fatalf("LegalHold after release = %v, %v; want false", on, err)
	}
	if err := locked.SetLegalHold(ctx, "h/missing", true); err == nil {
		t.Fatalf("SetLegalHold on a missing key succeeded")
	}
}

func TestConfigFromEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	if _, ok, err := s3.ConfigFromEnv(env(nil)); ok || err != nil {
		t.Fatalf("no endpoint: ok %v err %v", ok, err)
	}
	cfg, ok, err := s3.ConfigFromEnv(env(map[string]string{"CASEVAULT_S3_ENDPOINT": "s3.example:9000", "CASEVAULT_S3_BUCKET": "b",
		"CASEVAULT_S3_ACCESS_KEY": "ak", "CASEVAULT_S3_SECRET_KEY": "sk", "CASEVAULT_S3_REGION": "eu-1", "CASEVAULT_S3_TLS": "true"}))
	if err != nil || !ok || cfg.Endpoint != "s3.example:9000" || cfg.Bucket != "b" || cfg.AccessKey != "ak" || cfg.SecretKey != "sk" || cfg.Region != "eu-1" || !cfg.TLS || cfg.ObjectLock {
		t.Fatalf("got %+v %v %v", cfg, ok, err)
	}
	for _, bad := range []map[string]string{
		{"CASEVAULT_S3_ENDPOINT": "x"},
		{"CASEVAULT_S3_ENDPOINT": "x", "CASEVAULT_S3_BUCKET": "b", "CASEVAULT_S3_TLS": "maybe"},
	} {
		if _, _, err := s3.ConfigFromEnv(env(bad)); err == nil {
			t.Errorf("accepted %v", bad)
		}
	}
}

// everyCall is one call of each Blobs method on store under prefix (on
// prefix+"present" where the key matters; PutLarge writes big of unknown
// size), plus newStore: what a test expects to fail the same way when the
// server is gone or hung.
func everyCall(ctx context.Context, store *s3.Store, prefix string, big []byte, newStore func() error) map[string]func() error {
	present := prefix + "present"
	return map[string]func() error{
		"Put":      func() error { return store.Put(ctx, prefix+"new", strings.NewReader("x"), 1) },
		"PutLarge": func() error { return store.Put(ctx, prefix+"new2", bytes.NewReader(big), -1) },
		"Get": func() error {
			rc, err := store.Get(ctx, present)
			if err == nil {
				rc.Close()
			}
			return err
		},
		"GetRange": func() error {
			rc, err := store.GetRange(ctx, present, 1, 2)
			if err == nil {
				rc.Close()
			}
			return err
		},
		"Stat":   func() error { _, err := store.Stat(ctx, present); return err },
		"Delete": func() error { return store.Delete(ctx, present) },
		"List":   func() error { return store.List(ctx, prefix, func(archive.BlobInfo) error { return nil }) },
		"Ping":   func() error { return store.Ping(ctx) },
		"New":    newStore,
	}
}

// lockedBucket is a fresh bucket with object lock (and so versioning) on the
// shared server.
func lockedBucket(t *testing.T) *s3.Store {
	t.Helper()
	srv := blobtest.EnvS3(t)
	cfg := config(srv)
	cfg.Bucket = "cv-lock-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))[:min(20, len(t.Name()))] + "-" + fmt.Sprint(time.Now().UnixNano()%1e9)
	cfg.ObjectLock = true
	store, err := s3.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	on, err := store.ObjectLockEnabled(context.Background())
	if err != nil || !on {
		t.Fatalf("bucket %s: object lock %v (%v)", cfg.Bucket, on, err)
	}
	return store
}

// The suite on a versioned, object-lock bucket: Purge must remove every
// version there, not only hide the current one.
func TestConformanceObjectLockBucket(t *testing.T) {
	blobtest.Suite{Store: lockedBucket(t)}.Run(t)
}

// On a versioned bucket a Delete only adds a delete marker: the data is
// still read back by version id (the defect of issue 21 §1). Purge leaves
// no version to read; a version under a legal hold is refused and reported
// as not gone.
func TestPurgeRemovesEveryVersion(t *testing.T) {
	store := lockedBucket(t)
	ctx := context.Background()
	c := store.Client()
	versions := func(key string) []minio.ObjectInfo {
		t.Helper()
		var out []minio.ObjectInfo
		for o := range c.ListObjects(ctx, store.Bucket(), minio.ListObjectsOptions{Prefix: key, WithVersions: true, Recursive: true}) {
			if o.Err != nil {
				t.Fatal(o.Err)
			}
			if o.Key == key {
				out = append(out, o)
			}
		}
		return out
	}
	readVersion := func(key, vid string) ([]byte, error) {
		obj, err := c.GetObject(ctx, store.Bucket(), key, minio.GetObjectOptions{VersionID: vid})
		if err != nil {
			return nil, err
		}
		defer obj.Close()
		return io.ReadAll(obj)
	}

	const key = "att/cust/deleted"
	if err := store.Put(ctx, key, strings.NewReader("secret scan"), -1); err != nil {
		t.Fatal(err)
	}
	if err := store.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	var data string
	for _, v := range versions(key) {
		if !v.IsDeleteMarker {
			b, err := readVersion(key, v.VersionID)
			if err == nil {
				data = string(b)
			}
		}
	}
	if data != "secret scan" {
		t.Fatalf("after Delete the old version reads %q; the versioned bucket is expected to keep it", data)
	}

	if err := store.Purge(ctx, key); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if vs := versions(key); len(vs) != 0 {
		t.Fatalf("after Purge %d versions are listed", len(vs))
	}

	const held = "att/cust/held"
	if err := store.Put(ctx, held, strings.NewReader("evidence"), -1); err != nil {
		t.Fatal(err)
	}
	if err := store.SetLegalHold(ctx, held, true); err != nil {
		t.Fatal(err)
	}
	if err := store.Purge(ctx, held); !errors.Is(err, archive.ErrNotGone) {
		t.Fatalf("Purge of a held blob: %v, want ErrNotGone", err)
	}
	if b, err := readVersion(held, ""); err != nil || string(b) != "evidence" {
		t.Fatalf("held blob after a refused Purge: %q %v", b, err)
	}
	if err := store.SetLegalHold(ctx, held, false); err != nil {
		t.Fatal(err)
	}
	if err := store.Purge(ctx, held); err != nil {
		t.Fatalf("Purge after the hold was lifted: %v", err)
	}
}

// TestVersionLegalHold: the flag is set on a named version, so that
// version cannot be removed directly in S3 (minio-go RemoveObject with its
// version id) even after a delete marker was put on top, and is cleared on
// that same version; an unknown key or version is ErrNotFound.
func TestVersionLegalHold(t *testing.T) {
	srv := blobtest.StartVersityGW(t)
	ctx := context.Background()
	cfg := config(srv)
	cfg.Bucket += "-lock"
	cfg.ObjectLock = true
	st, err := s3.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "h/v", strings.NewReader("held"), 4); err != nil {
		t.Fatal(err)
	}
	version, err := st.SetVersionLegalHold(ctx, "h/v", "", true)
	if err != nil || version == "" {
		t.Fatalf("SetVersionLegalHold on the current version: %q, %v", version, err)
	}
	if on, err := st.VersionLegalHold(ctx, "h/v", version); err != nil || !on {
		t.Fatalf("VersionLegalHold = %v, %v; want true", on, err)
	}

	// A delete marker goes on top; the held data version stays, and
	// removing it by its id is refused.
	if err := st.Delete(ctx, "h/v"); err != nil {
		t.Fatal(err)
	}
	if err := st.Client().RemoveObject(ctx, cfg.Bucket, "h/v", minio.RemoveObjectOptions{VersionID: version}); err == nil {
		t.Fatal("removing the held version by its id succeeded")
	}
	if got, err := st.SetVersionLegalHold(ctx, "h/v", version, false); err != nil || got != version {
		t.Fatalf("clearing the flag of the version under a delete marker: %q, %v", got, err)
	}
	if err := st.Client().RemoveObject(ctx, cfg.Bucket, "h/v", minio.RemoveObjectOptions{VersionID: version}); err != nil {
		t.Fatalf("removing the version once its flag is cleared: %v", err)
	}

	for name, call := range map[string]func() error{
		"set, missing key":      func() error { _, err := st.SetVersionLegalHold(ctx, "h/missing", "", true); return err },
		"set, removed version":  func() error { _, err := st.SetVersionLegalHold(ctx, "h/v", version, false); return err },
		"read, removed version": func() error { _, err := st.VersionLegalHold(ctx, "h/v", version); return err },
	} {
		if err := call(); !errors.Is(err, archive.ErrNotFound) {
			t.Errorf("%s: %v, want ErrNotFound", name, err)
		}
	}
}

// TestObjectLockRequiredOnExistingBucket: --s3-object-lock=true on a bucket
// that exists without object lock refuses to start (it cannot be turned on
// here, and running on would place holds that set no flag).
func TestObjectLockRequiredOnExistingBucket(t *testing.T) {
	srv := blobtest.StartVersityGW(t)
	ctx := context.Background()
	cfg := config(srv)
	if _, err := s3.New(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	cfg.ObjectLock = true
	if _, err := s3.New(ctx, cfg); !errors.Is(err, s3.ErrNoObjectLock) {
		t.Fatalf("New with object lock on a plain existing bucket: %v, want ErrNoObjectLock", err)
	}

	// A bucket it creates, or that has object lock, is fine, again and again.
	cfg.Bucket += "-lock"
	for range 2 {
		if _, err := s3.New(ctx, cfg); err != nil {
			t.Fatalf("New with object lock: %v", err)
		}
	}
}
