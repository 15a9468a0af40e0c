package retention_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
)

func TestExplain(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cust := e.customer()
		cs := e.newCase(cust)
		multi := e.contact(cs, base, purposes(cases.PurposeNotification, cases.PurposeFraudMonitoring, cases.PurposeCustomerService), contactOpt{location: true, device: true})
		sec := e.contact(cs, base, purposes(cases.PurposeSecurity), contactOpt{})
		now := base.Add(10 * day)

		x, err := e.explain.ExplainContact(e.ctx, multi.ID, now)
		if err != nil {
			t.Fatal(err)
		}
		// Open case: customer_service has no end yet, and no end beats 5 years.
		if x.RetainUntil != nil || x.DecidingRule.Purpose != cases.PurposeCustomerService || len(x.Purposes) != 3 {
			t.Fatalf("open case: %+v", x)
		}
		if p := x.Purposes[1]; p.Purpose != cases.PurposeFraudMonitoring || p.Rule == nil || p.RetainUntil == nil || !p.RetainUntil.Equal(base.Add(5*365*day)) {
			t.Fatalf("fraud purpose %+v", p)
		}
		if p := x.Purposes[2]; p.RetainUntil != nil || p.Note == "" {
			t.Fatalf("customer_service purpose %+v", p)
		}
		if len(x.Categories) != 2 || x.Categories[0].Done || !x.Categories[0].Due.Equal(base.Add(30*day)) {
			t.Fatalf("categories %+v", x.Categories)
		}
		steps := func(x retention.ContactExplanation) string {
			var parts []string
			for _, s := range x.Next {
				at := "-"
				if s.At != nil {
					at = s.At.Format(time.DateOnly)
				}
				parts = append(parts, s.Action+"@"+at+s.Category)
			}
			return strings.Join(parts, " ")
		}
		if got := steps(x); got != "redact@2024-01-31location redact@2024-03-31device keep@-" {
			t.Fatalf("next %q", got)
		}

		closedAt := base.Add(20 * day)
		e.setClosed(cs, &closedAt)
		x, _ = e.explain.ExplainContact(e.ctx, multi.ID, now)
		if x.RetainUntil == nil || !x.RetainUntil.Equal(base.Add(5*365*day)) || x.DecidingRule.Purpose != cases.PurposeFraudMonitoring {
			t.Fatalf("closed case: until %v by %s", x.RetainUntil, x.DecidingRule.Purpose)
		}
		if got := steps(x); got != "redact@2024-01-31location redact@2024-03-31device delete@2028-12-30" {
			t.Fatalf("next %q", got)
		}

		h, err := e.holds.Place(e.ctx, retention.HoldInput{Matter: "M-9", Reason: "r", Scope: retention.HoldScope{CustomerIDs: []string{cust}}}, cases.Actor{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		x, _ = e.explain.ExplainContact(e.ctx, multi.ID, now)
		if len(x.Holds) != 1 || x.Holds[0].ID != h.ID || len(x.Next) != 1 || x.Next[0].Action != "held" ||
			!strings.Contains(x.Next[0].Reason, "held by "+h.ID) || x.Next[0].HeldBy[0] != h.ID {
			t.Fatalf("held: %+v", x.Next)
		}

		cx, err := e.explain.ExplainCase(e.ctx, cs, now)
		if err != nil || len(cx.Contacts) != 2 || len(cx.Holds) != 1 || cx.Status != "closed" || cx.ClosedAt == nil {
			t.Fatalf("case: %+v, %v", cx, err)
		}
		if cx.Contacts[1].ContactID != sec.ID && cx.Contacts[0].ContactID != sec.ID {
			t.Fatal("case explanation lacks a contact")
		}
		if _, err := e.explain.ExplainContact(e.ctx, "nope", now); !errors.Is(err, cases.ErrNotFound) {
			t.Fatalf("unknown contact: %v", err)
		}
		if _, err := e.explain.ExplainCase(e.ctx, "nope", now); !errors.Is(err, cases.ErrNotFound) {
			t.Fatalf("unknown case: %v", err)
		}
	})
}
