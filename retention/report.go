package retention

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// Hold reports (issue 14 §2). A report is read from hold_items, which
// outlive the hold's release, joined with what is still stored and with
// the disposition records of what is not: after a release and a later
// disposal, legal still sees what the hold preserved and when each item
// was disposed of.
//
// The keys of a report are (case_id, contact_id): a case the hold covered
// as a whole is one item with contact_id "" followed by its contacts (those
// stored while the hold preserved, and those since disposed of); a
// time-bounded hold recorded single contacts.

// ReportItem is one case or contact a hold covers or covered.
type ReportItem struct {
	Kind       string `json:"kind"` // "case" or "contact"
	CaseID     string `json:"case_id"`
	ContactID  string `json:"contact_id,omitempty"`
	CustomerID string `json:"customer_id"`
	// Why names the parts of the hold's scope the item matched
	// (case_ids, customer_ids, query, date_range joined by "+").
	Why string `json:"why"`
	// Since is when the hold started covering the item: when it was
	// recorded, or when a contact was stored in a case already covered.
	Since       time.Time        `json:"since"`
	OccurredAt  *time.Time       `json:"occurred_at,omitempty"`
	Attachments []ReportFile     `json:"attachments,omitempty"`
	Disposed    bool             `json:"disposed"`
	Disposition []ReportDisposal `json:"dispositions,omitempty"`
}

