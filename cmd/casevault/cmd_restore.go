package main

import (
	"context"
	"errors"
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
	to, caseID, undoRun            string
	noLive, overwrite, yes, dryRun bool
	sourceMasterKeyFile            string
}

func newBackupRestoreCmd(cfg *config, bopts *backupOptions) *cobra.Command {
	var opts restoreOptions
	cmd := &cobra.Command{
		Use:   "restore ID|latest (--to DATA_DIR|postgres://URL [--no-live] [--dry-run] | --case CASE_ID [--overwrite] [--yes] | --undo-run RUN_ID [--yes|--dry-run])",
		Short: "Restore a whole backup into an empty target, one case into this instance, or undo a mistaken disposal",
		Long: "--to DIR restores into DIR/casevault.db (SQLite) with the attachments in the configured S3 store, or\n" +
			"DIR/blobs when none is configured; --to postgres://... restores into that (empty) database. Tombstones\n" +
			"newer than the backup (later backups and, unless --no-live, this instance's database) are replayed, so\n" +
			"nothing deleted since comes back, and so is the security state (token revocations, legal holds, retention\n" +
			"schedule versions); the search index is rebuilt. The target needs the same master key.\n" +
			"--case restores one case into this instance (running or not), never over held data; a case deleted since\n" +
			"(by request or by retention) comes back only with --yes (an audited undo of the deletion).\n" +
			"--undo-run RUN_ID brings back what that retention run deleted, from a backup taken before it, with --yes\n" +
			"(without it: what it would do, exit 2). Erasures and anything an active legal hold covers stay final.\n" +
			"--source-master-key-file: the backup comes from an instance with another master key; its manifests are\n" +
			"authenticated and the restored customers' data keys re-wrapped under this instance's key.",
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, a []string) error {
			if err := opts.check(); err != nil {
				return err
			}
			rep := newReporter(cmd, bopts.json)
			switch {
			case opts.undoRun != "" || opts.caseID != "":
				return rep.fail(runRestoreCase(cmd.Context(), cfg, a[0], opts, bopts.allowUnsigned, rep))
			case opts.dryRun:
				return rep.fail(runRestorePlan(cmd.Context(), cfg, a[0], opts, bopts.allowUnsigned, rep))
			}
			return rep.fail(runRestore(cmd.Context(), cfg, a[0], opts, bopts.allowUnsigned, rep))
		},
	}
	cmd.Flags().StringVar(&opts.to, "to", "", "new data directory, or postgres:// URL of an empty database")
	cmd.Flags().BoolVar(&opts.noLive, "no-live", false, "do not replay tombstones from this instance's database")
	cmd.Flags().StringVar(&opts.caseID, "case", "", "restore only this case into this instance")
	cmd.Flags().BoolVar(&opts.overwrite, "overwrite", false, "with --case: replace the live case row with the backup's (refused when held)")
	cmd.Flags().StringVar(&opts.undoRun, "undo-run", "", "bring back what this retention run deleted (from a backup taken before it)")
	cmd.Flags().BoolVar(&opts.yes, "yes", false, "confirm an undo (--undo-run, or --case of a deleted case)")
	cmd.Flags().BoolVar(&opts.dryRun, "dry-run", false, "say what the restore or undo would do, change nothing")
	cmd.Flags().StringVar(&opts.sourceMasterKeyFile, "source-master-key-file", "", "with --case/--undo-run: master.key of the instance that wrote the backup, when it is not this one's")
	cmd.Flags().BoolVar(&bopts.allowUnsigned, "allow-unsigned", false, unsignedHelp)
	return cfg.flags(cmd, useDB|useBlobs|useSearch|useBackup)
}

func (o restoreOptions) check() error {
	n := 0
	for _, s := range []string{o.to, o.caseID, o.undoRun} {
		if s != "" {
			n++
		}
	}
	switch {
	case n != 1:
		return usagef("give exactly one of --to, --case and --undo-run")
	case o.to == "" && o.noLive:
		return usagef("--no-live goes with --to")
	case o.caseID == "" && o.overwrite:
		return usagef("--overwrite goes with --case")
	case o.to != "" && (o.yes || o.sourceMasterKeyFile != ""):
		return usagef("--yes and --source-master-key-file go with --case or --undo-run")
	case o.yes && o.dryRun:
		return usagef("--yes and --dry-run exclude each other")
	case o.dryRun && o.caseID != "":
		return usagef("--dry-run goes with --to or --undo-run")
	}
	return nil
}

