package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
)

// addHistory records one case update in case_history when it changed a
// recorded field; changes is cases.CaseChanges(old, new).
func (s *Store) addHistory(ctx context.Context, tx *sql.Tx, sl sealer, caseID string, at time.Time, actor cases.Actor, changes map[string]any) error {
	fields, _ := changes["fields"].([]string)
	if len(fields) == 0 {
		return nil
	}

	diff := make(map[string]any, len(fields))
	for _, f := range fields {
		diff[f] = changes[f]
	}
	raw, err := json.Marshal(diff)
	if err != nil {
		return fmt.Errorf("case history: %w", err)
	}
	if at.IsZero() {
		at = time.Now()
	}
	// Sealed: an earlier subject is as personal as the current one.
	id := cases.NewID()
	_, err = tx.ExecContext(ctx, s.q(`INSERT INTO case_history (id, case_id, at, actor_name, actor_role, changes) VALUES (?, ?, ?, ?, ?, ?)`),
		id, caseID, sqldb.Micros(at), actor.Name, actor.Role, sl.seal("case_history", "changes", id, string(raw)))
	if err != nil {
		return fmt.Errorf("case history: %w", err)
	}
	return nil
}

// History implements cases.Store: a case's changes, oldest first.
func (s *Store) History(ctx context.Context, caseID string) ([]cases.CaseEvent, error) {
	o := s.fields.opener(ctx)
	out, err := sqldb.Collect(ctx, s.db.Read, s.q(`SELECT h.id, h.at, h.actor_name, h.actor_role, h.changes, k.customer_id FROM case_history h JOIN cases k ON k.id = h.case_id WHERE h.case_id = ? ORDER BY h.id`), []any{caseID},
		func(rows *sql.Rows) (cases.CaseEvent, error) {
			var e cases.CaseEvent
			var at int64
			var id, raw, customerID string
			if err := rows.Scan(&id, &at, &e.Actor, &e.Role, &raw, &customerID); err != nil {
				return e, err
			}
			raw, err := o.open(customerID, "case_history", "changes", id, raw)
			if err != nil {
				return e, err
			}
			e.At = sqldb.FromMicros(at)
			if err := json.Unmarshal([]byte(raw), &e.Changes); err != nil {
				return e, fmt.Errorf("case %s history: %w: %w", caseID, sqldb.ErrBadRow, err)
			}
			return e, nil
		})
	if err != nil {
		return nil, s.fail("case history", err)
	}
	if out == nil {
		out = []cases.CaseEvent{}
	}
	return out, nil
}
