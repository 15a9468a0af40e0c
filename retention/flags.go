package retention

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// The S3 legal-hold flags follow the holds (issue 21 §5–7). A flag set
// once, when a hold is placed, misses what the hold comes to cover later
// (an attachment uploaded into a held case, a case edited into a query
// hold) and is lost for good when the bucket is down at that moment. So:
//
//   - desired: the blobs the preserving holds cover (recorded in hold_items
//     or matching now, holditems.go), including holds in their release
//     grace;
//   - actual: legal_hold_flags, one row per blob whose flag casevault set,
//     with the object version it is on, read back from the bucket a batch
//     at a time (a flag cleared behind casevault's back is set again);
//   - converging: at once where it can (placing or reinstating a hold, an
//     upload into a held scope, POST /holds/{id}/mirror), and by
//     FlagMirror.Reconcile on a schedule, which retries whatever failed
//     (holds whose state is pending, holds whose grace ended) every run and
//     walks every hold in full periodically (FullEvery) for coverage that
//     grew since.
//
// Each hold's state (hold_mirroring) says whether its flags match:
// complete, pending (what failed and why), or unavailable when the store
// has no flags. Every pass that changes a flag or a state is audited.

// ErrFlagsBusy is Reconcile's error while another pass runs (in this
// process, or on PostgreSQL in any replica): one owner per tick.
var ErrFlagsBusy = errors.New("a legal-hold flag pass is already running")

// flagLockKey is the PostgreSQL advisory lock class of the flag
// reconciler (the sweeper's is 7345006), per schema like the sweeper's.
const flagLockKey = 7345017

// DefaultFullEvery is FlagMirrorOptions.FullEvery's default.
const DefaultFullEvery = time.Hour

// DefaultVerifyBatch is FlagMirrorOptions.VerifyBatch's default.
const DefaultVerifyBatch = 200

// FlagMirrorOptions are a FlagMirror's dependencies.
type FlagMirrorOptions struct {
	// Flags is the bucket's legal-hold flags (a *BucketFlags asks whether
	// the bucket has object lock); nil when the blob store has none (local
	// disk): every hold's mirroring is then unavailable.
	Flags LegalHolder
	// OnChange audits flag changes in the transaction that records them.
	OnChange cases.TxHook
	// FullEvery is how often Reconcile walks every hold rather than only
	// those that are pending (default DefaultFullEvery).
	FullEvery time.Duration
	// VerifyBatch is how many recorded flags a full pass reads back from
	// the bucket, those checked longest ago first (default
	// DefaultVerifyBatch; negative: none).
	VerifyBatch int
}

// FlagMirror keeps the storage's legal-hold flags equal to what the holds
// cover.
type FlagMirror struct {
	db    *sqldb.DB
	holds *Holds
	o     FlagMirrorOptions

	run sync.Mutex // one pass at a time in this process

	mu       sync.Mutex
	lastFull time.Time
	lastRun  *FlagReport
}

// NewFlagMirror builds the mirror of holds onto o.Flags.
func NewFlagMirror(db *sqldb.DB, holds *Holds, o FlagMirrorOptions) *FlagMirror {
	if o.FullEvery <= 0 {
		o.FullEvery = DefaultFullEvery
	}
	if o.VerifyBatch == 0 {
		o.VerifyBatch = DefaultVerifyBatch
	}
	return &FlagMirror{db: db, holds: holds, o: o}
}

// flags returns the flags to use: nil with a nil error when the store has
// none (unavailable), an error when that cannot be told yet.
func (m *FlagMirror) flags(ctx context.Context) (LegalHolder, error) {
	if m.o.Flags == nil {
		return nil, nil
	}
	ok, err := available(ctx, m.o.Flags)
	if err != nil || !ok {
		return nil, err
	}
	return m.o.Flags, nil
}

// unavailableReason says why a store has no flags.
func (m *FlagMirror) unavailableReason() string {
	if m.o.Flags == nil {
		return "the blob store has no legal-hold flags (local disk): casevault alone enforces holds"
	}
	return "the bucket has no object lock: casevault alone enforces holds"
}

