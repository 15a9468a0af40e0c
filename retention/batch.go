package retention

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// errHoldsChanged aborts a batch whose hold snapshot went stale.
var errHoldsChanged = errors.New("holds changed during the batch")

// phase is one selection walked in batches.
type phase interface {
	// selectAfter selects the next n candidates after (key, id), through
	// the store's keyset query for the phase.
	selectAfter(ctx context.Context, db *sqldb.DB, q sqldb.Querier, key int64, id string, n int) ([]sqlstore.DueContact, error)
	// apply decides the unheld candidates of a batch and, unless b is a
	// dry run, carries the decisions out in b's transaction.
	apply(ctx context.Context, b *batch, cands []candidate) ([]Item, error)
}

// candidate is a contact selected for a disposition.
type candidate struct {
	id, caseID, customerID string
	occurred               time.Time
	key                    int64 // the keyset column: retain_until or occurred_at
	held                   []string
	holdErr                error
}

// dryState remembers what a dry run would have done so far, since the
// database cannot tell: contacts gone (deleted or anonymized, so later
// phases pass them over) and, per case, how many contacts were deleted.
type dryState struct {
	gone    map[string]bool
	deleted map[string]int
}

func newDryState() *dryState {
	return &dryState{gone: map[string]bool{}, deleted: map[string]int{}}
}

// walk is one sweep going through its phases.
type walk struct {
	s    *Sweeper
	opts RunOptions
	rep  *RunReport
	snap *snapshot
	dry  *dryState // used by dry runs only
}

// batch is one batch being applied: in a transaction, or in a dry run
// without one, reading from the read pool and writing nothing.
type batch struct {
	db     *sqldb.DB
	policy *Policy
	actor  cases.Actor
	dryRun bool
	tx     *sql.Tx // nil in a dry run
	dry    *dryState
	runID  string
	now    time.Time
	work   batchWork
	fields *sqlstore.Fields // opens what is digested (nil: as stored)
}

// dispose queues the disposition of one act of the sweep, audited as
// "retention.<action>".
func (b *batch) dispose(d disposition) {
	d.runID = b.runID
	b.work.dispose(d, b.actor, "retention."+d.action)
}

// reader is where the batch reads: its transaction, or the read pool in a
// dry run.
func (b *batch) reader() sqldb.Querier {
	if b.dryRun {
		return b.db.Read
	}
	return b.tx
}

// phase walks p in batches of opts.BatchSize until the selection is done.
func (w *walk) phase(ctx context.Context, p phase) error {
	lastKey, lastID := int64(-1<<63), ""
	for {
		if err := ctx.Err(); err != nil {
			return err
		}

		cands, err := w.s.selectBatch(ctx, p, lastKey, lastID, w.opts.BatchSize)
		if err != nil {
			return err
		}
		if len(cands) == 0 {
			return nil
		}
		full := len(cands) == w.opts.BatchSize
		lastKey, lastID = cands[len(cands)-1].key, cands[len(cands)-1].id
		cands = slices.DeleteFunc(cands, func(c candidate) bool { return w.dry.gone[c.id] })
		w.rep.Examined += len(cands)

		items, err := w.batch(ctx, p, cands)
		if err != nil {
			return err
		}
		for _, it := range items {
			w.rep.add(it)
		}

		if !full {
			return nil
		}
	}
}

// batch applies one batch, again after a hold change (up to three times),
// and one candidate at a time when the batch as a whole fails, so that one
// bad row does not stop the rest.
func (w *walk) batch(ctx context.Context, p phase, cands []candidate) ([]Item, error) {
	var items []Item
	var err error
	for attempt := 0; ; attempt++ {
		if err := w.s.evaluate(ctx, w.snap, cands, w.opts.DryRun); err != nil {
			return nil, err
		}
		items, err = w.apply(ctx, p, cands)
		if errors.Is(err, errHoldsChanged) && attempt < 3 {
			if *w.snap, err = w.s.loadHolds(ctx); err != nil {
				return nil, err
			}
			continue
		}
		break
	}
	if err == nil {
		return items, nil
	}
	if errors.Is(err, errHoldsChanged) {
		return nil, err
	}

	items = items[:0]
	for _, c := range cands {
		its, err := w.apply(ctx, p, []candidate{c})
		if err != nil {
			if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
				return nil, err
			}
			its = []Item{{ContactID: c.id, CaseID: c.caseID, Action: ItemError, Error: err.Error()}}
		}
		items = append(items, its...)
	}
	return items, nil
}

func (s *Sweeper) selectBatch(ctx context.Context, p phase, lastKey int64, lastID string, n int) ([]candidate, error) {
	due, err := p.selectAfter(ctx, s.db, s.db.Read, lastKey, lastID, n)
	if err != nil {
		return nil, sqldb.Fail("sweep select", err)
	}

	out := make([]candidate, len(due))
	for i, c := range due {
		out[i] = candidate{id: c.ID, caseID: c.CaseID, customerID: c.CustomerID, occurred: c.OccurredAt, key: c.Key}
	}
	return out, nil
}

