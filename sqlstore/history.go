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
func (s *Store) addHistory(ctx context.Context, tx *sql.Tx, caseID string, at time.Time, actor cases.Actor, changes map[string]any) error {
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
	_, err = tx.ExecContext(ctx, s.q(`INSERT INTO case_history (id, case_id, at, actor_name, actor_role, changes) VALUES (?, ?, ?, ?, ?, ?)`),
		cases.NewID(), caseID, sqldb.Micros(at), actor.Name, actor.Role, string(raw))
	if err != nil {
		return fmt.Errorf("case history: %w", err)
	}
	return nil
}

// History implements cases.Store: a case's changes, oldest first.
func (s *Store) History(ctx context.Context, caseID string) ([]cases.CaseEvent, error) {
	out, err := sqldb.Collect(ctx, s.db.Read, s.q(`SELECT at, actor_name, actor_role, changes FROM case_history WHERE case_id = ? ORDER BY id`), []any{caseID},
		func(rows *sql.Rows) (cases.CaseEvent, error) {
			var e cases.CaseEvent
			var at int64
			var raw string
			if err := rows.Scan(&at, &e.Actor, &e.Role, &raw); err != nil {
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
