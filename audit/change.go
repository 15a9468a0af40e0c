package audit

import (
	"encoding/json"

	"github.com/casevault/casevault/cases"
)

// FromChange turns a domain change (what stores, the sweeper and backups
// hand their change hooks) into an audit event with the given outcome.
func FromChange(ch cases.Change, outcome string) Event {
	ev := Event{
		ActorID: ch.Actor.TokenID, ActorName: ch.Actor.Name, Role: ch.Actor.Role,
		Action: ch.Action, TargetType: ch.TargetType, TargetID: ch.TargetID,
		RequestID: ch.Actor.RequestID, ClientIP: ch.Actor.ClientIP, Outcome: outcome,
	}
	if ev.ActorName == "" && ev.ActorID == "" {
		ev.ActorName = "anonymous"
	}
	if ch.Detail != nil {
		if raw, err := json.Marshal(ch.Detail); err == nil {
			ev.Detail = raw
		}
	}
	return ev
}
