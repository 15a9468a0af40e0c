package retention

import (
	"context"
	"sort"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// SchedulePreview is what storing a candidate schedule would make due, as
// of one time, next to the schedule in force: a dry run that changes
// nothing (the console's editor shows it before saving).
type SchedulePreview struct {
	AsOf           time.Time `json:"as_of"`
	CurrentVersion int       `json:"current_version"`
	// Examined counts the contacts compared; Truncated says the walk
	// stopped at the limit (the counts are then a lower bound).
	Examined  int  `json:"examined"`
	Truncated bool `json:"truncated"`
	// NewlyDue counts contacts due under the candidate but not now (their
	// purpose's action: delete or anonymize); NoLongerDue the reverse.
	NewlyDue    int `json:"newly_due"`
	NoLongerDue int `json:"no_longer_due"`
	// Earlier and Later count contacts whose date moves, due or not.
	Earlier int `json:"earlier"`
	Later   int `json:"later"`
	// Held counts the newly due contacts an active hold keeps (a sweep
	// skips them).
	Held int `json:"held"`
	// Rules break NewlyDue down by the deciding rule, Categories count the
	// fields a category rule would newly redact.
	Rules      []RuleDue     `json:"rules"`
	Categories []CategoryDue `json:"categories"`
	// Examples are the first newly due contacts.
	Examples []ScheduleItem `json:"examples"`
}

// RuleDue is how many contacts one purpose rule would newly make due.
type RuleDue struct {
	Purpose cases.Purpose `json:"purpose"`
	Action  string        `json:"action"`
	Count   int           `json:"count"`
}

// CategoryDue is how many stored fields of one category a candidate would
// newly make due for redaction.
type CategoryDue struct {
	Category cases.Category `json:"category"`
	Count    int            `json:"count"`
}

// ScheduleItem is one contact a candidate schedule would newly make due.
type ScheduleItem struct {
	ContactID   string        `json:"contact_id"`
	CaseID      string        `json:"case_id"`
	Purpose     cases.Purpose `json:"purpose"`
	Action      string        `json:"action"`
	RetainUntil time.Time     `json:"retain_until"`
}

// maxScheduleExamples bounds SchedulePreview.Examples.
const maxScheduleExamples = 20

// Preview compares candidate with the schedule in force over the stored
// contacts, at most limit of them (0: all), read in id-ordered batches from
// the read pool; it stores nothing. The caller validates candidate first
// (Schedule.Validate, as PUT does).
func (s *Schedules) Preview(ctx context.Context, candidate Schedule, holds *Holds, now time.Time, limit int) (SchedulePreview, error) {
	cur, err := s.Current(ctx)
	if err != nil {
		return SchedulePreview{}, err
	}
	now = now.UTC()
	p := SchedulePreview{AsOf: now, CurrentVersion: cur.Version}
	rules := map[cases.Purpose]*RuleDue{}
	cats := map[cases.Category]int{}
	var due []ContactRef
	const batch = 500
	after := ""
	for limit <= 0 || p.Examined < limit {
		if err := ctx.Err(); err != nil {
			return p, err
		}
		n := batch
		if limit > 0 {
			n = min(n, limit-p.Examined)
		}
		page, err := sqlstore.ContactsAfter(ctx, s.db, s.db.Read, after, n)
		if err != nil {
			return p, sqldb.Fail("schedule preview", err)
		}
		if len(page) == 0 {
			break
		}
		after = page[len(page)-1].ID
		ids := make([]string, len(page))
		for i, r := range page {
			ids[i] = r.ID
		}
		live, err := readContacts(ctx, s.db, s.db.Read, ids, nil) // dates only: nothing sealed is opened
		if err != nil {
			return p, err
		}
		for _, id := range ids {
			c, ok := live[id]
			if !ok {
				continue
			}
			p.Examined++
			if c.Anonymized {
				continue // nothing left to expire or redact
			}
			was, _ := cur.RetainUntil(c.Purposes, c.OccurredAt, c.CaseClosedAt)
			will, rule := candidate.RetainUntil(c.Purposes, c.OccurredAt, c.CaseClosedAt)
			switch {
			case longer(was, will):
				p.Earlier++
			case longer(will, was):
				p.Later++
			}
			dueNow, dueThen := isDue(was, now), isDue(will, now)
			switch {
			case dueThen && !dueNow:
				p.NewlyDue++
				rd := rules[rule.Purpose]
				if rd == nil {
					rd = &RuleDue{Purpose: rule.Purpose, Action: rule.Action}
					rules[rule.Purpose] = rd
				}
				rd.Count++
				due = append(due, ContactRef{ContactID: c.ID, CaseID: c.CaseID, CustomerID: c.CustomerID, OccurredAt: c.OccurredAt})
				if len(p.Examples) < maxScheduleExamples {
					p.Examples = append(p.Examples, ScheduleItem{ContactID: c.ID, CaseID: c.CaseID, Purpose: rule.Purpose, Action: rule.Action, RetainUntil: *will})
				}
			case dueNow && !dueThen:
				p.NoLongerDue++
			}
			for cat, col := range categoryColumns {
				if v := col.value(c); !v.Valid || v.String == "" {
					continue
				}
				wasAt, wasOK := cur.CategoryDue(cat, c.OccurredAt)
				willAt, willOK := candidate.CategoryDue(cat, c.OccurredAt)
				if willOK && !willAt.After(now) && !(wasOK && !wasAt.After(now)) {
					cats[cat]++
				}
			}
		}
		if len(page) < n {
			break
		}
	}
	p.Truncated = limit > 0 && p.Examined >= limit
	if holds != nil && len(due) > 0 {
		if p.Held, err = holds.countHeld(ctx, due); err != nil {
			return p, err
		}
	}
	for _, rd := range rules {
		p.Rules = append(p.Rules, *rd)
	}
	sort.Slice(p.Rules, func(i, j int) bool { return p.Rules[i].Purpose < p.Rules[j].Purpose })
	for cat, n := range cats {
		p.Categories = append(p.Categories, CategoryDue{Category: cat, Count: n})
	}
	sort.Slice(p.Categories, func(i, j int) bool { return p.Categories[i].Category < p.Categories[j].Category })
	return p, nil
}

// isDue reports whether a contact kept until until is due at now (nil:
// kept until its case closes, never due).
func isDue(until *time.Time, now time.Time) bool { return until != nil && !until.After(now) }

// countHeld counts the refs an active hold covers, with the sweep's
// evaluator (one index of the active holds, the recorded items first).
func (h *Holds) countHeld(ctx context.Context, refs []ContactRef) (int, error) {
	holds, err := h.active(ctx, nil)
	if err != nil || len(holds) == 0 {
		return 0, err
	}
	ev := newEvaluator(h.matcher, holds).withRecorded(h.db, h.db.Read)
	ev.prefetch(ctx, refs)
	n := 0
	for _, ref := range refs {
		hs, err := ev.covering(ctx, ref)
		if err != nil {
			return n, err
		}
		if len(hs) > 0 {
			n++
		}
	}
	return n, nil
}
