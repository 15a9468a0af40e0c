package export

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// What a package holds, read in one read transaction (a snapshot): the
// records, the load file and the audit events agree with each other even
// while cases are edited. Only what the hold covers is read, and held data
// is never removed by a sweep, so the attachments read afterwards are there.

type contactRec struct {
	ID          string          `json:"id"`
	CaseID      string          `json:"case_id"`
	CustomerID  string          `json:"customer_id"`
	Channel     string          `json:"channel"`
	Direction   string          `json:"direction"`
	Author      string          `json:"author"`
	Body        string          `json:"body"`
	OccurredAt  string          `json:"occurred_at"`
	CreatedAt   string          `json:"created_at"`
	Purposes    json.RawMessage `json:"purposes"`
	Categories  json.RawMessage `json:"categories"`
	Location    json.RawMessage `json:"location"`
	Device      json.RawMessage `json:"device"`
	Anonymized  bool            `json:"anonymized"`
	occurredRaw int64
	caseNumber  int64
	why         string
}

type caseRec struct {
	ID         string          `json:"id"`
	Number     int64           `json:"number"`
	CustomerID string          `json:"customer_id"`
	Subject    string          `json:"subject"`
	Status     string          `json:"status"`
	Priority   string          `json:"priority"`
	Channel    string          `json:"channel"`
	Tags       json.RawMessage `json:"tags"`
	Assignee   string          `json:"assignee"`
	CreatedAt  string          `json:"created_at"`
	UpdatedAt  string          `json:"updated_at"`
	ClosedAt   *string         `json:"closed_at"`
}

type attachmentRec struct {
	ID          string `json:"id"`
	ContactID   string `json:"-"`
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	CreatedAt   string `json:"created_at"`
	// ControlNumber and Path are set when the package is laid out.
	ControlNumber string `json:"control_number"`
	Path          string `json:"path"`
}

// snapshot is everything a package is written from. The audit events are
// read last, by the goroutine writing the generated files, in the same
// read transaction (tx, open until close): that read overlaps the natives.
type snapshot struct {
	contacts    []contactRec // in package order
	cases       map[string]*caseRec
	customers   map[string]*cases.Customer
	attachments map[string][]attachmentRec // by contact
	erased      []string

	tx      *sql.Tx
	targets []string // the audit events' target ids: contacts, cases, attachments
}

// close ends the snapshot's transaction.
func (s *snapshot) close() {
	if s.tx != nil {
		_ = s.tx.Rollback()
	}
}

func stamp(v int64) string { return sqldb.FromMicros(v).Format("2006-01-02T15:04:05.000000Z") }

func stampPtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	s := stamp(sqldb.Micros(*t))
	return &s
}

