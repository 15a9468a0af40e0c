package retention

import (
	"context"
	"database/sql"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
)

// categoryColumns maps the categories that live in a column of their own to
// it; other categories are part of the body and go with the contact.
var categoryColumns = map[cases.Category]string{
	cases.CategoryLocation: "location",
	cases.CategoryDevice:   "device",
}

// redactPhase nulls one category column of contacts captured before cutoff.
type redactPhase struct {
	category cases.Category
	column   string
	cutoff   time.Time
}

func (p redactPhase) bound() int64 { return sqldb.Micros(p.cutoff) }

func (p redactPhase) query() string {
	return `SELECT id, case_id, customer_id, occurred_at, occurred_at FROM contacts
		WHERE ` + p.column + ` IS NOT NULL AND occurred_at <= ? AND (occurred_at > ? OR (occurred_at = ? AND id > ?))
		ORDER BY occurred_at, id LIMIT ?`
}

func (p redactPhase) apply(ctx context.Context, b *batch, cands []candidate) ([]Item, error) {
	ids := make([]string, len(cands))
	for i, c := range cands {
		ids[i] = c.id
	}

	type row struct {
		id, value string
		lc        liveContact
	}
	what := "redact " + p.column
	rows, err := sqldb.Collect(ctx, b.reader(),
		b.db.Rebind(`SELECT id, case_id, customer_id, purposes, `+p.column+` FROM contacts WHERE `+p.column+` IS NOT NULL AND id IN (`+sqldb.Placeholders(len(ids))+`) ORDER BY occurred_at, id`),
		sqldb.Args(ids), func(rows *sql.Rows) (row, error) {
			var r row
			var ps string
			if err := rows.Scan(&r.id, &r.lc.caseID, &r.lc.customerID, &ps, &r.value); err != nil {
				return r, err
			}
			var err error
			r.lc.purposes, err = purposesJSON(r.id, ps)
			return r, err
		})
	if err != nil {
		return nil, dbFail(what, err)
	}

	rule := "category:" + string(p.category)
	items := make([]Item, 0, len(rows))
	found := make([]string, 0, len(rows))
	for _, r := range rows {
		items = append(items, Item{ContactID: r.id, CaseID: r.lc.caseID, Action: ItemRedact, Category: string(p.category), Rule: rule})
		found = append(found, r.id)
		if !b.dryRun {
			d := contactDisposition(r.id, r.lc, ItemRedact, rule, b.now, destroyedValue(r.value))
			d.detail = string(p.category)
			b.dispose(d)
		}
	}
	if b.dryRun {
		return items, nil
	}

	if err := execIn(ctx, b.db, b.tx, `UPDATE contacts SET `+p.column+` = NULL WHERE id IN (?*)`, found); err != nil {
		return nil, sqldb.Fail(what, err)
	}
	return items, nil
}
