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
//   - at placement, everything the scope matches then, walked and written
//     in batches after the hold row committed (recordAll); hold_recording
//     then says the hold's items are complete;
//   - in the transaction of every new contact, for the case, customer and
//     time scopes that cover it (RecordWrite, wired into the store's change
//     hook): those criteria never change after a row is written, so the
//     write alone decides;
//   - before a case update, in its transaction, what the active query holds
//     match in the case as it still is (RecordCase, wired into the store):
//     only query scopes read editable data;
//   - for query holds, the cases written since the hold's through mark
//     (hold_changes, noted by RecordWrite in the write's transaction) are
//     evaluated once the index has them, by the hold's report before its
//     first page (recordChanges): only the delta, never the whole scope;
//   - by a sweep, in a transaction of its own before the batch is decided,
//     every held candidate a hold matches live and had not recorded (a
//     contact or case that started matching after placement).
//
// Since a placement excludes every writer (SQLite's one writer; on
// PostgreSQL the write barrier, barrier.go), a write either commits
// before the hold row, and placement's walk (which starts after) sees it,
// or after, and its own hook sees the hold.
//
// Deciding coverage (evaluator.covers) is recorded ∪ live: a sweep, a manual
// deletion, explain and counts all see both, so coverage never depends on
// the recording being complete (a restore, a crash during placement). A
// release ends a hold's coverage: its rows stay, for the hold's report, but
// only active holds' rows count.

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

// qRecordItem records one hold item (sqldb.ExecRows writes many); prepared
// by Prepare, as every write under an active hold records its items.
const qRecordItem = `INSERT INTO hold_items (hold_id, case_id, contact_id, customer_id, since, why) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`

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
		if err := db.ExecRows(ctx, tx, qRecordItem, 6, args); err != nil {
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
		inCond, inArgs := sqldb.AnyOf(db.Dialect, "case_id", chunk)
		rows, err := sqldb.Collect(ctx, q, db.Rebind(`SELECT case_id, hold_id, contact_id FROM hold_items WHERE `+inCond), inArgs,
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

// coverageItems calls fn with what hold's scope matches now (live), as rows
// recorded at since, each once.
func (h *Holds) coverageItems(ctx context.Context, hold Hold, since time.Time, fn func(holdItem) error) error {
	ev := newEvaluator(h.matcher, []Hold{hold})
	if !ev.sure(hold) {
		return nil
	}
	seen := map[string]bool{}
	var ferr error
	add := func(r ContactRef) {
		it := itemFor(hold, r, since)
		if k := it.caseID + "/" + it.contactID; !seen[k] && ferr == nil {
			seen[k] = true
			ferr = fn(it)
		}
	}

	// Cases named by id are covered even while they have no contacts.
	if len(hold.Scope.CaseIDs) > 0 && !hold.Scope.bounded() {
		inCond, inArgs := sqldb.AnyOf(h.db.Dialect, "id", hold.Scope.CaseIDs)
		refs, err := sqldb.Collect(ctx, h.db.Read, h.db.Rebind(`SELECT id, customer_id FROM cases WHERE `+inCond), inArgs,
			func(rows *sql.Rows) (ContactRef, error) {
				var r ContactRef
				return r, rows.Scan(&r.CaseID, &r.CustomerID)
			})
		if err != nil {
			return sqldb.Fail("hold items", err)
		}
		ev.prefetch(ctx, refs)
		for _, r := range refs {
			if ok, err := ev.matches(ctx, hold, r); err != nil {
				return err
			} else if ok {
				add(r)
			}
		}
	}

	err := h.walk(ctx, ev, hold, add)
	if err = errors.Join(err, ferr); err != nil {
		return fmt.Errorf("hold items: %w", err)
	}
	return nil
}

// recordBatch is how many items placement records per transaction.
const recordBatch = 1000

// recordAll records everything hold's scope matches now, in transactions
// of recordBatch items, and then marks the hold's items complete
// (hold_recording), through the hold_changes head read before the walk: a
// change noted after it is evaluated by recordChanges. A query hold is
// marked only when the index had applied every change when the walk began
// (else the next report walks again). Without an engine a query hold
// records nothing: it covers live whatever its other criteria allow.
func (h *Holds) recordAll(ctx context.Context, hold Hold, since time.Time) error {
	head, err := h.changesHead(ctx)
	if err != nil {
		return err
	}
	caughtUp, err := h.indexCaughtUp(ctx, hold)
	if err != nil {
		return err
	}
	if !newEvaluator(h.matcher, []Hold{hold}).sure(hold) {
		return nil
	}

	var batch []holdItem
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := h.db.InTx(ctx, func(tx *sql.Tx) error { return recordItems(ctx, h.db, tx, batch) })
		batch = batch[:0]
		return err
	}
	err = h.coverageItems(ctx, hold, since, func(it holdItem) error {
		if batch = append(batch, it); len(batch) == recordBatch {
			return flush()
		}
		return nil
	})
	if err = errors.Join(err, flush()); err != nil || !caughtUp {
		return err
	}

	_, err = h.db.Write.ExecContext(ctx, h.db.Rebind(`INSERT INTO hold_recording (hold_id, through) VALUES (?, ?) ON CONFLICT DO NOTHING`), hold.ID, head)
	return sqldb.Fail("hold recording", err)
}

// changesHead is the last seq of hold_changes (0 when empty).
func (h *Holds) changesHead(ctx context.Context) (int64, error) {
	var head sql.NullInt64
	if err := h.db.Read.QueryRowContext(ctx, `SELECT MAX(seq) FROM hold_changes`).Scan(&head); err != nil {
		return 0, sqldb.Fail("hold changes", err)
	}
	return head.Int64, nil
}

// indexCaughtUp reports whether the index has applied every committed
// change, as far as hold needs it (only query holds ask the index).
func (h *Holds) indexCaughtUp(ctx context.Context, hold Hold) (bool, error) {
	if hold.Scope.Query == "" || h.indexLag == nil {
		return true, nil
	}
	n, err := h.indexLag(ctx)
	if err != nil {
		return false, fmt.Errorf("index lag: %w", err)
	}
	return n == 0, nil
}

// recordingOf reads how far hold's items are complete; ok is false while
// its placement's recording has not finished.
func (h *Holds) recordingOf(ctx context.Context, holdID string) (through int64, ok bool, err error) {
	err = h.db.Read.QueryRowContext(ctx, h.db.Rebind(`SELECT through FROM hold_recording WHERE hold_id = ?`), holdID).Scan(&through)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, sqldb.Fail("hold recording", err)
	}
	return through, true, nil
}

