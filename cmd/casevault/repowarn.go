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
	if msg := localRepoWarning(cfg, sameDisk); msg != "" {
		log.Warn(msg, "backup_dir", cfg.Backup.Dir, "data_dir", cfg.DataDir)
	}
}

// localRepoWarningText is the warning serve logs (tests look for it).
const localRepoWarningText = "backups would start a new, empty repository on the same disk as the data: a disk failure loses both; " +
	"point --backup-dir or --backup-s3-* at the instance's repository (after a restore: the one the backup came from)"

// localRepoWarning is the warning for cfg's backup repository, or "" when
// there is none to give: an S3 repository, an existing repository (one
// with snapshots: the operator chose it) or one on another disk. same
// says whether two paths are on one disk (sameDisk; tests give another
// answer for the other-disk case, which a test machine cannot set up).
func localRepoWarning(cfg *config, same func(a, b string) bool) string {
	if cfg.Backup.S3.Endpoint != "" || cfg.Backup.Dir == "" {
		return ""
	}
	if _, err := os.Stat(filepath.Join(cfg.Backup.Dir, "snapshots")); err == nil {
		return "" // an existing repository: the operator chose it
	}
	if same(existingAncestor(cfg.Backup.Dir), existingAncestor(cfg.DataDir)) {
		return localRepoWarningText
	}
	return ""
}

// existingAncestor is p, or its nearest ancestor that exists: a repository
// not created yet lands on the disk of the directory it will be made in.
func existingAncestor(p string) string {
	for {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := filepath.Dir(p)
		if parent == p {
			return p
		}
		p = parent
	}
}
