package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/casevault/casevault/bg"
	"log/slog"
	"os"
	"reflect"

	"github.com/spf13/cobra"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/s3"
	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// indexMatcher answers query holds with the search engine: a case is
// covered when the hold's query finds it.
type indexMatcher struct{ ix *search.Indexer }

func (m indexMatcher) Matches(ctx context.Context, q search.Query, caseID string) (bool, error) {
	q.Filter.CaseIDs = []string{caseID}
	q.Limit = 1
	res, err := m.ix.Search(ctx, q)
	if err != nil {
		return false, err
	}
	return res.Total > 0, nil
}

// retentionParts is the wired retention package.
type retentionParts struct {
	policy    *retention.Policy
	schedules *retention.Schedules
	holds     *retention.Holds
	explainer *retention.Explainer
	sweeper   *retention.Sweeper
	deleter   *retention.Deleter
}

// loadRetention builds the retention services; the store must use the
// returned policy so that schedule changes take effect at once.
func loadRetention(ctx context.Context, cfg *config, db *sqldb.DB, policy *retention.Policy) (*retention.Schedules, error) {
	schedules := retention.NewSchedules(db, policy)
	if _, err := schedules.Load(ctx); err != nil {
		return nil, fmt.Errorf("retention schedule: %w", err)
	}
	if cfg.RetentionFile == "" {
		return schedules, nil
	}
	raw, err := os.ReadFile(cfg.RetentionFile)
	if err != nil {
		return nil, fmt.Errorf("--retention-schedule-file: %w", err)
	}
	var sc retention.Schedule
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sc); err != nil {
		return nil, fmt.Errorf("--retention-schedule-file %s: %w", cfg.RetentionFile, err)
	}
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("--retention-schedule-file %s: %w", cfg.RetentionFile, err)
	}
	cur := policy.Schedule()
	sc.Version = cur.Version
	if reflect.DeepEqual(sc, cur) {
		return schedules, nil
	}
	if _, err := schedules.Put(ctx, sc, cases.CLIActor(), nil); err != nil {
		return nil, fmt.Errorf("--retention-schedule-file: %w", err)
	}
	return schedules, nil
}

func newRetentionParts(guard *bg.Guard, db *sqldb.DB, policy *retention.Policy, schedules *retention.Schedules, ix *search.Indexer,
	store *sqlstore.Store, blobs archive.Blobs, sink auditSink) *retentionParts {
	hook := cases.TxHook(sink.hook)
	var matcher retention.QueryMatcher
	if ix != nil {
		matcher = indexMatcher{ix}
	}
	holds := retention.NewHolds(db, matcher)
	rp := &retentionParts{policy: policy, schedules: schedules, holds: holds, explainer: retention.NewExplainer(db, policy, holds)}
	opts := retention.SweeperOptions{Policy: policy, Holds: holds, OnChange: hook, OnChanges: sink.hookMany, IndexLag: func(ctx context.Context) (int64, error) {
		n, _, err := store.OutboxStats(ctx)
		return n, err
	}, Guard: guard}
	if blobs != nil {
		opts.Blobs = blobs
	}
	if ix != nil {
		opts.Notify = ix.Kick
	}
	rp.sweeper = retention.NewSweeper(db, opts)
	rp.deleter = retention.NewDeleter(db, retention.DeleterOptions{Holds: holds, OnChange: hook, Blobs: opts.Blobs, Notify: opts.Notify})
	return rp
}

func retentionCmd(cfg *config) *cobra.Command {
	rc := &cobra.Command{Use: "retention", Short: "Retention sweeps"}
	var dryRun, asJSON bool
	run := &cobra.Command{
		Use:   "run [--dry-run]",
		Short: "Run one retention sweep now (the server's own runs are scheduled by --retention-schedule)",
		Args:  cobra.NoArgs,
		RunE: withCLI(cfg, func(ctx context.Context, cmd *cobra.Command, env *cliEnv) error {
			db, log := env.db, env.log
			policy := retention.NewPolicy(retention.DefaultSchedule())
			schedules, err := loadRetention(ctx, cfg, db, policy)
			if err != nil {
				return err
			}
			_, blobs, _, err := openAttachments(ctx, cfg, db)
			if err != nil {
				return err
			}
			store := sqlstore.New(db, sqlstore.Options{Policy: policy})
			// Query holds are evaluated by the search index, which the
			// running server owns; without it every query hold counts as
			// covering (the safe side), see retention.Holds.
			rp := newRetentionParts(nil, db, policy, schedules, nil, store, blobs, auditSink{log: log})
			rep, err := rp.sweeper.Run(ctx, retention.RunOptions{DryRun: dryRun})
			if err != nil {
				return err
			}
			if err := log.Record(ctx, audit.FromChange(cliChange("retention.run", "retention_run", rep.ID, map[string]any{
				"dry_run": dryRun, "status": rep.Status, "deleted": rep.Deleted, "anonymized": rep.Anonymized, "redacted": rep.Redacted}), audit.OutcomeOK)); err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(rep)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s (dry run: %v): examined %d, deleted %d, anonymized %d, redacted %d, cases deleted %d, held %d, errors %d\n",
				rep.Status, rep.DryRun, rep.Examined, rep.Deleted, rep.Anonymized, rep.Redacted, rep.CasesDeleted, rep.SkippedHeld, rep.Errors)
			return nil
		}),
	}
	run.Flags().BoolVar(&dryRun, "dry-run", false, "report what would happen, change nothing")
	run.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	rc.AddCommand(run)
	return rc
}

// objectLock returns the hold → S3 legal-hold mirror when the attachment
// bucket has object lock enabled, else nil (nothing to mirror).
func objectLock(ctx context.Context, blobs archive.Blobs, holds *retention.Holds, log *slog.Logger) func(context.Context, retention.Hold, bool) (int, error) {
	st, ok := blobs.(*s3.Store)
	if !ok {
		return nil
	}
	enabled, err := st.ObjectLockEnabled(ctx)
	if err != nil {
		log.Warn("cannot tell whether the bucket has object lock; legal holds will not set S3 flags", "err", err)
		return nil
	}
	if !enabled {
		return nil
	}
	return func(ctx context.Context, h retention.Hold, on bool) (int, error) {
		return holds.ApplyObjectLock(ctx, st, h, on)
	}
}