// Mirroring is how far a hold's flags match what it covers.
type Mirroring struct {
	State string `json:"state"`
	// Blobs is how many blobs the hold covers now; Flagged how many of
	// them carry the flag (as recorded); Pending how many do not yet.
	Blobs   int `json:"blobs"`
	Flagged int `json:"flagged"`
	Pending int `json:"pending"`
	// CheckedAt and Error are the last pass's over this hold.
	CheckedAt *time.Time `json:"checked_at,omitempty"`
	Error     string     `json:"error,omitempty"`
	// Reason says why mirroring is unavailable.
	Reason string `json:"reason,omitempty"`
}

// Status reports a hold's mirroring now: what it covers against what is
// flagged (for a hold whose grace has ended: whether its flags are
// cleared), with the last pass's time and error.
func (m *FlagMirror) Status(ctx context.Context, hold Hold) (Mirroring, error) {
	lh, err := m.flags(ctx)
	if err == nil && lh == nil {
		return Mirroring{State: MirrorUnavailable, Reason: m.unavailableReason()}, nil
	}

	var out Mirroring
	var checked sql.NullInt64
	var state, msg sql.NullString
	serr := m.db.Read.QueryRowContext(ctx, m.db.Rebind(`SELECT state, checked_at, error FROM hold_mirroring WHERE hold_id = ?`), hold.ID).Scan(&state, &checked, &msg)
	if serr != nil && !errors.Is(serr, sql.ErrNoRows) {
		return out, sqldb.Fail("hold mirroring", serr)
	}
	out.CheckedAt, out.Error = sqldb.TimePtr(checked), msg.String
	if err != nil {
		out.State, out.Error = MirrorPending, firstLine(err)
		return out, nil
	}

	if !hold.preserving(m.holds.clock()) {
		var cleared sql.NullInt64
		if err := m.db.Read.QueryRowContext(ctx, m.db.Rebind(`SELECT flags_cleared_at FROM legal_holds WHERE id = ?`), hold.ID).Scan(&cleared); err != nil {
			return out, sqldb.Fail("hold mirroring", err)
		}
		out.State = MirrorPending
		if cleared.Valid {
			out.State = MirrorComplete
		}
		return out, nil
	}

	keys, err := m.holds.coveredBlobs(ctx, hold)
	if err != nil {
		return out, err
	}
	flagged, err := m.holds.flagRows(ctx, m.db.Read, keys)
	if err != nil {
		return out, err
	}
	out.Blobs, out.Flagged = len(keys), len(flagged)
	out.Pending = out.Blobs - out.Flagged
	out.State = MirrorComplete
	if out.Pending > 0 {
		out.State = MirrorPending
	}
	return out, nil
}

// coveredBlobs lists the keys of the blobs hold surely covers now.
func (h *Holds) coveredBlobs(ctx context.Context, hold Hold) ([]string, error) {
	blobs, err := sqlstore.AttachmentsInScope(ctx, h.db, h.db.Read, hold.Scope.contacts())
	if err != nil {
		return nil, sqldb.Fail("hold blobs", err)
	}
	ev := newEvaluator(h.matcher, []Hold{hold}).withRecorded(h.db, h.db.Read)
	var keys []string
	for _, b := range blobs {
		ok, err := ev.surely(ctx, hold, contactRef(b.Contact))
		if err != nil {
			return nil, err
		}
		if ok {
			keys = append(keys, b.BlobKey)
		}
	}
	return keys, nil
}

