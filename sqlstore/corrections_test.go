package sqlstore_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/sqlstore"
)

// TestCorrectionMustNameAContactOfItsCase (issue 15 §3): the store refuses,
// as a 422 on "corrects", a correction of an unknown contact, of another
// case's contact or of itself, and links a valid one both ways.
func TestCorrectionMustNameAContactOfItsCase(t *testing.T) {
	sqldbtest.ForEachDialect(t, func(t *testing.T, db *sqldb.DB) {
		ctx := context.Background()
		store := sqlstore.New(db, sqlstore.Options{})
		svc := cases.NewService(store, nil)
		_, cs := seed(t, svc)
		_, other := seed(t, svc)
		orig := addContact(t, svc, cs.ID, "my name is Zhang Shan")
		elsewhere := addContact(t, svc, other.ID, "hello")

		newContact := func(id, corrects string) *cases.Contact {
			now := time.Now().UTC().Truncate(time.Microsecond)
			return &cases.Contact{ID: id, CaseID: cs.ID, Channel: cases.ChannelChat, Direction: cases.DirectionNote, Author: "agent",
				Body: "the name is Zhang San", OccurredAt: now, CreatedAt: now, Purposes: []cases.Purpose{cases.PurposeCustomerService},
				Categories: []cases.Category{cases.CategorySupportContent}, Corrects: corrects}
		}
		self := cases.NewID()
		for _, tc := range []struct{ name, id, corrects string }{
			{"unknown contact", cases.NewID(), cases.NewID()},
			{"another case's contact", cases.NewID(), elsewhere.ID},
			{"itself", self, self},
		} {
			t.Run(tc.name, func(t *testing.T) {
				before := count(t, db, "contacts")
				err := store.CreateContact(ctx, newContact(tc.id, tc.corrects), cases.Change{})
				var ve *cases.ValidationError
				if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != "corrects" {
					t.Fatalf("err %v, want a validation error on corrects", err)
				}
				if count(t, db, "contacts") != before {
					t.Fatal("a refused correction was stored")
				}
			})
		}

		fix := newContact(cases.NewID(), orig.ID)
		if err := store.CreateContact(ctx, fix, cases.Change{}); err != nil {
			t.Fatal(err)
		}
		got, err := store.GetContact(ctx, orig.ID)
		if err != nil || got.Body != "my name is Zhang Shan" || !slices.Equal(got.CorrectedBy, []string{fix.ID}) {
			t.Fatalf("original %+v (%v): want unchanged, corrected_by the correction", got, err)
		}
		tl, err := store.Timeline(ctx, cs.ID)
		if err != nil || len(tl) != 2 {
			t.Fatalf("timeline %v (%v)", tl, err)
		}
		for _, c := range tl {
			if c.ID == fix.ID && c.Corrects != orig.ID {
				t.Errorf("timeline correction %+v lacks corrects", c)
			}
			if c.ID == orig.ID && !slices.Equal(c.CorrectedBy, []string{fix.ID}) {
				t.Errorf("timeline original %+v lacks corrected_by", c)
			}
		}
	})
}
