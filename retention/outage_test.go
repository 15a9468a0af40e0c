package retention_test

import (
	"context"
	"errors"
	"testing"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
)

// Only an outage is ErrUnavailable (503 with Retry-After): a request the
// client cancelled, or a stored value that does not decode, is not, since
// no retry would help.
func TestNotAnOutage(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cs := e.newCase(e.customer())
		e.contact(cs, base, purposes(cases.PurposeNotification), contactOpt{})
		cancelled, cancel := context.WithCancel(e.ctx)
		cancel()

		bad := cases.NewID()
		if _, err := e.db.Write.ExecContext(e.ctx, e.db.Rebind(`INSERT INTO legal_holds (id, matter, reason, scope, placed_by, placed_at) VALUES (?, 'M', 'r', 'not json', 'legal', 0)`), bad); err != nil {
			t.Fatal(err)
		}

		for _, c := range []struct {
			name      string
			call      func() error
			cancelled bool
		}{
			{"get hold, bad scope", func() error { _, err := e.holds.Get(e.ctx, bad); return err }, false},
			{"list holds, bad scope", func() error { _, _, err := e.holds.List(e.ctx, retention.HoldFilter{}, 10, ""); return err }, false},
			{"explain case, bad scope", func() error { _, err := e.explain.ExplainCase(e.ctx, cs, base); return err }, false},
			{"get hold, cancelled", func() error { _, err := e.holds.Get(cancelled, bad); return err }, true},
			{"list holds, cancelled", func() error { _, _, err := e.holds.List(cancelled, retention.HoldFilter{}, 10, ""); return err }, true},
			{"hold counts, cancelled", func() error { _, err := e.holds.Counts(cancelled, bad); return err }, true},
			{"explain case, cancelled", func() error { _, err := e.explain.ExplainCase(cancelled, cs, base); return err }, true},
			{"schedule, cancelled", func() error { _, err := e.sched.Current(cancelled); return err }, true},
			{"schedule history, cancelled", func() error { _, err := e.sched.History(cancelled); return err }, true},
			{"run report, cancelled", func() error { _, err := e.sweeper.GetRun(cancelled, "x"); return err }, true},
		} {
			err := c.call()
			if err == nil || errors.Is(err, sqldb.ErrUnavailable) {
				t.Errorf("%s: error %v, want an error that is not ErrUnavailable", c.name, err)
			}
			if c.cancelled && !errors.Is(err, context.Canceled) {
				t.Errorf("%s: error %v does not say the request was cancelled", c.name, err)
			}
		}
	})
}
