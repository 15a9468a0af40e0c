package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/sqldb"
)

// PendingOutbox returns the oldest outbox rows, for the indexer.
func (s *Store) PendingOutbox(ctx context.Context, limit int) ([]search.OutboxEntry, error) {
	rows, err := s.db.Read.QueryContext(ctx, s.q(`SELECT seq, case_id, created_at FROM outbox ORDER BY seq LIMIT ?`), limit)
	if err != nil {
		return nil, s.fail("outbox", err)
	}
	defer rows.Close()
	var out []search.OutboxEntry
	for rows.Next() {
		var e search.OutboxEntry
		var created int64
		if err := rows.Scan(&e.Seq, &e.CaseID, &created); err != nil {
			return nil, s.fail("outbox", err)
		}
		e.CreatedAt = sqldb.FromMicros(created)
		out = append(out, e)
	}
	return out, rows.Err()
}

// MarkOutboxDone deletes rows the engine has confirmed.
func (s *Store) MarkOutboxDone(ctx context.Context, seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		for start := 0; start < len(seqs); start += 500 {
			end := min(start+500, len(seqs))
			args := make([]any, 0, end-start)
			for _, q := range seqs[start:end] {
				args = append(args, q)
			}
			ph := strings.TrimSuffix(strings.Repeat("?,", len(args)), ",")
			if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM outbox WHERE seq IN (`+ph+`)`), args...); err != nil {
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
	rows, err := s.db.Read.QueryContext(ctx, s.q(`SELECT id FROM cases WHERE id > ? ORDER BY id LIMIT ?`), after, limit)
	if err != nil {
		return nil, s.fail("case ids", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, s.fail("case ids", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// LoadCaseDocs loads the current state of the given cases for indexing; a
// case that no longer exists is absent from the result (the indexer deletes it).
func (s *Store) LoadCaseDocs(ctx context.Context, caseIDs []string) (map[string]search.CaseDoc, error) {
	out := make(map[string]search.CaseDoc, len(caseIDs))
	for start := 0; start < len(caseIDs); start += 200 {
		chunk := caseIDs[start:min(start+200, len(caseIDs))]
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		ph := strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",")
		rows, err := s.db.Read.QueryContext(ctx, s.q(`SELECT `+caseCols+` FROM cases WHERE id IN (`+ph+`)`), args...)
		if err != nil {
			return nil, s.fail("load cases", err)
		}
		for rows.Next() {
			c, err := scanCase(rows)
			if err != nil {
				rows.Close()
				return nil, s.fail("load cases", err)
			}
			out[c.ID] = search.CaseDoc{
				CaseID: c.ID, Number: c.Number, CustomerID: c.CustomerID, Subject: c.Subject,
				Status: string(c.Status), Priority: string(c.Priority), Channel: string(c.Channel),
				Assignee: c.Assignee, Tags: c.Tags, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
			}
		}
		if err := rows.Close(); err != nil {
			return nil, s.fail("load cases", err)
		}
		// Only the indexed columns, in index order (case_id, occurred_at,
		// id): the IN list is walked case by case with no sort, and no JSON
		// but the purposes is decoded.
		rows, err = s.db.Read.QueryContext(ctx, s.q(`SELECT id, case_id, channel, direction, author, body, occurred_at, purposes FROM contacts WHERE case_id IN (`+ph+`) ORDER BY case_id, occurred_at, id`), args...)
		if err != nil {
			return nil, s.fail("load contacts", err)
		}
		for rows.Next() {
			var c search.ContactDoc
			var caseID, ps string
			var occurred int64
			if err := rows.Scan(&c.ID, &caseID, &c.Channel, &c.Direction, &c.Author, &c.Body, &occurred, &ps); err != nil {
				rows.Close()
				return nil, s.fail("load contacts", err)
			}
			d, ok := out[caseID]
			if !ok {
				continue
			}
			if err := json.Unmarshal([]byte(ps), &c.Purposes); err != nil {
				rows.Close()
				return nil, s.fail("load contacts", fmt.Errorf("contact %s purposes: %w", c.ID, err))
			}
			c.OccurredAt = sqldb.FromMicros(occurred)
			d.Contacts = append(d.Contacts, c)
			out[caseID] = d
		}
		if err := rows.Close(); err != nil {
			return nil, s.fail("load contacts", err)
		}
	}
	return out, nil
}
