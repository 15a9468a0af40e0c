package retention

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// LegalHolder is the blob store's S3 legal-hold flags, one per object
// version (archive/s3.Store does it, when its bucket has object lock).
type LegalHolder interface {
	// SetVersionLegalHold sets (on) or clears the flag of one version of
	// key ("": the current version) and returns the version it changed. A
	// missing key or version is archive.ErrNotFound.
	SetVersionLegalHold(ctx context.Context, key, version string, on bool) (string, error)
	// VersionLegalHold reads the flag of one version of key.
	VersionLegalHold(ctx context.Context, key, version string) (bool, error)
}

// Mirroring states of a hold (issue 21 §6): whether the storage's
// legal-hold flags match what the hold covers.
const (
	// MirrorComplete: every blob the hold covers carries the flag (or, for
	// a hold whose release grace has ended, its flags are cleared).
	MirrorComplete = "complete"
	// MirrorPending: some flag could not be set or cleared yet (the bucket
	// was down, a blob is missing); the reconciler tries again.
	MirrorPending = "pending"
	// MirrorUnavailable: the blob store has no legal-hold flags (local
	// disk, or a bucket without object lock): only casevault enforces the
	// hold.
	MirrorUnavailable = "unavailable"
)

// ApplyObjectLock mirrors a hold onto the storage: when on, every blob the
// hold covers gets the legal-hold flag, so not even the bucket's owner can
// delete it; when off (once its release grace has ended, see
// ClearEndedGraceFlags), the flag is cleared on the blobs it covered that
// no other preserving hold still covers. Every flag it changes is recorded
// in legal_hold_flags and the hold's state in hold_mirroring. It reports
// how many flags it changed. Blobs added later are flagged by the upload
// hook and by the reconciler (FlagMirror).
func (h *Holds) ApplyObjectLock(ctx context.Context, lh LegalHolder, hold Hold, on bool) (int, error) {
	res, err := h.applyFlags(ctx, lh, hold, on, applyOptions{})
	return res.changed, err
}

// applyOptions tune one hold's pass.
type applyOptions struct {
	// skipFlagged leaves alone the blobs legal_hold_flags already records
	// as flagged (the reconciler reads those back in batches instead).
	skipFlagged bool
	// hook, when set, audits the pass ("hold.flags") in the transaction
	// that records its state.
	hook cases.TxHook
}

// applyResult is what one hold's pass did.
type applyResult struct {
	blobs, changed, pending, missing int
	state                            string
}

// applyFlags sets (on) or clears one hold's flags and records what it did.
// The first outage stops the pass: the blobs left are pending, so a hold
// placed while the bucket hangs costs one timeout, not one per blob.
func (h *Holds) applyFlags(ctx context.Context, lh LegalHolder, hold Hold, on bool, o applyOptions) (applyResult, error) {
	var res applyResult
	if ok, err := available(ctx, lh); err != nil || !ok {
		res.state = MirrorUnavailable
		return res, err
	}
	blobs, err := sqlstore.AttachmentsInScope(ctx, h.db, h.db.Read, hold.Scope.contacts())
	if err != nil {
		return res, sqldb.Fail("object lock", err)
	}
	flagged, err := h.flagRows(ctx, h.db.Read, scopedBlobKeys(blobs))
	if err != nil {
		return res, err
	}

	this := newEvaluator(h.matcher, []Hold{hold}).withRecorded(h.db, h.db.Read)
	var others *evaluator
	if !on {
		active, err := h.active(ctx, nil)
		if err != nil {
			return res, err
		}
		// Holds in their grace still preserve, flags included.
		active = slices.DeleteFunc(active, func(o Hold) bool { return o.ID == hold.ID })
		others = newEvaluator(h.matcher, active).withRecorded(h.db, h.db.Read)
	}

	now := h.clock()
	var (
		set     []flagRow
		dropped []string
		errs    []error
		down    error
	)
	for _, b := range blobs {
		ref := contactRef(b.Contact)
		var covered bool
		if on {
			covered, err = this.surely(ctx, hold, ref)
		} else {
			// Clearing: anything the hold may cover counts (fail safe).
			covered, err = this.covers(ctx, hold, ref)
		}
		if err != nil {
			// Unsure whether it is covered: leave the flag as it is.
			errs = append(errs, err)
			res.pending++
			continue
		}
		if !covered {
			continue
		}
		res.blobs++
		row, isFlagged := flagged[b.BlobKey]
		if on && o.skipFlagged && isFlagged {
			continue
		}
		if !on {
			still, err := others.covering(ctx, ref)
			if err != nil || len(still) > 0 {
				continue
			}
		}
		// A blob already recorded as flagged stays so when the call fails.
		if down != nil {
			if !on || !isFlagged {
				res.pending++
			}
			continue
		}

		version, err := setFlag(ctx, lh, b.BlobKey, row.version, on)
		switch {
		case errors.Is(err, archive.ErrNotFound) && !on:
			// Nothing left to clear.
			dropped = append(dropped, b.BlobKey)
		case errors.Is(err, archive.ErrNotFound):
			res.missing++
			errs = append(errs, fmt.Errorf("object lock %s: %w", b.BlobKey, err))
		case err != nil:
			if !on || !isFlagged {
				res.pending++
			}
			errs = append(errs, fmt.Errorf("object lock %s: %w", b.BlobKey, err))
			if errors.Is(err, archive.ErrUnavailable) {
				down = err
			}
		case on:
			set = append(set, flagRow{key: b.BlobKey, version: version, setAt: now, checkedAt: now})
			res.changed++
		default:
			dropped = append(dropped, b.BlobKey)
			res.changed++
		}
	}

	res.state = MirrorComplete
	if res.pending > 0 || res.missing > 0 {
		res.state = MirrorPending
	}
	err = errors.Join(errs...)
	if rerr := h.recordPass(ctx, hold, on, set, dropped, res, err, o.hook); rerr != nil {
		return res, errors.Join(err, rerr)
	}
	return res, err
}

