package sqlstore_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"testing"

	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/sqlstore"
)

// Updates record what they changed, old → new, in their audit event (they
// were stored with detail {} because the service filled in a copy of the
// change the store had already taken).
func TestUpdatesRecordWhatChanged(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		trail := audit.New(db)
		t.Cleanup(func() { trail.Close(ctx) })
		st := sqlstore.New(db, sqlstore.Options{OnChange: func(ctx context.Context, tx *sql.Tx, ch cases.Change) error {
			_, err := trail.AppendTx(ctx, tx, audit.FromChange(ch, audit.OutcomeOK))
			return err
		}})
		svc := cases.NewService(st, nil)
		cust, cs := seed(t, svc)
		last := func(action string) map[string]any {
			t.Helper()
			evs, _, err := trail.List(ctx, audit.Filter{Action: action, Limit: 1})
			if err != nil || len(evs) != 1 {
				t.Fatalf("list %s: %v %d", action, err, len(evs))
			}
			var d map[string]any
			if err := json.Unmarshal(evs[0].Detail, &d); err != nil {
				t.Fatal(err)
			}
			return d
		}
		enc := func(v any) string { b, _ := json.Marshal(v); return string(b) }

		closed, high, who, subj := cases.StatusClosed, cases.PriorityHigh, "li.wei", "Login problem (2FA)"
		tags := []string{"vip", "2fa"}
		if _, err := svc.UpdateCase(ctx, cs.ID, cases.CasePatch{Status: &closed, Priority: &high, Assignee: &who, Subject: &subj, Tags: &tags}, cases.Actor{}); err != nil {
			t.Fatal(err)
		}
		d := last(audit.ActionCaseUpdate)
		for field, want := range map[string]string{
			"status":   `{"from":"open","to":"closed"}`,
			"priority": `{"from":"normal","to":"high"}`,
			"assignee": `{"from":"","to":"li.wei"}`,
			"subject":  `null`, // named in fields only: the trail outlives an erasure
			"tags":     `{"from":[],"to":["vip","2fa"]}`,
			"fields":   `["status","priority","assignee","subject","tags"]`,
		} {
			if got := enc(d[field]); got != want {
				t.Errorf("case.update %s = %s, want %s", field, got, want)
			}
		}
		// A patch that changes nothing says so.
		if _, err := svc.UpdateCase(ctx, cs.ID, cases.CasePatch{Priority: &high}, cases.Actor{}); err != nil {
			t.Fatal(err)
		}
		if got := enc(last(audit.ActionCaseUpdate)); got != `{"fields":[]}` {
			t.Errorf("no-op case.update detail = %s", got)
		}

		yes, name := true, "Zhang Wei"
		if _, err := svc.UpdateCustomer(ctx, cust.ID, cases.CustomerPatch{Name: &name, Consents: &cases.ConsentsPatch{Location: &yes}}, cases.Actor{}); err != nil {
			t.Fatal(err)
		}
		d = last(audit.ActionCustomerUpdate)
		if got := enc(d); got != `{"consents.location":{"from":false,"to":true},"fields":["name","consents.location"]}` {
			t.Errorf("customer.update detail = %s (names the changed fields, consents old and new, never the personal data)", got)
		}
	})
}

// Text PostgreSQL cannot hold is a client's mistake the API refuses before
// the store; should one slip through, it must not read as an outage (503
// with Retry-After invites retrying for ever).
func TestUnstorableTextIsNotAnOutage(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		st := sqlstore.New(db, sqlstore.Options{})
		for _, f := range []cases.CaseFilter{{Assignee: "a\x00b"}, {CustomerID: "\xff"}} {
			_, _, err := st.ListCases(context.Background(), f, cases.Page{})
			if errors.Is(err, sqldb.ErrUnavailable) {
				t.Errorf("filter %+v: %v reads as the database being unavailable", f, err)
			}
		}
	})
}
