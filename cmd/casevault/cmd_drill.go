package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/archive/local"
	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
)

// drillReport is what a disaster-recovery drill found.
type drillReport struct {
	Backup             string   `json:"backup"`
	Scratch            string   `json:"scratch"`
	TablesMismatched   int      `json:"tables_mismatched"`
	AuditOK            bool     `json:"audit_ok"`
	AuditEvents        int64    `json:"audit_events"`
	AttachmentsChecked int      `json:"attachments_checked"`
	AttachmentsFailed  int      `json:"attachments_failed"`
	Removed            bool     `json:"scratch_removed"`
	Problems           []string `json:"problems"`
}

func newBackupDrillCmd(cfg *config, opts *backupOptions) *cobra.Command {
	var sample int
	cmd := &cobra.Command{
		Use:   "drill [--sample N]",
		Short: "Restore the latest backup into a scratch directory, open it with the master key, verify its audit chain and a sample of attachments, remove it",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep := newReporter(cmd, opts.json)
			return rep.fail(runBackupDrill(cmd.Context(), cfg, sample, opts.allowUnsigned, rep))
		},
	}
	cmd.Flags().IntVar(&sample, "sample", 20, "attachments to decrypt and read in full (random sample)")
	cmd.Flags().BoolVar(&opts.allowUnsigned, "allow-unsigned", false, unsignedHelp)
	return cfg.flags(cmd, useDB|useBlobs|useBackup)
}

// runBackupDrill runs the drill and reports it; problems exit 4.
func runBackupDrill(ctx context.Context, cfg *config, sample int, allowUnsigned bool, rep *reporter) error {
	if sample < 0 {
		return usagef("--sample must not be negative")
	}
	out, err := drill(ctx, cfg, sample, allowUnsigned, rep.progress)
	if err != nil {
		return err
	}
	if err := rep.done(out, func(w io.Writer) {
		fmt.Fprintf(w, "drill of backup %s in %s (removed: %v)\n", out.Backup, out.Scratch, out.Removed)
		fmt.Fprintf(w, "audit chain: ok %v (%d events); attachments: %d decrypted and read, %d failed\n", out.AuditOK, out.AuditEvents, out.AttachmentsChecked, out.AttachmentsFailed)
		for _, p := range out.Problems {
			fmt.Fprintln(w, "  PROBLEM:", p)
		}
		if len(out.Problems) == 0 {
			fmt.Fprintln(w, "the latest backup restores and opens with this instance's master key")
		}
	}); err != nil {
		return err
	}
	if len(out.Problems) > 0 {
		return exitCodeError{exitDamaged, fmt.Errorf("drill of backup %s: %d problems", out.Backup, len(out.Problems))}
	}
	return nil
}

// drill is the disaster-recovery steps on a scratch directory: it proves
// the latest backup restores, that this instance's master key opens it,
// that its audit chain verifies and that attachments decrypt. Problems
// found are in the report; an error means the drill could not run.
func drill(ctx context.Context, cfg *config, sample int, allowUnsigned bool, progress func(backup.Progress)) (drillReport, error) {
	repo, keys, err := openRestoreRepo(cfg, allowUnsigned, nil)
	if err != nil {
		return drillReport{}, err
	}
	id, err := repo.Resolve(ctx, backup.Latest)
	if err != nil {
		return drillReport{}, err
	}
	master, err := archive.LoadMasterKey(cfg.DataDir, cfg.MasterKeyHex)
	if err != nil {
		return drillReport{}, fmt.Errorf("%w: the drill needs the instance's master key: %w", archive.ErrNoMasterKey, err)
	}

	scratch, err := os.MkdirTemp("", "casevault-drill-")
	if err != nil {
		return drillReport{}, fmt.Errorf("drill: %w", err)
	}
	defer os.RemoveAll(scratch) // also when the drill fails
	out := drillReport{Backup: id, Scratch: scratch, Problems: []string{}}
	target := filepath.Join(scratch, "data")

	// The scratch restore gets its own local blob store, never the
	// instance's bucket, and no live tombstones (the drill proves the
	// backups alone).
	fr := backup.FullRestore{Repo: repo, Identity: keys.Identity, To: target, Synchronous: cfg.SQLiteSync,
		Blobs:    func(ctx context.Context, t *backup.Target) (archive.Blobs, error) { return localBlobs(t.Dir) },
		Audit:    restoreAudit,
		Progress: progress, Actor: cases.CLIActor()}
	res, err := fr.Run(ctx, id)
	if err != nil {
		return out, err
	}
	if out.TablesMismatched = res.Mismatched(); out.TablesMismatched > 0 {
		out.Problems = append(out.Problems, fmt.Sprintf("%d tables do not match the backup's digests", out.TablesMismatched))
	}

	if err := drillCheck(ctx, target, master, sample, &out); err != nil {
		return out, err
	}

	out.Removed = os.RemoveAll(scratch) == nil
	return out, nil
}

// localBlobs is the attachment store under a data directory.
func localBlobs(dir string) (archive.Blobs, error) { return local.New(filepath.Join(dir, "blobs")) }

// drillCheck opens the restored directory as serve would (master key proven
// against its data keys), verifies the audit chain and reads a sample of
// attachments in full (decryption authenticates every chunk).
func drillCheck(ctx context.Context, dir string, master []byte, sample int, out *drillReport) error {
	db, err := sqldb.Open(ctx, sqldb.Config{Path: filepath.Join(dir, "casevault.db")})
	if err != nil {
		return err
	}
	defer db.Close()
	if err := archive.CheckMasterKey(ctx, db, master, time.Now()); err != nil {
		return err
	}

	av, err := audit.New(db).Verify(ctx)
	if err != nil {
		return err
	}
	out.AuditOK, out.AuditEvents = av.OK, av.Events
	if !av.OK {
		out.Problems = append(out.Problems, "audit chain: "+av.Reason)
	}

	blobs, err := localBlobs(dir)
	if err != nil {
		return err
	}
	ring, err := archive.NewKeyring(db, master, archive.KeyringOptions{})
	if err != nil {
		return err
	}
	att := archive.NewAttachments(db, blobs, ring, archive.AttachmentOptions{})
	ids, err := sqldb.Collect(ctx, db.Read, `SELECT a.id FROM attachments a JOIN customer_keys k ON k.customer_id = a.customer_id AND k.destroyed_at IS NULL ORDER BY random() LIMIT ?`,
		[]any{sample}, func(rows *sql.Rows) (string, error) {
			var id string
			return id, rows.Scan(&id)
		})
	if err != nil {
		return fmt.Errorf("drill: %w", err)
	}
	for _, id := range ids {
		_, rc, err := att.Open(ctx, id)
		if err == nil {
			_, err = io.Copy(io.Discard, rc)
			rc.Close()
		}
		if err != nil {
			out.AttachmentsFailed++
			out.Problems = append(out.Problems, fmt.Sprintf("attachment %s: %v", id, err))
			continue
		}
		out.AttachmentsChecked++
	}
	return nil
}
