package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/casevault/casevault/bg"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/robfig/cron/v3"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/archive/local"
	"github.com/casevault/casevault/archive/s3"
	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/search/bleve"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// Backup exit codes (README, `casevault backup --help`), after restic's.
const (
	exitIncomplete = 3   // backup written, but some attachment blobs were gone
	exitDamaged    = 4   // verify found problems, or the backup is damaged
	exitNoRepo     = 10  // no repository at the target, or no such backup
	exitLocked     = 11  // another backup run holds the lease
	exitKey        = 12  // backup identity or master key missing or wrong
	exitRefused    = 13  // restore target not empty, data held or deleted
	exitInterrupt  = 130 // SIGINT or SIGTERM
)

// exitCodeError carries a chosen exit code with an error message.
type exitCodeError struct {
	code int
	err  error
}

func (e exitCodeError) Error() string { return e.err.Error() }
func (e exitCodeError) Unwrap() error { return e.err }

// backupExitCode maps the backup package's errors to exit codes (0 when
// the error is not one of them).
func backupExitCode(err error) int {
	var ec exitCodeError
	switch {
	case errors.As(err, &ec):
		return ec.code
	case errors.Is(err, backup.ErrLocked):
		return exitLocked
	case errors.Is(err, backup.ErrNoKey), errors.Is(err, backup.ErrWrongKey), errors.Is(err, backup.ErrNoSigningKey):
		return exitKey
	case errors.Is(err, backup.ErrTargetInUse), errors.Is(err, backup.ErrHeld), errors.Is(err, backup.ErrDeleted):
		return exitRefused
	case errors.Is(err, backup.ErrDamaged):
		return exitDamaged
	case errors.Is(err, backup.ErrNoRepository), errors.Is(err, backup.ErrNotFound):
		return exitNoRepo
	}
	return 0
}

const backupExitHelp = `Exit codes:
  0    success
  1    error
  2    usage error
  3    backup written but incomplete: attachment blobs deleted meanwhile (listed in the manifest's "missing")
  4    verify found problems, a restored table's digest differs, or the backup is damaged,
       unsigned (written before casevault signed backups; see --allow-unsigned) or its
       manifest's signature does not verify (altered, or signed with another master key)
  10   no backup repository at the target, or no such backup (or case in it)
  11   another backup run holds the lock (one run at a time across replicas)
  12   backup identity (private key) missing or wrong, or no master key to authenticate backups
  13   refused: restore target not empty, case held by a legal hold, or deleted since
  14   a backend (database, S3) could not be reached
  130  interrupted (SIGINT, SIGTERM)`

// cronEnabled says whether a schedule setting turns a job on.
func cronEnabled(spec string) bool {
	s := strings.TrimSpace(strings.ToLower(spec))
	return s != "" && s != "off"
}

// lazyBlobs opens an S3 backup target on first use, so an unreachable
// backup endpoint neither stops the server from starting nor hides later:
// every call retries the connection and fails with archive.ErrUnavailable.
type lazyBlobs struct {
	open func(ctx context.Context) (*s3.Store, error)
	mu   sync.Mutex
	st   *s3.Store
}

func (l *lazyBlobs) get(ctx context.Context) (*s3.Store, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.st != nil {
		return l.st, nil
	}
	st, err := l.open(ctx)
	if err != nil {
		return nil, err
	}
	l.st = st
	return st, nil
}

func (l *lazyBlobs) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	st, err := l.get(ctx)
	if err != nil {
		return err
	}
	return st.Put(ctx, key, r, size)
}

func (l *lazyBlobs) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	st, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return st.Get(ctx, key)
}

func (l *lazyBlobs) GetRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	st, err := l.get(ctx)
	if err != nil {
		return nil, err
	}
	return st.GetRange(ctx, key, off, n)
}

func (l *lazyBlobs) Stat(ctx context.Context, key string) (archive.BlobInfo, error) {
	st, err := l.get(ctx)
	if err != nil {
		return archive.BlobInfo{}, err
	}
	return st.Stat(ctx, key)
}

func (l *lazyBlobs) Delete(ctx context.Context, key string) error {
	st, err := l.get(ctx)
	if err != nil {
		return err
	}
	return st.Delete(ctx, key)
}

func (l *lazyBlobs) List(ctx context.Context, prefix string, fn func(archive.BlobInfo) error) error {
	st, err := l.get(ctx)
	if err != nil {
		return err
	}
	return st.List(ctx, prefix, fn)
}

func (l *lazyBlobs) Ping(ctx context.Context) error {
	st, err := l.get(ctx)
	if err != nil {
		return err
	}
	return st.Ping(ctx)
}

