package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/sqldb"
)

// masterKey returns the master key for the database db, proven against it
// (archive.CheckMasterKey). A key is generated only for a database that
// has none yet: a replica or a restored data directory started without the
// instance's key must refuse, not make its own (issue 20 §14).
func masterKey(ctx context.Context, cfg *config, db *sqldb.DB) ([]byte, error) {
	path := filepath.Join(cfg.DataDir, archive.MasterKeyFile)
	key, err := archive.LoadMasterKey(cfg.DataDir, cfg.MasterKeyHex)
	if errors.Is(err, fs.ErrNotExist) {
		has, herr := archive.StoreHasKeys(ctx, db)
		if herr != nil {
			return nil, herr
		}
		if has {
			return nil, fmt.Errorf("%w: neither CASEVAULT_MASTER_KEY nor %s is set; give this process the master key of the instance "+
				"(every replica and every restore of it uses the same key: copy master.key, or set CASEVAULT_MASTER_KEY)", archive.ErrNoMasterKey, path)
		}
		key, err = archive.LoadOrCreateMasterKey(cfg.DataDir, cfg.MasterKeyHex)
	}
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}

	if err := archive.CheckMasterKey(ctx, db, key, time.Now()); err != nil {
		if errors.Is(err, archive.ErrWrongMasterKey) {
			return nil, fmt.Errorf("%w; refusing to start: give this process the instance's master key (CASEVAULT_MASTER_KEY or %s), the one the other replicas and the original instance use", err, path)
		}
		return nil, err
	}
	return key, nil
}
