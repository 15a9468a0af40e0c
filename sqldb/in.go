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

// MultiRow turns q, a single-row INSERT ending in its "VALUES (?, …)" group
// of cols placeholders, into one inserting n rows (their arguments in row
// order); n == 1 returns q itself, so a single row keeps its prepared
// statement (PrepareWrite). Batched writes use it: one statement, one round
// trip, for rows that would each have been one.
func MultiRow(q string, cols, n int) string {
	if n == 1 {
		return q
	}
	group := "(" + Placeholders(cols) + ")"
	return q[:strings.LastIndex(q, "VALUES")] + "VALUES " + strings.TrimSuffix(strings.Repeat(group+",", n), ",")
}
