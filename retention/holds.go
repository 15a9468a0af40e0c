package retention

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/search"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// Limits on hold input.
const (
	MaxMatterLen   = 200
	MaxReasonLen   = 2000
	MaxScopeIDs    = 1000
	maxScopeIDSize = 64
)

// HoldScope says what a hold covers. Every criterion given must match (they
// narrow each other, as in e-discovery tools: "customer X's contacts of
// 2025"); the values within case_ids or customer_ids are alternatives. At
// least one criterion is required.
type HoldScope struct {
	CaseIDs     []string `json:"case_ids,omitempty"`
	CustomerIDs []string `json:"customer_ids,omitempty"`
	// Query is in the search syntax; it is evaluated when the sweeper runs,
	// so it also covers contacts that start matching after placement.
	Query string `json:"query,omitempty"`
	// From and To bound the contact's occurred_at: From <= t < To.
	From *time.Time `json:"from,omitempty"`
	To   *time.Time `json:"to,omitempty"`
	// badFrom and badTo hold a from/to value that is not a time, as sent,
	// for validation to name the field (a decoding error could not).
	badFrom, badTo string
}

func (s HoldScope) empty() bool {
	return len(s.CaseIDs) == 0 && len(s.CustomerIDs) == 0 && s.Query == "" && s.From == nil && s.To == nil &&
		s.badFrom == "" && s.badTo == ""
}

