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
// delete it; when off (once its release grace has ended, see
// ClearEndedGraceFlags), the flag is cleared on the blobs it covered that
// no other preserving hold still covers. It reports how many blobs it
// changed. Blobs attached later to held contacts are protected by the
// sweeper's hold check, not by a flag.
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
		// Holds in their grace still preserve, flags included.
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

// ClearEndedGraceFlags clears the legal-hold flags of the released holds
// whose grace has ended and whose flags were not cleared yet, and records
// that it did (legal_holds.flags_cleared_at). Until then the flags stay:
// through the grace the storage preserves too, so a mistaken release can
// be reinstated with nothing lost. A hold whose flags could not all be
// cleared is tried again by the next call. It reports the flags cleared.
func (h *Holds) ClearEndedGraceFlags(ctx context.Context, lh LegalHolder) (int, error) {
	now := h.clock()
	ended, err := sqldb.Collect(ctx, h.db.Read, h.db.Rebind(`SELECT `+holdCols+` FROM legal_holds
		WHERE released_at IS NOT NULL AND grace_until <= ? AND flags_cleared_at IS NULL ORDER BY id`), []any{sqldb.Micros(now)}, scanHoldRow)
	if err != nil {
		return 0, sqldb.Fail("holds past their grace", err)
	}

	total := 0
	var errs []error
	for _, hold := range ended {
		n, err := h.ApplyObjectLock(ctx, lh, hold, false)
		total += n
		if err != nil {
			errs = append(errs, fmt.Errorf("hold %s: %w", hold.ID, err))
			continue
		}
		if _, err := h.db.Write.ExecContext(ctx, h.db.Rebind(`UPDATE legal_holds SET flags_cleared_at = ? WHERE id = ?`), sqldb.Micros(now), hold.ID); err != nil {
			errs = append(errs, sqldb.Fail("record flags cleared", err))
		}
	}
	return total, errors.Join(errs...)
}
