package retention

import (
	"errors"
	"fmt"

	"github.com/casevault/casevault/sqldb"
)

// errBadRow marks a stored value that was read but does not decode (a JSON
// column, a hold's scope): a data error no retry fixes, so never an outage.
var errBadRow = errors.New("stored value does not decode")

// dbFail is sqldb.Fail for reads that decode their rows as they scan them:
// a row that does not decode is reported as such, not as the database
// being unavailable.
func dbFail(what string, err error) error {
	if errors.Is(err, errBadRow) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return sqldb.Fail(what, err)
}
