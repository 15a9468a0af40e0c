package retention

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// PurposeExplanation is one purpose of a contact and what its rule alone
// would give.
type PurposeExplanation struct {
	Purpose     cases.Purpose `json:"purpose"`
	Rule        *PurposeRule  `json:"rule"` // nil: the schedule has no rule (kept)
	RetainUntil *time.Time    `json:"retain_until"`
	Note        string        `json:"note,omitempty"`
}

// CategoryExplanation is one category minimization clock of a contact.
type CategoryExplanation struct {
	Category cases.Category `json:"category"`
	Keep     string         `json:"keep"`
	Action   string         `json:"action"`
	Due      time.Time      `json:"due"`
	Done     bool           `json:"done"` // already redacted (or never held the data)
}

// Step is something that will happen to a contact, and when.
type Step struct {
	Action   string     `json:"action"` // delete, anonymize, redact, held, keep
	At       *time.Time `json:"at"`     // nil: no date yet
	Category string     `json:"category,omitempty"`
	HeldBy   []string   `json:"held_by,omitempty"`
	Reason   string     `json:"reason"`
}

// ContactExplanation says why a contact is still kept and what comes next.
type ContactExplanation struct {
	ContactID         string                `json:"contact_id"`
	CaseID            string                `json:"case_id"`
	CustomerID        string                `json:"customer_id"`
	OccurredAt        time.Time             `json:"occurred_at"`
	CaseClosedAt      *time.Time            `json:"case_closed_at"`
	ScheduleVersion   int                   `json:"schedule_version"`
	Purposes          []PurposeExplanation  `json:"purposes"`
	DecidingRule      PurposeRule           `json:"deciding_rule"`
	RetainUntil       *time.Time            `json:"retain_until"`        // nil: until the case closes
	StoredRetainUntil *time.Time            `json:"stored_retain_until"` // differs only while a recompute is pending
	Anonymized        bool                  `json:"anonymized"`
	Categories        []CategoryExplanation `json:"categories"`
	Holds             []Hold                `json:"holds"`
	Next              []Step                `json:"next"`
}

// CaseExplanation explains every contact of a case.
type CaseExplanation struct {
	CaseID   string               `json:"case_id"`
	Status   string               `json:"status"`
	ClosedAt *time.Time           `json:"closed_at"`
	Holds    []Hold               `json:"holds"` // every hold covering any contact
	Contacts []ContactExplanation `json:"contacts"`
}

// Explainer answers the explain endpoints.
type Explainer struct {
	db     *sqldb.DB
	policy *Policy
	holds  *Holds
}

// NewExplainer builds an Explainer.
func NewExplainer(db *sqldb.DB, policy *Policy, holds *Holds) *Explainer {
	return &Explainer{db: db, policy: policy, holds: holds}
}

// explainRow is a contact as explained: what decides its dates and what a
// sweep has done to it so far.
type explainRow struct {
	ref        ContactRef
	purposes   []cases.Purpose
	categories []cases.Category
	hasLoc     bool
	hasDev     bool
	stored     *time.Time
	anonymized bool
	closedAt   *time.Time
}

func newExplainRow(c sqlstore.StoredContact) explainRow {
	return explainRow{
		ref:      ContactRef{ContactID: c.ID, CaseID: c.CaseID, CustomerID: c.CustomerID, OccurredAt: c.OccurredAt},
		purposes: c.Purposes, categories: c.Categories,
		hasLoc: c.Location.Valid, hasDev: c.Device.Valid,
		stored: c.RetainUntil, anonymized: c.Anonymized, closedAt: c.CaseClosedAt,
	}
}

