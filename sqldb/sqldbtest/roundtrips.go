package sqldbtest

import (
	"context"
	"net"
	"sync/atomic"
	"testing"

	"github.com/casevault/casevault/sqldb"
)

// RoundTrips counts the requests a PostgreSQL client sent: pgx writes a
// statement, or a pipelined batch of them, to its socket in one write and
// then waits for the answer, so each write is one round trip.
type RoundTrips struct{ n atomic.Int64 }

// Load is how many round trips were made so far.
func (r *RoundTrips) Load() int64 { return r.n.Load() }

type countedConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countedConn) Write(b []byte) (int, error) {
	c.n.Add(1)
	return c.Conn.Write(b)
}

// OpenCounted is Open on PostgreSQL with a pool of one connection whose
// round trips are counted: all the test's statements go through it in
// order.
func OpenCounted(t testing.TB) (*sqldb.DB, *RoundTrips) {
	t.Helper()
	cfg := Config(t, sqldb.Postgres)
	rt := &RoundTrips{}
	cfg.MaxOpenConns = 1
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return countedConn{Conn: c, n: &rt.n}, nil
	}
	db, err := sqldb.Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db, rt
}