// MirrorHold brings one hold's flags up to date now: set on every blob a
// preserving hold covers, cleared when its grace has ended. Placing and
// reinstating a hold call it, and so does POST /holds/{id}/mirror. A flag
// it cannot set leaves the hold pending for the reconciler; the error
// says why.
func (m *FlagMirror) MirrorHold(ctx context.Context, hold Hold) (Mirroring, error) {
	lh, err := m.flags(ctx)
	if err == nil && lh == nil {
		return Mirroring{State: MirrorUnavailable, Reason: m.unavailableReason()}, nil
	}
	if err != nil {
		if perr := m.markPending(ctx, []string{hold.ID}, err); perr != nil {
			err = errors.Join(err, perr)
		}
		return Mirroring{State: MirrorPending, Error: firstLine(err)}, err
	}

	// A hold that no longer preserves is one whose release grace ended.
	on := hold.preserving(m.holds.clock())
	res, err := m.holds.applyFlags(ctx, lh, hold, on, applyOptions{hook: m.o.OnChange})
	now := m.holds.clock()
	out := Mirroring{State: res.state, Blobs: res.blobs, Pending: res.pending + res.missing, CheckedAt: &now}
	out.Flagged = out.Blobs - out.Pending
	if !on {
		out.Blobs, out.Flagged = 0, 0
	}
	if err != nil {
		out.Error = firstLine(err)
	}
	return out, err
}

// markPending records that the holds' mirroring is pending because of err
// (their flags could not be set), keeping the counts of their last pass.
func (m *FlagMirror) markPending(ctx context.Context, holdIDs []string, cause error) error {
	now := sqldb.Micros(m.holds.clock())
	return m.db.InTx(ctx, func(tx *sql.Tx) error {
		for _, id := range holdIDs {
			_, err := tx.ExecContext(ctx, m.db.Rebind(`INSERT INTO hold_mirroring (hold_id, state, blobs, pending, missing, checked_at, error) VALUES (?, ?, 0, 1, 0, ?, ?)
				ON CONFLICT (hold_id) DO UPDATE SET state = excluded.state, pending = hold_mirroring.pending + 1, checked_at = excluded.checked_at, error = excluded.error`),
				id, MirrorPending, now, firstLine(cause))
			if err != nil {
				return sqldb.Fail("hold mirroring", err)
			}
		}
		return nil
	})
}

// AttachmentAdded flags a new attachment's blob when a hold covers it (the
// upload hook, after the row committed). A flag it cannot set makes the
// covering holds pending, for the reconciler to retry; the error says why.
func (m *FlagMirror) AttachmentAdded(ctx context.Context, attachmentID string) error {
	lh, lerr := m.flags(ctx)
	if lerr == nil && lh == nil {
		return nil
	}

	var key, contactID, caseID, customerID string
	err := m.db.Read.QueryRowContext(ctx, m.db.Rebind(`SELECT blob_key, contact_id, case_id, customer_id FROM attachments WHERE id = ?`), attachmentID).
		Scan(&key, &contactID, &caseID, &customerID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // deleted meanwhile
	}
	if err != nil {
		return sqldb.Fail("attachment", err)
	}
	times, err := sqlstore.ContactTimes(ctx, m.db, m.db.Read, []string{contactID})
	if err != nil {
		return sqldb.Fail("attachment", err)
	}
	ref := ContactRef{ContactID: contactID, CaseID: caseID, CustomerID: customerID, OccurredAt: times[contactID]}

	holds, cerr := m.holds.Covering(ctx, ref)
	if len(holds) == 0 {
		return cerr
	}
	ids := holdIDs(holds)
	if lerr != nil {
		return errors.Join(lerr, m.markPending(ctx, ids, lerr))
	}

	version, err := lh.SetVersionLegalHold(ctx, key, "", true)
	if err != nil {
		err = fmt.Errorf("legal-hold flag of attachment %s: %w", attachmentID, err)
		return errors.Join(err, m.markPending(ctx, ids, err))
	}

	now := m.holds.clock()
	return m.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := m.holds.writeFlags(ctx, tx, []flagRow{{key: key, version: version, setAt: now, checkedAt: now}}, nil); err != nil {
			return err
		}
		if m.o.OnChange == nil {
			return nil
		}
		ch := cases.Change{Actor: cases.SystemActor(), Action: "attachment.legal_hold", TargetType: "attachment", TargetID: attachmentID,
			Detail: map[string]any{"flags": "set", "holds": ids}}
		if err := m.o.OnChange(ctx, tx, ch); err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		return nil
	})
}

