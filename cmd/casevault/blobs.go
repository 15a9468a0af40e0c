package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/local"
	"github.com/casevault/casevault/archive/s3"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// openBlobs returns the attachment blob store: S3 when an endpoint is
// configured, else the local disk under the data dir.
func openBlobs(ctx context.Context, cfg *config) (archive.Blobs, string, error) {
	if cfg.S3.Endpoint == "" {
		st, err := local.New(filepath.Join(cfg.DataDir, "blobs"))
		if err != nil {
			return nil, "", fmt.Errorf("local blobs: %w", err)
		}
		return st, "local", nil
	}
	st, err := s3.New(ctx, cfg.S3.client())
	if errors.Is(err, s3.ErrNoObjectLock) {
		// A setting the bucket cannot honour: refuse to start (exit 2)
		// rather than run with holds that set no flag.
		return nil, "", usagef("--s3-object-lock=true: s3 %s/%s: %w", cfg.S3.Endpoint, cfg.S3.Bucket, err)
	}
	if err != nil {
		return nil, "", fmt.Errorf("s3 %s/%s: %w", cfg.S3.Endpoint, cfg.S3.Bucket, err)
	}
	return st, "s3", nil
}

// openAttachments builds the attachment service with its keyring.
func openAttachments(ctx context.Context, cfg *config, db *sqldb.DB) (*archive.Attachments, archive.Blobs, string, error) {
	keys, err := openKeyring(ctx, cfg, db)
	if err != nil {
		return nil, nil, "", err
	}
	return openAttachmentsWith(ctx, cfg, db, keys)
}

// openAttachmentsWith builds the attachment service over keys.
func openAttachmentsWith(ctx context.Context, cfg *config, db *sqldb.DB, keys *archive.Keyring) (*archive.Attachments, archive.Blobs, string, error) {
	blobs, kind, err := openBlobs(ctx, cfg)
	if err != nil {
		return nil, nil, "", err
	}
	return archive.NewAttachments(db, blobs, keys, archive.AttachmentOptions{MaxSize: int64(cfg.AttachmentLimit)}), blobs, kind, nil
}

// openKeyring is the customers' data keys under the instance's master key.
func openKeyring(ctx context.Context, cfg *config, db *sqldb.DB) (*archive.Keyring, error) {
	master, err := masterKey(ctx, cfg, db)
	if err != nil {
		return nil, err
	}
	return archive.NewKeyring(db, master, archive.KeyringOptions{})
}

// storeFields seals the store's personal fields under the instance's
// keyring (sqlstore/fields.go): every store this binary opens on an
// instance's database uses it, or sealed fields would not open.
func storeFields(ctx context.Context, cfg *config, db *sqldb.DB) (*sqlstore.Fields, error) {
	_, fields, err := openSealing(ctx, cfg, db)
	return fields, err
}

// openSealing is the keyring and the store's field sealing over it, with
// the lookup hashes' key, all from the instance's master key.
func openSealing(ctx context.Context, cfg *config, db *sqldb.DB) (*archive.Keyring, *sqlstore.Fields, error) {
	master, err := masterKey(ctx, cfg, db)
	if err != nil {
		return nil, nil, err
	}
	keys, err := archive.NewKeyring(db, master, archive.KeyringOptions{})
	if err != nil {
		return nil, nil, err
	}
	lookup, err := sqlstore.LookupKey(master)
	if err != nil {
		return nil, nil, err
	}
	return keys, sqlstore.NewFields(keys, lookup), nil
}

// client is the s3 package's configuration of an endpoint.
func (c s3Config) client() s3.Config {
	return s3.Config{Endpoint: c.Endpoint, Bucket: c.Bucket, AccessKey: c.AccessKey, SecretKey: c.SecretKey,
		Region: c.Region, TLS: c.TLS, ObjectLock: c.ObjectLock, Timeout: c.Timeout}
}
