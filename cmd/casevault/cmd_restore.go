package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/archive/local"
	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
)

type restoreOptions struct {
	to, caseID        string
	noLive, overwrite bool
}

func newBackupRestoreCmd(cfg *config, bopts *backupOptions) *cobra.Command {
	var opts restoreOptions
	cmd := &cobra.Command{
		Use:   "restore ID (--to DATA_DIR|postgres://URL [--no-live] | --case CASE_ID [--overwrite])",
		Short: "Restore a whole backup into an empty target, or one case into this instance",
		Long: "--to DIR restores into DIR/casevault.db (SQLite) with the attachments in the configured S3 store, or\n" +
			"DIR/blobs when none is configured; --to postgres://... restores into that (empty) database. Tombstones\n" +
			"newer than the backup (later backups and, unless --no-live, this instance's database) are replayed, so\n" +
			"nothing deleted since comes back; the search index is rebuilt. The target needs the same master key.\n" +
			"--case restores one case into this instance (running or not), never over held or deleted data.",
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := opts.check(); err != nil {
				return err
			}
			rep := newReporter(cmd, bopts.json)
			if opts.caseID != "" {
				return rep.fail(runRestoreCase(cmd.Context(), cfg, a[0], opts, bopts.allowUnsigned, rep))
			}
			return rep.fail(runRestore(cmd.Context(), cfg, a[0], opts, bopts.allowUnsigned, rep))
		},
	}
	cmd.Flags().StringVar(&opts.to, "to", "", "new data directory, or postgres:// URL of an empty database")
	cmd.Flags().BoolVar(&opts.noLive, "no-live", false, "do not replay tombstones from this instance's database")
	cmd.Flags().StringVar(&opts.caseID, "case", "", "restore only this case into this instance")
	cmd.Flags().BoolVar(&opts.overwrite, "overwrite", false, "with --case: replace the live case row with the backup's (refused when held)")
	cmd.Flags().BoolVar(&bopts.allowUnsigned, "allow-unsigned", false, unsignedHelp)
	return cfg.flags(cmd, useDB|useBlobs|useSearch|useBackup)
}

func (o restoreOptions) check() error {
	switch {
	case (o.to == "") == (o.caseID == ""):
		return usagef("give exactly one of --to and --case")
	case o.caseID != "" && o.noLive:
		return usagef("--no-live goes with --to")
	case o.to != "" && o.overwrite:
		return usagef("--overwrite goes with --case")
	}
	return nil
}

// runRestore restores backup id into an empty target (backup.FullRestore)
// wired with this binary's blob stores, audit log, legal-hold flags and
// search engines.
func runRestore(ctx context.Context, cfg *config, id string, opts restoreOptions, allowUnsigned bool, rep *reporter) error {
	repo, keys, err := openRestoreRepo(cfg, allowUnsigned)
	if err != nil {
		return err
	}

	fr := backup.FullRestore{Repo: repo, Identity: keys.Identity, To: opts.to, Synchronous: cfg.SQLiteSync,
		Blobs:     func(ctx context.Context, t *backup.Target) (archive.Blobs, error) { return restoreBlobs(ctx, cfg, t) },
		Audit:     restoreAudit,
		HoldFlags: reapplyHoldFlags,
		Index: func(ctx context.Context, db *sqldb.DB, dir string) (int64, error) {
			return rebuildIndex(ctx, cfg, db, dir)
		},
		Progress: rep.progress, Actor: cases.CLIActor()}
	if !opts.noLive {
		fr.Live = &sqldb.Config{URL: cfg.DatabaseURL, Path: filepath.Join(cfg.DataDir, "casevault.db"), Synchronous: cfg.SQLiteSync}
	}
	res, err := fr.Run(ctx, id)
	if err != nil {
		return err
	}

	out := restoreResult{res}
	if err := rep.done(res, func(w io.Writer) { out.print(w, res.Dir, filepath.Join(cfg.DataDir, archive.MasterKeyFile)) }); err != nil {
		return err
	}
	if bad := res.Mismatched(); bad > 0 {
		return exitCodeError{exitDamaged, fmt.Errorf("%d restored tables do not match the backup's digests", bad)}
	}
	return nil
}

// restoreAudit audits a full restore in the target's own audit log.
func restoreAudit(db *sqldb.DB) (cases.TxHook, func()) {
	alog := audit.New(db)
	return auditSink{log: alog}.hook, func() { alog.Close(context.Background()) }
}