// evaluate decides which holds cover each candidate (recorded or live) and,
// unless dry, records the live matches not yet recorded, in a transaction
// of their own before the batch is decided: once a sweep has seen a hold
// cover something, no later edit can take it out (holditems.go).
//
// In bulk, per batch: one set query reads what every hold recorded for the
// batch's cases (hold_items by case), a BulkMatcher answers each query
// hold once for all of them, and each candidate is then checked only
// against the holds that recorded it or whose scope can name it (by case,
// by customer, or neither), not against every hold.
func (s *Sweeper) evaluate(ctx context.Context, snap *snapshot, cands []candidate, dry bool) error {
	var caseIDs []string
	seen := make(map[string]bool, len(cands))
	refs := make([]ContactRef, len(cands))
	for i, c := range cands {
		refs[i] = ContactRef{ContactID: c.id, CaseID: c.caseID, CustomerID: c.customerID, OccurredAt: c.occurred}
		if !seen[c.caseID] {
			seen[c.caseID] = true
			caseIDs = append(caseIDs, c.caseID)
		}
	}
	if err := snap.ev.loadRecorded(ctx, caseIDs); err != nil {
		return err
	}
	snap.ev.prefetch(ctx, refs)

	var items []holdItem
	now := s.opts.Now().UTC()
	for i := range cands {
		c := &cands[i]
		ref := refs[i]
		held, err := snap.ev.covering(ctx, ref)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.held, c.holdErr = holdIDs(held), err
		if len(held) > 0 && err == nil && !dry {
			its, err := snap.ev.unrecorded(ctx, ref, now)
			if err != nil {
				return err
			}
			items = append(items, its...)
		}
	}

	if len(items) == 0 {
		return nil
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error { return recordItems(ctx, s.db, tx, items) })
}

// apply applies one batch in one transaction (a dry run: without one).
func (w *walk) apply(ctx context.Context, p phase, cands []candidate) ([]Item, error) {
	var items []Item
	var free []candidate
	for _, c := range cands {
		if len(c.held) > 0 {
			items = append(items, Item{ContactID: c.id, CaseID: c.caseID, Action: ItemHeld, HeldBy: c.held})
		} else {
			free = append(free, c)
		}
	}
	if len(free) == 0 {
		return items, nil
	}

	s := w.s
	b := &batch{db: s.db, policy: s.opts.Policy, actor: s.opts.Actor, dryRun: w.opts.DryRun, dry: w.dry, runID: w.rep.ID, now: w.opts.Now, fields: s.opts.Fields}
	if b.dryRun {
		its, err := p.apply(ctx, b, free)
		if err != nil {
			return nil, err
		}
		for _, it := range its {
			if it.Action == ItemDelete || it.Action == ItemAnonymize {
				w.dry.gone[it.ContactID] = true
			}
		}
		return append(items, its...), nil
	}

	var done []Item
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		b.tx, b.work = tx, batchWork{key: s.opts.DigestKey}
		v, err := lockState(ctx, s.db, tx)
		if err != nil {
			return err
		}
		if v != w.snap.version {
			return errHoldsChanged
		}

		var caseIDs []string
		for _, c := range free {
			if !slices.Contains(caseIDs, c.caseID) {
				caseIDs = append(caseIDs, c.caseID)
			}
		}
		slices.Sort(caseIDs)
		if err := lockCases(ctx, s.db, tx, caseIDs); err != nil {
			return err
		}

		if done, err = p.apply(ctx, b, free); err != nil {
			return err
		}
		return b.work.commit(ctx, s.db, tx, s.audit)
	})
	if err != nil {
		return nil, err
	}

	if len(b.work.cases) > 0 {
		s.opts.Notify()
	}
	b.work.purgeBlobs(ctx, s.db, s.opts.Blobs, s.opts.Now().UTC())
	return append(items, done...), nil
}

// audit appends a batch's audit events: all at once through OnChanges when
// set, else one by one through OnChange.
func (s *Sweeper) audit(ctx context.Context, tx *sql.Tx, chs []cases.Change) error {
	if s.opts.OnChanges != nil && len(chs) > 0 {
		return s.opts.OnChanges(ctx, tx, chs)
	}
	return each(ctx, tx, s.opts.OnChange, chs)
}

// each runs hook (if any) for every change in turn.
func each(ctx context.Context, tx *sql.Tx, hook cases.TxHook, chs []cases.Change) error {
	if hook == nil {
		return nil
	}
	for _, ch := range chs {
		if err := hook(ctx, tx, ch); err != nil {
			return err
		}
	}
	return nil
}
