package export

import (
	"archive/zip"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// The access and portability export (issue 15 §2): everything stored
// about one customer, as one ZIP streamed to the client. Unlike an
// e-discovery package it is not stored: it is written while it is read,
// from one read-only snapshot.

// SubjectFormat and SubjectVersion name the layout of an access export;
// the version changes when a field changes meaning or goes away.
const (
	SubjectFormat  = "casevault-subject-access"
	SubjectVersion = 1
)

// CaseExplainer says which rule keeps each contact of a case
// (retention.Explainer).
type CaseExplainer interface {
	ExplainCase(ctx context.Context, id string, now time.Time) (retention.CaseExplanation, error)
}

// SubjectOptions wires a SubjectAccess.
type SubjectOptions struct {
	DB          *sqldb.DB
	Attachments AttachmentOpener
	Explain     CaseExplainer
	// Fields opens the personal fields the store keeps sealed (nil: the
	// rows are read as stored).
	Fields *sqlstore.Fields
	// Now is the clock of generated_at and of the explanations.
	Now func() time.Time
}

// SubjectAccess writes access exports.
type SubjectAccess struct{ o SubjectOptions }

// NewSubjectAccess builds a SubjectAccess.
func NewSubjectAccess(o SubjectOptions) *SubjectAccess {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &SubjectAccess{o: o}
}

// subjectManifest is manifest.json, written last.
type subjectManifest struct {
	Format      string         `json:"format"`
	Version     int            `json:"version"`
	CustomerID  string         `json:"customer_id"`
	GeneratedAt time.Time      `json:"generated_at"`
	Counts      map[string]int `json:"counts"`
	Files       []FileDigest   `json:"files"`
}

// subjectRetention is why and until when a record is kept.
type subjectRetention struct {
	RetainUntil *time.Time             `json:"retain_until"` // nil: until the case closes, or no date
	Rule        *retention.PurposeRule `json:"rule"`         // the deciding rule; nil when none applies
	Holds       []string               `json:"holds"`        // legal holds keeping it beyond that date
	Anonymized  bool                   `json:"anonymized"`
}

// subjectContact is one line of contacts.ndjson.
type subjectContact struct {
	ID          string              `json:"id"`
	CaseID      string              `json:"case_id"`
	Channel     string              `json:"channel"`
	Direction   string              `json:"direction"`
	Author      string              `json:"author"`
	Body        string              `json:"body"`
	OccurredAt  time.Time           `json:"occurred_at"`
	CreatedAt   time.Time           `json:"created_at"`
	Purposes    json.RawMessage     `json:"purposes"`
	Categories  json.RawMessage     `json:"categories"`
	Location    json.RawMessage     `json:"location"`
	Device      json.RawMessage     `json:"device"`
	Corrects    string              `json:"corrects,omitempty"`
	Retention   subjectRetention    `json:"retention"`
	Attachments []subjectAttachment `json:"attachments"`
}

type subjectAttachment struct {
	ID          string `json:"id"`
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	CreatedAt   string `json:"created_at"`
	Path        string `json:"path"` // the file in the ZIP
}

// subjectCase is one element of cases.json.
type subjectCase struct {
	caseRec
	Holds []string `json:"holds"` // legal holds covering the case
}

// subjectAccessEvent is one line of access_log.ndjson: who did what to
// the customer's data and when (the staff member's client address is
// left out: it is theirs, not the customer's).
type subjectAccessEvent struct {
	Seq        int64     `json:"seq"`
	At         time.Time `json:"at"`
	Actor      string    `json:"actor"`
	Role       string    `json:"role"`
	Action     string    `json:"action"`
	TargetType string    `json:"target_type"`
	TargetID   string    `json:"target_id"`
	Outcome    string    `json:"outcome"`
}

// Check answers cases.ErrNotFound when the customer is not stored.
func (s *SubjectAccess) Check(ctx context.Context, customerID string) error {
	us, err := sqlstore.CustomerRecords(ctx, s.o.DB, s.o.DB.Read, []string{customerID})
	if err != nil {
		return sqldb.Fail("read customer", err)
	}
	if len(us) == 0 {
		return fmt.Errorf("customer %s: %w", customerID, cases.ErrNotFound)
	}
	return nil
}

// Write writes the customer's export to w: customer.json, cases.json,
// contacts.ndjson, the attachments (decrypted) under attachments/,
// access_log.ndjson and manifest.json (last, with every file's SHA-256).
// The records are read in one read-only snapshot; the attachments are
// streamed, so memory grows with the number of records, not with the
// size of the files.
func (s *SubjectAccess) Write(ctx context.Context, w io.Writer, customerID string) error {
	db := s.o.DB
	now := s.o.Now().UTC()
	opts := &sql.TxOptions{ReadOnly: true}
	if db.Dialect == sqldb.Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := db.Read.BeginTx(ctx, opts)
	if err != nil {
		return sqldb.Fail("subject export snapshot", err)
	}
	defer tx.Rollback() //nolint:errcheck // read-only

	us, err := sqlstore.CustomerRecords(ctx, db, tx, []string{customerID})
	if err != nil {
		return sqldb.Fail("read customer", err)
	}
	if len(us) == 0 {
		return fmt.Errorf("customer %s: %w", customerID, cases.ErrNotFound)
	}
	if err := s.o.Fields.OpenCustomers(ctx, us); err != nil {
		return err
	}
	caseIDs, err := sqlstore.CustomerCaseIDs(ctx, db, tx, customerID)
	if err != nil {
		return sqldb.Fail("read cases", err)
	}
	crs, err := sqlstore.CaseRecords(ctx, db, tx, caseIDs)
	if err != nil {
		return sqldb.Fail("read cases", err)
	}
	slices.SortFunc(crs, func(a, b sqlstore.CaseRecord) int { return int(a.Number - b.Number) })
	contacts, err := sqlstore.ContactRecordsOfCases(ctx, db, tx, caseIDs)
	if err != nil {
		return sqldb.Fail("read contacts", err)
	}
	if err := errors.Join(s.o.Fields.OpenCases(ctx, crs), s.o.Fields.OpenContacts(ctx, contacts)); err != nil {
		return err
	}
	slices.SortFunc(contacts, func(a, b sqlstore.ContactRecord) int {
		if c := a.OccurredAt.Compare(b.OccurredAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	contactIDs := make([]string, len(contacts))
	for i, c := range contacts {
		contactIDs[i] = c.ID
	}
	atts, err := readAttachments(ctx, db, tx, contactIDs)
	if err != nil {
		return err
	}

	// Why each contact is kept, and which holds cover each case.
	why := map[string]retention.ContactExplanation{}
	caseHolds := map[string][]string{}
	if s.o.Explain != nil {
		for _, id := range caseIDs {
			ex, err := s.o.Explain.ExplainCase(ctx, id, now)
			if errors.Is(err, cases.ErrNotFound) {
				continue // deleted since the snapshot began
			}
			if err != nil {
				return fmt.Errorf("explain case %s: %w", id, err)
			}
			caseHolds[id] = holdIDs(ex.Holds)
			for _, c := range ex.Contacts {
				why[c.ContactID] = c
			}
		}
	}

	targets := slices.Concat([]string{customerID}, caseIDs, contactIDs)
	byContact := map[string][]subjectAttachment{}
	for _, a := range atts {
		targets = append(targets, a.ID)
		byContact[a.ContactID] = append(byContact[a.ContactID], subjectAttachment{ID: a.ID, Filename: a.Filename, ContentType: a.ContentType,
			Size: a.Size, SHA256: a.SHA256, CreatedAt: a.CreatedAt, Path: "attachments/" + a.ID})
	}
	events, err := readAuditOf(ctx, db, tx, targets)
	if err != nil {
		return err
	}

	z := &zipPackage{zw: zip.NewWriter(w), at: now}
	put := func(path string, fn func(w io.Writer) error) error {
		f, err := deflated(path, fn)
		if err != nil {
			return err
		}
		return z.writePrepared(f)
	}

	if err := put("customer.json", func(w io.Writer) error { return jsonTo(w, us[0]) }); err != nil {
		return err
	}
	if err := put("cases.json", func(w io.Writer) error {
		out := make([]subjectCase, len(crs))
		for i, c := range crs {
			out[i] = subjectCase{caseRec: caseRecord(c), Holds: nonNil(caseHolds[c.ID])}
		}
		return jsonTo(w, out)
	}); err != nil {
		return err
	}
	if err := put("contacts.ndjson", func(w io.Writer) error {
		enc := json.NewEncoder(w)
		for _, c := range contacts {
			if err := enc.Encode(subjectContactOf(c, why[c.ID], byContact[c.ID])); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := put("access_log.ndjson", func(w io.Writer) error {
		enc := json.NewEncoder(w)
		for _, e := range events {
			ev := subjectAccessEvent{Seq: e.Seq, At: e.Time, Actor: e.ActorName, Role: e.Role, Action: e.Action, TargetType: e.TargetType, TargetID: e.TargetID, Outcome: e.Outcome}
			if err := enc.Encode(ev); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}

	for _, a := range atts {
		if err := s.writeAttachment(ctx, z, a.ID); err != nil {
			return err
		}
	}

	m := subjectManifest{Format: SubjectFormat, Version: SubjectVersion, CustomerID: customerID, GeneratedAt: now,
		Counts: map[string]int{"cases": len(crs), "contacts": len(contacts), "attachments": len(atts), "access_events": len(events)}, Files: z.files}
	f, err := deflated("manifest.json", func(w io.Writer) error { return jsonTo(w, m) })
	if err != nil {
		return err
	}
	if err := z.writeEntry(f); err != nil {
		return err
	}
	return z.zw.Close()
}

// writeAttachment streams one attachment, decrypted, into the ZIP.
func (s *SubjectAccess) writeAttachment(ctx context.Context, z *zipPackage, id string) error {
	_, rc, err := s.o.Attachments.Open(ctx, id)
	if err != nil {
		return fmt.Errorf("attachment %s: %w", id, err)
	}
	defer rc.Close()
	f, err := z.streamed("attachments/" + id)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rc); err != nil {
		return fmt.Errorf("attachment %s: %w", id, err)
	}
	f.close()
	return nil
}

func subjectContactOf(c sqlstore.ContactRecord, ex retention.ContactExplanation, atts []subjectAttachment) subjectContact {
	r := subjectRetention{RetainUntil: c.RetainUntil, Holds: holdIDs(ex.Holds), Anonymized: c.Anonymized}
	if ex.ContactID != "" {
		rule := ex.DecidingRule
		r.Rule = &rule
	}
	return subjectContact{ID: c.ID, CaseID: c.CaseID, Channel: c.Channel, Direction: c.Direction, Author: c.Author, Body: c.Body,
		OccurredAt: c.OccurredAt, CreatedAt: c.CreatedAt, Purposes: rawOr(sql.NullString{String: c.Purposes, Valid: true}, "[]"),
		Categories: rawOr(sql.NullString{String: c.Categories, Valid: true}, "[]"),
		Location:   rawOr(c.Location, "null"), Device: rawOr(c.Device, "null"), Corrects: c.Corrects, Retention: r, Attachments: nonNil(atts)}
}

func holdIDs(hs []retention.Hold) []string {
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = h.ID
	}
	return out
}

func jsonTo(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