// runRestore restores backup id into an empty target (backup.FullRestore)
// wired with this binary's blob stores, audit log, legal-hold flags and
// search engines.
func runRestore(ctx context.Context, cfg *config, id string, opts restoreOptions, allowUnsigned bool, rep *reporter) error {
	repo, keys, err := openRestoreRepo(cfg, allowUnsigned, nil)
	if err != nil {
		return err
	}
	if id, err = repo.Resolve(ctx, id); err != nil {
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

	out := restoreResult{FullRestoreReport: res, CarryOver: carryOver(cfg, res.Dir)}
	if err := rep.done(out, out.print); err != nil {
		return err
	}
	if bad := res.Mismatched(); bad > 0 {
		return exitCodeError{exitDamaged, fmt.Errorf("%d restored tables do not match the backup's digests", bad)}
	}
	return nil
}

// carryOver says what the operator must give the restored instance: the
// backup holds none of it, and without it the instance refuses to start
// (master key), or its next backup makes a new key pair and a new, empty
// repository beside the data.
func carryOver(cfg *config, dir string) []string {
	target := dir
	if target == "" {
		target = "the restored instance's data directory"
	}
	_, where, err := openBackupTarget(cfg)
	if err != nil {
		where = "this instance's backup repository"
	}
	identity := cfg.Backup.IdentityFile
	if identity == "" {
		identity = filepath.Join(cfg.DataDir, "backup.key")
	}
	return []string{
		fmt.Sprintf("master key: copy %s to %s/master.key (mode 0600) or set CASEVAULT_MASTER_KEY; without it `serve` refuses to start (exit %d)",
			filepath.Join(cfg.DataDir, archive.MasterKeyFile), target, exitMasterKey),
		fmt.Sprintf("backup identity: copy %s to %s/backup.key, or set --backup-identity-file and --backup-recipients; otherwise the first backup makes a new key pair", identity, target),
		fmt.Sprintf("backup repository: point --backup-dir or --backup-s3-* at %s; otherwise backups start a new, empty repository (by default inside the data directory, on the same disk)", where),
	}
}

// runRestorePlan says what restoring backup id would bring back and
// replay, without opening or creating the target.
func runRestorePlan(ctx context.Context, cfg *config, id string, opts restoreOptions, allowUnsigned bool, rep *reporter) error {
	repo, keys, err := openRestoreRepo(cfg, allowUnsigned, nil)
	if err != nil {
		return err
	}
	if id, err = repo.Resolve(ctx, id); err != nil {
		return err
	}
	plan, err := repo.Plan(ctx, id, keys.Identity)
	if err != nil {
		return err
	}
	plan.Target = opts.to
	plan.LiveReplayed = !opts.noLive
	return rep.done(plan, func(w io.Writer) {
		fmt.Fprintf(w, "dry run: backup %s (snapshot %s) would be restored into %s\n", plan.Backup, plan.SnapshotAt, sqldb.Redact(plan.Target))
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TABLE\tROWS")
		for _, t := range plan.Tables {
			fmt.Fprintf(tw, "%s\t%d\n", t.Name, t.Rows)
		}
		tw.Flush()
		fmt.Fprintf(w, "attachments: %d blobs (%s)\n", plan.Blobs, humanBytes(plan.BlobBytes))
		if e := plan.Escrow; e != nil {
			fmt.Fprintf(w, "customers: %d would be restored readable (key in the key escrow), %d stay sealed (erased since the backup: escrow entry gone)\n", e.InEscrow, e.Erased)
		}
		live := "and this instance's database"
		if !plan.LiveReplayed {
			live = "(not this instance's database: --no-live)"
		}
		fmt.Fprintf(w, "tombstones and security state would be replayed from %d later backups %s\n", len(plan.LaterBackups), live)
		fmt.Fprintln(w, "nothing was changed")
	})
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
type restoreResult struct {
	backup.FullRestoreReport
	CarryOver []string `json:"carry_over"`
}

func (r restoreResult) print(w io.Writer) {
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
	if r.KeysFromEscrow+r.KeysNotInEscrow > 0 {
		fmt.Fprintf(w, "data keys: %d from the key escrow, %d customers without an entry (erased since: their key is destroyed)\n", r.KeysFromEscrow, r.KeysNotInEscrow)
	}
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
	sec := ts.Security
	if sec.Empty() {
		fmt.Fprintln(w, "security state: nothing changed since the backup")
	} else {
		fmt.Fprintf(w, "security state carried forward (never rolled back): tokens revoked %s; holds placed %s; holds released or changed %s; schedule versions added %v\n",
			orDash(sec.TokensRevoked), orDash(sec.HoldsPlaced), orDash(sec.HoldsUpdated), sec.ScheduleVersions)
	}
	if ts.Reversed > 0 {
		fmt.Fprintf(w, "dispositions undone since (kept, not replayed): %d\n", ts.Reversed)
	}
	fmt.Fprintln(w, "\ncarry over before serving the restored instance:")
	for _, c := range r.CarryOver {
		fmt.Fprintln(w, "  -", c)
	}
}

func orDash(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ", ")
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "nothing newer"
	}
	return strings.Join(s, ", ")
}