func (l *lazyBlobs) Rename(ctx context.Context, from, to string) error {
	st, err := l.get(ctx)
	if err != nil {
		return err
	}
	return st.Rename(ctx, from, to)
}

// openBackupTarget returns the backup repository's blob store: an S3
// bucket (possibly another endpoint, with other credentials, than the
// attachments') or a local directory.
func openBackupTarget(cfg *config) (archive.Blobs, string, error) {
	b := cfg.Backup
	if b.S3Endpoint == "" {
		st, err := local.New(b.Dir)
		if err != nil {
			return nil, "", fmt.Errorf("backup dir: %w", err)
		}
		return st, b.Dir, nil
	}
	s3cfg := s3.Config{Endpoint: b.S3Endpoint, Bucket: b.S3Bucket, AccessKey: b.S3AccessKey, SecretKey: b.S3SecretKey, Region: b.S3Region, TLS: b.S3TLS}
	where := fmt.Sprintf("s3 %s/%s/%s", b.S3Endpoint, b.S3Bucket, b.Prefix)
	return &lazyBlobs{open: func(ctx context.Context) (*s3.Store, error) {
		st, err := s3.New(ctx, s3cfg)
		if err != nil {
			return nil, fmt.Errorf("backup target %s: %w", where, err)
		}
		return st, nil
	}}, where, nil
}

// openBackupRepo opens the repository with the manifest signing key;
// allowUnsigned accepts backups written before manifests were signed.
func openBackupRepo(cfg *config, allowUnsigned bool) (*backup.Repo, archive.Blobs, string, error) {
	return openBackupRepoKey(cfg, allowUnsigned, false)
}

// openBackupRepoKey is openBackupRepo for backup runs, which may create the
// master key of a new instance (createKey).
func openBackupRepoKey(cfg *config, allowUnsigned, createKey bool) (*backup.Repo, archive.Blobs, string, error) {
	signer, err := backupSigner(cfg, createKey)
	if err != nil {
		return nil, nil, "", err
	}
	st, where, err := openBackupTarget(cfg)
	if err != nil {
		return nil, nil, "", err
	}
	prefix := ""
	if cfg.Backup.S3Endpoint != "" {
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

// keepPolicy is the configured keep rules with the backups' own retention
// from the retention schedule (its "backups" rule; none means no age limit).
func (c *config) keepPolicy(sc retention.Schedule) backup.KeepPolicy {
	p := backup.KeepPolicy{Daily: c.Backup.KeepDaily, Weekly: c.Backup.KeepWeekly, Monthly: c.Backup.KeepMonthly}
	if sc.Backups != nil {
		p.MaxAge = sc.Backups.Keep.Std()
	}
	return p
}

// backupParts is the wired backup service of a server.
type backupParts struct {
	svc    *backup.Service
	target archive.Blobs
}

// newBackupParts builds the server's backup service. The key pair is made
// here when none is configured, so the first scheduled or requested run
// can encrypt.
func newBackupParts(cfg *config, db *sqldb.DB, blobs archive.Blobs, hook cases.TxHook, log *slog.Logger, guard *bg.Guard) (*backupParts, backup.Keys, error) {
	repo, target, where, err := openBackupRepoKey(cfg, false, true)
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
	svc := backup.New(db, repo, backup.Options{Blobs: blobs, Keys: keys, OnChange: hook, Guard: guard})
	log.Info("backups", "target", where, "schedule", cfg.Backup.Cron, "recipients", len(keys.Recipients))
	return &backupParts{svc: svc, target: target}, keys, nil
}

// addBackupJobs schedules backups and forget on the server's cron.
func addBackupJobs(ctx context.Context, jobs *cron.Cron, cfg *config, bp *backupParts, policy *retention.Policy, log *slog.Logger, guard *bg.Guard) error {
	if cronEnabled(cfg.Backup.Cron) {
		if _, err := jobs.AddFunc(cfg.Backup.Cron, guard.Func("cron.backup", func() {
			m, err := bp.svc.Backup(ctx, "schedule", cases.SystemActor(), nil)
			switch {
			case errors.Is(err, backup.ErrLocked):
				log.Info("another replica is backing up; skipping this run")
			case err != nil:
				log.Error("backup failed", "err", err)
			case len(m.Missing) > 0:
				log.Warn("backup incomplete: attachment blobs deleted meanwhile", "id", m.ID, "missing", len(m.Missing))
			default:
				log.Info("backup done", "id", m.ID, "rows", m.Stats.Rows, "blobs", m.Stats.Blobs, "blobs_new", m.Stats.BlobsNew,
					"bytes_new", m.Stats.BytesNew, "duration_ms", m.Stats.DurationMS)
			}
		})); err != nil {
			return usageError{fmt.Errorf("--backup-schedule %q: %w", cfg.Backup.Cron, err)}
		}
	}
	if cronEnabled(cfg.Backup.ForgetCron) {
		if _, err := jobs.AddFunc(cfg.Backup.ForgetCron, guard.Func("cron.backup_forget", func() {
			rep, err := bp.svc.Forget(ctx, cfg.keepPolicy(policy.Schedule()), false, "schedule", cases.SystemActor())
			switch {
			case errors.Is(err, backup.ErrLocked):
				log.Info("another replica is backing up; forget skipped")
			case errors.Is(err, backup.ErrNoRepository):
				log.Info("backup forget: no backups yet")
			case err != nil:
				log.Error("backup forget failed", "err", err)
			default:
				log.Info("backup forget", "removed", len(rep.Removed), "objects_removed", rep.ObjectsRemoved, "bytes_freed", rep.BytesFreed)
			}
		})); err != nil {
			return usageError{fmt.Errorf("--backup-forget-schedule %q: %w", cfg.Backup.ForgetCron, err)}
		}
	}
	return nil
}

// --- CLI ---

// reporter prints progress (a bar on a terminal, JSON lines with --json)
// and the final result.
type reporter struct {
	json   bool
	out    io.Writer
	errw   io.Writer
	tty    bool
	mu     sync.Mutex
	phase  string
	bar    *progressbar.ProgressBar
	closed bool
}

func newReporter(cmd *cobra.Command, asJSON bool) *reporter {
	r := &reporter{json: asJSON, out: cmd.OutOrStdout(), errw: cmd.ErrOrStderr()}
	if f, ok := r.errw.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		r.tty = true
	}
	return r
}

func (r *reporter) progress(p backup.Progress) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.json {
		_ = json.NewEncoder(r.out).Encode(struct {
			Type string `json:"type"`
			backup.Progress
		}{"progress", p})
		return
	}
	if !r.tty || r.closed {
		return
	}
	if r.bar == nil || p.Phase != r.phase {
		if r.bar != nil {
			_ = r.bar.Finish()
			fmt.Fprintln(r.errw)
		}
		total := p.Total
		if total <= 0 {
			total = -1
		}
		opts := []progressbar.Option{progressbar.OptionSetWriter(r.errw), progressbar.OptionSetDescription(p.Phase),
			progressbar.OptionThrottle(100 * time.Millisecond), progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true)}
		if p.Unit == "bytes" {
			opts = append(opts, progressbar.OptionShowBytes(true))
		} else {
			opts = append(opts, progressbar.OptionSetItsString(p.Unit))
		}
		r.bar = progressbar.NewOptions64(total, opts...)
		r.phase = p.Phase
	}
	_ = r.bar.Set64(p.Done)
}

