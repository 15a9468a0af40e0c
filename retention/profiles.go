package retention

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// The customer_profile rule (issue 15 §3): a profile with no case left and
// no hold is deleted ProfileKeep after the later of its last case's
// disposal (the latest disposition naming the customer) and its last
// update. Deleted, not anonymized: a profile holds nothing but the
// person's identity and consents, which serve no statistic.

// ItemDeleteCustomer is a report item (and disposition action) of a
// deleted customer profile.
const ItemDeleteCustomer = "delete_customer"

// AuditDeleteCustomer is the audit action of a deleted profile.
const AuditDeleteCustomer = "retention.delete_customer"

// profileDue is when a caseless profile's time ends.
func profileDue(updated time.Time, lastGone *time.Time, keep time.Duration) time.Time {
	from := updated
	if lastGone != nil && lastGone.After(from) {
		from = *lastGone
	}
	return from.Add(keep)
}

// lastDisposition reads when the last disposition naming the customer was
// made (nil: none).
func lastDisposition(ctx context.Context, db *sqldb.DB, q sqldb.Querier, customerID string) (*time.Time, error) {
	ats, err := sqldb.Collect(ctx, q, db.Rebind(`SELECT MAX(at) FROM dispositions WHERE customer_id = ?`), []any{customerID},
		func(rows *sql.Rows) (sql.NullInt64, error) {
			var at sql.NullInt64
			return at, rows.Scan(&at)
		})
	if err != nil {
		return nil, sqldb.Fail("last disposition", err)
	}
	if len(ats) == 0 {
		return nil, nil
	}
	return sqldb.TimePtr(ats[0]), nil
}

// destroyedProfile describes a deleted profile.
func destroyedProfile(c cases.Customer) any {
	return map[string]any{"name": c.Name, "email": c.Email, "phone": c.Phone, "external_ref": c.ExternalRef}
}

// sweepProfiles deletes, in batches of opts.BatchSize customers, the
// caseless profiles whose time has ended, each batch one transaction.
func (s *Sweeper) sweepProfiles(ctx context.Context, opts RunOptions, rep *RunReport, keep time.Duration) error {
	after := ""
	for {
		n, next, err := s.profileBatch(ctx, opts, rep, keep, after)
		if err != nil {
			return err
		}
		if n < opts.BatchSize {
			return nil
		}
		after = next
	}
}

func (s *Sweeper) profileBatch(ctx context.Context, opts RunOptions, rep *RunReport, keep time.Duration, after string) (int, string, error) {
	var w batchWork
	var items []Item
	var seen int
	last := after
	now := opts.Now.UTC()
	run := func(tx *sql.Tx, q sqldb.Querier) error {
		w, items, seen, last = batchWork{key: s.opts.DigestKey}, nil, 0, after
		cands, err := sqlstore.CustomersWithoutCases(ctx, s.db, q, now.Add(-keep), after, opts.BatchSize)
		if err != nil {
			return sqldb.Fail("caseless customers", err)
		}
		seen = len(cands)
		if seen == 0 {
			return nil
		}
		last = cands[len(cands)-1].ID

		var ev *evaluator
		if s.opts.Holds != nil {
			holds, err := s.opts.Holds.active(ctx, tx)
			if err != nil {
				return err
			}
			ev = newEvaluator(s.opts.Holds.matcher, holds).withRecorded(s.db, q)
		}

		var due []string
		for _, c := range cands {
			gone, err := lastDisposition(ctx, s.db, q, c.ID)
			if err != nil {
				return err
			}
			if profileDue(c.UpdatedAt, gone, keep).After(now) {
				continue
			}
			if ev != nil {
				hs, err := ev.covering(ctx, ContactRef{CustomerID: c.ID})
				if err != nil {
					return err
				}
				if len(hs) > 0 {
					items = append(items, Item{CustomerID: c.ID, Action: ItemHeld, Rule: RuleCustomerProfile, HeldBy: holdIDs(hs)})
					continue
				}
			}
			due = append(due, c.ID)
		}
		if len(due) == 0 || opts.DryRun {
			for _, id := range due {
				items = append(items, Item{CustomerID: id, Action: ItemDeleteCustomer, Rule: RuleCustomerProfile})
			}
			return nil
		}

		profiles, err := sqlstore.CustomerRecords(ctx, s.db, tx, due)
		if err != nil {
			return sqldb.Fail("read customers", err)
		}
		if err := s.opts.Fields.OpenStoredCustomers(ctx, profiles); err != nil {
			return fmt.Errorf("open customers: %w", err)
		}
		for _, p := range profiles {
			n, err := sqlstore.DeleteCustomerProfile(ctx, s.db, tx, p.ID)
			if err != nil {
				return sqldb.Fail("delete customer", err)
			}
			if n == 0 {
				continue // a case came (back) since the selection
			}
			d := disposition{customerID: p.ID, purposes: []cases.Purpose{}, rule: RuleCustomerProfile, action: ItemDeleteCustomer,
				at: now, runID: rep.ID, content: destroyedProfile(p)}
			w.dispose(d, s.opts.Actor, AuditDeleteCustomer)
			items = append(items, Item{CustomerID: p.ID, Action: ItemDeleteCustomer, Rule: RuleCustomerProfile})
		}
		return w.commit(ctx, s.db, tx, s.audit)
	}

	var err error
	if opts.DryRun {
		err = run(nil, s.db.Read)
	} else {
		err = s.db.InTx(ctx, func(tx *sql.Tx) error {
			// The retention state's lock: a hold placed meanwhile waits.
			if _, err := lockState(ctx, s.db, tx); err != nil {
				return err
			}
			return run(tx, tx)
		})
	}
	if err != nil {
		return 0, "", err
	}
	for _, it := range items {
		rep.add(it)
	}
	return seen, last, nil
}

