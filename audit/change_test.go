package audit_test

import (
	"testing"

	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/cases"
)

func TestFromChange(t *testing.T) {
	tests := []struct {
		name             string
		ch               cases.Change
		wantName, detail string
	}{
		{"token actor", cases.Change{Actor: cases.Actor{TokenID: "t1", Name: "ann", Role: "agent", RequestID: "r", ClientIP: "1.2.3.4"}, Action: "case.create", TargetType: "case", TargetID: "c1", Detail: map[string]any{"n": 1}}, "ann", `{"n":1}`},
		{"no actor is anonymous", cases.Change{Action: "x"}, "anonymous", ""},
		{"token without name keeps an empty name", cases.Change{Actor: cases.Actor{TokenID: "t2"}}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := audit.FromChange(tt.ch, audit.OutcomeOK)
			if ev.ActorName != tt.wantName || string(ev.Detail) != tt.detail || ev.Outcome != audit.OutcomeOK ||
				ev.ActorID != tt.ch.Actor.TokenID || ev.RequestID != tt.ch.Actor.RequestID || ev.ClientIP != tt.ch.Actor.ClientIP ||
				ev.Action != tt.ch.Action || ev.TargetID != tt.ch.TargetID {
				t.Fatalf("FromChange(%+v) = %+v", tt.ch, ev)
			}
		})
	}
}