// ReportFile is an attachment of a reported contact.
type ReportFile struct {
	ID       string `json:"id"`
	Filename string `json:"filename"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
}

// ReportDisposal links a disposition record (GET /contacts/{id}/retention
// and the run reports name the same ids).
type ReportDisposal struct {
	ID     string    `json:"id"`
	Action string    `json:"action"`
	RunID  string    `json:"run_id,omitempty"`
	At     time.Time `json:"at"`
}

// CustodianCounts is how much a hold covers (or covered) of one customer.
type CustodianCounts struct {
	CustomerID  string `json:"customer_id"`
	Cases       int64  `json:"cases"`
	Contacts    int64  `json:"contacts"`
	Attachments int64  `json:"attachments"`
	// Disposed counts the contacts disposed of since (after the release).
	Disposed int64 `json:"disposed_contacts"`
}

// ItemFilter narrows a report.
type ItemFilter struct {
	Custodian string // a customer id; "" for every customer
}

// ErrBadCursor is matched by a cursor a report did not issue (422).
var ErrBadCursor = errors.New("bad cursor")

// keySQL selects a report's keys for the holds holdIDs, and returns its
// arguments:
// case_id, contact_id, customer_id, why, since, live (0: a contact
// disposed of). Contacts of a covered case count only when stored before
// the hold stopped preserving.
//
// It stays here rather than in sqlstore: the contacts table is only joined
// (case_id, id, created_at) to retention's own hold_items, legal_holds and
// dispositions, in one keyset-paged UNION whose meaning is retention's.
func keySQL(d sqldb.Dialect, holdIDs []string) (string, []any) {
	in, inArgs := sqldb.AnyOf(d, "hi.hold_id", holdIDs)
	var args []any
	for range 4 { // one list per branch
		args = append(args, inArgs...)
	}
	return `SELECT hi.case_id, '' AS contact_id, hi.customer_id, hi.why, hi.since, 1 AS live FROM hold_items hi WHERE ` + in + ` AND hi.contact_id = ''
	UNION ALL
	SELECT hi.case_id, c.id, hi.customer_id, hi.why, CASE WHEN c.created_at > hi.since THEN c.created_at ELSE hi.since END, 1
	  FROM hold_items hi JOIN legal_holds h ON h.id = hi.hold_id JOIN contacts c ON c.case_id = hi.case_id
	  WHERE ` + in + ` AND hi.contact_id = '' AND c.created_at < COALESCE(h.grace_until, ` + fmt.Sprint(int64(math.MaxInt64)) + `)
	UNION ALL
	SELECT DISTINCT hi.case_id, d.contact_id, hi.customer_id, hi.why, hi.since, 0
	  FROM hold_items hi JOIN dispositions d ON d.case_id = hi.case_id
	  WHERE ` + in + ` AND hi.contact_id = '' AND d.contact_id <> '' AND NOT EXISTS (SELECT 1 FROM contacts c2 WHERE c2.id = d.contact_id)
	UNION ALL
	SELECT hi.case_id, hi.contact_id, hi.customer_id, hi.why, hi.since, CASE WHEN EXISTS (SELECT 1 FROM contacts c3 WHERE c3.id = hi.contact_id) THEN 1 ELSE 0 END
	  FROM hold_items hi WHERE ` + in + ` AND hi.contact_id <> ''`, args
}

// Items is one page of a hold's report, ordered by case then contact:
// limit (1..500, default 50) items after cursor (as returned in next; ""
// for the first page). Before the first page of a hold that still
// preserves, what its recording has not caught up with is recorded (for a
// query hold the cases written since its through mark; the whole scope only
// if its placement's recording never finished), so the report is
// complete; the page itself is read from hold_items by key (itemPage). An
// unknown hold gives cases.ErrNotFound, a cursor not issued here
// ErrBadCursor.
func (h *Holds) Items(ctx context.Context, holdID string, f ItemFilter, limit int, cursor string) (items []ReportItem, next string, err error) {
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	afterCase, afterContact, err := parseItemCursor(cursor)
	if err != nil {
		return nil, "", err
	}
	hold, err := h.Get(ctx, holdID)
	if err != nil {
		return nil, "", err
	}
	if cursor == "" && hold.Preserving {
		if err := h.complete(ctx, hold); err != nil {
			return nil, "", err
		}
	}

	items, err = h.itemPage(ctx, hold, f, afterCase, afterContact, limit+1)
	if err != nil {
		return nil, "", err
	}
	more := len(items) > limit
	if more {
		items = items[:limit]
	}

	if err := h.describe(ctx, items); err != nil {
		return nil, "", err
	}
	if more {
		last := items[len(items)-1]
		next = last.CaseID + "/" + last.ContactID
	}
	return items, next, nil
}

// pageRow is a hold_items row of a report page; cursorCase marks the
// cursor's own case, whose case item the previous page listed already.
type pageRow struct {
	caseID, contactID, customerID, why string
	since                              int64
	cursorCase                         bool
}

// itemPage reads up to n report items after (afterCase, afterContact), in
// key order, the same keys keySQL lists (the custodian counts read that):
// the hold's rows from hold_items by its primary key (or
// hold_items_custodian with a custodian), which serve the order, and for a
// row covering a whole case, right after it, the case's contacts stored
// while the hold preserved and those since disposed of. Every row gives
// at least one item, so n rows are enough; the contacts of those cases
// after the cursor are read n at most, in one query each for stored and
// disposed ones. Its cost follows n, not the size of the hold.
//
// The contacts and dispositions tables are read here, joined to nothing
// of sqlstore's: the page is retention's, as keySQL is.
func (h *Holds) itemPage(ctx context.Context, hold Hold, f ItemFilter, afterCase, afterContact string, n int) ([]ReportItem, error) {
	scan := func(rows *sql.Rows) (pageRow, error) {
		var r pageRow
		return r, rows.Scan(&r.caseID, &r.contactID, &r.customerID, &r.why, &r.since)
	}
	where, args := ` WHERE hold_id = ?`, []any{hold.ID}
	if f.Custodian != "" {
		where, args = where+` AND customer_id = ?`, append(args, f.Custodian)
	}
	const cols = `SELECT case_id, contact_id, customer_id, why, since FROM hold_items`

	// The cursor's case, when the hold covers it whole: the page goes on
	// with its contacts after the cursor.
	var rows []pageRow
	if afterCase != "" {
		own, err := sqldb.Collect(ctx, h.db.Read, h.db.Rebind(cols+where+` AND case_id = ? AND contact_id = ''`), append(slices.Clone(args), afterCase), scan)
		if err != nil {
			return nil, sqldb.Fail("hold report", err)
		}
		for i := range own {
			own[i].cursorCase = true
		}
		rows = own
	}
	q, qargs := cols+where, slices.Clone(args)
	if afterCase != "" {
		// A row value: both engines seek the index to it (an OR of
		// comparisons only filters on PostgreSQL).
		q, qargs = q+` AND (case_id, contact_id) > (?, ?)`, append(qargs, afterCase, afterContact)
	}
	more, err := sqldb.Collect(ctx, h.db.Read, h.db.Rebind(q+` ORDER BY case_id, contact_id LIMIT ?`), append(qargs, n), scan)
	if err != nil {
		return nil, sqldb.Fail("hold report", err)
	}
	rows = append(rows, more...)

	// The contacts of the whole cases among them, after the cursor.
	var whole []string
	for _, r := range rows {
		if r.contactID == "" {
			whole = append(whole, r.caseID)
		}
	}
	type contactRow struct {
		caseID, id string
		created    int64
	}
	live, gone := map[string][]contactRow{}, map[string][]contactRow{}
	if len(whole) > 0 {
		in, inArgs := sqldb.AnyOf(h.db.Dialect, "case_id", whole)
		until := int64(math.MaxInt64)
		if hold.GraceUntil != nil {
			until = sqldb.Micros(*hold.GraceUntil)
		}
		cargs := append(inArgs, until, afterCase, afterContact, n)
		cs, err := sqldb.Collect(ctx, h.db.Read, h.db.Rebind(`SELECT case_id, id, created_at FROM contacts WHERE `+in+`
			AND created_at < ? AND (case_id > ? OR id > ?) ORDER BY case_id, id LIMIT ?`), cargs,
			func(rows *sql.Rows) (contactRow, error) {
				var c contactRow
				return c, rows.Scan(&c.caseID, &c.id, &c.created)
			})
		if err != nil {
			return nil, sqldb.Fail("hold report", err)
		}
		for _, c := range cs {
			live[c.caseID] = append(live[c.caseID], c)
		}

		dIn, dInArgs := sqldb.AnyOf(h.db.Dialect, "d.case_id", whole)
		dargs := append(dInArgs, afterCase, afterContact, n)
		ds, err := sqldb.Collect(ctx, h.db.Read, h.db.Rebind(`SELECT DISTINCT d.case_id, d.contact_id FROM dispositions d WHERE `+dIn+`
			AND d.contact_id <> '' AND (d.case_id > ? OR d.contact_id > ?) AND NOT EXISTS (SELECT 1 FROM contacts c WHERE c.id = d.contact_id)
			ORDER BY d.case_id, d.contact_id LIMIT ?`), dargs,
			func(rows *sql.Rows) (contactRow, error) {
				var c contactRow
				return c, rows.Scan(&c.caseID, &c.id)
			})
		if err != nil {
			return nil, sqldb.Fail("hold report", err)
		}
		for _, c := range ds {
			gone[c.caseID] = append(gone[c.caseID], c)
		}
	}

	// Merged in key order until n items.
	var out []ReportItem
	for _, r := range rows {
		if len(out) == n {
			break
		}
		it := ReportItem{Kind: "contact", CaseID: r.caseID, ContactID: r.contactID, CustomerID: r.customerID, Why: r.why, Since: sqldb.FromMicros(r.since)}
		if r.contactID != "" {
			out = append(out, it)
			continue
		}
		if !r.cursorCase {
			it.Kind = "case"
			out = append(out, it)
		}
		ls, gs := live[r.caseID], gone[r.caseID]
		for len(out) < n && (len(ls) > 0 || len(gs) > 0) {
			c := ReportItem{Kind: "contact", CaseID: r.caseID, CustomerID: r.customerID, Why: r.why}
			if len(gs) == 0 || (len(ls) > 0 && ls[0].id < gs[0].id) {
				c.ContactID, c.Since = ls[0].id, sqldb.FromMicros(max(ls[0].created, r.since))
				ls = ls[1:]
			} else {
				c.ContactID, c.Since, c.Disposed = gs[0].id, sqldb.FromMicros(r.since), true
				gs = gs[1:]
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// parseItemCursor reads "case_id/contact_id" (contact_id may be empty).
func parseItemCursor(cursor string) (caseID, contactID string, err error) {
	if cursor == "" {
		return "", "", nil
	}
	caseID, contactID, ok := strings.Cut(cursor, "/")
	if !ok || !isUUID(caseID) || (contactID != "" && !isUUID(contactID)) {
		return "", "", fmt.Errorf("cursor %q: %w", cursor, ErrBadCursor)
	}
	return caseID, contactID, nil
}

// isUUID accepts what cases.NewID makes: a UUID in canonical form.
func isUUID(s string) bool {
	id, err := uuid.Parse(s)
	return err == nil && id.String() == s
}

// describe adds what is stored of the page's contacts (occurred_at,
// attachments) and the disposition records of its cases and contacts.
func (h *Holds) describe(ctx context.Context, items []ReportItem) error {
	var contactIDs, caseIDs []string
	for _, it := range items {
		if it.ContactID != "" {
			contactIDs = append(contactIDs, it.ContactID)
		} else {
			caseIDs = append(caseIDs, it.CaseID)
		}
	}
	occurred := map[string]time.Time{}
	files := map[string][]ReportFile{}
	disposals := map[string][]ReportDisposal{} // by contact id, or by case id for a case's own

	if len(contactIDs) > 0 {
		times, err := sqlstore.ContactTimes(ctx, h.db, h.db.Read, contactIDs)
		if err != nil {
			return sqldb.Fail("hold report contacts", err)
		}
		maps.Copy(occurred, times)

		type file struct {
			contactID string
			ReportFile
		}
		inCond, inArgs := sqldb.AnyOf(h.db.Dialect, "contact_id", contactIDs)
		fs, err := sqldb.Collect(ctx, h.db.Read, h.db.Rebind(`SELECT contact_id, id, filename, size, sha256 FROM attachments WHERE `+inCond+` ORDER BY id`), inArgs,
			func(rows *sql.Rows) (file, error) {
				var f file
				return f, rows.Scan(&f.contactID, &f.ID, &f.Filename, &f.Size, &f.SHA256)
			})
		if err != nil {
			return sqldb.Fail("hold report attachments", err)
		}
		for _, f := range fs {
			files[f.contactID] = append(files[f.contactID], f.ReportFile)
		}
	}

	type disp struct {
		key string
		ReportDisposal
	}
	scanDisp := func(rows *sql.Rows) (disp, error) {
		var d disp
		var at int64
		err := rows.Scan(&d.key, &d.ID, &d.Action, &d.RunID, &at)
		d.At = sqldb.FromMicros(at)
		return d, err
	}
	var ds []disp
	if len(contactIDs) > 0 {
		inCond, inArgs := sqldb.AnyOf(h.db.Dialect, "contact_id", contactIDs)
		got, err := sqldb.Collect(ctx, h.db.Read, h.db.Rebind(`SELECT contact_id, id, action, run_id, at FROM dispositions WHERE `+inCond+` ORDER BY id`), inArgs, scanDisp)
		if err != nil {
			return sqldb.Fail("hold report dispositions", err)
		}
		ds = append(ds, got...)
	}
	if len(caseIDs) > 0 {
		inCond, inArgs := sqldb.AnyOf(h.db.Dialect, "case_id", caseIDs)
		got, err := sqldb.Collect(ctx, h.db.Read, h.db.Rebind(`SELECT case_id, id, action, run_id, at FROM dispositions WHERE contact_id = '' AND `+inCond+` ORDER BY id`), inArgs, scanDisp)
		if err != nil {
			return sqldb.Fail("hold report dispositions", err)
		}
		ds = append(ds, got...)
	}
	for _, d := range ds {
		disposals[d.key] = append(disposals[d.key], d.ReportDisposal)
	}

	for i := range items {
		it := &items[i]
		key := it.ContactID
		if key == "" {
			key = it.CaseID
		}
		it.Disposition = disposals[key]
		if it.Kind == "case" {
			it.Disposed = slices.ContainsFunc(it.Disposition, func(d ReportDisposal) bool { return d.Action == ItemDeleteCase })
			continue
		}
		if at, ok := occurred[it.ContactID]; ok {
			it.OccurredAt = &at
		} else {
			it.Disposed = true // recorded, no longer stored
		}
		it.Attachments = files[it.ContactID]
	}
	return nil
}

// Custodians counts a hold's report per customer (what it covers or
// covered, surviving its release), by customer id.
func (h *Holds) Custodians(ctx context.Context, holdID string) ([]CustodianCounts, error) {
	if _, err := h.Get(ctx, holdID); err != nil {
		return nil, err
	}
	out, err := h.custodians(ctx, []string{holdID})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// custodians counts the distinct keys of the holds' reports per customer,
// and the stored attachments of their contacts.
func (h *Holds) custodians(ctx context.Context, holdIDs []string) ([]CustodianCounts, error) {
	keySel, keyArgs := keySQL(h.db.Dialect, holdIDs)
	keys := `SELECT DISTINCT case_id, contact_id, customer_id, live FROM (` + keySel + `) k`
	q := `SELECT customer_id, COUNT(DISTINCT case_id),
		SUM(CASE WHEN contact_id <> '' THEN 1 ELSE 0 END),
		SUM(CASE WHEN contact_id <> '' AND live = 0 THEN 1 ELSE 0 END)
		FROM (` + keys + `) t GROUP BY customer_id ORDER BY customer_id`
	out, err := sqldb.Collect(ctx, h.db.Read, h.db.Rebind(q), keyArgs, func(rows *sql.Rows) (CustodianCounts, error) {
		var c CustodianCounts
		return c, rows.Scan(&c.CustomerID, &c.Cases, &c.Contacts, &c.Disposed)
	})
	if err != nil {
		return nil, sqldb.Fail("hold custodians", err)
	}

	type files struct {
		customerID string
		n          int64
	}
	q = `SELECT t.customer_id, COUNT(*) FROM (SELECT DISTINCT contact_id, customer_id FROM (` + keySel + `) k WHERE contact_id <> '') t
		JOIN attachments a ON a.contact_id = t.contact_id GROUP BY t.customer_id`
	fs, err := sqldb.Collect(ctx, h.db.Read, h.db.Rebind(q), keyArgs, func(rows *sql.Rows) (files, error) {
		var f files
		return f, rows.Scan(&f.customerID, &f.n)
	})
	if err != nil {
		return nil, sqldb.Fail("hold custodians", err)
	}
	for _, f := range fs {
		if i := slices.IndexFunc(out, func(c CustodianCounts) bool { return c.CustomerID == f.customerID }); i >= 0 {
			out[i].Attachments = f.n
		}
	}

	if out == nil {
		out = []CustodianCounts{}
	}
	return out, nil
}

// Matter is every hold of a matter with their combined coverage.
type Matter struct {
	Matter string `json:"matter"`
	Holds  []Hold `json:"holds"`
	// Combined counts each case, contact and attachment once, however
	// many of the matter's holds cover it; Custodians splits it by
	// customer.
	Combined   CustodianCounts   `json:"combined"`
	Custodians []CustodianCounts `json:"custodians"`
}

// maxMatterHolds bounds a matter view.
const maxMatterHolds = 500

// Matter returns the holds of a matter (exact name), newest first, with
// their combined coverage from their reports; a matter no hold names gives
// cases.ErrNotFound.
func (h *Holds) Matter(ctx context.Context, matter string) (Matter, error) {
	holds, _, err := h.List(ctx, HoldFilter{Matter: matter}, maxMatterHolds, "")
	if err != nil {
		return Matter{}, err
	}
	if len(holds) == 0 {
		return Matter{}, fmt.Errorf("matter %q: %w", matter, cases.ErrNotFound)
	}

	ids := holdIDs(holds)
	per, err := h.custodians(ctx, ids)
	if err != nil {
		return Matter{}, err
	}
	out := Matter{Matter: matter, Holds: holds, Custodians: per}
	for _, c := range per {
		out.Combined.Cases += c.Cases
		out.Combined.Contacts += c.Contacts
		out.Combined.Attachments += c.Attachments
		out.Combined.Disposed += c.Disposed
	}
	return out, nil
}

// ReleasePreview is what releasing a hold would make due: the contacts it
// covers whose retention has ended and that no other hold covers.
type ReleasePreview struct {
	HoldID string    `json:"hold_id"`
	AsOf   time.Time `json:"as_of"`
	// DueAfter is when a release's grace would end (now + the grace for an
	// active hold; the grace's end for a released one): nothing becomes due
	// before.
	DueAfter time.Time `json:"due_after"`
	// Due counts the contacts a sweep would act on; Items lists the first
	// MaxPreviewItems of them.
	Due       int           `json:"due"`
	Items     []PreviewItem `json:"items"`
	Truncated bool          `json:"truncated"`
	// HeldByOthers counts covered contacts past their retention that other
	// holds keep.
	HeldByOthers int `json:"held_by_others"`
}

// PreviewItem is one contact a release would make due.
type PreviewItem struct {
	ContactID   string    `json:"contact_id"`
	CaseID      string    `json:"case_id"`
	CustomerID  string    `json:"customer_id"`
	RetainUntil time.Time `json:"retain_until"`
}

// MaxPreviewItems bounds the list of a release preview (Due counts all).
const MaxPreviewItems = 1000

// ReleasePreview reports what releasing the hold would make due now; an
// unknown hold gives cases.ErrNotFound.
func (h *Holds) ReleasePreview(ctx context.Context, holdID string) (ReleasePreview, error) {
	hold, err := h.Get(ctx, holdID)
	if err != nil {
		return ReleasePreview{}, err
	}
	now := h.clock()
	g, err := h.grace(ctx, h.db.Read)
	if err != nil {
		return ReleasePreview{}, err
	}
	out := ReleasePreview{HoldID: holdID, AsOf: now, DueAfter: now.Add(g), Items: []PreviewItem{}}
	if hold.GraceUntil != nil {
		out.DueAfter = *hold.GraceUntil
	}

	// What this hold covers (recorded or live)…
	var covered []ContactRef
	this := newEvaluator(h.matcher, []Hold{hold}).withRecorded(h.db, h.db.Read)
	if err := h.walk(ctx, this, hold, func(r ContactRef) { covered = append(covered, r) }); err != nil {
		return out, err
	}

	// …past its retention, and not kept by another hold.
	others, err := h.active(ctx, nil)
	if err != nil {
		return out, err
	}
	others = slices.DeleteFunc(others, func(o Hold) bool { return o.ID == holdID })
	ev := newEvaluator(h.matcher, others).withRecorded(h.db, h.db.Read)
	for chunk := range slices.Chunk(covered, 500) {
		byID := make(map[string]ContactRef, len(chunk))
		ids := make([]string, len(chunk))
		for i, r := range chunk {
			byID[r.ContactID], ids[i] = r, r.ContactID
		}
		rows, err := sqlstore.ContactsDueBy(ctx, h.db, h.db.Read, now, ids)
		if err != nil {
			return out, sqldb.Fail("release preview", err)
		}
		for _, d := range rows {
			ref := byID[d.ID]
			held, err := ev.covering(ctx, ref)
			if err != nil || len(held) > 0 {
				out.HeldByOthers++ // an unsure answer keeps it held, as a sweep would
				continue
			}
			out.Due++
			if len(out.Items) == MaxPreviewItems {
				out.Truncated = true
				continue
			}
			out.Items = append(out.Items, PreviewItem{ContactID: d.ID, CaseID: ref.CaseID, CustomerID: ref.CustomerID, RetainUntil: d.RetainUntil})
		}
	}
	return out, nil
}