// UnmarshalJSON decodes a scope strictly (unknown fields are errors) and
// reads from and to as RFC 3339 times or YYYY-MM-DD dates (midnight UTC).
// A value that is neither does not fail the decoding, which would give
// "malformed JSON" for the whole body: it is kept for validation, which
// answers 422 naming scope.from or scope.to.
func (s *HoldScope) UnmarshalJSON(b []byte) error {
	type plain HoldScope // without this method
	var raw struct {
		plain
		From json.RawMessage `json:"from,omitempty"`
		To   json.RawMessage `json:"to,omitempty"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	*s = HoldScope(raw.plain)
	s.From, s.badFrom = scopeTime(raw.From)
	s.To, s.badTo = scopeTime(raw.To)
	return nil
}

// scopeTime reads one JSON time value; bad is the value as sent when it is
// not a time.
func scopeTime(raw json.RawMessage) (t *time.Time, bad string) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, ""
	}
	var str string
	if err := json.Unmarshal(raw, &str); err != nil {
		return nil, string(raw)
	}
	if str == "" {
		return nil, `""`
	}
	// The field name is reported by validate, which knows from and to.
	v, err := cases.ParseTime("", str)
	if err != nil {
		return nil, str
	}
	return &v, ""
}

// HoldInput is what placing a hold needs.
type HoldInput struct {
	Matter string    `json:"matter"`
	Reason string    `json:"reason"`
	Scope  HoldScope `json:"scope"`
}

// Hold is a legal hold. Holds are never deleted; a released hold stays with
// who released it, when and why. A released hold keeps preserving until
// GraceUntil (the schedule's hold_release_grace), and may be reinstated
// until then; Preserving says whether it preserves now.
type Hold struct {
	ID            string     `json:"id"`
	Matter        string     `json:"matter"`
	Reason        string     `json:"reason"`
	Scope         HoldScope  `json:"scope"`
	PlacedBy      string     `json:"placed_by"`
	PlacedAt      time.Time  `json:"placed_at"`
	Active        bool       `json:"active"`
	ReleasedBy    string     `json:"released_by,omitempty"`
	ReleasedAt    *time.Time `json:"released_at,omitempty"`
	ReleaseReason string     `json:"release_reason,omitempty"`
	GraceUntil    *time.Time `json:"grace_until,omitempty"`
	Preserving    bool       `json:"preserving"`
	ReinstatedBy  string     `json:"reinstated_by,omitempty"`
	ReinstatedAt  *time.Time `json:"reinstated_at,omitempty"`
}

// preserving reports whether the hold preserves at now: active, or
// released less than its grace ago.
func (h Hold) preserving(now time.Time) bool {
	return h.ReleasedAt == nil || (h.GraceUntil != nil && now.Before(*h.GraceUntil))
}

// ErrNotReinstatable is matched (errors.Is) by the error of reinstating a
// hold that is active or whose grace has ended; it also matches
// cases.ErrConflict (409).
var ErrNotReinstatable = errors.New("hold cannot be reinstated")

// ReinstateError says why a hold cannot be reinstated.
type ReinstateError struct {
	ID     string
	Reason string
}

func (e *ReinstateError) Error() string {
	return fmt.Sprintf("hold %s cannot be reinstated: %s", e.ID, e.Reason)
}

// Is makes the error match ErrNotReinstatable and cases.ErrConflict.
func (e *ReinstateError) Is(target error) bool {
	return target == ErrNotReinstatable || target == cases.ErrConflict
}

// ErrReleased is matched (errors.Is) by the error of releasing a hold that
// is already released; it also matches cases.ErrConflict (409).
var ErrReleased = errors.New("hold already released")

// ReleasedError is returned when releasing a released hold.
type ReleasedError struct {
	ID         string
	ReleasedAt time.Time
}

func (e *ReleasedError) Error() string {
	return fmt.Sprintf("hold %s was already released at %s", e.ID, e.ReleasedAt.Format(time.RFC3339))
}

// Is makes the error match ErrReleased and cases.ErrConflict.
func (e *ReleasedError) Is(target error) bool {
	return target == ErrReleased || target == cases.ErrConflict
}

// HeldError says that data cannot be deleted or erased because holds cover
// it; it matches cases.ErrConflict (the API answers 409 naming the holds).
type HeldError struct {
	HoldIDs []string
}

func (e *HeldError) Error() string {
	return "under legal hold " + strings.Join(e.HoldIDs, ", ")
}

// Is makes the error match cases.ErrConflict.
func (e *HeldError) Is(target error) bool { return target == cases.ErrConflict }

// QueryMatcher tells whether a query hold covers a case: the search engine
// finds the case for q restricted to it (Filter.CaseIDs = [caseID]).
type QueryMatcher interface {
	Matches(ctx context.Context, q search.Query, caseID string) (bool, error)
}

// BulkMatcher is a QueryMatcher that answers for many cases at once (the
// search engine: one query filtered by the case ids): sweeps and recording
// ask it once per hold and batch rather than once per hold and case.
type BulkMatcher interface {
	QueryMatcher
	// MatchingCases returns those of caseIDs (at most 500) that q finds.
	MatchingCases(ctx context.Context, q search.Query, caseIDs []string) ([]string, error)
}

// ContactRef is what coverage is decided on.
type ContactRef struct {
	ContactID  string
	CaseID     string
	CustomerID string
	OccurredAt time.Time
}

// contactRef is the ref of a contact the store read.
func contactRef(k sqlstore.ContactKey) ContactRef {
	return ContactRef{ContactID: k.ID, CaseID: k.CaseID, CustomerID: k.CustomerID, OccurredAt: k.OccurredAt}
}

// contacts is the part of the scope the store can select on: everything
// but the query, which a hold's evaluator decides.
func (s HoldScope) contacts() sqlstore.ContactScope {
	return sqlstore.ContactScope{CaseIDs: s.CaseIDs, CustomerIDs: s.CustomerIDs, From: s.From, To: s.To}
}

// Holds stores legal holds and decides what they cover.
type Holds struct {
	db       *sqldb.DB
	matcher  QueryMatcher
	policy   *Policy
	now      func() time.Time
	indexLag func(ctx context.Context) (int64, error)
}

// HoldsOptions are the hold store's dependencies.
type HoldsOptions struct {
	// Matcher answers query holds; when it is nil a query hold covers every
	// contact its other criteria allow (holding too much is safe, holding
	// too little is not).
	Matcher QueryMatcher
	// Policy gives the release grace in force (nil: the default grace).
	Policy *Policy
	// Now is the clock releases, reinstatements and the grace are judged
	// by (nil: time.Now).
	Now func() time.Time
	// IndexLag reports how many changes the search index has not applied
	// yet (as the sweeper's): a query hold's recording moves its through
	// mark only when it is 0 (nil: never lagging).
	IndexLag func(ctx context.Context) (pending int64, err error)
}

// NewHolds builds the hold store with the default release grace and clock.
func NewHolds(db *sqldb.DB, matcher QueryMatcher) *Holds {
	return NewHoldsWith(db, HoldsOptions{Matcher: matcher})
}

// NewHoldsWith builds the hold store from its options.
func NewHoldsWith(db *sqldb.DB, o HoldsOptions) *Holds {
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Holds{db: db, matcher: o.Matcher, policy: o.Policy, now: o.Now, indexLag: o.IndexLag}
}

// clock is h's time (a Holds built without a constructor reads time.Now).
func (h *Holds) clock() time.Time {
	if h.now == nil {
		return time.Now().UTC()
	}
	return h.now().UTC()
}

// grace is the release grace of the schedule in force as q sees it.
func (h *Holds) grace(ctx context.Context, q rowQuerier) (time.Duration, error) {
	if h.policy == nil {
		return DefaultHoldReleaseGrace, nil
	}
	sc, err := h.policy.In(ctx, q)
	if err != nil {
		return 0, err
	}
	return sc.ReleaseGrace(), nil
}

func (h *Holds) validate(ctx context.Context, in *HoldInput) error {
	var fields []cases.FieldError
	bad := func(field, format string, args ...any) {
		fields = append(fields, cases.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	}
	text := func(field string, s *string, max int) {
		*s = strings.TrimSpace(*s)
		switch {
		case *s == "":
			bad(field, "is required")
		case !utf8.ValidString(*s):
			bad(field, "must be valid UTF-8")
		case utf8.RuneCountInString(*s) > max:
			bad(field, "must be at most %d characters", max)
		case strings.ContainsRune(*s, 0):
			bad(field, "must not contain NUL characters")
		}
	}

	text("matter", &in.Matter, MaxMatterLen)
	text("reason", &in.Reason, MaxReasonLen)

	h.validateScope(ctx, &in.Scope, bad)

	if len(fields) > 0 {
		return &cases.ValidationError{Fields: fields}
	}
	return nil
}

// ValidateScope checks and normalises a scope as placing a hold does (an
// export of an ad-hoc scope uses it too): a *cases.ValidationError names
// the fields (422).
func (h *Holds) ValidateScope(ctx context.Context, sc *HoldScope) error {
	var fields []cases.FieldError
	h.validateScope(ctx, sc, func(field, format string, args ...any) {
		fields = append(fields, cases.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
	})
	if len(fields) > 0 {
		return &cases.ValidationError{Fields: fields}
	}
	return nil
}

// validateScope reports what is wrong with sc through bad and normalises it.
func (h *Holds) validateScope(ctx context.Context, sc *HoldScope, bad func(field, format string, args ...any)) {
	// A hold's query is stored and audited: card and identity numbers in
	// it are masked like everywhere else (it then holds what their masked
	// form finds, which is what the archive holds).
	sc.Query, _ = cases.MaskSensitive(strings.TrimSpace(sc.Query))
	for _, d := range [...]struct{ field, bad string }{{"scope.from", sc.badFrom}, {"scope.to", sc.badTo}} {
		if d.bad != "" {
			bad(d.field, "must be an RFC 3339 time or a YYYY-MM-DD date, not %q", d.bad)
		}
	}

	if sc.empty() {
		bad("scope", "must name case_ids, customer_ids, a query or a time range")
	}

	ids := func(field, table string, list []string) []string {
		if len(list) > MaxScopeIDs {
			bad(field, "at most %d ids", MaxScopeIDs)
			return list
		}
		var out []string
		for i, id := range list {
			id = strings.TrimSpace(id)
			at := fmt.Sprintf("%s[%d]", field, i)
			if id == "" || len(id) > maxScopeIDSize {
				bad(at, "must be an id")
				continue
			}
			var n int
			if err := h.db.Read.QueryRowContext(ctx, h.db.Rebind(`SELECT COUNT(*) FROM `+table+` WHERE id = ?`), id).Scan(&n); err != nil {
				bad(at, "could not be checked")
				continue
			}
			if n == 0 {
				bad(at, "no %s has this id", strings.TrimSuffix(table, "s"))
			}
			if !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
		return out
	}

	sc.CaseIDs = ids("scope.case_ids", "cases", sc.CaseIDs)
	sc.CustomerIDs = ids("scope.customer_ids", "customers", sc.CustomerIDs)

	if sc.Query != "" {
		q, err := search.ParseQuery(sc.Query)
		var qe *search.QueryError
		switch {
		case errors.As(err, &qe):
			bad("scope.query", "%s", qe.Error())
		case err != nil:
			bad("scope.query", "%v", err)
		case !q.HasText() && isZeroFilter(q.Filter):
			bad("scope.query", "has no terms")
		}
	}

	if sc.From != nil && sc.To != nil && !sc.From.Before(*sc.To) {
		bad("scope.to", "must be after scope.from")
	}
	if sc.From != nil {
		t := sc.From.UTC().Truncate(time.Microsecond)
		sc.From = &t
	}
	if sc.To != nil {
		t := sc.To.UTC().Truncate(time.Microsecond)
		sc.To = &t
	}
}

func isZeroFilter(f search.Filter) bool {
	return len(f.Statuses) == 0 && len(f.Channels) == 0 && len(f.Priorities) == 0 && len(f.CustomerIDs) == 0 &&
		len(f.Assignees) == 0 && len(f.Tags) == 0 && len(f.Purposes) == 0 && len(f.CaseIDs) == 0 &&
		f.From.IsZero() && f.To.IsZero()
}

// Place validates and stores a new hold; hook (may be nil) runs in the same
// transaction with a "hold.place" change. Invalid input gives a
// *cases.ValidationError naming the fields (422).
func (h *Holds) Place(ctx context.Context, in HoldInput, actor cases.Actor, hook cases.TxHook) (Hold, error) {
	if err := h.validate(ctx, &in); err != nil {
		return Hold{}, err
	}

	hold := Hold{ID: cases.NewID(), Matter: in.Matter, Reason: in.Reason, Scope: in.Scope,
		PlacedBy: actorName(actor), PlacedAt: h.clock().Truncate(time.Microsecond), Active: true, Preserving: true}
	scope, err := json.Marshal(hold.Scope)
	if err != nil {
		return Hold{}, fmt.Errorf("encode scope: %w", err)
	}

	// Exclusive: no write is in flight while the hold commits (barrier.go).
	err = exclusiveTx(ctx, h.db, func(tx *sql.Tx) error {
		// Waits for a sweep batch in flight (see retention_state).
		if _, err := lockState(ctx, h.db, tx); err != nil {
			return err
		}

		if _, err := tx.ExecContext(ctx, h.db.Rebind(`INSERT INTO legal_holds (id, matter, reason, scope, placed_by, placed_at) VALUES (?, ?, ?, ?, ?, ?)`),
			hold.ID, hold.Matter, hold.Reason, string(scope), hold.PlacedBy, sqldb.Micros(hold.PlacedAt)); err != nil {
			return sqldb.Fail("place hold", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE retention_state SET holds_version = holds_version + 1 WHERE id = 1`); err != nil {
			return sqldb.Fail("place hold", err)
		}

		if hook != nil {
			ch := cases.Change{Actor: actor, Action: "hold.place", TargetType: "hold", TargetID: hold.ID,
				Detail: map[string]any{"matter": hold.Matter}}
			if err := hook(ctx, tx, ch); err != nil {
				return fmt.Errorf("audit: %w", err)
			}
		}
		return nil
	})

	if err != nil {
		return Hold{}, err
	}

	// What the scope covers now is recorded after the hold committed, in
	// batches (a wide scope is not one long write transaction): a write
	// committed before the hold is seen by this walk, one after it records
	// itself (RecordWrite). Meanwhile sweeps cover live what is not
	// recorded yet. A failure here leaves the hold placed and preserving,
	// its recording unfinished: its next report walks again (complete).
	_ = h.recordAll(ctx, hold, hold.PlacedAt)
	return hold, nil
}