// done ends the bar and prints the result: as one JSON object with
// --json, else by human.
func (r *reporter) done(result any, human func(w io.Writer)) error {
	r.mu.Lock()
	if r.bar != nil {
		_ = r.bar.Finish()
		fmt.Fprintln(r.errw)
	}
	r.closed = true
	r.mu.Unlock()
	if r.json {
		raw, err := json.Marshal(result)
		if err != nil {
			return err
		}
		var m map[string]any
		if json.Unmarshal(raw, &m) != nil {
			m = map[string]any{"result": result}
		}
		m["type"] = "result"
		return json.NewEncoder(r.out).Encode(m)
	}
	human(r.out)
	return nil
}

// fail prints an error object for scripts (the message also goes to
// stderr as for every command).
func (r *reporter) fail(err error) error {
	if err == nil || !r.json {
		return err
	}
	code := backupExitCode(err)
	if code == 0 {
		switch {
		case errors.Is(err, context.Canceled):
			code = exitInterrupt
		case isUnavailable(err):
			code = exitUnavailable
		default:
			code = exitError
		}
	}
	_ = json.NewEncoder(r.out).Encode(map[string]any{"type": "error", "error": err.Error(), "exit_code": code})
	return err
}

func backupCmd(cfg *config) *cobra.Command {
	bc := &cobra.Command{
		Use:   "backup",
		Short: "Back up, list, verify, forget and restore (encrypted, incremental, engine-neutral)",
		Long: "Backups go to --backup-dir (default <data-dir>/backups) or an S3 bucket (--backup-s3-*), encrypted\n" +
			"with age to --backup-recipients or the key in <data-dir>/backup.key (generated by the first backup).\n" +
			"Every subcommand shows a progress bar on a terminal and takes --json for one JSON object per line.\n\n" + backupExitHelp,
	}
	var asJSON, allowUnsigned bool
	bc.PersistentFlags().BoolVar(&asJSON, "json", false, "print progress events and the result as JSON lines on stdout")

	run := &cobra.Command{
		Use:   "run",
		Short: "Take a backup now (the server's own are scheduled by --backup-schedule)",
		Args:  cobra.NoArgs,
		RunE: withCLI(cfg, func(ctx context.Context, cmd *cobra.Command, env *cliEnv) error {
			rep := newReporter(cmd, asJSON)
			return rep.fail(func() error {
				repo, _, where, err := openBackupRepoKey(cfg, false, true)
				if err != nil {
					return err
				}
				blobs, _, err := openBlobs(ctx, cfg)
				if err != nil {
					return err
				}
				keys, err := backupKeys(cfg, true)
				if err != nil {
					return err
				}
				svc := backup.New(env.db, repo, backup.Options{Blobs: blobs, Keys: keys, OnChange: auditSink{log: env.log}.hook})
				m, err := svc.Backup(ctx, "cli", cases.CLIActor(), rep.progress)
				if err != nil {
					return err
				}
				if err := rep.done(m.Summary(false), func(w io.Writer) {
					fmt.Fprintf(w, "backup %s written to %s\n  snapshot %s, %d rows in %d tables (%s encrypted)\n  %d attachment blobs: %d new (%s), %d already in the repository\n  took %s\n",
						m.ID, where, m.SnapshotAt.Format(time.RFC3339), m.Stats.Rows, len(m.Tables), humanBytes(m.Stats.TableBytes),
						m.Stats.Blobs, m.Stats.BlobsNew, humanBytes(m.Stats.BytesNew), m.Stats.BlobsReused, time.Duration(m.Stats.DurationMS)*time.Millisecond)
					if len(m.Missing) > 0 {
						fmt.Fprintf(w, "  INCOMPLETE: %d attachment blobs were deleted before they could be copied\n", len(m.Missing))
					}
				}); err != nil {
					return err
				}
				if len(m.Missing) > 0 {
					return exitCodeError{exitIncomplete, fmt.Errorf("backup %s is incomplete: %d attachment blobs missing", m.ID, len(m.Missing))}
				}
				return nil
			}())
		}),
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "List the complete backups, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep := newReporter(cmd, asJSON)
			return rep.fail(func() error {
				repo, _, _, err := openBackupRepo(cfg, allowUnsigned)
				if err != nil {
					return err
				}
				ms, damaged, err := repo.List(cmd.Context())
				if err != nil {
					return err
				}
				out := make([]backup.Summary, 0, len(ms))
				for _, m := range ms {
					out = append(out, m.Summary(false))
				}
				if damaged == nil {
					damaged = []backup.Damaged{}
				}
				err = rep.done(map[string]any{"backups": out, "damaged": damaged}, func(w io.Writer) {
					tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "ID\tSNAPSHOT\tENGINE\tROWS\tBLOBS\tNEW\tMISSING")
					for _, s := range out {
						id := s.ID
						if !s.Authenticated {
							id += " (UNSIGNED)"
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%d\n", id, s.SnapshotAt.Format(time.RFC3339), s.Source.Engine, s.Stats.Rows, s.Blobs, humanBytes(s.Stats.BytesNew), s.Missing)
					}
					tw.Flush()
					fmt.Fprintf(w, "%d backups\n", len(out))
					for _, d := range damaged {
						fmt.Fprintf(w, "DAMAGED %s: %s\n", d.ID, d.Error)
					}
				})
				if err == nil && len(damaged) > 0 {
					// Listed, but loudly: exit 4 like a failed verify.
					return fmt.Errorf("%w: %d backup manifests cannot be read", backup.ErrDamaged, len(damaged))
				}
				return err
			}())
		},
	}

	var readData bool
	verify := &cobra.Command{
		Use:   "verify ID [--read-data]",
		Short: "Check that every file of a backup is there with its size; --read-data re-reads and re-hashes every byte",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep := newReporter(cmd, asJSON)
			return rep.fail(func() error {
				repo, _, _, err := openBackupRepo(cfg, allowUnsigned)
				if err != nil {
					return err
				}
				keys, err := backupKeys(cfg, false)
				if err != nil {
					return err
				}
				vr, err := repo.Verify(cmd.Context(), args[0], readData, keys.Identity, rep.progress)
				if err != nil {
					return err
				}
				if err := rep.done(vr, func(w io.Writer) {
					mode := "structure"
					if vr.ReadData {
						mode = "every byte"
						if vr.Decrypted {
							mode += ", decrypted"
						}
					}
					fmt.Fprintf(w, "backup %s: %d files checked (%s), %s read\n", vr.ID, vr.Files, mode, humanBytes(vr.Bytes))
					if !vr.Authenticated {
						fmt.Fprintln(w, "  WARNING: the manifest is unsigned (accepted with --allow-unsigned): its content is not authenticated")
					}
					for _, p := range vr.Problems {
						fmt.Fprintln(w, "  PROBLEM:", p)
					}
					if vr.OK {
						fmt.Fprintln(w, "no problems found")
					}
				}); err != nil {
					return err
				}
				if !vr.OK {
					return exitCodeError{exitDamaged, fmt.Errorf("backup %s: %d problems", vr.ID, len(vr.Problems))}
				}
				return nil
			}())
		},
	}
	verify.Flags().BoolVar(&readData, "read-data", false, "read back and hash every byte (and decrypt, when the identity is available)")
	// Only for list, verify and restore: runs and forget never trust an
	// unsigned manifest's content.
	for _, c := range []*cobra.Command{list, verify} {
		c.Flags().BoolVar(&allowUnsigned, "allow-unsigned", false, unsignedHelp)
	}

	var keepDaily, keepWeekly, keepMonthly int
	var maxAge string
	var dryRun bool
	forget := &cobra.Command{
		Use:   "forget [--keep-daily N --keep-weekly N --keep-monthly N --max-age D] [--dry-run]",
		Short: "Remove the backups the keep rules do not keep, then the attachment copies no backup needs",
		Args:  cobra.NoArgs,
		RunE: withCLI(cfg, func(ctx context.Context, cmd *cobra.Command, env *cliEnv) error {
			rep := newReporter(cmd, asJSON)
			sc, err := retention.NewSchedules(env.db, nil).Current(ctx)
			if err != nil {
				return err
			}
			p := cfg.keepPolicy(sc)
			fl := cmd.Flags()
			if fl.Changed("keep-daily") {
				p.Daily = keepDaily
			}
			if fl.Changed("keep-weekly") {
				p.Weekly = keepWeekly
			}
			if fl.Changed("keep-monthly") {
				p.Monthly = keepMonthly
			}
			if fl.Changed("max-age") {
				p.MaxAge = 0
				if maxAge != "" && maxAge != "0" {
					d, err := retention.ParseDuration(maxAge)
					if err != nil {
						return usageError{fmt.Errorf("--max-age: %w", err)}
					}
					p.MaxAge = d.Std()
				}
			}
			if p.Daily < 0 || p.Weekly < 0 || p.Monthly < 0 {
				return usageError{errors.New("keep counts must not be negative")}
			}
			if p.Daily == 0 && p.Weekly == 0 && p.Monthly == 0 {
				return usageError{errors.New("no keep rule: refusing to forget every backup (set --keep-daily, --keep-weekly or --keep-monthly)")}
			}
			return rep.fail(func() error {
				repo, _, _, err := openBackupRepo(cfg, false)
				if err != nil {
					return err
				}
				svc := backup.New(env.db, repo, backup.Options{OnChange: auditSink{log: env.log}.hook})
				fr, err := svc.Forget(ctx, p, dryRun, "cli", cases.CLIActor())
				if err != nil {
					return err
				}
				return rep.done(fr, func(w io.Writer) {
					tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "ID\tSNAPSHOT\tKEEP\tWHY")
					for _, d := range fr.Decisions {
						keep := "remove"
						if d.Keep {
							keep = "keep"
						}
						fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.ID, d.Time.Format(time.RFC3339), keep, strings.Join(d.Reasons, "; "))
					}
					tw.Flush()
					verb := "removed"
					if fr.DryRun {
						verb = "would remove"
					}
					fmt.Fprintf(w, "%s %d backups and %d attachment copies (%s)\n", verb, len(fr.Removed), fr.ObjectsRemoved, humanBytes(fr.BytesFreed))
				})
			}())
		}),
	}
	forget.Flags().IntVar(&keepDaily, "keep-daily", 0, "keep the newest backup of this many days (default --backup-keep-daily)")
	forget.Flags().IntVar(&keepWeekly, "keep-weekly", 0, "... of this many ISO weeks (default --backup-keep-weekly)")
	forget.Flags().IntVar(&keepMonthly, "keep-monthly", 0, "... of this many months (default --backup-keep-monthly)")
	forget.Flags().StringVar(&maxAge, "max-age", "", "remove every backup older than this (e.g. 400d; 0 for none; default: the retention schedule's backups.keep)")
	forget.Flags().BoolVar(&dryRun, "dry-run", false, "report what would be removed, remove nothing")

	var to, caseID string
	var noLive, overwrite bool
	restore := &cobra.Command{
		Use:   "restore ID (--to DATA_DIR|postgres://URL [--no-live] | --case CASE_ID [--overwrite])",
		Short: "Restore a whole backup into an empty target, or one case into this instance",
		Long: "--to DIR restores into DIR/casevault.db (SQLite) with the attachments in the configured S3 store, or\n" +
			"DIR/blobs when none is configured; --to postgres://... restores into that (empty) database. Tombstones\n" +
			"newer than the backup (later backups and, unless --no-live, this instance's database) are replayed, so\n" +
			"nothing deleted since comes back; the search index is rebuilt. The target needs the same master key.\n" +
			"--case restores one case into this instance (running or not), never over held or deleted data.\n\n" + backupExitHelp,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (to == "") == (caseID == "") {
				return usageError{errors.New("give exactly one of --to and --case")}
			}
			if caseID != "" && noLive {
				return usageError{errors.New("--no-live goes with --to")}
			}
			if to != "" && overwrite {
				return usageError{errors.New("--overwrite goes with --case")}
			}
			rep := newReporter(cmd, asJSON)
			if caseID != "" {
				return rep.fail(restoreCase(cmd.Context(), cfg, args[0], caseID, overwrite, allowUnsigned, rep))
			}
			return rep.fail(restoreFull(cmd.Context(), cfg, args[0], to, noLive, allowUnsigned, rep))
		},
	}
	restore.Flags().StringVar(&to, "to", "", "new data directory, or postgres:// URL of an empty database")
	restore.Flags().BoolVar(&noLive, "no-live", false, "do not replay tombstones from this instance's database")
	restore.Flags().StringVar(&caseID, "case", "", "restore only this case into this instance")
	restore.Flags().BoolVar(&overwrite, "overwrite", false, "with --case: replace the live case row with the backup's (refused when held)")
	restore.Flags().BoolVar(&allowUnsigned, "allow-unsigned", false, unsignedHelp)

	for _, c := range []*cobra.Command{run, list, verify, forget} {
		c.Long = c.Short + "\n\n" + backupExitHelp
	}
	bc.AddCommand(run, list, verify, forget, restore)
	return bc
}