// FlagReport is what a reconciler pass did.
type FlagReport struct {
	// Available is false when the store has no flags (nothing to do).
	Available bool `json:"available"`
	// Full: every hold was walked (else only those pending).
	Full      bool      `json:"full"`
	StartedAt time.Time `json:"started_at"`
	Holds     int       `json:"holds"`
	Set       int       `json:"set"`
	Cleared   int       `json:"cleared"`
	// Verified flags were read back from the bucket; Restored were found
	// cleared behind casevault's back and set again.
	Verified int `json:"verified"`
	Restored int `json:"restored"`
	// Pending lists the holds still pending after the pass.
	Pending []string `json:"pending_holds,omitempty"`
	Error   string   `json:"error,omitempty"`
}

// ReconcileOptions narrow a pass.
type ReconcileOptions struct {
	// Full walks every hold; otherwise a pass walks the pending holds and
	// the ended ones, and is full only when the last full pass is older
	// than FullEvery.
	Full bool
}

// Reconcile converges the flags on the holds: sets what preserving holds
// cover and is not flagged, clears what no preserving hold covers any
// more, and (full pass) reads a batch of flags back from the bucket. On
// PostgreSQL one replica runs it at a time (ErrFlagsBusy for the others).
func (m *FlagMirror) Reconcile(ctx context.Context, o ReconcileOptions) (FlagReport, error) {
	rep := FlagReport{StartedAt: m.holds.clock()}
	unlock, err := m.lock(ctx)
	if err != nil {
		return rep, err
	}
	defer unlock()

	rep, err = m.reconcile(ctx, o, rep)
	if err != nil {
		rep.Error = firstLine(err)
	}
	m.mu.Lock()
	m.lastRun = &rep
	// A full pass cut short by an outage is due again at the next run.
	if rep.Full && !errors.Is(err, archive.ErrUnavailable) {
		m.lastFull = rep.StartedAt
	}
	m.mu.Unlock()
	return rep, err
}

func (m *FlagMirror) reconcile(ctx context.Context, o ReconcileOptions, rep FlagReport) (FlagReport, error) {
	lh, err := m.flags(ctx)
	if err != nil {
		return rep, err
	}
	if lh == nil {
		return rep, nil
	}
	rep.Available = true

	m.mu.Lock()
	rep.Full = o.Full || m.lastFull.IsZero() || rep.StartedAt.Sub(m.lastFull) >= m.o.FullEvery
	m.mu.Unlock()

	preserving, err := m.holds.active(ctx, nil)
	if err != nil {
		return rep, err
	}
	if !rep.Full {
		pending, err := m.pendingIDs(ctx)
		if err != nil {
			return rep, err
		}
		preserving = slices.DeleteFunc(preserving, func(h Hold) bool { return !slices.Contains(pending, h.ID) })
	}

	// A blob that is missing or refused stays pending without holding up
	// the rest; an outage ends the pass (every later call would wait out
	// the same timeout).
	var errs []error
	down := func() bool { return errors.Is(errors.Join(errs...), archive.ErrUnavailable) }
	for _, hold := range preserving {
		rep.Holds++
		res, err := m.holds.applyFlags(ctx, lh, hold, true, applyOptions{skipFlagged: rep.Full, hook: m.o.OnChange})
		rep.Set += res.changed
		if err != nil {
			errs = append(errs, fmt.Errorf("hold %s: %w", hold.ID, err))
			if down() {
				break
			}
		}
	}

	if !down() {
		n, err := m.holds.clearEnded(ctx, lh, m.o.OnChange)
		rep.Cleared += n
		if err != nil {
			errs = append(errs, err)
		}
	}

	if rep.Full && !down() {
		n, err := m.clearStray(ctx, lh)
		rep.Cleared += n
		if err != nil {
			errs = append(errs, err)
		}
		v, r, err := m.verify(ctx, lh)
		rep.Verified, rep.Restored = v, r
		if err != nil {
			errs = append(errs, err)
		}
	}

	if rep.Pending, err = m.pendingIDs(ctx); err != nil {
		errs = append(errs, err)
	}
	return rep, errors.Join(errs...)
}