// setFlag changes the flag of the recorded version of key, or of its
// current version when none is recorded or the recorded one is gone.
func setFlag(ctx context.Context, lh LegalHolder, key, version string, on bool) (string, error) {
	v, err := lh.SetVersionLegalHold(ctx, key, version, on)
	if errors.Is(err, archive.ErrNotFound) && version != "" && on {
		return lh.SetVersionLegalHold(ctx, key, "", on)
	}
	return v, err
}

func scopedBlobKeys(blobs []sqlstore.ScopedAttachment) []string {
	keys := make([]string, len(blobs))
	for i, b := range blobs {
		keys[i] = b.BlobKey
	}
	return keys
}

// surely reports whether h certainly covers c: recorded, or matching now
// by a criterion that can be decided here. A query hold without a search
// engine (the CLI) covers only what it recorded: flagging everything its
// other criteria allow would flag blobs no hold covers.
func (ev *evaluator) surely(ctx context.Context, h Hold, c ContactRef) (bool, error) {
	rec, err := ev.isRecorded(ctx, h.ID, c)
	if err != nil || rec {
		return rec, err
	}
	if !ev.sure(h) {
		return false, nil
	}
	return ev.matches(ctx, h, c)
}

// flagRow is a row of legal_hold_flags: a blob whose flag is on.
type flagRow struct {
	key, version     string
	setAt, checkedAt time.Time
}

// flagRows reads the legal_hold_flags rows of keys.
func (h *Holds) flagRows(ctx context.Context, q sqldb.Querier, keys []string) (map[string]flagRow, error) {
	out := make(map[string]flagRow)
	for chunk := range slices.Chunk(keys, 500) {
		inCond, inArgs := sqldb.AnyOf(h.db.Dialect, "blob_key", chunk)
		rows, err := sqldb.Collect(ctx, q, h.db.Rebind(`SELECT blob_key, version_id, set_at, checked_at FROM legal_hold_flags WHERE `+inCond),
			inArgs, scanFlagRow)
		if err != nil {
			return nil, sqldb.Fail("legal-hold flags", err)
		}
		for _, r := range rows {
			out[r.key] = r
		}
	}
	return out, nil
}

func scanFlagRow(rows *sql.Rows) (flagRow, error) {
	var r flagRow
	var set, checked int64
	err := rows.Scan(&r.key, &r.version, &set, &checked)
	r.setAt, r.checkedAt = sqldb.FromMicros(set), sqldb.FromMicros(checked)
	return r, err
}

// writeFlags records flags set (upsert) and flags gone (delete) in tx.
func (h *Holds) writeFlags(ctx context.Context, tx *sql.Tx, set []flagRow, dropped []string) error {
	for _, r := range set {
		if _, err := tx.ExecContext(ctx, h.db.Rebind(`INSERT INTO legal_hold_flags (blob_key, version_id, set_at, checked_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (blob_key) DO UPDATE SET version_id = excluded.version_id, set_at = excluded.set_at, checked_at = excluded.checked_at`),
			r.key, r.version, sqldb.Micros(r.setAt), sqldb.Micros(r.checkedAt)); err != nil {
			return sqldb.Fail("record legal-hold flags", err)
		}
	}
	for chunk := range slices.Chunk(dropped, 500) {
		inCond, inArgs := sqldb.AnyOf(h.db.Dialect, "blob_key", chunk)
		if _, err := tx.ExecContext(ctx, h.db.Rebind(`DELETE FROM legal_hold_flags WHERE `+inCond), inArgs...); err != nil {
			return sqldb.Fail("record legal-hold flags", err)
		}
	}
	return nil
}

