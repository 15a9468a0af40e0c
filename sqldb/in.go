package sqldb

import "strings"

// Placeholders returns n comma-separated "?" for an IN list or a VALUES row
// (Rebind turns them into $n on PostgreSQL). n must be at least 1: "IN ()"
// is an error on PostgreSQL.
func Placeholders(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

// Args turns a slice of values into query arguments.
func Args[T any](vs []T) []any {
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = v
	}
	return out
}

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
	return col + " IN (" + Placeholders(len(vals)) + ")", Args(vals)
}