// Pending reports, without changing anything, whether the store has flags
// and which holds' mirroring is pending.
func (m *FlagMirror) Pending(ctx context.Context) (FlagReport, error) {
	rep := FlagReport{StartedAt: m.holds.clock()}
	lh, err := m.flags(ctx)
	if err != nil || lh == nil {
		return rep, err
	}
	rep.Available = true
	rep.Pending, err = m.pendingIDs(ctx)
	return rep, err
}

// clearStray clears the recorded flags that no preserving hold covers
// (their holds' grace ended and their own pass could not tell, or their
// attachment is gone), each checked against the holds just before.
func (m *FlagMirror) clearStray(ctx context.Context, lh LegalHolder) (int, error) {
	rows, err := sqldb.Collect(ctx, m.db.Read, `SELECT blob_key, version_id, set_at, checked_at FROM legal_hold_flags ORDER BY blob_key`, nil, scanFlagRow)
	if err != nil {
		return 0, sqldb.Fail("legal-hold flags", err)
	}
	active, err := m.holds.active(ctx, nil)
	if err != nil {
		return 0, err
	}
	ev := newEvaluator(m.holds.matcher, active).withRecorded(m.db, m.db.Read)

	n := 0
	var errs []error
	for chunk := range slices.Chunk(rows, 500) {
		refs, err := m.blobRefs(ctx, chunk)
		if err != nil {
			return n, err
		}
		var dropped []string
		for _, r := range chunk {
			if ref, ok := refs[r.key]; ok {
				held, err := ev.covering(ctx, ref)
				if err != nil || len(held) > 0 {
					continue
				}
			}
			_, err := lh.SetVersionLegalHold(ctx, r.key, r.version, false)
			switch {
			case err == nil:
				n++
				dropped = append(dropped, r.key)
			case errors.Is(err, archive.ErrNotFound):
				dropped = append(dropped, r.key)
			default:
				errs = append(errs, fmt.Errorf("clear %s: %w", r.key, err))
			}
		}
		if len(dropped) > 0 {
			err := m.db.InTx(ctx, func(tx *sql.Tx) error {
				if err := m.holds.writeFlags(ctx, tx, nil, dropped); err != nil {
					return err
				}
				if m.o.OnChange == nil {
					return nil
				}
				return m.o.OnChange(ctx, tx, cases.Change{Actor: cases.SystemActor(), Action: "legal_hold_flags.clear", TargetType: "legal_hold_flags",
					Detail: map[string]any{"flags": "clear", "blobs": len(dropped), "reason": "covered by no preserving hold"}})
			})
			if err != nil {
				return n, err
			}
		}
	}
	return n, errors.Join(errs...)
}

// blobRefs finds the contacts of recorded blobs still attached.
func (m *FlagMirror) blobRefs(ctx context.Context, rows []flagRow) (map[string]ContactRef, error) {
	keys := make([]string, len(rows))
	for i, r := range rows {
		keys[i] = r.key
	}
	type att struct {
		key string
		ref ContactRef
	}
	inCond, inArgs := sqldb.AnyOf(m.db.Dialect, "blob_key", keys)
	atts, err := sqldb.Collect(ctx, m.db.Read, m.db.Rebind(`SELECT blob_key, contact_id, case_id, customer_id FROM attachments WHERE `+inCond),
		inArgs, func(rows *sql.Rows) (att, error) {
			var a att
			return a, rows.Scan(&a.key, &a.ref.ContactID, &a.ref.CaseID, &a.ref.CustomerID)
		})
	if err != nil {
		return nil, sqldb.Fail("flagged attachments", err)
	}
	ids := make([]string, len(atts))
	for i, a := range atts {
		ids[i] = a.ref.ContactID
	}
	times, err := sqlstore.ContactTimes(ctx, m.db, m.db.Read, ids)
	if err != nil {
		return nil, sqldb.Fail("flagged attachments", err)
	}
	out := make(map[string]ContactRef, len(atts))
	for _, a := range atts {
		a.ref.OccurredAt = times[a.ref.ContactID]
		out[a.key] = a.ref
	}
	return out, nil
}

