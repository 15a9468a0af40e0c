package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/archive/local"
	"github.com/casevault/casevault/archive/s3"
	"github.com/casevault/casevault/bg"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
)

// openBackupTarget returns the backup repository's blob store: an S3
// bucket (possibly another endpoint, with other credentials, than the
// attachments') or a local directory.
func openBackupTarget(cfg *config) (archive.Blobs, string, error) {
	b := cfg.Backup
	if b.S3.Endpoint == "" {
		st, err := local.New(b.Dir)
		if err != nil {
			return nil, "", fmt.Errorf("backup dir: %w", err)
		}
		return st, b.Dir, nil
	}
	where := fmt.Sprintf("s3 %s/%s/%s", b.S3.Endpoint, b.S3.Bucket, b.Prefix)
	return s3.NewLazy(b.S3.client(), "backup target "+where), where, nil
}

// openBackupRepo opens the repository with the manifest signing key;
// allowUnsigned accepts backups written before manifests were signed, and
// createKey lets a backup run create the master key of a new instance.
func openBackupRepo(cfg *config, allowUnsigned, createKey bool) (*backup.Repo, archive.Blobs, string, error) {
	signer, err := backupSigner(cfg, createKey)
	if err != nil {
		return nil, nil, "", err
	}
	return openBackupRepoSigned(cfg, signer, allowUnsigned)
}

// openBackupRepoSigned opens the repository authenticating manifests with
// signer (the master key of the instance that wrote them).
func openBackupRepoSigned(cfg *config, signer *backup.SigningKey, allowUnsigned bool) (*backup.Repo, archive.Blobs, string, error) {
	st, where, err := openBackupTarget(cfg)
	if err != nil {
		return nil, nil, "", err
	}
	prefix := ""
	if cfg.Backup.S3.Endpoint != "" {
		prefix = cfg.Backup.Prefix
	}
	repo, err := backup.OpenRepo(st, prefix, backup.RepoOptions{Signer: signer, AllowUnsigned: allowUnsigned})
	if err != nil {
		return nil, nil, "", err
	}
	return repo, st, where, nil
}

// backupSigner derives the manifest signing key from the master key
// (CASEVAULT_MASTER_KEY or <data-dir>/master.key). Only a backup run may
// create the master key (as the server does at first start); reading
// backups never does: a restore on a new host must use the lost instance's.
func backupSigner(cfg *config, create bool) (*backup.SigningKey, error) {
	if !create && strings.TrimSpace(cfg.MasterKeyHex) == "" && !fileExists(filepath.Join(cfg.DataDir, archive.MasterKeyFile)) {
		return nil, fmt.Errorf("%w: set CASEVAULT_MASTER_KEY (or put master.key in %s) to the master key of the instance that wrote the backups", backup.ErrNoSigningKey, cfg.DataDir)
	}
	master, err := archive.LoadOrCreateMasterKey(cfg.DataDir, cfg.MasterKeyHex)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	return backup.DeriveSigningKey(master)
}

// backupKeys resolves the backup key pair. create lets a backup run make
// <data-dir>/backup.key when no key is configured; the master key is
// refused as a backup key.
func backupKeys(cfg *config, create bool) (backup.Keys, error) {
	master := cfg.MasterKeyHex
	if master == "" {
		if b, err := os.ReadFile(filepath.Join(cfg.DataDir, archive.MasterKeyFile)); err == nil {
			master = strings.TrimSpace(string(b))
		}
	}
	return backup.LoadKeys(backup.KeyConfig{Recipients: cfg.Backup.Recipients, IdentityFile: cfg.Backup.IdentityFile,
		DefaultIdentityFile: filepath.Join(cfg.DataDir, "backup.key"), MasterKeyHex: master}, create)
}

// openRestoreRepo opens the repository and the identity every restore needs.
// sourceMaster, when set, is the master key of the instance that wrote the
// backups (another than this one): it authenticates their manifests.
func openRestoreRepo(cfg *config, allowUnsigned bool, sourceMaster []byte) (*backup.Repo, backup.Keys, error) {
	var repo *backup.Repo
	var err error
	if sourceMaster != nil {
		signer, serr := backup.DeriveSigningKey(sourceMaster)
		if serr != nil {
			return nil, backup.Keys{}, serr
		}
		repo, _, _, err = openBackupRepoSigned(cfg, signer, allowUnsigned)
	} else {
		repo, _, _, err = openBackupRepo(cfg, allowUnsigned, false)
	}
	if err != nil {
		return nil, backup.Keys{}, err
	}
	keys, err := backupKeys(cfg, false)
	if err != nil {
		return nil, backup.Keys{}, err
	}
	if keys.Identity == nil {
		return nil, backup.Keys{}, fmt.Errorf("%w: set --backup-identity-file (or put the key at %s)", backup.ErrNoKey, filepath.Join(cfg.DataDir, "backup.key"))
	}
	return repo, keys, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// backupParts is the wired backup service of a server.
type backupParts struct {
	svc    *backup.Service
	target archive.Blobs
}

// newBackupParts builds the server's backup service. The key pair is made
// here when none is configured, so the first scheduled or requested run
// can encrypt.
func newBackupParts(cfg *config, db *sqldb.DB, blobs archive.Blobs, hook cases.TxHook, log *slog.Logger, guard *bg.Guard,
	precheck func(context.Context) error) (*backupParts, backup.Keys, error) {
	repo, target, where, err := openBackupRepo(cfg, false, true)
	if err != nil {
		return nil, backup.Keys{}, err
	}
	keyFile := filepath.Join(cfg.DataDir, "backup.key")
	_, statErr := os.Stat(keyFile)
	keys, err := backupKeys(cfg, true)
	if err != nil {
		return nil, backup.Keys{}, err
	}
	if errors.Is(statErr, os.ErrNotExist) && cfg.Backup.Recipients == "" && cfg.Backup.IdentityFile == "" {
		log.Warn("generated a backup key: copy it off this machine, no backup can be restored without it", "file", keyFile)
	}
	svc := backup.New(db, repo, backup.Options{Blobs: blobs, Keys: keys, OnChange: hook, Guard: guard, Precheck: precheck})
	log.Info("backups", "target", where, "schedule", cfg.Backup.Cron, "recipients", len(keys.Recipients))
	warnLocalRepo(cfg, log)
	return &backupParts{svc: svc, target: target}, keys, nil
}