// complete brings a preserving hold's items up to date before its report
// is read: the whole scope if its recording never finished, else, for a
// query hold, the cases written since its through mark. Case, customer and
// time holds are kept current by the writes themselves.
func (h *Holds) complete(ctx context.Context, hold Hold) error {
	through, ok, err := h.recordingOf(ctx, hold.ID)
	switch {
	case err != nil:
		return err
	case !ok:
		return h.recordAll(ctx, hold, h.clock())
	case hold.Scope.Query == "":
		return nil
	}
	return h.recordChanges(ctx, hold, through)
}

// recordChanges evaluates a query hold against the cases noted in
// hold_changes after its through mark, records those it matches, and
// moves the mark to the head read first, if the index had applied every
// change by then. Rows no preserving query hold still needs are pruned.
func (h *Holds) recordChanges(ctx context.Context, hold Hold, through int64) error {
	head, err := h.changesHead(ctx)
	if err != nil || head <= through {
		return err
	}
	caughtUp, err := h.indexCaughtUp(ctx, hold)
	if err != nil {
		return err
	}

	caseIDs, err := sqldb.Collect(ctx, h.db.Read, h.db.Rebind(`SELECT DISTINCT case_id FROM hold_changes WHERE seq > ? AND seq <= ?`), []any{through, head},
		func(rows *sql.Rows) (string, error) {
			var id string
			return id, rows.Scan(&id)
		})
	if err != nil {
		return sqldb.Fail("hold changes", err)
	}
	ev := newEvaluator(h.matcher, []Hold{hold})
	if !ev.sure(hold) {
		return nil // no engine (a CLI): the hold covers live whatever else it allows
	}
	now := h.clock()
	for chunk := range slices.Chunk(caseIDs, 500) {
		inCond, inArgs := sqldb.AnyOf(h.db.Dialect, "id", chunk)
		refs, err := sqldb.Collect(ctx, h.db.Read, h.db.Rebind(`SELECT id, customer_id FROM cases WHERE `+inCond), inArgs,
			func(rows *sql.Rows) (ContactRef, error) {
				var r ContactRef
				return r, rows.Scan(&r.CaseID, &r.CustomerID)
			})
		if err != nil {
			return sqldb.Fail("hold changes", err)
		}
		ev.prefetch(ctx, refs)

		var items []holdItem
		for _, r := range refs {
			if hold.Scope.bounded() {
				// The case's contacts are what a bounded hold records; a
				// case-level ref cannot match its time range.
				contacts, err := caseContacts(ctx, h.db, h.db.Read, r.CaseID, r.CustomerID)
				if err != nil {
					return err
				}
				for _, c := range contacts {
					if ok, err := ev.matches(ctx, hold, c); err != nil {
						return err
					} else if ok {
						items = append(items, itemFor(hold, c, now))
					}
				}
				continue
			}
			if ok, err := ev.matches(ctx, hold, r); err != nil {
				return err
			} else if ok {
				items = append(items, itemFor(hold, r, now))
			}
		}
		if len(items) == 0 {
			continue
		}
		if err := h.db.InTx(ctx, func(tx *sql.Tx) error { return recordItems(ctx, h.db, tx, items) }); err != nil {
			return err
		}
	}
	if !caughtUp {
		return nil
	}

	if _, err := h.db.Write.ExecContext(ctx, h.db.Rebind(`UPDATE hold_recording SET through = ? WHERE hold_id = ? AND through < ?`), head, hold.ID, head); err != nil {
		return sqldb.Fail("hold recording", err)
	}
	return h.pruneChanges(ctx, head)
}

