package sqldb

import (
	"context"
	"database/sql"
	"slices"
	"strings"
)

// Placeholders returns n comma-separated "?" for a VALUES row (Rebind
// turns them into $n on PostgreSQL); a list of ids is AnyOf's.
func Placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

// AnyOf is the condition "col is one of vals" with its arguments. On
// PostgreSQL it is col = ANY(?::text[]) with the values as one array: one
// statement text whatever the number of values. An IN list of n
// placeholders is a statement of its own for every n, which pgx parses
// and describes on first use on each pooled connection and keeps in that
// connection's statement cache (512 entries), so lists of varying length
// cost a parse each and push the hot statements out. On SQLite it is the
// IN list (statements are prepared per call there anyway). vals must not
// be empty.
func AnyOf(d Dialect, col string, vals []string) (string, []any) {
	if d == Postgres {
		return col + " = ANY(?::text[])", []any{vals}
	}
	args := make([]any, len(vals))
	for i, v := range vals {
		args[i] = v
	}
	return col + " IN (" + Placeholders(len(vals)) + ")", args
}

// inChunk bounds the values of one CollectIn statement (SQLite's IN list).
const inChunk = 500

// CollectIn runs query, whose one %s stands for "col is one of" (AnyOf),
// for ids in chunks of at most 500 and collects every row (Collect). Rows
// come chunk by chunk: an ORDER BY orders within a chunk.
func CollectIn[T any](ctx context.Context, db *DB, q Querier, query, col string, ids []string, scan func(*sql.Rows) (T, error)) ([]T, error) {
	var out []T
	for chunk := range slices.Chunk(ids, inChunk) {
		cond, args := AnyOf(db.Dialect, col, chunk)
		rows, err := Collect(ctx, q, db.Rebind(strings.Replace(query, "%s", cond, 1)), args, scan)
		if err != nil {
			return nil, err
		}
		out = append(out, rows...)
	}
	return out, nil
}

// ExecIn runs q in tx, where q ends where "col is one of ids" goes (AnyOf)
// and pre are the arguments before the list, and returns how many rows it
// changed. Nothing runs for no ids: no row is named.
func ExecIn(ctx context.Context, db *DB, tx *sql.Tx, q, col string, ids []string, pre ...any) (int64, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	cond, args := AnyOf(db.Dialect, col, ids)
	res, err := tx.ExecContext(ctx, db.Rebind(q+cond), append(pre, args...)...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
