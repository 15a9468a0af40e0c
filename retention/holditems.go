package retention

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// Sticky coverage (issue 14). A hold's scope is evaluated against live data,
// and a query scope reads data agents may edit (a case's tags, subject,
// status…): removing the tag a query hold matched would end the hold. So
// whatever a hold has covered is recorded in hold_items and stays covered
// until the hold is released, whatever happens to the case afterwards.
//
// Granularity: a hold without a time range covers whole cases (case,
// customer and query scopes find cases; a case's contacts are read together,
// and one row per case keeps the table small), recorded with contact_id ''.
// A hold bounded by from/to covers only the contacts of that period, one row
// per contact (minimisation: the range is the point of such a scope).
//
// When items are recorded:
//   - at placement, everything the scope matches then (Place);
//   - before a case update, in its transaction, what the active query holds
//     match in the case as it still is (RecordCase, wired into the store):
//     only query scopes read editable data; case, customer and time criteria
//     never change after a row is written;
//   - by a sweep, in a transaction of its own before the batch is decided,
//     every held candidate a hold matches live and had not recorded (a
//     contact or case that started matching after placement).
//
// Deciding coverage (evaluator.covers) is recorded ∪ live: a sweep, a manual
// deletion, explain and counts all see both. A release ends a hold's
// coverage: its rows stay, for the hold's report, but only active holds'
// rows count.

// holdItem is one row of hold_items.
type holdItem struct {
	holdID, caseID, contactID, customerID, why string
	since                                      time.Time
}

// recordedItem is what a coverage check needs of a hold_items row.
type recordedItem struct{ holdID, contactID string }

// bounded reports whether the scope has a time range (per-contact coverage).
func (s HoldScope) bounded() bool { return s.From != nil || s.To != nil }

// why names the parts of the scope an item matched: all of them, since the
// parts of a scope narrow each other.
func (s HoldScope) why() string {
	var parts []string
	if len(s.CaseIDs) > 0 {
		parts = append(parts, "case_ids")
	}
	if len(s.CustomerIDs) > 0 {
		parts = append(parts, "customer_ids")
	}
	if s.Query != "" {
		parts = append(parts, "query")
	}
	if s.bounded() {
		parts = append(parts, "date_range")
	}
	return strings.Join(parts, "+")
}

// itemFor is the row recording that h covers c: the whole case, or the
// contact for a time-bounded hold.
func itemFor(h Hold, c ContactRef, now time.Time) holdItem {
	it := holdItem{holdID: h.ID, caseID: c.CaseID, customerID: c.CustomerID, why: h.Scope.why(), since: now}
	if h.Scope.bounded() {
		it.contactID = c.ContactID
	}
	return it
}

// recordItems inserts items in tx; rows already recorded are kept as they
// are (their since is the first time).
func recordItems(ctx context.Context, db *sqldb.DB, tx *sql.Tx, items []holdItem) error {
	const chunk = 200
	for len(items) > 0 {
		n := min(len(items), chunk)
		args := make([]any, 0, 6*n)
		for _, it := range items[:n] {
			args = append(args, it.holdID, it.caseID, it.contactID, it.customerID, sqldb.Micros(it.since), it.why)
		}
		q := `INSERT INTO hold_items (hold_id, case_id, contact_id, customer_id, since, why) VALUES ` +
			strings.TrimSuffix(strings.Repeat("(?, ?, ?, ?, ?, ?),", n), ",") + ` ON CONFLICT DO NOTHING`
		if _, err := tx.ExecContext(ctx, db.Rebind(q), args...); err != nil {
			return sqldb.Fail("record hold items", err)
		}
		items = items[n:]
	}
	return nil
}

// recordedOf reads the hold_items rows of the cases, by case.
func recordedOf(ctx context.Context, db *sqldb.DB, q sqldb.Querier, caseIDs []string) (map[string][]recordedItem, error) {
	out := make(map[string][]recordedItem, len(caseIDs))
	for _, id := range caseIDs {
		out[id] = nil
	}
	for chunk := range slices.Chunk(caseIDs, 500) {
		type row struct {
			caseID string
			recordedItem
		}
		rows, err := sqldb.Collect(ctx, q, db.Rebind(`SELECT case_id, hold_id, contact_id FROM hold_items WHERE case_id IN (`+sqldb.Placeholders(len(chunk))+`)`), sqldb.Args(chunk),
			func(rows *sql.Rows) (row, error) {
				var r row
				return r, rows.Scan(&r.caseID, &r.holdID, &r.contactID)
			})
		if err != nil {
			return nil, sqldb.Fail("recorded hold items", err)
		}
		for _, r := range rows {
			out[r.caseID] = append(out[r.caseID], r.recordedItem)
		}
	}
	return out, nil
}

