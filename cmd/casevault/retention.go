package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"time"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/s3"
	"github.com/casevault/casevault/bg"
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
	store *sqlstore.Store, blobs archive.Blobs, lh retention.LegalHolder, sink auditSink) *retentionParts {
	hook := cases.TxHook(sink.hook)
	var matcher retention.QueryMatcher
	if ix != nil {
		matcher = indexMatcher{ix}
	}
	holds := retention.NewHoldsWith(db, retention.HoldsOptions{Matcher: matcher, Policy: policy})
	rp := &retentionParts{policy: policy, schedules: schedules, holds: holds, explainer: retention.NewExplainer(db, policy, holds)}
	opts := retention.SweeperOptions{Policy: policy, Holds: holds, OnChange: hook, OnChanges: sink.hookMany, IndexLag: feedLag(store, ix, 10*time.Second), Guard: guard}
	if blobs != nil {
		opts.Blobs = blobs
	}
	if lh != nil {
		opts.LegalHolds = lh
	}
	if ix != nil {
		opts.Notify = ix.Kick
	}
	rp.sweeper = retention.NewSweeper(db, opts)
	// One-off deletions judge query holds by an index proven caught up
	// (feed helper, issue 20 §2).
	deleterHolds := holds
	if ix != nil {
		deleterHolds = retention.NewHoldsWith(db, retention.HoldsOptions{Matcher: freshMatcher{indexMatcher{ix}, feedLag(store, ix, 5*time.Second)}, Policy: policy})
	}
	rp.deleter = retention.NewDeleter(db, retention.DeleterOptions{Holds: deleterHolds, OnChange: hook, Blobs: opts.Blobs, Notify: opts.Notify})
	return rp
}

// legalHolder is the attachment bucket when it has object lock enabled,
// else nil (no legal-hold flags to set or clear).
func legalHolder(ctx context.Context, blobs archive.Blobs, log *slog.Logger) retention.LegalHolder {
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
	return st
}

// objectLock returns the hold → S3 legal-hold mirror when the attachment
// bucket has object lock enabled, else nil (nothing to mirror).
func objectLock(ctx context.Context, blobs archive.Blobs, holds *retention.Holds, log *slog.Logger) func(context.Context, retention.Hold, bool) (int, error) {
	st := legalHolder(ctx, blobs, log)
	if st == nil {
		return nil
	}
	return func(ctx context.Context, h retention.Hold, on bool) (int, error) {
		return holds.ApplyObjectLock(ctx, st, h, on)
	}
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