const unsignedHelp = "accept backups without a manifest signature (written before casevault signed backups); a signature that does not verify is never accepted"

func isDatabaseURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// reapplyHoldFlags sets the S3 legal-hold flag on every restored blob an
// active hold covers, when the target bucket has object lock (0 otherwise).
func reapplyHoldFlags(ctx context.Context, db *sqldb.DB, blobs archive.Blobs) (int, error) {
	holds := retention.NewHolds(db, nil)
	apply := objectLock(ctx, blobs, holds, slog.New(slog.DiscardHandler))
	if apply == nil {
		return 0, nil
	}
	n, cursor := 0, ""
	for {
		page, next, err := holds.List(ctx, retention.HoldFilter{ActiveOnly: true}, 500, cursor)
		if err != nil {
			return n, err
		}
		for _, h := range page {
			k, err := apply(ctx, h, true)
			if err != nil {
				return n, fmt.Errorf("hold %s: %w", h.ID, err)
			}
			n += k
		}
		if next == "" {
			return n, nil
		}
		cursor = next
	}
}

// openRestoreRepo opens the repository and the identity every restore needs.
func openRestoreRepo(cfg *config, allowUnsigned bool) (*backup.Repo, backup.Keys, error) {
	repo, _, _, err := openBackupRepo(cfg, allowUnsigned)
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

// restoreFull restores backup id into an empty target and rebuilds its
// search index.
func restoreFull(ctx context.Context, cfg *config, id, to string, noLive, allowUnsigned bool, rep *reporter) error {
	repo, keys, err := openRestoreRepo(cfg, allowUnsigned)
	if err != nil {
		return err
	}
	// The manifest first: a wrong ID must not leave a new database behind.
	if _, err := repo.Manifest(ctx, id); err != nil {
		return err
	}
	var target *sqldb.DB
	var blobs archive.Blobs
	var dir, where string
	livePath := filepath.Join(cfg.DataDir, "casevault.db")
	// Checked before the target is created: a target in the data dir is
	// never its own live source.
	liveExists := false
	if isDatabaseURL(to) {
		where = sqldb.Redact(to)
		if target, err = sqldb.Open(ctx, sqldb.Config{URL: to}); err != nil {
			return err
		}
		if blobs, _, err = openBlobs(ctx, cfg); err != nil {
			target.Close()
			return err
		}
	} else {
		if dir, err = filepath.Abs(to); err != nil {
			return usageError{fmt.Errorf("--to: %w", err)}
		}
		where = dir
		if _, err := os.Stat(livePath); err == nil && livePath != filepath.Join(dir, "casevault.db") {
			liveExists = true
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("--to: %w", err)
		}
		if target, err = sqldb.Open(ctx, sqldb.Config{Path: filepath.Join(dir, "casevault.db"), Synchronous: cfg.SQLiteSync}); err != nil {
			return err
		}
		if cfg.S3Endpoint != "" {
			blobs, _, err = openBlobs(ctx, cfg)
		} else {
			blobs, err = local.New(filepath.Join(dir, "blobs"))
		}
		if err != nil {
			target.Close()
			return err
		}
	}
	defer target.Close()
	if err := backup.CheckEmpty(ctx, target); err != nil {
		return err
	}
	var live []*sqldb.DB
	if !noLive {
		switch {
		case cfg.DatabaseURL != "" && cfg.DatabaseURL != to:
			db, err := sqldb.Open(ctx, sqldb.Config{URL: cfg.DatabaseURL})
			if err != nil {
				return fmt.Errorf("live instance database (for its tombstones; --no-live skips them): %w", err)
			}
			defer db.Close()
			live = append(live, db)
		case cfg.DatabaseURL == "":
			// Never create the live database: only read one that exists.
			if liveExists || isDatabaseURL(to) && fileExists(livePath) {
				db, err := sqldb.Open(ctx, sqldb.Config{Path: livePath, Synchronous: cfg.SQLiteSync})
				if err != nil {
					return fmt.Errorf("live instance database (for its tombstones; --no-live skips them): %w", err)
				}
				defer db.Close()
				live = append(live, db)
			}
		}
	}
	alog := audit.New(target)
	defer alog.Close(context.Background())
	rr, err := repo.Restore(ctx, id, backup.RestoreOptions{Target: target, Blobs: blobs, Identity: keys.Identity, Live: live,
		Progress: rep.progress, Actor: cases.CLIActor(), OnChange: auditSink{log: alog}.hook})
	if err != nil {
		return err
	}
	// Restored holds must protect the restored blobs too: in an object-lock
	// bucket the S3 legal-hold flags are set again (they are not data the
	// backup can carry).
	flagged, err := reapplyHoldFlags(ctx, target, blobs)
	if err != nil {
		return fmt.Errorf("restore: legal-hold flags: %w", err)
	}
	rep.progress(backup.Progress{Phase: "index", Unit: "cases"})
	docs, ixErr := rebuildIndex(ctx, cfg, target, dir)
	result := struct {
		backup.RestoreReport
		Target        string `json:"target"`
		IndexedCases  int64  `json:"indexed_cases"`
		IndexError    string `json:"index_error,omitempty"`
		LiveDatabases int    `json:"live_databases"`
		HoldFlags     int    `json:"legal_hold_flags_set"`
	}{RestoreReport: rr, Target: where, IndexedCases: docs, LiveDatabases: len(live), HoldFlags: flagged}
	if ixErr != nil {
		result.IndexError = ixErr.Error()
	}
	bad := 0
	for _, t := range rr.Tables {
		if !t.Match {
			bad++
		}
	}
	if err := rep.done(result, func(w io.Writer) {
		fmt.Fprintf(w, "restored backup %s (snapshot %s) into %s\n\n", rr.Backup, rr.SnapshotAt, where)
		tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TABLE\tROWS\tSHA-256 (BACKUP)\tMATCH")
		for _, t := range rr.Tables {
			m := "yes"
			if !t.Match {
				m = "NO (restored " + t.Restored + ")"
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", t.Name, t.Rows, t.SHA256, m)
		}
		tw.Flush()
		fmt.Fprintf(w, "\nattachments: %d restored (%s), %d already present, %d missing in the backup\n", rr.Blobs, humanBytes(rr.BlobBytes), rr.BlobsPresent, rr.Missing)
		ts := rr.Tombstones
		fmt.Fprintf(w, "tombstones replayed from %s: %d dispositions (%d contacts deleted, %d anonymized, %d redactions, %d cases deleted), %d customer keys destroyed, %d blobs removed\n",
			orNone(ts.Sources), ts.Dispositions, ts.Deleted, ts.Anonymized, ts.Redacted, ts.CasesDeleted, ts.KeysDestroyed, ts.BlobsRemoved)
		if flagged > 0 {
			fmt.Fprintf(w, "legal holds: S3 legal-hold flag set on %d restored blobs\n", flagged)
		}
		if ixErr != nil {
			fmt.Fprintf(w, "search index NOT rebuilt: %v (run `casevault reindex` against the target)\n", ixErr)
		} else {
			fmt.Fprintf(w, "search index rebuilt: %d cases\n", docs)
		}
		if dir != "" {
			fmt.Fprintf(w, "serve it with the same master key: copy %s to %s or set CASEVAULT_MASTER_KEY\n", filepath.Join(cfg.DataDir, archive.MasterKeyFile), dir)
		}
	}); err != nil {
		return err
	}
	if bad > 0 {
		return exitCodeError{exitDamaged, fmt.Errorf("%d restored tables do not match the backup's digests", bad)}
	}
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "nothing newer"
	}
	return strings.Join(s, ", ")
}

// rebuildIndex fills the target's search index from the restored store: a
// Bleve index under DIR/index for a directory target, else the configured
// engine. It returns the number of cases indexed.
func rebuildIndex(ctx context.Context, cfg *config, target *sqldb.DB, dir string) (int64, error) {
	store := sqlstore.New(target, sqlstore.Options{})
	log := newLogger(cfg, io.Discard)
	var eng search.Engine
	var build func(ctx context.Context) (search.Engine, error)
	var err error
	if dir != "" {
		ixDir := filepath.Join(dir, "index")
		if eng, err = bleve.Open(ctx, ixDir); err != nil {
			return 0, err
		}
		build = func(ctx context.Context) (search.Engine, error) { return bleve.Build(ctx, ixDir) }
	} else {
		f := engineFactory{cfg: cfg}
		if eng, err = f.open(ctx); err != nil {
			return 0, err
		}
		build = f.build
	}
	ix := search.NewIndexer(store, eng, log, search.Options{})
	defer ix.Close()
	if err := ix.Reindex(ctx, build); err != nil {
		return 0, err
	}
	st, err := ix.Status(ctx)
	if err != nil {
		return 0, err
	}
	return st.Documents, nil
}

// restoreCase puts one case back into this instance.
func restoreCase(ctx context.Context, cfg *config, id, caseID string, overwrite, allowUnsigned bool, rep *reporter) error {
	repo, keys, err := openRestoreRepo(cfg, allowUnsigned)
	if err != nil {
		return err
	}
	env, err := openCLI(ctx, cfg)
	if err != nil {
		return err
	}
	defer env.Close()
	blobs, _, err := openBlobs(ctx, cfg)
	if err != nil {
		return err
	}
	// Query holds need the search index the server owns; without a
	// matcher they count as covering (the safe side).
	holds := retention.NewHolds(env.db, nil)
	cr, err := repo.RestoreCase(ctx, id, caseID, backup.CaseRestoreOptions{DB: env.db, Blobs: blobs, Identity: keys.Identity, Overwrite: overwrite,
		HeldBy: holds.CoveringCase, Actor: cases.CLIActor(), OnChange: auditSink{log: env.log}.hook})
	if err != nil {
		return err
	}
	return rep.done(cr, func(w io.Writer) {
		fmt.Fprintf(w, "case %s from backup %s: case %s; customer restored %v, key restored %v\n", cr.Case, cr.Backup,
			map[bool]string{true: "restored", false: "already present"}[cr.CaseRestored]+map[bool]string{true: " (overwritten)", false: ""}[cr.CaseOverwritten],
			cr.CustomerRestored, cr.KeyRestored)
		fmt.Fprintf(w, "contacts: %d restored, %d already present, %d skipped (deleted since)\n", cr.Contacts, cr.ContactsPresent, cr.ContactsDeleted)
		fmt.Fprintf(w, "attachments: %d restored (%d blobs written), %d skipped (erased or missing)\n", cr.Attachments, cr.Blobs, cr.AttachmentsGone)
	})
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// recoverInterruptedRuns marks the retention and backup runs a crashed
// process left "running" as interrupted, at start-up. The backup side runs
// in the background: a run killed moments ago still holds its lease, and is
// only known dead once that lease expires unrenewed. The returned function
// waits for it (call it after ctx is cancelled).
func recoverInterruptedRuns(ctx context.Context, a *app, log *slog.Logger) (wait func()) {
	if n, err := a.retention.sweeper.RecoverRuns(ctx); err != nil {
		log.Error("marking interrupted retention runs failed", "err", err)
	} else if n > 0 {
		log.Warn("retention runs left running by a stopped process marked interrupted", "runs", n)
	}
	done := make(chan struct{})
	a.guard.Go("backup.recover_runs", func() {
		defer close(done)
		n, err := a.backup.svc.RecoverRuns(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error("marking interrupted backup runs failed", "err", err)
		case n > 0:
			log.Warn("backup runs left running by a stopped process marked interrupted", "runs", n)
		}
	})
	return func() { <-done }
}
