package retention

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/casevault/casevault/sqldb"
)

// LegalHolder sets the S3 object legal-hold flag (archive/s3.Store does,
// when its bucket has object lock enabled).
type LegalHolder interface {
	SetLegalHold(ctx context.Context, key string, on bool) error
}

// ApplyObjectLock mirrors a hold onto the storage: when on, every blob the
// hold covers gets the legal-hold flag, so not even the bucket's owner can
// delete it; when off (after a release), the flag is cleared on the blobs
// it covered that no other active hold still covers. It reports how many
// blobs it changed. Blobs attached later to held contacts are protected by
// the sweeper's hold check, not by a flag.
func (h *Holds) ApplyObjectLock(ctx context.Context, lh LegalHolder, hold Hold, on bool) (int, error) {
	s := hold.Scope
	q := `SELECT a.blob_key, a.contact_id, a.case_id, a.customer_id, c.occurred_at
		FROM attachments a JOIN contacts c ON c.id = a.contact_id`
	var conds []string
	var args []any
	in := func(col string, vals []string) {
		if len(vals) == 0 {
			return
		}
		conds = append(conds, col+` IN (`+sqldb.Placeholders(len(vals))+`)`)
		args = append(args, sqldb.Args(vals)...)
	}

	in("a.case_id", s.CaseIDs)
	in("a.customer_id", s.CustomerIDs)
	if s.From != nil {
		conds, args = append(conds, "c.occurred_at >= ?"), append(args, sqldb.Micros(*s.From))
	}
	if s.To != nil {
		conds, args = append(conds, "c.occurred_at < ?"), append(args, sqldb.Micros(*s.To))
	}
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}

	type blob struct {
		key string
		ref ContactRef
	}
	blobs, err := sqldb.Collect(ctx, h.db.Read, h.db.Rebind(q+" ORDER BY a.id"), args, func(rows *sql.Rows) (blob, error) {
		var b blob
		var occurred int64
		err := rows.Scan(&b.key, &b.ref.ContactID, &b.ref.CaseID, &b.ref.CustomerID, &occurred)
		b.ref.OccurredAt = sqldb.FromMicros(occurred)
		return b, err
	})
	if err != nil {
		return 0, sqldb.Fail("object lock", err)
	}

	this := newEvaluator(h.matcher, []Hold{hold}).withRecorded(h.db, h.db.Read)
	var others *evaluator
	if !on {
		active, err := h.active(ctx, nil)
		if err != nil {
			return 0, err
		}
		// A released hold preserves through its grace, but by the sweeper's
		// check, not by flags no job would clear when the grace ends.
		active = slices.DeleteFunc(active, func(o Hold) bool { return o.ID == hold.ID })
		others = newEvaluator(h.matcher, active).withRecorded(h.db, h.db.Read)
	}

	changed := 0
	var errs []error
	for _, b := range blobs {
		covered, err := this.covers(ctx, hold, b.ref)
		if err != nil && !on {
			// Unsure whether it was covered: leave the flag as it is.
			errs = append(errs, err)
			continue
		}
		if !covered {
			continue
		}
		if !on {
			still, err := others.covering(ctx, b.ref)
			if err != nil || len(still) > 0 {
				continue
			}
		}
		if err := lh.SetLegalHold(ctx, b.key, on); err != nil {
			errs = append(errs, fmt.Errorf("object lock %s: %w", b.key, err))
			continue
		}
		changed++
	}
	return changed, errors.Join(errs...)
}
