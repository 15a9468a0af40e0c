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