// ProfileExplanation says what keeps a customer profile and until when.
type ProfileExplanation struct {
	CustomerID string `json:"customer_id"`
	Rule       string `json:"rule"` // RuleCustomerProfile
	Keep       string `json:"keep"` // the rule's period, e.g. "90d"
	// Cases counts the customer's cases: while any is left the profile is
	// kept with them (Due is nil).
	Cases          int        `json:"cases"`
	LastCaseGoneAt *time.Time `json:"last_case_gone_at"`
	UpdatedAt      time.Time  `json:"updated_at"`
	Due            *time.Time `json:"due"`
	Holds          []Hold     `json:"holds"`
	Next           string     `json:"next"` // keep, delete or held
}

// ExplainCustomer explains the customer_profile rule for one customer as
// of now; an unknown id gives cases.ErrNotFound.
func (e *Explainer) ExplainCustomer(ctx context.Context, id string, now time.Time) (ProfileExplanation, error) {
	us, err := sqlstore.CustomerRecords(ctx, e.db, e.db.Read, []string{id})
	if err != nil {
		return ProfileExplanation{}, sqldb.Fail("read customer", err)
	}
	if len(us) == 0 {
		return ProfileExplanation{}, fmt.Errorf("customer %s: %w", id, cases.ErrNotFound)
	}
	sc, err := e.policy.In(ctx, e.db.Read)
	if err != nil {
		return ProfileExplanation{}, err
	}
	caseIDs, err := sqlstore.CustomerCaseIDs(ctx, e.db, e.db.Read, id)
	if err != nil {
		return ProfileExplanation{}, sqldb.Fail("read cases", err)
	}
	gone, err := lastDisposition(ctx, e.db, e.db.Read, id)
	if err != nil {
		return ProfileExplanation{}, err
	}
	keep := sc.ProfileKeep()
	x := ProfileExplanation{CustomerID: id, Rule: RuleCustomerProfile, Keep: fmt.Sprintf("%dd", keep/(24*time.Hour)), Cases: len(caseIDs),
		LastCaseGoneAt: gone, UpdatedAt: us[0].UpdatedAt, Holds: []Hold{}, Next: "keep"}
	if sc.CustomerProfile != nil && sc.CustomerProfile.Keep.Valid() {
		x.Keep = sc.CustomerProfile.Keep.String()
	}
	if e.holds != nil {
		if x.Holds, err = e.holds.Covering(ctx, ContactRef{CustomerID: id}); err != nil {
			return ProfileExplanation{}, err
		}
		if x.Holds == nil {
			x.Holds = []Hold{}
		}
	}
	if len(caseIDs) == 0 {
		due := profileDue(us[0].UpdatedAt, gone, keep)
		x.Due = &due
		switch {
		case len(x.Holds) > 0:
			x.Next = "held"
		case !due.After(now):
			x.Next = ItemDeleteCustomer
		}
	}
	return x, nil
}