// RecordCase records, in the transaction of a case update and before the
// case changes, what the active query holds cover in the case as it still
// is, so that the edit cannot take the case out of a hold. The search index
// is the one that answers query holds, and it cannot be ahead of the row
// this transaction has locked. Without a matcher (no engine) nothing is
// recorded: such holds already cover every case they might match.
func (h *Holds) RecordCase(ctx context.Context, tx *sql.Tx, caseID string) error {
	if h.matcher == nil {
		return nil
	}
	holds, err := h.active(ctx, tx)
	if err != nil {
		return err
	}
	holds = slices.DeleteFunc(holds, func(h Hold) bool { return h.Scope.Query == "" })
	if len(holds) == 0 {
		return nil
	}

	var customerID string
	if err := tx.QueryRowContext(ctx, h.db.Rebind(`SELECT customer_id FROM cases WHERE id = ?`), caseID).Scan(&customerID); err != nil {
		return sqldb.Fail("record hold items", err)
	}
	refs := []ContactRef{{CaseID: caseID, CustomerID: customerID}}
	if slices.ContainsFunc(holds, func(h Hold) bool { return h.Scope.bounded() }) {
		contacts, err := caseContacts(ctx, h.db, tx, caseID, customerID)
		if err != nil {
			return err
		}
		refs = append(refs, contacts...)
	}

	ev := newEvaluator(h.matcher, holds).withRecorded(h.db, tx)
	var items []holdItem
	now := h.now().UTC()
	for _, r := range refs {
		its, err := ev.unrecorded(ctx, r, now)
		if err != nil {
			return err
		}
		items = append(items, its...)
	}
	return recordItems(ctx, h.db, tx, items)
}

// caseContacts lists the contacts of a case as refs.
func caseContacts(ctx context.Context, db *sqldb.DB, q sqldb.Querier, caseID, customerID string) ([]ContactRef, error) {
	keys, err := sqlstore.CaseContactTimes(ctx, db, q, caseID, customerID)
	if err != nil {
		return nil, sqldb.Fail("contacts of case", err)
	}

	out := make([]ContactRef, len(keys))
	for i, k := range keys {
		out[i] = contactRef(k)
	}
	return out, nil
}

// placementItems is what a new hold covers now, to record with it.
func (h *Holds) placementItems(ctx context.Context, hold Hold) ([]holdItem, error) {
	return h.coverageItems(ctx, hold, hold.PlacedAt)
}

// coverageItems is what hold's scope matches now, as rows recorded at now.
func (h *Holds) coverageItems(ctx context.Context, hold Hold, now time.Time) ([]holdItem, error) {
	ev := newEvaluator(h.matcher, []Hold{hold})
	if !ev.sure(hold) {
		return nil, nil
	}
	seen := map[string]bool{}
	var items []holdItem
	add := func(r ContactRef) {
		it := itemFor(hold, r, now)
		if k := it.caseID + "/" + it.contactID; !seen[k] {
			seen[k] = true
			items = append(items, it)
		}
	}

	// Cases named by id are covered even while they have no contacts.
	if len(hold.Scope.CaseIDs) > 0 && !hold.Scope.bounded() {
		refs, err := sqldb.Collect(ctx, h.db.Read, h.db.Rebind(`SELECT id, customer_id FROM cases WHERE id IN (`+sqldb.Placeholders(len(hold.Scope.CaseIDs))+`)`), sqldb.Args(hold.Scope.CaseIDs),
			func(rows *sql.Rows) (ContactRef, error) {
				var r ContactRef
				return r, rows.Scan(&r.CaseID, &r.CustomerID)
			})
		if err != nil {
			return nil, sqldb.Fail("hold items", err)
		}
		for _, r := range refs {
			if ok, err := ev.matches(ctx, hold, r); err != nil {
				return nil, err
			} else if ok {
				add(r)
			}
		}
	}

	err := h.walk(ctx, ev, hold, func(r ContactRef) { add(r) })
	if err != nil {
		return nil, fmt.Errorf("hold items: %w", err)
	}
	return items, nil
}

// ScopeItem is one item a scope matches: a whole case (ContactID "") or,
// for a scope with a time range, one contact.
type ScopeItem struct{ CaseID, ContactID string }

// Matching is what a validated scope matches now, as a hold placed with it
// would record (an export of an ad-hoc scope reads these items).
func (h *Holds) Matching(ctx context.Context, sc HoldScope) ([]ScopeItem, error) {
	items, err := h.coverageItems(ctx, Hold{Scope: sc, Active: true, Preserving: true}, h.clock())
	if err != nil {
		return nil, err
	}
	out := make([]ScopeItem, len(items))
	for i, it := range items {
		out[i] = ScopeItem{CaseID: it.caseID, ContactID: it.contactID}
	}
	return out, nil
}