// verify reads back the flags checked longest ago, sets again those found
// cleared (someone with rights on the bucket lifted them), and forgets
// those whose version is gone (the next pass flags the current one).
func (m *FlagMirror) verify(ctx context.Context, lh LegalHolder) (verified, restored int, err error) {
	if m.o.VerifyBatch < 0 {
		return 0, 0, nil
	}
	rows, err := sqldb.Collect(ctx, m.db.Read, m.db.Rebind(`SELECT blob_key, version_id, set_at, checked_at FROM legal_hold_flags ORDER BY checked_at, blob_key LIMIT ?`),
		[]any{m.o.VerifyBatch}, scanFlagRow)
	if err != nil {
		return 0, 0, sqldb.Fail("legal-hold flags", err)
	}

	now := m.holds.clock()
	var checked []flagRow
	var gone, lifted []string
	var errs []error
	for _, r := range rows {
		on, err := lh.VersionLegalHold(ctx, r.key, r.version)
		switch {
		case errors.Is(err, archive.ErrNotFound):
			gone = append(gone, r.key)
			continue
		case err != nil:
			errs = append(errs, fmt.Errorf("read back %s: %w", r.key, err))
			if errors.Is(err, archive.ErrUnavailable) {
				return verified, restored, errors.Join(errs...)
			}
			continue
		}
		verified++
		if !on {
			if _, err := lh.SetVersionLegalHold(ctx, r.key, r.version, true); err != nil {
				errs = append(errs, fmt.Errorf("set again %s: %w", r.key, err))
				continue
			}
			restored++
			lifted = append(lifted, r.key)
		}
		r.checkedAt = now
		checked = append(checked, r)
	}

	err = m.db.InTx(ctx, func(tx *sql.Tx) error {
		if err := m.holds.writeFlags(ctx, tx, checked, gone); err != nil {
			return err
		}
		if m.o.OnChange == nil || len(lifted)+len(gone) == 0 {
			return nil
		}
		return m.o.OnChange(ctx, tx, cases.Change{Actor: cases.SystemActor(), Action: "legal_hold_flags.verify", TargetType: "legal_hold_flags",
			Detail: map[string]any{"verified": verified, "restored": lifted, "version_gone": gone}})
	})
	return verified, restored, errors.Join(append(errs, err)...)
}

// pendingIDs lists the holds whose mirroring is not complete: preserving
// holds never mirrored or left pending, and holds whose grace ended with
// flags a pass could not clear.
func (m *FlagMirror) pendingIDs(ctx context.Context) ([]string, error) {
	ids, err := sqldb.Collect(ctx, m.db.Read, m.db.Rebind(`SELECT l.id FROM legal_holds l LEFT JOIN hold_mirroring m ON m.hold_id = l.id
		WHERE ((l.released_at IS NULL OR l.grace_until > ?) AND (m.state IS NULL OR m.state <> ?))
		   OR (l.released_at IS NOT NULL AND l.grace_until <= ? AND l.flags_cleared_at IS NULL AND m.state = ?)
		ORDER BY l.id`), []any{sqldb.Micros(m.holds.clock()), MirrorComplete, sqldb.Micros(m.holds.clock()), MirrorPending},
		func(rows *sql.Rows) (string, error) {
			var id string
			return id, rows.Scan(&id)
		})
	if err != nil {
		return nil, sqldb.Fail("hold mirroring", err)
	}
	return ids, nil
}

// Readiness is /readyz's detail on the flags: an error (degraded) while a
// hold's mirroring is pending or the bucket cannot be asked.
func (m *FlagMirror) Readiness(ctx context.Context) (any, error) {
	lh, err := m.flags(ctx)
	if err == nil && lh == nil {
		return map[string]any{"mirroring": MirrorUnavailable, "reason": m.unavailableReason()}, nil
	}
	detail := map[string]any{}
	m.mu.Lock()
	if m.lastRun != nil {
		detail["last_pass"] = m.lastRun.StartedAt
		if m.lastRun.Error != "" {
			detail["last_error"] = m.lastRun.Error
		}
	}
	m.mu.Unlock()
	if err != nil {
		detail["mirroring"] = "unknown"
		return detail, err
	}

	pending, err := m.pendingIDs(ctx)
	if err != nil {
		return detail, err
	}
	detail["pending_holds"] = len(pending)
	if len(pending) == 0 {
		detail["mirroring"] = MirrorComplete
		return detail, nil
	}
	detail["mirroring"] = MirrorPending
	detail["holds"] = pending[:min(len(pending), 10)]
	return detail, fmt.Errorf("%d legal holds not fully mirrored to S3 legal-hold flags (the reconciler retries)", len(pending))
}