func rawOr(s sql.NullString, def string) json.RawMessage {
	if !s.Valid || s.String == "" {
		return json.RawMessage(def)
	}
	return json.RawMessage(s.String)
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// contactRecord is a stored contact as a package writes it.
func contactRecord(c *sqlstore.ContactRecord) contactRec {
	occurred := sqldb.Micros(c.OccurredAt)
	return contactRec{
		ID: c.ID, CaseID: c.CaseID, CustomerID: c.CustomerID, Channel: c.Channel, Direction: c.Direction, Author: c.Author, Body: c.Body,
		OccurredAt: stamp(occurred), CreatedAt: stamp(sqldb.Micros(c.CreatedAt)),
		Purposes:   rawOr(sql.NullString{String: c.Purposes, Valid: true}, "[]"),
		Categories: rawOr(sql.NullString{String: c.Categories, Valid: true}, "[]"),
		Location:   rawOr(c.Location, "null"), Device: rawOr(c.Device, "null"), Anonymized: c.Anonymized,
		occurredRaw: occurred,
	}
}

// caseRecord is a stored case as a package writes it.
func caseRecord(c sqlstore.CaseRecord) caseRec {
	return caseRec{
		ID: c.ID, Number: c.Number, CustomerID: c.CustomerID, Subject: c.Subject, Status: c.Status, Priority: c.Priority, Channel: c.Channel,
		Tags: json.RawMessage(c.Tags), Assignee: c.Assignee,
		CreatedAt: stamp(sqldb.Micros(c.CreatedAt)), UpdatedAt: stamp(sqldb.Micros(c.UpdatedAt)), ClosedAt: stampPtr(c.ClosedAt),
	}
}

// readSnapshot reads what e's hold covers, or what its scope matches, in
// one read-only transaction, which stays open for the audit events (the
// caller closes the snapshot).
func (s *Service) readSnapshot(ctx context.Context, e Export, sel selection) (_ *snapshot, err error) {
	db := s.o.DB

	// A scope's matches are decided first (a query scope asks the search
	// engine); their records are then read in the snapshot like a hold's.
	var matched []retention.ScopeItem
	if e.Scope != nil {
		if matched, err = s.o.Holds.Matching(ctx, *e.Scope); err != nil {
			return nil, err
		}
	}

	opts := &sql.TxOptions{ReadOnly: true}
	if db.Dialect == sqldb.Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := db.Read.BeginTx(ctx, opts)
	if err != nil {
		return nil, sqldb.Fail("export snapshot", err)
	}
	snap := &snapshot{tx: tx, cases: map[string]*caseRec{}, customers: map[string]*cases.Customer{}, attachments: map[string][]attachmentRec{}}
	defer func() {
		if err != nil {
			snap.close()
		}
	}()

	// What the hold covers: whole cases (contact_id '') and single
	// contacts, each with why (a scope's items: the scope's parts).
	type item struct{ caseID, contactID, why string }
	var items []item
	if e.Scope == nil {
		items, err = sqldb.Collect(ctx, tx, db.Rebind(`SELECT case_id, contact_id, why FROM hold_items WHERE hold_id = ?`), []any{e.HoldID},
			func(rows *sql.Rows) (item, error) {
				var it item
				return it, rows.Scan(&it.caseID, &it.contactID, &it.why)
			})
		if err != nil {
			return nil, sqldb.Fail("export coverage", err)
		}
	}
	for _, it := range matched {
		items = append(items, item{it.CaseID, it.ContactID, sel.why})
	}
	var wholeCases, singles []string
	why := make(map[string]string, len(items))
	for _, it := range items {
		if it.contactID == "" {
			wholeCases = append(wholeCases, it.caseID)
			why[it.caseID] = it.why
		} else {
			singles = append(singles, it.contactID)
			why[it.contactID] = it.why
		}
	}

	byCases, err := sqlstore.ContactRecordsOfCases(ctx, db, tx, wholeCases)
	if err != nil {
		return nil, sqldb.Fail("export read", err)
	}
	bySingles, err := sqlstore.ContactRecords(ctx, db, tx, singles)
	if err != nil {
		return nil, sqldb.Fail("export read", err)
	}

	// Erased customers: nothing of theirs leaves, not even the record
	// (their sealed fields would not open either).
	customerIDs := map[string]bool{}
	for _, read := range [][]sqlstore.ContactRecord{byCases, bySingles} {
		for i := range read {
			customerIDs[read[i].CustomerID] = true
		}
	}
	erased, err := sqldb.CollectIn(ctx, db, tx, `SELECT customer_id FROM customer_keys WHERE destroyed_at IS NOT NULL AND %s`, "customer_id", keys(customerIDs),
		func(rows *sql.Rows) (string, error) {
			var id string
			return id, rows.Scan(&id)
		})
	if err != nil {
		return nil, sqldb.Fail("export read", err)
	}
	snap.erased = erased
	for _, id := range erased {
		delete(customerIDs, id)
	}
	live := func(rs []sqlstore.ContactRecord) []sqlstore.ContactRecord {
		return slices.DeleteFunc(rs, func(c sqlstore.ContactRecord) bool { return !customerIDs[c.CustomerID] })
	}
	byCases, bySingles = live(byCases), live(bySingles)
	if err := errors.Join(s.o.Fields.OpenContacts(ctx, byCases), s.o.Fields.OpenContacts(ctx, bySingles)); err != nil {
		return nil, sqldb.Fail("export read", err)
	}

	// A contact covered twice (its case and itself) is written once.
	var seen map[string]bool
	if len(byCases) > 0 && len(bySingles) > 0 {
		seen = make(map[string]bool, len(byCases)+len(bySingles))
	}
	contacts := make([]contactRec, 0, len(byCases)+len(bySingles))
	for _, read := range [][]sqlstore.ContactRecord{byCases, bySingles} {
		for i := range read {
			c := &read[i]
			if seen != nil {
				if seen[c.ID] {
					continue
				}
				seen[c.ID] = true
			}
			r := contactRecord(c)
			if r.why = why[c.ID]; r.why == "" {
				r.why = why[c.CaseID]
			}
			contacts = append(contacts, r)
		}
	}
	byCases, bySingles = nil, nil

	caseIDs := map[string]bool{}
	kept := contacts[:0]
	for _, c := range contacts {
		if customerIDs[c.CustomerID] {
			kept = append(kept, c)
			caseIDs[c.CaseID] = true
		}
	}
	contacts = kept

	cs, err := sqlstore.CaseRecords(ctx, db, tx, keys(caseIDs))
	if err != nil {
		return nil, sqldb.Fail("export read", err)
	}
	if err := s.o.Fields.OpenCases(ctx, cs); err != nil {
		return nil, sqldb.Fail("export read", err)
	}
	for _, c := range cs {
		r := caseRecord(c)
		snap.cases[c.ID] = &r
	}

	us, err := sqlstore.CustomerRecords(ctx, db, tx, keys(customerIDs))
	if err != nil {
		return nil, sqldb.Fail("export read", err)
	}
	if err := s.o.Fields.OpenCustomers(ctx, us); err != nil {
		return nil, sqldb.Fail("export read", err)
	}
	for i := range us {
		snap.customers[us[i].ID] = &us[i]
	}

	contactIDs := make([]string, len(contacts))
	for i, c := range contacts {
		contactIDs[i] = c.ID
	}
	as, err := readAttachments(ctx, db, tx, contactIDs)
	if err != nil {
		return nil, err
	}
	snap.targets = slices.Concat(contactIDs, keys(caseIDs))
	for _, a := range as {
		snap.attachments[a.ContactID] = append(snap.attachments[a.ContactID], a)
		snap.targets = append(snap.targets, a.ID)
	}

	// Package order: by case number, then as the contacts happened. The
	// records are large: sort their indexes, then place them once.
	order := make([]int32, len(contacts))
	for i := range contacts {
		order[i] = int32(i)
		if k := snap.cases[contacts[i].CaseID]; k != nil {
			contacts[i].caseNumber = k.Number
		}
	}
	slices.SortFunc(order, func(i, j int32) int {
		a, b := &contacts[i], &contacts[j]
		return cmp.Or(cmp.Compare(a.caseNumber, b.caseNumber), cmp.Compare(a.occurredRaw, b.occurredRaw), strings.Compare(a.ID, b.ID))
	})
	snap.contacts = make([]contactRec, len(contacts))
	for i, j := range order {
		snap.contacts[i] = contacts[j]
	}
	return snap, nil
}

// readAttachments reads the attachments of the contacts, in id order.
func readAttachments(ctx context.Context, db *sqldb.DB, tx *sql.Tx, contactIDs []string) ([]attachmentRec, error) {
	as, err := sqldb.CollectIn(ctx, db, tx, `SELECT id, contact_id, filename, content_type, size, sha256, created_at FROM attachments WHERE %s ORDER BY id`, "contact_id", contactIDs,
		func(rows *sql.Rows) (attachmentRec, error) {
			var a attachmentRec
			var created int64
			err := rows.Scan(&a.ID, &a.ContactID, &a.Filename, &a.ContentType, &a.Size, &a.SHA256, &created)
			a.CreatedAt = stamp(created)
			return a, err
		})
	if err != nil {
		return nil, sqldb.Fail("export read", err)
	}
	return as, nil
}

// readAudit reads the audit events of the snapshot's items, in the order
// of the chain.
func (s *Service) readAudit(ctx context.Context, snap *snapshot) ([]audit.Event, error) {
	return readAuditOf(ctx, s.o.DB, snap.tx, snap.targets)
}

// readAuditOf reads the audit events whose target is one of targets, in
// the order of the chain.
func readAuditOf(ctx context.Context, db *sqldb.DB, tx *sql.Tx, targets []string) ([]audit.Event, error) {
	events, err := sqldb.CollectIn(ctx, db, tx, `SELECT seq, at, actor_id, actor_name, role, action, target_type, target_id, request_id, client_ip, outcome, detail, prev_hash, hash FROM audit_events WHERE %s`, "target_id", targets,
		func(rows *sql.Rows) (audit.Event, error) {
			var e audit.Event
			var at int64
			var detail string
			err := rows.Scan(&e.Seq, &at, &e.ActorID, &e.ActorName, &e.Role, &e.Action, &e.TargetType, &e.TargetID, &e.RequestID, &e.ClientIP, &e.Outcome, &detail, &e.PrevHash, &e.Hash)
			e.Time, e.Detail = sqldb.FromMicros(at), json.RawMessage(detail)
			if detail == "" {
				e.Detail = json.RawMessage("null")
			}
			return e, err
		})
	if err != nil {
		return nil, sqldb.Fail("export read", err)
	}
	slices.SortFunc(events, func(a, b audit.Event) int { return cmp.Compare(a.Seq, b.Seq) })
	return events, nil
}
