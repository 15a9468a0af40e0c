package sqldb

import (
	"database/sql"
	"time"
)

// Timestamps are stored as Unix microseconds UTC in both dialects (BIGINT
// on PostgreSQL, INTEGER on SQLite); these convert at the boundary.

// Micros is t as stored.
func Micros(t time.Time) int64 { return t.UTC().UnixMicro() }

// FromMicros is a stored timestamp as a UTC time.
func FromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

// NullMicros is t as stored, NULL when t is nil.
func NullMicros(t *time.Time) any {
	if t == nil {
		return nil
	}
	return Micros(*t)
}

// TimePtr is a nullable stored timestamp, nil for NULL.
func TimePtr(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := FromMicros(v.Int64)
	return &t
}
