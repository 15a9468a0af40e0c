package main

import (
	"context"
	"fmt"

	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/sqldb"
)

// escrowProbe is the /readyz check of the key escrow: erased customers
// whose data key is still in the backup repository's escrow (it was not
// reachable at the erasure). Degraded, not unready: the next backup run or
// the hourly retry removes them, and serving is unaffected.
func escrowProbe(db *sqldb.DB) func(ctx context.Context) (any, error) {
	return func(ctx context.Context) (any, error) {
		st, err := backup.PendingEscrow(ctx, db)
		if err != nil {
			return nil, err
		}
		if st.PendingDeletions > 0 {
			return st, fmt.Errorf("%d erased customer(s) still have their data key in the backups' key escrow: the next backup run removes them", st.PendingDeletions)
		}
		return st, nil
	}
}

// retryEscrow purges the pending key escrow entries (with the hourly
// reconcile), so an erasure made while the repository was down is finished
// without waiting for the nightly backup.
func (j jobs) retryEscrow() {
	if j.a.backup == nil {
		return
	}
	left, err := j.a.backup.svc.PurgePendingEscrow(j.ctx)
	if err != nil {
		j.a.log.Error("key escrow deletions still pending", "pending", left, "err", err)
	}
}
