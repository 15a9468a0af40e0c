package cases_test

import (
	"context"
	"errors"
	"testing"

	"github.com/casevault/casevault/cases"
)

// oneCase is a Store holding one case, for the rules of UpdateCase.
type oneCase struct {
	cases.Store // every other method: unused here (a call panics)
	c           cases.Case
	writes      int
}

func (s *oneCase) UpdateCase(_ context.Context, id string, fn func(*cases.Case) error, _ cases.Change) (cases.Case, error) {
	if id != s.c.ID {
		return cases.Case{}, cases.ErrNotFound
	}
	c := s.c
	if err := fn(&c); err != nil {
		return cases.Case{}, err
	}
	s.c = c
	s.writes++
	return c, nil
}

func TestUpdateCaseClosingAndReassigningNeedAManager(t *testing.T) {
	closed, open := cases.StatusClosed, cases.StatusOpen
	bob, alice, empty := "bob", "alice", ""
	high := cases.Priority("high")
	supervisor := cases.Actor{Name: "sam", Role: "supervisor"}
	agent := cases.Actor{Name: "ann", Role: "agent"}

	for _, tt := range []struct {
		name     string
		assigned string // the case's assignee before the patch
		patch    cases.CasePatch
		actor    cases.Actor
		refused  string // the ForbiddenError's change; "" = allowed
	}{
		{"agent closes", "", cases.CasePatch{Status: &closed}, agent, "close"},
		{"supervisor closes", "", cases.CasePatch{Status: &closed}, supervisor, ""},
		{"agent reopens", "", cases.CasePatch{Status: &open}, agent, ""},
		{"agent reassigns", "bob", cases.CasePatch{Assignee: &alice}, agent, "reassign"},
		{"agent unassigns", "bob", cases.CasePatch{Assignee: &empty}, agent, "reassign"},
		{"supervisor reassigns", "bob", cases.CasePatch{Assignee: &alice}, supervisor, ""},
		{"agent assigns an unassigned case", "", cases.CasePatch{Assignee: &alice}, agent, ""},
		{"agent keeps the assignee", "bob", cases.CasePatch{Assignee: &bob, Priority: &high}, agent, ""},
		{"agent changes the priority", "bob", cases.CasePatch{Priority: &high}, agent, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			store := &oneCase{c: cases.Case{ID: "c1", Status: cases.StatusOpen, Assignee: tt.assigned}}
			svc := cases.NewService(store, nil, cases.WithCaseManagers(func(role string) bool { return role == "supervisor" }))

			_, err := svc.UpdateCase(t.Context(), "c1", tt.patch, tt.actor)

			if tt.refused == "" {
				if err != nil || store.writes != 1 {
					t.Fatalf("UpdateCase = %v (%d writes), want it allowed", err, store.writes)
				}
				return
			}
			var fe *cases.ForbiddenError
			if !errors.As(err, &fe) || !errors.Is(err, cases.ErrForbidden) || fe.Change != tt.refused || fe.Role != tt.actor.Role {
				t.Fatalf("UpdateCase = %v, want a ForbiddenError to %s", err, tt.refused)
			}
			if store.writes != 0 || store.c.Status != cases.StatusOpen || store.c.Assignee != tt.assigned {
				t.Fatalf("a refused update changed the case: %+v (%d writes)", store.c, store.writes)
			}
		})
	}
}

func TestUpdateCaseWithoutManagersRuleAllowsEveryActor(t *testing.T) {
	closed, alice := cases.StatusClosed, "alice"
	store := &oneCase{c: cases.Case{ID: "c1", Status: cases.StatusOpen, Assignee: "bob"}}
	svc := cases.NewService(store, nil)
	c, err := svc.UpdateCase(t.Context(), "c1", cases.CasePatch{Status: &closed, Assignee: &alice}, cases.CLIActor())
	if err != nil || c.Status != cases.StatusClosed || c.Assignee != "alice" || c.ClosedAt == nil {
		t.Fatalf("UpdateCase = %+v, %v", c, err)
	}
}