// restoreBlobs is the target's attachment store: the configured S3 bucket,
// else DIR/blobs of a directory target (a database URL target shares this
// instance's local store).
func restoreBlobs(ctx context.Context, cfg *config, target *backup.Target) (archive.Blobs, error) {
	if cfg.S3.Endpoint != "" || target.Dir == "" {
		blobs, _, err := openBlobs(ctx, cfg)
		return blobs, err
	}
	return local.New(filepath.Join(target.Dir, "blobs"))
}

// restoreResult prints what a full restore reports.
type restoreResult struct{ backup.FullRestoreReport }

func (r restoreResult) print(w io.Writer, dir, masterKey string) {
	fmt.Fprintf(w, "restored backup %s (snapshot %s) into %s\n\n", r.Backup, r.SnapshotAt, r.Target)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tROWS\tSHA-256 (BACKUP)\tMATCH")
	for _, t := range r.Tables {
		m := "yes"
		if !t.Match {
			m = "NO (restored " + t.Restored + ")"
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", t.Name, t.Rows, t.SHA256, m)
	}
	tw.Flush()

	fmt.Fprintf(w, "\nattachments: %d restored (%s), %d already present, %d missing in the backup\n", r.Blobs, humanBytes(r.BlobBytes), r.BlobsPresent, r.Missing)
	ts := r.Tombstones
	fmt.Fprintf(w, "tombstones replayed from %s: %d dispositions (%d contacts deleted, %d anonymized, %d redactions, %d cases deleted), %d customer keys destroyed, %d blobs removed\n",
		orNone(ts.Sources), ts.Dispositions, ts.Deleted, ts.Anonymized, ts.Redacted, ts.CasesDeleted, ts.KeysDestroyed, ts.BlobsRemoved)
	if r.HoldFlags > 0 {
		fmt.Fprintf(w, "legal holds: S3 legal-hold flag set on %d restored blobs\n", r.HoldFlags)
	}
	if r.IndexError != "" {
		fmt.Fprintf(w, "search index NOT rebuilt: %s (run `casevault reindex` against the target)\n", r.IndexError)
	} else {
		fmt.Fprintf(w, "search index rebuilt: %d cases\n", r.IndexedCases)
	}
	if dir != "" {
		fmt.Fprintf(w, "serve it with the same master key: copy %s to %s or set CASEVAULT_MASTER_KEY\n", masterKey, dir)
	}
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "nothing newer"
	}
	return strings.Join(s, ", ")
}

// runRestoreCase puts one case back into this instance.
func runRestoreCase(ctx context.Context, cfg *config, id string, opts restoreOptions, allowUnsigned bool, rep *reporter) error {
	repo, keys, err := openRestoreRepo(cfg, allowUnsigned)
	if err != nil {
		return err
	}
	return withEnv(ctx, cfg, func(env *cliEnv) error {
		blobs, _, err := openBlobs(ctx, cfg)
		if err != nil {
			return err
		}
		// Query holds need the search index the server owns; without a
		// matcher they count as covering (the safe side).
		holds := retention.NewHolds(env.db, nil)
		cr, err := repo.RestoreCase(ctx, id, opts.caseID, backup.CaseRestoreOptions{DB: env.db, Blobs: blobs, Identity: keys.Identity, Overwrite: opts.overwrite,
			HeldBy: holds.CoveringCase, Actor: cases.CLIActor(), OnChange: auditSink{log: env.log}.hook})
		if err != nil {
			return err
		}
		return rep.done(cr, func(w io.Writer) {
			state := map[bool]string{true: "restored", false: "already present"}[cr.CaseRestored]
			if cr.CaseOverwritten {
				state += " (overwritten)"
			}
			fmt.Fprintf(w, "case %s from backup %s: case %s; customer restored %v, key restored %v\n", cr.Case, cr.Backup, state, cr.CustomerRestored, cr.KeyRestored)
			fmt.Fprintf(w, "contacts: %d restored, %d already present, %d skipped (deleted since)\n", cr.Contacts, cr.ContactsPresent, cr.ContactsDeleted)
			fmt.Fprintf(w, "attachments: %d restored (%d blobs written), %d skipped (erased or missing)\n", cr.Attachments, cr.Blobs, cr.AttachmentsGone)
		})
	})
}