// Release ends a hold (it stays stored, and so do the items it recorded).
// It keeps preserving for the schedule's release grace, until GraceUntil,
// and may be reinstated until then; after it what it recorded no longer
// covers anything. Releasing a released hold gives a *ReleasedError (409);
// an unknown id cases.ErrNotFound; an empty reason a
// *cases.ValidationError.
func (h *Holds) Release(ctx context.Context, id, reason string, actor cases.Actor, hook cases.TxHook) (Hold, error) {
	reason = strings.TrimSpace(reason)
	switch {
	case reason == "":
		return Hold{}, cases.Invalid("reason", "is required")
	case utf8.RuneCountInString(reason) > MaxReasonLen || !utf8.ValidString(reason):
		return Hold{}, cases.Invalid("reason", fmt.Sprintf("must be valid UTF-8 of at most %d characters", MaxReasonLen))
	}

	var out Hold
	err := h.db.InTx(ctx, func(tx *sql.Tx) error {
		hold, err := h.lockHold(ctx, tx, id)
		if err != nil {
			return err
		}
		if hold.ReleasedAt != nil {
			return &ReleasedError{ID: id, ReleasedAt: *hold.ReleasedAt}
		}

		now := h.clock().Truncate(time.Microsecond)
		g, err := h.grace(ctx, tx)
		if err != nil {
			return err
		}
		grace := now.Add(g)
		hold.Active, hold.ReleasedAt, hold.ReleasedBy, hold.ReleaseReason, hold.GraceUntil = false, &now, actorName(actor), reason, &grace
		hold.Preserving = hold.preserving(now)
		if _, err := tx.ExecContext(ctx, h.db.Rebind(`UPDATE legal_holds SET released_by = ?, released_at = ?, release_reason = ?, grace_until = ? WHERE id = ? AND released_at IS NULL`),
			hold.ReleasedBy, sqldb.Micros(now), reason, sqldb.Micros(grace), id); err != nil {
			return sqldb.Fail("release hold", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE retention_state SET holds_version = holds_version + 1 WHERE id = 1`); err != nil {
			return sqldb.Fail("release hold", err)
		}

		if hook != nil {
			ch := cases.Change{Actor: actor, Action: "hold.release", TargetType: "hold", TargetID: id,
				Detail: map[string]any{"matter": hold.Matter, "grace_until": grace.Format(time.RFC3339)}}
			if err := hook(ctx, tx, ch); err != nil {
				return fmt.Errorf("audit: %w", err)
			}
		}

		out = hold
		return nil
	})
	return out, err
}

// Reinstate undoes a release within its grace: the hold is active again,
// as if never released (the release stays in the audit trail, and the hold
// names who reinstated it last). An active hold, or one whose grace has
// ended, gives a *ReinstateError (409); an unknown id cases.ErrNotFound.
// reason (optional) goes into the audit event.
func (h *Holds) Reinstate(ctx context.Context, id, reason string, actor cases.Actor, hook cases.TxHook) (Hold, error) {
	reason = strings.TrimSpace(reason)
	if utf8.RuneCountInString(reason) > MaxReasonLen || !utf8.ValidString(reason) {
		return Hold{}, cases.Invalid("reason", fmt.Sprintf("must be valid UTF-8 of at most %d characters", MaxReasonLen))
	}

	var out Hold
	err := h.db.InTx(ctx, func(tx *sql.Tx) error {
		hold, err := h.lockHold(ctx, tx, id)
		if err != nil {
			return err
		}
		now := h.clock().Truncate(time.Microsecond)
		switch {
		case hold.ReleasedAt == nil:
			return &ReinstateError{ID: id, Reason: "it is not released"}
		case !hold.preserving(now):
			return &ReinstateError{ID: id, Reason: "its release grace ended at " + graceText(hold.GraceUntil)}
		}

		released := *hold.ReleasedAt
		hold.Active, hold.Preserving, hold.ReleasedAt, hold.ReleasedBy, hold.ReleaseReason, hold.GraceUntil = true, true, nil, "", "", nil
		hold.ReinstatedBy, hold.ReinstatedAt = actorName(actor), &now
		if _, err := tx.ExecContext(ctx, h.db.Rebind(`UPDATE legal_holds SET released_by = NULL, released_at = NULL, release_reason = NULL, grace_until = NULL, flags_cleared_at = NULL,
			reinstated_by = ?, reinstated_at = ? WHERE id = ?`), hold.ReinstatedBy, sqldb.Micros(now), id); err != nil {
			return sqldb.Fail("reinstate hold", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE retention_state SET holds_version = holds_version + 1 WHERE id = 1`); err != nil {
			return sqldb.Fail("reinstate hold", err)
		}

		if hook != nil {
			detail := map[string]any{"matter": hold.Matter, "released_at": released.Format(time.RFC3339Nano)}
			if reason != "" {
				detail["reason"] = reason
			}
			ch := cases.Change{Actor: actor, Action: "hold.reinstate", TargetType: "hold", TargetID: id, Detail: detail}
			if err := hook(ctx, tx, ch); err != nil {
				return fmt.Errorf("audit: %w", err)
			}
		}

		out = hold
		return nil
	})
	return out, err
}

func graceText(t *time.Time) string {
	if t == nil {
		return "at release (no grace)"
	}
	return t.Format(time.RFC3339)
}

// lockHold reads a hold in tx after taking the retention state (so that no
// sweep batch decides on it meanwhile); an unknown id gives
// cases.ErrNotFound.
func (h *Holds) lockHold(ctx context.Context, tx *sql.Tx, id string) (Hold, error) {
	if _, err := lockState(ctx, h.db, tx); err != nil {
		return Hold{}, err
	}
	hold, err := scanHold(tx.QueryRowContext(ctx, h.db.Rebind(`SELECT `+holdCols+` FROM legal_holds WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return Hold{}, fmt.Errorf("hold %s: %w", id, cases.ErrNotFound)
	}
	if err != nil {
		return Hold{}, sqldb.Fail("get hold", err)
	}
	return hold, nil
}

const holdCols = `id, matter, reason, scope, placed_by, placed_at, released_by, released_at, release_reason, grace_until, reinstated_by, reinstated_at`

// qActiveHolds is read by every write (RecordWrite); prepared by Prepare
// and prefetched by WritePrologue. Its argument is holdsBound's, not the
// time itself: the hour that one read takes is the same for the write's
// prologue and its hook.
const qActiveHolds = `SELECT ` + holdCols + ` FROM legal_holds WHERE released_at IS NULL OR grace_until > ? ORDER BY id`

// holdsBound is qActiveHolds' argument at now: the start of its hour, so
// the read gives every hold preserving at now and a few whose grace ended
// earlier in the hour, which active drops.
func holdsBound(now time.Time) int64 {
	return sqldb.Micros(now.Truncate(time.Hour))
}

// txQuerier runs a query (with ? placeholders) in tx through the write
// path's prepared statements (sqldb.QueryTx rebinds one it has not).
type txQuerier struct {
	db *sqldb.DB
	tx *sql.Tx
}

func (t txQuerier) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.db.QueryTx(ctx, t.tx, q, args...)
}

func scanHoldRow(rows *sql.Rows) (Hold, error) { return scanHold(rows) }

func scanHold(row interface{ Scan(...any) error }) (Hold, error) {
	var h Hold
	var scope string
	var placed int64
	var relBy, relReason, reinBy sql.NullString
	var relAt, grace, reinAt sql.NullInt64
	if err := row.Scan(&h.ID, &h.Matter, &h.Reason, &scope, &h.PlacedBy, &placed, &relBy, &relAt, &relReason, &grace, &reinBy, &reinAt); err != nil {
		return h, err
	}
	if err := json.Unmarshal([]byte(scope), &h.Scope); err != nil {
		return h, fmt.Errorf("hold %s scope: %w: %w", h.ID, sqldb.ErrBadRow, err)
	}
	if h.Scope.badFrom != "" || h.Scope.badTo != "" {
		return h, fmt.Errorf("hold %s scope: %w: bad time %q %q", h.ID, sqldb.ErrBadRow, h.Scope.badFrom, h.Scope.badTo)
	}
	h.PlacedAt, h.ReleasedAt = sqldb.FromMicros(placed), sqldb.TimePtr(relAt)
	h.ReleasedBy, h.ReleaseReason = relBy.String, relReason.String
	h.GraceUntil, h.ReinstatedBy, h.ReinstatedAt = sqldb.TimePtr(grace), reinBy.String, sqldb.TimePtr(reinAt)
	h.Active = h.ReleasedAt == nil
	h.Preserving = h.preserving(time.Now()) // callers with a clock set it again
	return h, nil
}

// Get reads one hold; an unknown id gives cases.ErrNotFound.
func (h *Holds) Get(ctx context.Context, id string) (Hold, error) {
	hold, err := scanHold(h.db.Read.QueryRowContext(ctx, h.db.Rebind(`SELECT `+holdCols+` FROM legal_holds WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return Hold{}, fmt.Errorf("hold %s: %w", id, cases.ErrNotFound)
	}
	if err != nil {
		return Hold{}, sqldb.Fail("get hold", err)
	}
	hold.Preserving = hold.preserving(h.clock())
	return hold, nil
}

// HoldFilter narrows List.
type HoldFilter struct {
	ActiveOnly bool
	// Matter, when not empty, lists only the holds of this matter (exact).
	Matter string
}

// List returns holds newest first, keyset-paginated on id: limit (default
// 50, at most 500) holds after the cursor (the last id of the previous
// page); next is "" on the last page. A cursor that is not a hold id gives
// ErrBadCursor.
func (h *Holds) List(ctx context.Context, f HoldFilter, limit int, cursor string) (holds []Hold, next string, err error) {
	if limit <= 0 || limit > 500 {
		limit = 50
	}
	if cursor != "" && !isUUID(cursor) {
		return nil, "", fmt.Errorf("cursor %q: %w", cursor, ErrBadCursor)
	}
	q := `SELECT ` + holdCols + ` FROM legal_holds WHERE 1=1`
	var args []any
	if f.ActiveOnly {
		q += ` AND released_at IS NULL`
	}
	if f.Matter != "" {
		q += ` AND matter = ?`
		args = append(args, f.Matter)
	}
	if cursor != "" {
		q += ` AND id < ?`
		args = append(args, cursor)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	holds, more, err := sqldb.Page(ctx, h.db.Read, h.db.Rebind(q), args, limit, scanHoldRow)
	if err != nil {
		return nil, "", sqldb.Fail("list holds", err)
	}
	if more {
		next = holds[len(holds)-1].ID
	}
	now := h.clock()
	for i := range holds {
		holds[i].Preserving = holds[i].preserving(now)
	}
	return holds, next, nil
}

// active loads every hold that preserves now (active, or released within
// its grace), through tx when given: sweeps, deletions, explain and the
// recording of coverage treat a hold in its grace as active.
func (h *Holds) active(ctx context.Context, tx *sql.Tx) ([]Hold, error) {
	// in a transaction through the prepared statement (txQuerier rebinds)
	var q sqldb.Querier = txQuerier{h.db, tx}
	query := qActiveHolds
	if tx == nil {
		q, query = h.db.Read, h.db.Rebind(qActiveHolds)
	}
	now := h.clock()
	out, err := sqldb.Collect(ctx, q, query, []any{holdsBound(now)}, scanHoldRow)
	if err != nil {
		return nil, sqldb.Fail("active holds", err)
	}
	return slices.DeleteFunc(out, func(h Hold) bool { return !h.preserving(now) }), nil
}

// Covering returns the active holds that cover the contact, oldest first.
func (h *Holds) Covering(ctx context.Context, c ContactRef) ([]Hold, error) {
	holds, err := h.active(ctx, nil)
	if err != nil {
		return nil, err
	}
	ev := newEvaluator(h.matcher, holds).withRecorded(h.db, h.db.Read)
	return ev.covering(ctx, c)
}

// HeldBy returns the ids of the active holds covering any of refs, sorted
// and without repeats: the one rule for "which holds stop this deletion".
func (h *Holds) HeldBy(ctx context.Context, refs []ContactRef) ([]string, error) {
	holds, err := h.active(ctx, nil)
	if err != nil {
		return nil, err
	}
	ev := newEvaluator(h.matcher, holds).withRecorded(h.db, h.db.Read)
	var ids []string
	for _, ref := range refs {
		hs, err := ev.covering(ctx, ref)
		if err != nil {
			return nil, err
		}
		for _, hold := range hs {
			if !slices.Contains(ids, hold.ID) {
				ids = append(ids, hold.ID)
			}
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// CoveringCase returns the ids of the active holds covering a case: by case
// and customer even without contacts, and per live contact (time-scoped
// holds), as a deletion checks them.
func (h *Holds) CoveringCase(ctx context.Context, caseID, customerID string) ([]string, error) {
	refs := []ContactRef{{CaseID: caseID, CustomerID: customerID}}
	contacts, err := caseContacts(ctx, h.db, h.db.Read, caseID, customerID)
	if err != nil {
		return nil, err
	}
	return h.HeldBy(ctx, append(refs, contacts...))
}

// CheckNotHeld returns a *HeldError (409) naming the holds that cover the
// contact, or nil; callers run it before deleting or erasing anything.
func (h *Holds) CheckNotHeld(ctx context.Context, c ContactRef) error {
	held, err := h.Covering(ctx, c)
	if err != nil {
		return err
	}
	if len(held) > 0 {
		return &HeldError{HoldIDs: holdIDs(held)}
	}
	return nil
}

func holdIDs(hs []Hold) []string {
	ids := make([]string, len(hs))
	for i, h := range hs {
		ids[i] = h.ID
	}
	return ids
}

// evaluator decides coverage against one snapshot of the active holds,
// asking the matcher at most once per (hold, case). With withRecorded it
// also counts what the holds recorded (holditems.go).
type evaluator struct {
	matcher QueryMatcher
	holds   []Hold
	queries map[string]search.Query
	// memo keeps the matcher's answers by case, one entry per hold (by
	// its index): 0 not asked, 1 no, 2 yes; last is the case read last
	// (a batch's contacts of a case come together).
	memo     map[string][]uint8
	lastCase string
	lastMemo []uint8
	marks    []bool // covering's scratch: holds already considered
	seen     []int  // and which, to clear them

	// Which holds may cover a contact, so that a check reads a few holds,
	// not all of them: by case id (scopes naming cases), by customer id
	// (scopes naming customers but no case), the rest always; pos is a
	// hold's index in holds.
	byCase, byCustomer map[string][]int
	rest               []int
	pos                map[string]int

	db       *sqldb.DB                 // nil: live coverage only
	q        sqldb.Querier             // where hold_items are read
	recorded map[string][]recordedItem // by case; loaded per case or by load
}

// withRecorded makes ev count the items its holds recorded, read through q.
func (ev *evaluator) withRecorded(db *sqldb.DB, q sqldb.Querier) *evaluator {
	ev.db, ev.q, ev.recorded = db, q, map[string][]recordedItem{}
	return ev
}

// loadRecorded (re)reads the recorded items of the cases, so that a sweep
// batch sees what edits recorded since its previous batch.
func (ev *evaluator) loadRecorded(ctx context.Context, caseIDs []string) error {
	if ev.db == nil || len(caseIDs) == 0 {
		return nil
	}
	rec, err := recordedOf(ctx, ev.db, ev.q, caseIDs)
	if err != nil {
		return err
	}
	for id, items := range rec {
		ev.recorded[id] = items
	}
	return nil
}

// isRecorded reports whether hold h recorded c (its case, or the contact).
func (ev *evaluator) isRecorded(ctx context.Context, holdID string, c ContactRef) (bool, error) {
	if ev.db == nil {
		return false, nil
	}
	items, ok := ev.recorded[c.CaseID]
	if !ok {
		if err := ev.loadRecorded(ctx, []string{c.CaseID}); err != nil {
			return false, err
		}
		items = ev.recorded[c.CaseID]
	}
	return slices.ContainsFunc(items, func(it recordedItem) bool {
		return it.holdID == holdID && (it.contactID == "" || it.contactID == c.ContactID)
	}), nil
}

// sure reports whether a live match of h is a real one: not a query hold
// counted as covering because no engine can answer it.
func (ev *evaluator) sure(h Hold) bool {
	if h.Scope.Query == "" {
		return true
	}
	_, ok := ev.queries[h.ID]
	return ok && ev.matcher != nil
}

// unrecorded lists the items to record for c: the holds that surely match
// it live and have not recorded it. A matcher error records nothing (the
// hold covers c anyway, fail safe) and is returned.
func (ev *evaluator) unrecorded(ctx context.Context, c ContactRef, now time.Time) ([]holdItem, error) {
	var out []holdItem
	for _, h := range ev.holds {
		if !ev.sure(h) || (h.Scope.bounded() && c.ContactID == "") {
			continue
		}
		rec, err := ev.isRecorded(ctx, h.ID, c)
		if err != nil {
			return nil, err
		}
		if rec {
			continue
		}
		ok, err := ev.matches(ctx, h, c)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, itemFor(h, c, now))
		}
	}
	return out, nil
}

func newEvaluator(m QueryMatcher, holds []Hold) *evaluator {
	ev := &evaluator{matcher: m, holds: holds, queries: map[string]search.Query{}, memo: map[string][]uint8{}, marks: make([]bool, len(holds)),
		byCase: map[string][]int{}, byCustomer: map[string][]int{}, pos: make(map[string]int, len(holds))}
	for i, h := range holds {
		ev.pos[h.ID] = i
		switch {
		case len(h.Scope.CaseIDs) > 0:
			for _, id := range h.Scope.CaseIDs {
				ev.byCase[id] = append(ev.byCase[id], i)
			}
		case len(h.Scope.CustomerIDs) > 0:
			for _, id := range h.Scope.CustomerIDs {
				ev.byCustomer[id] = append(ev.byCustomer[id], i)
			}
		default:
			ev.rest = append(ev.rest, i)
		}
		if h.Scope.Query != "" {
			q, err := h.query()
			if err == nil {
				ev.queries[h.ID] = q
			}
		}
	}
	return ev
}

// prefetch asks a BulkMatcher, once per query hold, which of the refs'
// cases (those the hold's case and customer criteria allow, not yet
// known) its query finds, and remembers the answers for matches. An
// engine error is not remembered: matches then asks per case and fails
// safe.
func (ev *evaluator) prefetch(ctx context.Context, refs []ContactRef) {
	bm, ok := ev.matcher.(BulkMatcher)
	if !ok {
		return
	}
	if len(ev.queries) == 0 {
		return
	}
	// The distinct cases, once (a batch's contacts share few cases).
	var distinct []ContactRef
	seen := map[string]bool{}
	for _, r := range refs {
		if !seen[r.CaseID] {
			seen[r.CaseID] = true
			distinct = append(distinct, r)
		}
	}

	for i, h := range ev.holds {
		q, ok := ev.queries[h.ID]
		if !ok {
			continue
		}
		var ids []string
		for _, r := range distinct {
			if (len(h.Scope.CaseIDs) > 0 && !slices.Contains(h.Scope.CaseIDs, r.CaseID)) ||
				(len(h.Scope.CustomerIDs) > 0 && !slices.Contains(h.Scope.CustomerIDs, r.CustomerID)) {
				continue
			}
			if ev.memoOf(r.CaseID)[i] == 0 {
				ids = append(ids, r.CaseID)
			}
		}
		q.Exact = true // legal scopes: no typo tolerance
		for chunk := range slices.Chunk(ids, 500) {
			found, err := bm.MatchingCases(ctx, q, chunk)
			if err != nil {
				continue
			}
			for _, id := range chunk {
				ev.memoOf(id)[i] = 1
			}
			for _, id := range found {
				if m := ev.memoOf(id); m[i] == 1 {
					m[i] = 2
				}
			}
		}
	}
}

// memoOf is the matcher's answers for a case (created empty).
func (ev *evaluator) memoOf(caseID string) []uint8 {
	if ev.lastMemo != nil && ev.lastCase == caseID {
		return ev.lastMemo
	}
	m, ok := ev.memo[caseID]
	if !ok {
		m = make([]uint8, len(ev.holds))
		ev.memo[caseID] = m
	}
	ev.lastCase, ev.lastMemo = caseID, m
	return m
}

// query parses the hold's query with its relative dates anchored at the
// placement: "after:7d" keeps meaning the week before the hold, instead of a
// window that moves with every sweep and lets held cases age out of it. An
// ad-hoc scope (an export's, never placed) is anchored now.
func (h Hold) query() (search.Query, error) {
	at := h.PlacedAt
	if at.IsZero() {
		at = time.Now()
	}
	return search.ParseQueryAt(h.Scope.Query, at)
}

func (ev *evaluator) hasQueryHold() bool {
	for _, h := range ev.holds {
		if h.Scope.Query != "" {
			return true
		}
	}
	return false
}

// covering lists the holds covering c. A matcher error makes the hold
// count as covering (fail safe) and is returned alongside.
//
// Only the holds that can cover c are considered: those that recorded it,
// and those whose scope can match it live (named by its case, by its
// customer, or naming neither); each is decided as covers would.
func (ev *evaluator) covering(ctx context.Context, c ContactRef) ([]Hold, error) {
	var recorded []recordedItem
	if ev.db != nil {
		if _, ok := ev.recorded[c.CaseID]; !ok {
			if err := ev.loadRecorded(ctx, []string{c.CaseID}); err != nil {
				return ev.holds, fmt.Errorf("recorded hold items: %w", err) // fail safe: every hold covers
			}
		}
		recorded = ev.recorded[c.CaseID]
	}

	var hits []int
	var errs []error
	seen := ev.seen[:0] // marked, to unmark
	for _, it := range recorded {
		if i, ok := ev.pos[it.holdID]; ok && !ev.marks[i] && (it.contactID == "" || it.contactID == c.ContactID) {
			ev.marks[i], seen, hits = true, append(seen, i), append(hits, i)
		}
	}
	for _, list := range [...][]int{ev.byCase[c.CaseID], ev.byCustomer[c.CustomerID], ev.rest} {
		for _, i := range list {
			if ev.marks[i] {
				continue
			}
			ev.marks[i], seen = true, append(seen, i)
			ok, err := ev.matchesAt(ctx, ev.holds[i], i, c)
			if err != nil {
				errs = append(errs, err)
			}
			if ok {
				hits = append(hits, i)
			}
		}
	}
	for _, i := range seen {
		ev.marks[i] = false
	}
	ev.seen = seen

	slices.Sort(hits) // hold order: oldest first
	out := make([]Hold, len(hits))
	for k, i := range hits {
		out[k] = ev.holds[i]
	}
	return out, errors.Join(errs...)
}

// covers reports whether h covers c: recorded, or matching now.
func (ev *evaluator) covers(ctx context.Context, h Hold, c ContactRef) (bool, error) {
	rec, err := ev.isRecorded(ctx, h.ID, c)
	if err != nil {
		return true, fmt.Errorf("hold %s: %w", h.ID, err) // fail safe
	}
	if rec {
		return true, nil
	}
	return ev.matches(ctx, h, c)
}

// matches reports whether h's scope matches c now (live evaluation).
func (ev *evaluator) matches(ctx context.Context, h Hold, c ContactRef) (bool, error) {
	i, known := ev.pos[h.ID]
	if !known {
		i = -1
	}
	return ev.matchesAt(ctx, h, i, c)
}

// matchesAt is matches for the hold at index i of ev.holds (-1: a hold
// not among them, whose answer is not memoized).
func (ev *evaluator) matchesAt(ctx context.Context, h Hold, i int, c ContactRef) (bool, error) {
	s := h.Scope
	if s.empty() {
		return false, nil
	}
	if len(s.CaseIDs) > 0 && !slices.Contains(s.CaseIDs, c.CaseID) {
		return false, nil
	}
	if len(s.CustomerIDs) > 0 && !slices.Contains(s.CustomerIDs, c.CustomerID) {
		return false, nil
	}
	if s.From != nil && c.OccurredAt.Before(*s.From) {
		return false, nil
	}
	if s.To != nil && !c.OccurredAt.Before(*s.To) {
		return false, nil
	}
	if s.Query == "" {
		return true, nil
	}
	q, ok := ev.queries[h.ID]
	if !ok || ev.matcher == nil {
		// Unparseable (cannot happen after validation) or no engine: hold.
		return true, nil
	}
	known := i >= 0
	if known {
		if m := ev.memoOf(c.CaseID)[i]; m != 0 {
			return m == 2, nil
		}
	}
	q.Filter.CaseIDs = []string{c.CaseID}
	q.Exact = true // legal scopes: no typo tolerance
	m, err := ev.matcher.Matches(ctx, q, c.CaseID)
	if err != nil {
		return true, fmt.Errorf("hold %s query: %w", h.ID, err)
	}
	if known {
		ev.memoOf(c.CaseID)[i] = 1
		if m {
			ev.memoOf(c.CaseID)[i] = 2
		}
	}
	return m, nil
}

// HoldCounts is how much a hold covers right now.
type HoldCounts struct {
	Cases       int64 `json:"cases"`
	Contacts    int64 `json:"contacts"`
	Attachments int64 `json:"attachments"`
}

// Counts reports how many cases, contacts and attachments a hold covers now
// (zero for a released hold past its grace): what it recorded and what
// matches it live. It
// walks the contacts its case, customer and time criteria select, in
// batches, asking the matcher once per case for a query hold: cost grows
// with what the hold selects, so a hold scoped only by a query or a wide
// time range reads much of the table.
func (h *Holds) Counts(ctx context.Context, id string) (HoldCounts, error) {
	var out HoldCounts
	hold, err := h.Get(ctx, id)
	if err != nil || !hold.Preserving {
		return out, err
	}

	ev := newEvaluator(h.matcher, []Hold{hold}).withRecorded(h.db, h.db.Read)
	seen := map[string]bool{}
	var covered []string
	flush := func() error {
		if len(covered) == 0 {
			return nil
		}
		var n int64
		inCond, inArgs := sqldb.AnyOf(h.db.Dialect, "contact_id", covered)
		if err := h.db.Read.QueryRowContext(ctx, h.db.Rebind(`SELECT COUNT(*) FROM attachments WHERE `+inCond), inArgs...).Scan(&n); err != nil {
			return sqldb.Fail("hold counts", err)
		}
		out.Attachments += n
		covered = covered[:0]
		return nil
	}
	var ferr error
	err = h.walk(ctx, ev, hold, func(r ContactRef) {
		out.Contacts++
		if !seen[r.CaseID] {
			seen[r.CaseID] = true
			out.Cases++
		}
		if covered = append(covered, r.ContactID); len(covered) == 500 && ferr == nil {
			ferr = flush()
		}
	})
	if err = errors.Join(err, ferr); err != nil {
		return out, err
	}
	return out, flush()
}

// walk calls fn for every contact ev says hold covers, among those its
// case, customer and time criteria select (criteria no edit can change, so
// recorded items are among them too), in batches of 1000.
func (h *Holds) walk(ctx context.Context, ev *evaluator, hold Hold, fn func(ContactRef)) error {
	scope := hold.Scope.contacts()
	after := ""
	for {
		keys, err := sqlstore.ContactsInScope(ctx, h.db, h.db.Read, scope, after, 1000)
		if err != nil {
			return sqldb.Fail("hold walk", err)
		}
		if len(keys) == 0 {
			return nil
		}

		after = keys[len(keys)-1].ID
		refs := make([]ContactRef, len(keys))
		for i, k := range keys {
			refs[i] = contactRef(k)
		}
		ev.prefetch(ctx, refs)
		for _, r := range refs {
			ok, err := ev.covers(ctx, hold, r)
			if err != nil {
				return err
			}
			if ok {
				fn(r)
			}
		}
	}
}