// lock takes the pass lock; the returned function releases it.
func (m *FlagMirror) lock(ctx context.Context) (func(), error) {
	if !m.run.TryLock() {
		return nil, ErrFlagsBusy
	}
	if m.db.Dialect != sqldb.Postgres {
		return m.run.Unlock, nil
	}

	// A session lock on a dedicated connection, as the sweeper's: it dies
	// with the connection if this process does.
	conn, err := m.db.Write.Conn(ctx)
	if err != nil {
		m.run.Unlock()
		return nil, sqldb.Fail("flag lock", err)
	}
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1, hashtext(current_schema()))`, flagLockKey).Scan(&ok); err != nil || !ok {
		conn.Close()
		m.run.Unlock()
		if err != nil {
			return nil, sqldb.Fail("flag lock", err)
		}
		return nil, ErrFlagsBusy
	}

	return func() {
		uctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := conn.ExecContext(uctx, `SELECT pg_advisory_unlock($1, hashtext(current_schema()))`, flagLockKey); err != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		conn.Close()
		m.run.Unlock()
	}, nil
}

// ErrNoFlags is returned by a BucketFlags whose bucket has no object lock.
var ErrNoFlags = errors.New("the bucket has no object lock: no legal-hold flags")

// availability is a LegalHolder that knows whether its bucket has flags.
type availability interface {
	Available(ctx context.Context) (bool, error)
}

// available reports whether lh can set flags.
func available(ctx context.Context, lh LegalHolder) (bool, error) {
	if lh == nil {
		return false, nil
	}
	if a, ok := lh.(availability); ok {
		return a.Available(ctx)
	}
	return true, nil
}

// BucketFlags is a bucket's legal-hold flags, usable once the bucket has
// said it has object lock. It asks until the bucket answers, so an outage
// when the server starts does not leave holds without flags for good.
type BucketFlags struct {
	flags      LegalHolder
	objectLock func(ctx context.Context) (bool, error)

	mu    sync.Mutex
	known *bool
}

// NewBucketFlags wraps flags with the bucket's object-lock check.
func NewBucketFlags(flags LegalHolder, objectLock func(ctx context.Context) (bool, error)) *BucketFlags {
	return &BucketFlags{flags: flags, objectLock: objectLock}
}

// Available reports whether the bucket has object lock, asking it until it
// answers.
func (b *BucketFlags) Available(ctx context.Context) (bool, error) {
	b.mu.Lock()
	known := b.known
	b.mu.Unlock()
	if known != nil {
		return *known, nil
	}
	on, err := b.objectLock(ctx)
	if err != nil {
		return false, fmt.Errorf("cannot tell whether the bucket has object lock: %w", err)
	}
	b.mu.Lock()
	b.known = &on
	b.mu.Unlock()
	return on, nil
}

// SetVersionLegalHold sets or clears a flag (ErrNoFlags without object lock).
func (b *BucketFlags) SetVersionLegalHold(ctx context.Context, key, version string, on bool) (string, error) {
	if ok, err := b.Available(ctx); err != nil || !ok {
		return "", errors.Join(err, noFlags(ok))
	}
	return b.flags.SetVersionLegalHold(ctx, key, version, on)
}

// VersionLegalHold reads a flag (ErrNoFlags without object lock).
func (b *BucketFlags) VersionLegalHold(ctx context.Context, key, version string) (bool, error) {
	if ok, err := b.Available(ctx); err != nil || !ok {
		return false, errors.Join(err, noFlags(ok))
	}
	return b.flags.VersionLegalHold(ctx, key, version)
}

func noFlags(ok bool) error {
	if ok {
		return nil
	}
	return ErrNoFlags
}
