package sqldb_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/casevault/casevault/sqldb"
)

func TestFail(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    error
		outage bool
	}{
		{"connection refused", errors.New("dial tcp: connection refused"), true},
		{"cancelled", fmt.Errorf("query: %w", context.Canceled), false},
		{"timed out", context.DeadlineExceeded, false},
		{"already marked", fmt.Errorf("x: %w", sqldb.ErrUnavailable), false},
		{"undecodable row", fmt.Errorf("contact 1 purposes: %w: bad json", sqldb.ErrBadRow), false},
		{"data exception", &pgconn.PgError{Code: "22021"}, false},
		{"serialization failure", &pgconn.PgError{Code: "40001"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := sqldb.IsOutage(tc.err); got != tc.outage {
				t.Fatalf("IsOutage = %v, want %v", got, tc.outage)
			}
			err := sqldb.Fail("read", tc.err)
			marked := errors.Is(err, sqldb.ErrUnavailable) && !errors.Is(tc.err, sqldb.ErrUnavailable)
			if marked != tc.outage || !errors.Is(err, tc.err) {
				t.Fatalf("Fail = %v: marked unavailable %v, want %v, and it must wrap the cause", err, marked, tc.outage)
			}
		})
	}
	if sqldb.Fail("x", nil) != nil {
		t.Fatal("Fail(nil) is not nil")
	}
}