// CatchUp brings every preserving query hold's recording up to date
// (recordChanges), so hold_changes does not grow while nobody reads the
// reports; a sweep runs it first. Coverage never waits on it.
func (h *Holds) CatchUp(ctx context.Context) error {
	holds, err := h.active(ctx, nil)
	if err != nil {
		return err
	}
	var errs []error
	for _, hold := range holds {
		if hold.Scope.Query == "" {
			continue
		}
		through, ok, err := h.recordingOf(ctx, hold.ID)
		if err == nil && ok {
			err = h.recordChanges(ctx, hold, through)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// pruneChanges deletes the hold_changes rows every preserving query hold
// has evaluated (at most up to head). A query hold without a
// hold_recording row needs none: its walk covers all before its own head.
func (h *Holds) pruneChanges(ctx context.Context, head int64) error {
	holds, err := h.active(ctx, nil)
	if err != nil {
		return err
	}
	upTo := head
	for _, hd := range holds {
		if hd.Scope.Query == "" {
			continue
		}
		through, ok, err := h.recordingOf(ctx, hd.ID)
		if err != nil {
			return err
		}
		if ok {
			upTo = min(upTo, through)
		}
	}
	_, err = h.db.Write.ExecContext(ctx, h.db.Rebind(`DELETE FROM hold_changes WHERE seq <= ?`), upTo)
	return sqldb.Fail("hold changes", err)
}

// RecordWrite keeps hold_items current from the store's change hook, in
// the write's transaction (wired with the audit hook as the store's
// OnChange): a new contact is recorded for the case, customer and time
// holds that cover it, and a case created, updated or given a contact
// while a query hold preserves is noted in hold_changes, for the query
// holds to evaluate once the index has the change (recordChanges). Other
// changes are not about coverage.
func (h *Holds) RecordWrite(ctx context.Context, tx *sql.Tx, ch cases.Change) error {
	return h.RecordWrites(ctx, tx, []cases.Change{ch})
}

// RecordWrites is RecordWrite for the changes of one transaction (the
// store's contact batches, issue 19): the active holds are read once, and
// with none in force (the common case) that read is all it costs.
func (h *Holds) RecordWrites(ctx context.Context, tx *sql.Tx, chs []cases.Change) error {
	if !slices.ContainsFunc(chs, func(ch cases.Change) bool { return recordsWrite(ch.Action) }) {
		return nil
	}
	holds, err := h.active(ctx, tx)
	if err != nil || len(holds) == 0 {
		return err
	}
	for _, ch := range chs {
		if err := h.recordWrite(ctx, tx, ch, holds); err != nil {
			return err
		}
	}
	return nil
}

// recordsWrite tells the changes RecordWrite is about.
func recordsWrite(action string) bool {
	switch action {
	case "contact.create", "case.create", "case.update":
		return true
	}
	return false
}

// recordWrite records one change against the active holds.
func (h *Holds) recordWrite(ctx context.Context, tx *sql.Tx, ch cases.Change, holds []Hold) error {
	var caseID, contactID string
	switch ch.Action {
	case "contact.create":
		contactID = ch.TargetID
	case "case.create", "case.update":
		caseID = ch.TargetID
	default:
		return nil
	}

	if contactID != "" {
		k, err := sqlstore.ContactKeyOf(ctx, h.db, tx, contactID)
		if err != nil {
			return sqldb.Fail("record hold items", err)
		}
		ref := contactRef(k)
		caseID = ref.CaseID
		ev := newEvaluator(nil, nil)
		var items []holdItem
		for _, hd := range holds {
			if hd.Scope.Query != "" {
				continue
			}
			if ok, _ := ev.matches(ctx, hd, ref); ok { // no query: no error
				items = append(items, itemFor(hd, ref, h.clock()))
			}
		}
		if err := recordItems(ctx, h.db, tx, items); err != nil {
			return err
		}
	}

	if !slices.ContainsFunc(holds, func(hd Hold) bool { return hd.Scope.Query != "" }) {
		return nil
	}
	_, err := tx.ExecContext(ctx, h.db.Rebind(`INSERT INTO hold_changes (case_id) VALUES (?)`), caseID)
	return sqldb.Fail("note hold change", err)
}

// ScopeItem is one item a scope matches: a whole case (ContactID "") or,
// for a scope with a time range, one contact.
type ScopeItem struct{ CaseID, ContactID string }

// Matching is what a validated scope matches now, as a hold placed with it
// would record (an export of an ad-hoc scope reads these items).
func (h *Holds) Matching(ctx context.Context, sc HoldScope) ([]ScopeItem, error) {
	var out []ScopeItem
	err := h.coverageItems(ctx, Hold{Scope: sc, Active: true, Preserving: true}, h.clock(), func(it holdItem) error {
		out = append(out, ScopeItem{CaseID: it.caseID, ContactID: it.contactID})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
