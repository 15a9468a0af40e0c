package main

import (
	"log/slog"
	"os"
	"path/filepath"
)

// warnLocalRepo warns when backups would start a fresh repository on the
// disk that holds the data: typically a restored instance whose operator did
// not carry over the repository setting (its backups would go to
// <data-dir>/backups, lost with the disk they should survive).
func warnLocalRepo(cfg *config, log *slog.Logger) {
	if cfg.Backup.S3.Endpoint != "" || cfg.Backup.Dir == "" {
		return
	}
	if _, err := os.Stat(filepath.Join(cfg.Backup.Dir, "snapshots")); err == nil {
		return // an existing repository: the operator chose it
	}
	if sameDisk(cfg.Backup.Dir, cfg.DataDir) {
		log.Warn("backups would start a new, empty repository on the same disk as the data: a disk failure loses both; "+
			"point --backup-dir or --backup-s3-* at the instance's repository (after a restore: the one the backup came from)",
			"backup_dir", cfg.Backup.Dir, "data_dir", cfg.DataDir)
	}
}
