package retention

import (
	"context"
	"database/sql"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// categoryColumn is a category that lives in a column of its own.
type categoryColumn struct {
	name  string
	value func(liveContact) sql.NullString
}

// categoryColumns lists the categories that live in a column of their own;
// other categories are part of the body and go with the contact.
var categoryColumns = map[cases.Category]categoryColumn{
	cases.CategoryLocation: {"location", func(c liveContact) sql.NullString { return c.Location }},
	cases.CategoryDevice:   {"device", func(c liveContact) sql.NullString { return c.Device }},
}

// redactPhase nulls one category column of contacts captured before cutoff.
type redactPhase struct {
	category cases.Category
	column   categoryColumn
	cutoff   time.Time
}

func (p redactPhase) selectAfter(ctx context.Context, db *sqldb.DB, q sqldb.Querier, key int64, id string, n int) ([]sqlstore.DueContact, error) {
	return sqlstore.RedactableContacts(ctx, db, q, p.column.name, sqldb.Micros(p.cutoff), key, id, n)
}

func (p redactPhase) apply(ctx context.Context, b *batch, cands []candidate) ([]Item, error) {
	ids := make([]string, len(cands))
	for i, c := range cands {
		ids[i] = c.id
	}
	live, err := readContacts(ctx, b.db, b.reader(), ids, b.fields)
	if err != nil {
		return nil, err
	}

	// The cutoff was set when the sweep began; the schedule in force in this
	// batch's transaction decides (a change since may have lengthened the
	// period or dropped the rule).
	sc, err := b.schedule(ctx)
	if err != nil {
		return nil, err
	}
	keep, ruled := sc.CategoryKeep(p.category)

	// Candidates come in (occurred_at, id) order; a contact gone or already
	// redacted since the selection is passed over.
	rule := "category:" + string(p.category)
	var items []Item
	var found []string
	for _, c := range cands {
		lc, ok := live[c.id]
		val := p.column.value(lc)
		if !ok || !val.Valid || !ruled || lc.OccurredAt.Add(keep).After(b.now) {
			continue
		}
		items = append(items, Item{ContactID: c.id, CaseID: lc.CaseID, Action: ItemRedact, Category: string(p.category), Rule: rule})
		found = append(found, c.id)
		if !b.dryRun {
			d := contactDisposition(c.id, lc, ItemRedact, rule, b.now, destroyedValue(val.String))
			d.detail = string(p.category)
			b.dispose(d)
		}
	}
	if b.dryRun {
		return items, nil
	}

	if _, err := sqlstore.RedactContacts(ctx, b.db, b.tx, p.column.name, found); err != nil {
		return nil, sqldb.Fail("redact "+p.column.name, err)
	}
	return items, nil
}
