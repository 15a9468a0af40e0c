package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/casevault/casevault/sqldb"
)

// What archive/backup reads of the contacts table goes through here, so
// that the table's shape is written down once, in its owner.

// contactExtraCols are the contacts columns the store keeps for others
// (set by a retention anonymization) and never reads into cases.Contact.
const contactExtraCols = `anonymized_at`

// ContactColumns returns every column of the contacts table in schema
// order: what a logical backup dumps and restores. A migration that adds a
// column adds it here (or to contactCols) and the backup follows.
func ContactColumns() []string {
	cols := strings.Split(contactCoreCols+", "+contactExtraCols+", "+contactAddedCols, ",")
	for i := range cols {
		cols[i] = strings.TrimSpace(cols[i])
	}
	return cols
}

// ContactExists reports whether contact id is in the live table, read in
// the caller's transaction (a single-case restore decides in it what to add).
func ContactExists(ctx context.Context, db *sqldb.DB, tx *sql.Tx, id string) (bool, error) {
	var n int
	if err := tx.QueryRowContext(ctx, db.Rebind(`SELECT COUNT(*) FROM contacts WHERE id = ?`), id).Scan(&n); err != nil {
		return false, fmt.Errorf("contact %s: %w", id, err)
	}
	return n > 0, nil
}
