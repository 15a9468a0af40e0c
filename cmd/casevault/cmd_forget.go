package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
)

type forgetOptions struct {
	keepDaily, keepWeekly, keepMonthly, keepLast int
	maxAge, keepWithin                           string
	keepTags                                     []string
	dryRun                                       bool
}

func newBackupForgetCmd(cfg *config, bopts *backupOptions) *cobra.Command {
	var opts forgetOptions
	cmd := &cobra.Command{
		Use:   "forget [--keep-last N --keep-within D --keep-tag T --keep-daily N --keep-weekly N --keep-monthly N --max-age D] [--dry-run]",
		Short: "Remove the backups the keep rules do not keep, then the attachment copies no backup needs",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep := newReporter(cmd, bopts.json)
			return runBackupForget(cmd.Context(), cfg, opts, cmd.Flags(), rep)
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&opts.keepDaily, "keep-daily", 0, "keep the newest backup of this many days (default --backup-keep-daily)")
	fl.IntVar(&opts.keepWeekly, "keep-weekly", 0, "... of this many ISO weeks (default --backup-keep-weekly)")
	fl.IntVar(&opts.keepMonthly, "keep-monthly", 0, "... of this many months (default --backup-keep-monthly)")
	fl.IntVar(&opts.keepLast, "keep-last", 0, "keep the newest N backups")
	fl.StringVar(&opts.keepWithin, "keep-within", "", "keep every backup taken within this long (e.g. 30d)")
	fl.StringArrayVar(&opts.keepTags, "keep-tag", nil, "keep every backup with this tag (repeatable; see backup run --tag)")
	fl.StringVar(&opts.maxAge, "max-age", "", "remove every backup older than this (e.g. 400d; 0 for none; default: the retention schedule's backups.keep)")
	fl.BoolVar(&opts.dryRun, "dry-run", false, "report what would be removed, remove nothing")
	return cfg.flags(cmd, useDB|useBackup)
}

// keepPolicy is the configured policy with the flags given on the command
// line (fl) over it.
func (o forgetOptions) keepPolicy(p backup.KeepPolicy, fl *pflag.FlagSet) (backup.KeepPolicy, error) {
	if fl.Changed("keep-daily") {
		p.Daily = o.keepDaily
	}
	if fl.Changed("keep-weekly") {
		p.Weekly = o.keepWeekly
	}
	if fl.Changed("keep-monthly") {
		p.Monthly = o.keepMonthly
	}
	if fl.Changed("keep-last") {
		p.Last = o.keepLast
	}
	if fl.Changed("keep-within") {
		d, err := retention.ParseDuration(o.keepWithin)
		if err != nil {
			return p, usagef("--keep-within: %w", err)
		}
		p.Within = d.Std()
	}
	if fl.Changed("keep-tag") {
		if err := backup.CheckTags(o.keepTags); err != nil {
			return p, usageError{err}
		}
		p.Tags = o.keepTags
	}
	if fl.Changed("max-age") {
		p.MaxAge = 0
		if o.maxAge != "" && o.maxAge != "0" {
			d, err := retention.ParseDuration(o.maxAge)
			if err != nil {
				return p, usagef("--max-age: %w", err)
			}
			p.MaxAge = d.Std()
		}
	}

	if p.Daily < 0 || p.Weekly < 0 || p.Monthly < 0 || p.Last < 0 {
		return p, usagef("keep counts must not be negative")
	}
	if !p.HasRule() {
		return p, usagef("no keep rule: refusing to forget every backup (set --keep-last, --keep-within, --keep-tag, --keep-daily, --keep-weekly or --keep-monthly)")
	}
	return p, nil
}

func runBackupForget(ctx context.Context, cfg *config, opts forgetOptions, fl *pflag.FlagSet, rep *reporter) error {
	return withEnv(ctx, cfg, func(env *cliEnv) error {
		sc, err := retention.NewSchedules(env.db, nil).Current(ctx)
		if err != nil {
			return err
		}
		p, err := opts.keepPolicy(cfg.keepPolicy(sc), fl)
		if err != nil {
			return err
		}

		return rep.fail(func() error {
			repo, _, _, err := openBackupRepo(cfg, false, false)
			if err != nil {
				return err
			}
			svc := backup.New(env.db, repo, backup.Options{OnChange: auditSink{log: env.log}.hook})
			fr, err := svc.Forget(ctx, p, opts.dryRun, "cli", cases.CLIActor())
			if err != nil {
				return err
			}
			return rep.done(fr, func(w io.Writer) { printForget(w, fr) })
		}())
	})
}

func printForget(w io.Writer, fr backup.ForgetReport) {
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
}