// ExplainContact explains one contact as of now; an unknown id gives
// cases.ErrNotFound.
func (e *Explainer) ExplainContact(ctx context.Context, id string, now time.Time) (ContactExplanation, error) {
	c, err := sqlstore.ReadContact(ctx, e.db, e.db.Read, id)
	if errors.Is(err, sql.ErrNoRows) {
		return ContactExplanation{}, fmt.Errorf("contact %s: %w", id, cases.ErrNotFound)
	}
	if err != nil {
		return ContactExplanation{}, sqldb.Fail("explain", err)
	}
	r := newExplainRow(c)

	var ev *evaluator
	if ev, err = e.evaluator(ctx); err != nil {
		return ContactExplanation{}, err
	}
	return e.explain(ctx, ev, r, now)
}

// ExplainCase explains every contact of a case; an unknown id gives
// cases.ErrNotFound.
func (e *Explainer) ExplainCase(ctx context.Context, id string, now time.Time) (CaseExplanation, error) {
	out := CaseExplanation{CaseID: id, Holds: []Hold{}, Contacts: []ContactExplanation{}}
	var closed sql.NullInt64
	err := e.db.Read.QueryRowContext(ctx, e.db.Rebind(`SELECT status, closed_at FROM cases WHERE id = ?`), id).Scan(&out.Status, &closed)
	if errors.Is(err, sql.ErrNoRows) {
		return out, fmt.Errorf("case %s: %w", id, cases.ErrNotFound)
	}
	if err != nil {
		return out, sqldb.Fail("explain", err)
	}
	out.ClosedAt = sqldb.TimePtr(closed)
	ev, err := e.evaluator(ctx)
	if err != nil {
		return out, err
	}
	rs, err := sqlstore.ReadCaseContacts(ctx, e.db, e.db.Read, id)
	if err != nil {
		return out, sqldb.Fail("explain", err)
	}
	for _, c := range rs {
		ce, err := e.explain(ctx, ev, newExplainRow(c), now)
		if err != nil {
			return out, err
		}
		out.Contacts = append(out.Contacts, ce)
		for _, h := range ce.Holds {
			if !slices.ContainsFunc(out.Holds, func(o Hold) bool { return o.ID == h.ID }) {
				out.Holds = append(out.Holds, h)
			}
		}
	}
	return out, nil
}

func (e *Explainer) evaluator(ctx context.Context) (*evaluator, error) {
	var m QueryMatcher
	hs := e.holds
	if hs == nil {
		hs = &Holds{db: e.db}
	}
	m = hs.matcher
	holds, err := hs.active(ctx, nil)
	if err != nil {
		return nil, err
	}
	return newEvaluator(m, holds).withRecorded(e.db, e.db.Read), nil
}

func (e *Explainer) explain(ctx context.Context, ev *evaluator, r explainRow, now time.Time) (ContactExplanation, error) {
	sc, err := e.policy.In(ctx, e.db.Read)
	if err != nil {
		return ContactExplanation{}, err
	}
	x := ContactExplanation{
		ContactID: r.ref.ContactID, CaseID: r.ref.CaseID, CustomerID: r.ref.CustomerID, OccurredAt: r.ref.OccurredAt,
		CaseClosedAt: r.closedAt, ScheduleVersion: sc.Version, StoredRetainUntil: r.stored, Anonymized: r.anonymized,
		Purposes: []PurposeExplanation{}, Categories: []CategoryExplanation{}, Holds: []Hold{}, Next: []Step{},
	}

	purposes := r.purposes
	if len(purposes) == 0 {
		purposes = []cases.Purpose{cases.PurposeCustomerService}
	}
	for _, p := range purposes {
		pe := PurposeExplanation{Purpose: p}
		if rule, ok := sc.Rule(p); ok {
			pe.Rule = &rule
			pe.RetainUntil, _ = sc.RetainUntil([]cases.Purpose{p}, r.ref.OccurredAt, r.closedAt)
			if pe.RetainUntil == nil {
				pe.Note = "counted from the case's closing; the case is open"
			}
		} else {
			pe.Note = "the schedule has no rule for this purpose: kept"
		}
		x.Purposes = append(x.Purposes, pe)
	}

	x.RetainUntil, x.DecidingRule = sc.RetainUntil(purposes, r.ref.OccurredAt, r.closedAt)
	if r.anonymized {
		x.RetainUntil = nil
	}

	for _, cr := range sc.Categories {
		if !slices.Contains(r.categories, cr.Category) {
			continue
		}
		if _, enforced := categoryColumns[cr.Category]; !enforced {
			// A rule an older version accepted (now refused by Validate)
			// is never carried out: reporting it done would be false.
			continue
		}
		due, _ := sc.CategoryDue(cr.Category, r.ref.OccurredAt)
		ce := CategoryExplanation{Category: cr.Category, Keep: cr.Keep.String(), Action: cr.Action, Due: due, Done: true}
		switch cr.Category {
		case cases.CategoryLocation:
			ce.Done = !r.hasLoc
		case cases.CategoryDevice:
			ce.Done = !r.hasDev
		}
		x.Categories = append(x.Categories, ce)
	}

	held, err := ev.covering(ctx, r.ref)
	if err != nil {
		return x, fmt.Errorf("explain holds: %w", err)
	}
	x.Holds = append(x.Holds, held...)
	x.Next = nextSteps(x, holdIDs(held), now)
	return x, nil
}

