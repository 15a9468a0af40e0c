package backup

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/casevault/casevault/sqldb"
)

// SecurityReport lists the security state a restore carried forward from
// sources newer than the backup: a restore never brings back a revoked
// token, a released hold as active (or loses a hold placed since), or an
// older retention schedule.
type SecurityReport struct {
	TokensRevoked    []string `json:"tokens_revoked"`
	HoldsPlaced      []string `json:"holds_placed"`
	HoldsUpdated     []string `json:"holds_updated"`
	ScheduleVersions []int64  `json:"schedule_versions"`
}

// Empty reports whether nothing was carried forward.
func (s SecurityReport) Empty() bool {
	return len(s.TokensRevoked)+len(s.HoldsPlaced)+len(s.HoldsUpdated)+len(s.ScheduleVersions) == 0
}

// replaySecurity applies ts's security state in tx. It only ever tightens
// or moves forward: a token is revoked, never un-revoked; a hold takes its
// newest recorded state; schedule versions are added, never replaced.
func replaySecurity(ctx context.Context, db *sqldb.DB, tx *sql.Tx, ts *tombstones) (SecurityReport, error) {
	var rep SecurityReport

	ids := sortedKeys(ts.revoked)
	for _, id := range ids {
		res, err := tx.ExecContext(ctx, db.Rebind(`UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`), ts.revoked[id], id)
		if err != nil {
			return rep, fmt.Errorf("replay token revocation: %w", err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			rep.TokensRevoked = append(rep.TokensRevoked, id)
		}
	}

	if err := replayHolds(ctx, db, tx, ts, &rep); err != nil {
		return rep, err
	}

	sched, _ := tableByName("retention_schedules")
	versions := make([]int64, 0, len(ts.schedules))
	for v := range ts.schedules {
		versions = append(versions, v)
	}
	sort.Slice(versions, func(i, j int) bool { return versions[i] < versions[j] })
	for _, v := range versions {
		var n int
		if err := tx.QueryRowContext(ctx, db.Rebind(`SELECT COUNT(*) FROM retention_schedules WHERE version = ?`), v).Scan(&n); err != nil {
			return rep, fmt.Errorf("replay schedule versions: %w", err)
		}
		if n > 0 {
			continue
		}
		if err := insertRow(ctx, db, tx, sched, ts.schedules[v]); err != nil {
			return rep, fmt.Errorf("replay schedule version %d: %w", v, err)
		}
		rep.ScheduleVersions = append(rep.ScheduleVersions, v)
	}
	return rep, nil
}

// replayHolds gives every hold its newest state; a change bumps
// holds_version so that sweepers re-read the holds.
func replayHolds(ctx context.Context, db *sqldb.DB, tx *sql.Tx, ts *tombstones, rep *SecurityReport) error {
	if len(ts.holds) == 0 {
		return nil
	}
	t, _ := tableByName("legal_holds")
	var buf bytes.Buffer
	if _, err := dumpTable(ctx, tx, t, "", nil, &buf, nil); err != nil {
		return fmt.Errorf("replay holds: %w", err)
	}
	rows, err := parseRows(&buf, t, nil)
	if err != nil {
		return fmt.Errorf("replay holds: %w", err)
	}
	have := map[string]map[string]any{}
	for _, row := range rows {
		have[asString(row["id"])] = row
	}

	for _, id := range sortedKeys(ts.holds) {
		row, cur := ts.holds[id], have[id]
		switch {
		case cur == nil:
			if err := insertRow(ctx, db, tx, t, row); err != nil {
				return fmt.Errorf("replay hold %s: %w", id, err)
			}
			rep.HoldsPlaced = append(rep.HoldsPlaced, id)
		case !reflect.DeepEqual(cur, row):
			vals := t.args(db.Dialect, row)
			sets := make([]string, 0, len(t.Columns))
			args := make([]any, 0, len(t.Columns))
			for i, col := range t.Columns {
				if col != "id" {
					sets = append(sets, col+" = ?")
					args = append(args, vals[i])
				}
			}
			if _, err := tx.ExecContext(ctx, db.Rebind(`UPDATE legal_holds SET `+strings.Join(sets, ", ")+` WHERE id = ?`), append(args, id)...); err != nil {
				return fmt.Errorf("replay hold %s: %w", id, err)
			}
			rep.HoldsUpdated = append(rep.HoldsUpdated, id)
		}
	}

	if len(rep.HoldsPlaced)+len(rep.HoldsUpdated) > 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE retention_state SET holds_version = holds_version + 1 WHERE id = 1`); err != nil {
			return fmt.Errorf("replay holds: %w", err)
		}
	}
	return nil
}

// insertRow adds one dump row to table t.
func insertRow(ctx context.Context, db *sqldb.DB, tx *sql.Tx, t table, row map[string]any) error {
	in := newInserter(db.Dialect, tx, t)
	if err := in.add(ctx, t.args(db.Dialect, row)); err != nil {
		return err
	}
	return in.flush(ctx)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