// recordPass records one hold's pass in one transaction: the flags it set
// or cleared, the hold's mirroring state and, with a hook, an audit event
// when a flag changed or the state did.
func (h *Holds) recordPass(ctx context.Context, hold Hold, on bool, set []flagRow, dropped []string, res applyResult, passErr error, hook cases.TxHook) error {
	msg := ""
	if passErr != nil {
		msg = firstLine(passErr)
	}
	return h.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := h.writeFlags(ctx, tx, set, dropped); err != nil {
			return err
		}

		var prev sql.NullString
		err := tx.QueryRowContext(ctx, h.db.Rebind(`SELECT state FROM hold_mirroring WHERE hold_id = ?`), hold.ID).Scan(&prev)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return sqldb.Fail("hold mirroring", err)
		}
		if err := h.putMirroring(ctx, tx, hold.ID, res, msg); err != nil {
			return err
		}

		if !on && res.state == MirrorComplete {
			if _, err := tx.ExecContext(ctx, h.db.Rebind(`UPDATE legal_holds SET flags_cleared_at = ? WHERE id = ? AND flags_cleared_at IS NULL`),
				sqldb.Micros(h.clock()), hold.ID); err != nil {
				return sqldb.Fail("record flags cleared", err)
			}
		}

		if hook == nil || (res.changed == 0 && prev.String == res.state) {
			return nil
		}
		detail := map[string]any{"flags": onOff(on), "changed": res.changed, "blobs": res.blobs, "state": res.state}
		if res.pending > 0 || res.missing > 0 {
			detail["pending"], detail["missing"] = res.pending, res.missing
		}
		if prev.Valid && prev.String != res.state {
			detail["previous_state"] = prev.String
		}
		ch := cases.Change{Actor: cases.SystemActor(), Action: "hold.flags", TargetType: "hold", TargetID: hold.ID, Detail: detail}
		if err := hook(ctx, tx, ch); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		return nil
	})
}

// putMirroring stores a hold's mirroring state.
func (h *Holds) putMirroring(ctx context.Context, tx *sql.Tx, holdID string, res applyResult, msg string) error {
	_, err := tx.ExecContext(ctx, h.db.Rebind(`INSERT INTO hold_mirroring (hold_id, state, blobs, pending, missing, checked_at, error) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (hold_id) DO UPDATE SET state = excluded.state, blobs = excluded.blobs, pending = excluded.pending,
			missing = excluded.missing, checked_at = excluded.checked_at, error = excluded.error`),
		holdID, res.state, res.blobs, res.pending, res.missing, sqldb.Micros(h.clock()), msg)
	if err != nil {
		return sqldb.Fail("hold mirroring", err)
	}
	return nil
}

func onOff(on bool) string {
	if on {
		return "set"
	}
	return "clear"
}

// firstLine is an error's first line, cut to a length a status can show.
func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	if len(s) > 500 {
		s = s[:500]
	}
	return s
}

// ClearEndedGraceFlags clears the legal-hold flags of the released holds
// whose grace has ended and whose flags were not cleared yet, and records
// that it did (legal_holds.flags_cleared_at). Until then the flags stay:
// through the grace the storage preserves too, so a mistaken release can
// be reinstated with nothing lost. A hold whose flags could not all be
// cleared is tried again by the next call. It reports the flags cleared.
func (h *Holds) ClearEndedGraceFlags(ctx context.Context, lh LegalHolder) (int, error) {
	return h.clearEnded(ctx, lh, nil)
}

func (h *Holds) clearEnded(ctx context.Context, lh LegalHolder, hook cases.TxHook) (int, error) {
	if ok, err := available(ctx, lh); err != nil || !ok {
		return 0, err // no flags to clear, or cannot tell yet
	}
	ended, err := h.endedUncleared(ctx)
	if err != nil {
		return 0, err
	}

	total := 0
	var errs []error
	for _, hold := range ended {
		res, err := h.applyFlags(ctx, lh, hold, false, applyOptions{hook: hook})
		total += res.changed
		if err != nil {
			errs = append(errs, fmt.Errorf("hold %s: %w", hold.ID, err))
		}
	}
	return total, errors.Join(errs...)
}

// endedUncleared lists the released holds whose grace has ended and whose
// flags are not recorded as cleared.
func (h *Holds) endedUncleared(ctx context.Context) ([]Hold, error) {
	ended, err := sqldb.Collect(ctx, h.db.Read, h.db.Rebind(`SELECT `+holdCols+` FROM legal_holds
		WHERE released_at IS NOT NULL AND grace_until <= ? AND flags_cleared_at IS NULL ORDER BY id`), []any{sqldb.Micros(h.clock())}, scanHoldRow)
	if err != nil {
		return nil, sqldb.Fail("holds past their grace", err)
	}
	return ended, nil
}