// runRestoreCase puts one case back into this instance, or undoes a
// mistaken disposal (--undo-run, or --case of a deleted case with --yes).
func runRestoreCase(ctx context.Context, cfg *config, id string, opts restoreOptions, allowUnsigned bool, rep *reporter) error {
	var source []byte
	if opts.sourceMasterKeyFile != "" {
		k, err := archive.ReadMasterKeyFile(opts.sourceMasterKeyFile)
		if err != nil {
			return fmt.Errorf("--source-master-key-file: %w", err)
		}
		source = k
	}
	repo, keys, err := openRestoreRepo(cfg, allowUnsigned, source)
	if err != nil {
		return err
	}
	if id, err = repo.Resolve(ctx, id); err != nil {
		return err
	}
	err = withEnv(ctx, cfg, func(env *cliEnv) error {
		// This instance's key, proven against its database: restored data
		// keys must unwrap under it (re-wrapped from the source's key when
		// given), never be stored for every read to fail.
		target, err := masterKey(ctx, cfg, env.db)
		if err != nil {
			return err
		}
		rewrap := func(customerID, wrapped string) (string, error) {
			return archive.RewrapDataKey(customerID, wrapped, source, target)
		}
		blobs, _, err := openBlobs(ctx, cfg)
		if err != nil {
			return err
		}
		// Query holds need the search index the server owns; without a
		// matcher they count as covering (the safe side).
		holds := retention.NewHolds(env.db, nil)
		undo := backup.UndoOptions{DB: env.db, Blobs: blobs, Identity: keys.Identity, RunID: opts.undoRun, CaseID: opts.caseID, Confirm: opts.yes,
			HeldBy: holds.CoveringCase, Rewrap: rewrap, Actor: cases.CLIActor(), OnChange: auditSink{log: env.log}.hook}
		if opts.undoRun != "" {
			return runUndo(ctx, repo, id, undo, rep)
		}

		cr, err := repo.RestoreCase(ctx, id, opts.caseID, backup.CaseRestoreOptions{DB: env.db, Blobs: blobs, Identity: keys.Identity, Overwrite: opts.overwrite,
			HeldBy: holds.CoveringCase, Rewrap: rewrap, Actor: cases.CLIActor(), OnChange: auditSink{log: env.log}.hook})
		if errors.Is(err, backup.ErrDeleted) {
			if !opts.yes {
				return fmt.Errorf("%w\nto bring it back from backup %s (an audited undo of the deletion; erasures and held data stay final), run again with --yes", err, id)
			}
			return runUndo(ctx, repo, id, undo, rep)
		}
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
	if errors.Is(err, backup.ErrBadSignature) && source == nil {
		err = fmt.Errorf("%w (a backup of an instance with another master key: give its key with --source-master-key-file)", err)
	}
	return err
}

// runUndo undoes a disposal from backup id, or without confirmation says
// what it would bring back (and exits 2).
func runUndo(ctx context.Context, repo *backup.Repo, id string, opts backup.UndoOptions, rep *reporter) error {
	ur, err := repo.Undo(ctx, id, opts)
	if err != nil && !errors.Is(err, backup.ErrUnconfirmed) {
		return err
	}
	what := "retention run " + opts.RunID
	if opts.CaseID != "" {
		what = "deletion of case " + opts.CaseID
	}
	if derr := rep.done(ur, func(w io.Writer) {
		verb := "would bring back"
		if ur.Applied {
			verb = "brought back"
		}
		fmt.Fprintf(w, "undo of the %s from backup %s: %s %d dispositions\n", what, id, verb, len(ur.Reversed))
		for _, it := range ur.Reversed {
			fmt.Fprintf(w, "  %s %s case %s %s (%s)\n", it.Disposition, it.Action, it.Case, it.Contact, it.At)
		}
		for _, it := range ur.Kept {
			fmt.Fprintf(w, "  KEPT %s %s case %s: %s\n", it.Disposition, it.Action, it.Case, it.Kept)
		}
		if ur.Applied {
			fmt.Fprintf(w, "restored %d cases, %d contacts, %d attachments (%d blobs written); the dispositions are marked reversed and audited\n", ur.Cases, ur.Contacts, ur.Attachments, ur.Blobs)
		}
	}); derr != nil {
		return derr
	}
	if err != nil {
		return usageError{fmt.Errorf("%w: nothing was changed; run again with --yes to bring back what is listed above", err)}
	}
	return nil
}