// nextSteps lists what will happen, soonest first.
func nextSteps(x ContactExplanation, heldBy []string, now time.Time) []Step {
	var steps []Step
	when := func(t time.Time) string {
		if !t.After(now) {
			return "due now: at the next sweep"
		}
		return "on " + t.Format(time.RFC3339)
	}

	for _, c := range x.Categories {
		if c.Done || x.Anonymized {
			continue
		}
		at := c.Due
		steps = append(steps, Step{Action: ActionRedact, At: &at, Category: string(c.Category),
			Reason: fmt.Sprintf("%s data is redacted %s after capture (%s)", c.Category, c.Keep, when(at))})
	}

	rule := x.DecidingRule
	switch {
	case x.Anonymized:
		steps = append(steps, Step{Action: "keep", Reason: "anonymized: nothing personal is left, it is kept without a date"})
	case x.RetainUntil == nil && rule.Keep.Valid():
		steps = append(steps, Step{Action: "keep", Reason: fmt.Sprintf("kept while the case is open; %s %s after it closes (purpose %s)", rule.Action, rule.Keep, rule.Purpose)})
	case x.RetainUntil == nil:
		steps = append(steps, Step{Action: "keep", Reason: fmt.Sprintf("purpose %s has no rule: kept", rule.Purpose)})
	default:
		at := *x.RetainUntil
		steps = append(steps, Step{Action: rule.Action, At: &at,
			Reason: fmt.Sprintf("%s %s, %s after %s (purpose %s, the longest retention)", rule.Action, when(at), rule.Keep, clockName(rule.From), rule.Purpose)})
	}

	slices.SortStableFunc(steps, func(a, b Step) int {
		switch {
		case a.At == nil && b.At == nil:
			return 0
		case a.At == nil:
			return 1
		case b.At == nil:
			return -1
		}
		return a.At.Compare(*b.At)
	})

	if len(heldBy) > 0 {
		// A hold stops every expiry and redaction (precedence rule 1).
		var would []string
		for _, s := range steps {
			if s.At != nil {
				would = append(would, s.Action+" "+s.At.Format(time.RFC3339))
			}
		}
		reason := "held by " + strings.Join(heldBy, ", ") + ": nothing is deleted, anonymized or redacted until released"
		if len(would) > 0 {
			reason += "; otherwise: " + strings.Join(would, ", ")
		}
		return []Step{{Action: "held", HeldBy: heldBy, Reason: reason}}
	}
	return steps
}

func clockName(from string) string {
	if from == FromCaseClosed {
		return "the case closed"
	}
	return "capture"
}
