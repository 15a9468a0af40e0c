package retention

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
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
	blobs, err := sqlstore.AttachmentsInScope(ctx, h.db, h.db.Read, hold.Scope.contacts())
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
		covered, err := this.covers(ctx, hold, contactRef(b.Contact))
		if err != nil && !on {
			// Unsure whether it was covered: leave the flag as it is.
			errs = append(errs, err)
			continue
		}
		if !covered {
			continue
		}
		if !on {
			still, err := others.covering(ctx, contactRef(b.Contact))
			if err != nil || len(still) > 0 {
				continue
			}
		}
		if err := lh.SetLegalHold(ctx, b.BlobKey, on); err != nil {
			errs = append(errs, fmt.Errorf("object lock %s: %w", b.BlobKey, err))
			continue
		}
		changed++
	}
	return changed, errors.Join(errs...)
}
