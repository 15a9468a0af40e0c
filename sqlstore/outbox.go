package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/sqldb"
)

// PendingOutbox returns the oldest outbox rows, for the indexer.
func (s *Store) PendingOutbox(ctx context.Context, limit int) ([]search.OutboxEntry, error) {
	out, err := sqldb.Collect(ctx, s.db.Read, s.q(`SELECT seq, case_id, contact_id, created_at FROM outbox ORDER BY seq LIMIT ?`), []any{limit},
		func(rows *sql.Rows) (search.OutboxEntry, error) {
			var e search.OutboxEntry
			var created int64
			var contact sql.NullString
			err := rows.Scan(&e.Seq, &e.CaseID, &contact, &created)
			e.ContactID, e.CreatedAt = contact.String, sqldb.FromMicros(created)
			return e, err
		})
	if err != nil {
		return nil, s.fail("outbox", err)
	}
	return out, nil
}

// MarkOutboxDone deletes rows the engine has confirmed.
func (s *Store) MarkOutboxDone(ctx context.Context, seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		for start := 0; start < len(seqs); start += 500 {
			chunk := seqs[start:min(start+500, len(seqs))]
			if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM outbox WHERE seq IN (`+sqldb.Placeholders(len(chunk))+`)`), sqldb.Args(chunk)...); err != nil {
				return fmt.Errorf("outbox done: %w", err)
			}
		}
		return nil
	})
}

// OutboxStats reports how many rows wait and since when.
func (s *Store) OutboxStats(ctx context.Context) (int64, time.Time, error) {
	var n int64
	var oldest sql.NullInt64
	err := s.db.Read.QueryRowContext(ctx, `SELECT COUNT(*), MIN(created_at) FROM outbox`).Scan(&n, &oldest)
	if err != nil {
		return 0, time.Time{}, s.fail("outbox stats", err)
	}
	if !oldest.Valid {
		return n, time.Time{}, nil
	}
	return n, sqldb.FromMicros(oldest.Int64), nil
}

// ListCaseIDs pages through every case ID in order, for a full reindex.
func (s *Store) ListCaseIDs(ctx context.Context, after string, limit int) ([]string, error) {
	out, err := sqldb.Collect(ctx, s.db.Read, s.q(`SELECT id FROM cases WHERE id > ? ORDER BY id LIMIT ?`), []any{after, limit},
		func(rows *sql.Rows) (string, error) {
			var id string
			return id, rows.Scan(&id)
		})
	if err != nil {
		return nil, s.fail("case ids", err)
	}
	return out, nil
}

// LoadCaseDocs loads the current state of the given cases for indexing; a
// case that no longer exists is absent from the result (the indexer deletes it).
func (s *Store) LoadCaseDocs(ctx context.Context, caseIDs []string) (map[string]search.CaseDoc, error) {
	out := make(map[string]search.CaseDoc, len(caseIDs))
	for start := 0; start < len(caseIDs); start += 200 {
		chunk := caseIDs[start:min(start+200, len(caseIDs))]
		if err := s.loadCaseRows(ctx, chunk, out); err != nil {
			return nil, err
		}
		// Only the indexed columns, in index order (case_id, occurred_at,
		// id): the IN list is walked case by case with no sort.
		err := s.loadContactRows(ctx, `case_id IN (`+sqldb.Placeholders(len(chunk))+`) ORDER BY case_id, occurred_at, id`, sqldb.Args(chunk), nil, out)
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// LoadContactDocs loads the current state of the given cases (keys) with
// only the named contacts of each, for the indexer to add them without
// reading the rest of the case. A case that no longer exists is absent; a
// contact that no longer exists, or is not the given case's, is left out.
func (s *Store) LoadContactDocs(ctx context.Context, contacts map[string][]string) (map[string]search.CaseDoc, error) {
	caseIDs := make([]string, 0, len(contacts))
	var ids []string
	wanted := make(map[string]string) // contact ID -> case ID
	for caseID, cs := range contacts {
		caseIDs = append(caseIDs, caseID)
		ids = append(ids, cs...)
		for _, id := range cs {
			wanted[id] = caseID
		}
	}
	keep := func(caseID, id string) bool { return wanted[id] == caseID }
	out := make(map[string]search.CaseDoc, len(caseIDs))
	for start := 0; start < len(caseIDs); start += 200 {
		if err := s.loadCaseRows(ctx, caseIDs[start:min(start+200, len(caseIDs))], out); err != nil {
			return nil, err
		}
	}
	for start := 0; start < len(ids); start += 200 {
		chunk := ids[start:min(start+200, len(ids))]
		if err := s.loadContactRows(ctx, `id IN (`+sqldb.Placeholders(len(chunk))+`)`, sqldb.Args(chunk), keep, out); err != nil {
			return nil, err
		}
	}
	for id, d := range out {
		// the IN list comes back in id order; the engine wants occurrence order
		slices.SortStableFunc(d.Contacts, func(a, b search.ContactDoc) int { return a.OccurredAt.Compare(b.OccurredAt) })
		out[id] = d
	}
	return out, nil
}

// loadCaseRows adds the case fields of the given cases to out.
func (s *Store) loadCaseRows(ctx context.Context, ids []string, out map[string]search.CaseDoc) error {
	cs, err := sqldb.Collect(ctx, s.db.Read, s.q(`SELECT `+caseCols+` FROM cases WHERE id IN (`+sqldb.Placeholders(len(ids))+`)`), sqldb.Args(ids),
		func(rows *sql.Rows) (cases.Case, error) { return scanCase(rows) })
	if err != nil {
		return s.fail("load cases", err)
	}

	for _, c := range cs {
		out[c.ID] = search.CaseDoc{
			CaseID: c.ID, Number: c.Number, CustomerID: c.CustomerID, Subject: c.Subject,
			Status: string(c.Status), Priority: string(c.Priority), Channel: string(c.Channel),
			Assignee: c.Assignee, Tags: c.Tags, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
		}
	}
	return nil
}

// loadContactRows appends the contacts matching where to their cases in
// out, skipping contacts whose case is not there or that keep (when set)
// refuses. Only the indexed columns are read, and no JSON but the purposes
// is decoded.
func (s *Store) loadContactRows(ctx context.Context, where string, args []any, keep func(caseID, id string) bool, out map[string]search.CaseDoc) error {
	// Anonymized contacts identify nobody and are never found: a search by
	// customer or text must not bring them back.
	rows, err := s.db.Read.QueryContext(ctx, s.q(`SELECT id, case_id, channel, direction, author, body, occurred_at, purposes FROM contacts WHERE anonymized_at IS NULL AND `+where), args...)
	if err != nil {
		return s.fail("load contacts", err)
	}
	defer rows.Close()
	for rows.Next() {
		var c search.ContactDoc
		var caseID, ps string
		var occurred int64
		if err := rows.Scan(&c.ID, &caseID, &c.Channel, &c.Direction, &c.Author, &c.Body, &occurred, &ps); err != nil {
			return s.fail("load contacts", err)
		}
		d, ok := out[caseID]
		if !ok || (keep != nil && !keep(caseID, c.ID)) {
			continue
		}
		if err := json.Unmarshal([]byte(ps), &c.Purposes); err != nil {
			return s.fail("load contacts", fmt.Errorf("contact %s purposes: %w: %w", c.ID, sqldb.ErrBadRow, err))
		}
		c.OccurredAt = sqldb.FromMicros(occurred)
		d.Contacts = append(d.Contacts, c)
		out[caseID] = d
	}
	if err := rows.Err(); err != nil {
		return s.fail("load contacts", err)
	}
	return nil
}
