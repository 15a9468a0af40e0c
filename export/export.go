// Package export builds e-discovery packages of what a legal hold preserves
// (issue 14 §3): a job per export, recorded in the exports table, whose
// package is a ZIP (contact records, native attachments, a load file, the
// items' audit events, a summary report and a manifest of digests) stored
// encrypted in the blob store under a key derived from the master key.
//
// Chain of custody: creating, downloading, deleting and expiring an export
// are audited; a package is written to a temporary object and only named
// and marked complete once whole, so a process killed mid-export leaves a
// row still "running". A run holds a lease on its row and renews it while
// it runs; recovery (at any replica's start) marks interrupted only the
// running exports whose lease has expired, so a replica starting never
// interrupts another replica's live run.
package export

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// Statuses of an export.
const (
	StatusRunning     = "running"
	StatusComplete    = "complete"
	StatusFailed      = "failed"
	StatusInterrupted = "interrupted"
	StatusExpired     = "expired"
	StatusDeleted     = "deleted"
)

// FormatZIP is the only package format.
const FormatZIP = "zip"

// DefaultTTL is how long a package is kept before it expires.
const DefaultTTL = 7 * 24 * time.Hour

// DefaultLeaseTTL is how long a run's lease lasts unless renewed.
const DefaultLeaseTTL = 2 * time.Minute

// blobPrefix is where packages live in the blob store (outside the
// attachments' prefix, so the attachment reconciler never sees them).
const blobPrefix = "exp/"

var (
	// ErrNothingCovered: the hold covers no item (the API answers 422).
	ErrNothingCovered = errors.New("nothing to export: the hold or scope covers no item")
	// ErrNotReady: the package cannot be downloaded in the export's state
	// (running, failed, expired…); matches cases.ErrConflict (409).
	ErrNotReady = fmt.Errorf("export package not available: %w", cases.ErrConflict)
)

// Input is what starting an export needs: a hold, or a scope (the shape
// of a hold's, validated as one) whose matches now are exported.
type Input struct {
	HoldID string          `json:"hold_id"`
	Scope  json.RawMessage `json:"scope,omitempty"`
	Format string          `json:"format"`
}

// Export is one export job and its package.
type Export struct {
	ID     string `json:"id"`
	HoldID string `json:"hold_id,omitempty"`
	// Scope is set for an export of an ad-hoc scope instead of a hold.
	Scope      *retention.HoldScope `json:"scope,omitempty"`
	Format     string               `json:"format"`
	Status     string               `json:"status"`
	CreatedBy  string               `json:"created_by"`
	CreatedAt  time.Time            `json:"created_at"`
	FinishedAt *time.Time           `json:"finished_at,omitempty"`
	ExpiresAt  time.Time            `json:"expires_at"`
	Progress   Progress             `json:"progress"`
	// Size and SHA256 are the package's (the ZIP as downloaded).
	Size    int64    `json:"size"`
	SHA256  string   `json:"sha256,omitempty"`
	Error   string   `json:"error,omitempty"`
	Summary *Summary `json:"summary,omitempty"`
}

// Progress counts items (contacts and attachments) and attachment bytes.
type Progress struct {
	ItemsDone  int64 `json:"items_done"`
	ItemsTotal int64 `json:"items_total"`
	BytesDone  int64 `json:"bytes_done"`
	BytesTotal int64 `json:"bytes_total"`
}

// Summary is what a package holds, also shown as summary.html.
type Summary struct {
	Contacts    int   `json:"contacts"`
	Cases       int   `json:"cases"`
	Custodians  int   `json:"custodians"`
	Attachments int   `json:"attachments"`
	Bytes       int64 `json:"attachment_bytes"`
	AuditEvents int   `json:"audit_events"`
	// ErasedCustomers were covered but their content was not exported: their
	// data key is destroyed (erasure), so nothing of theirs may leave.
	ErasedCustomers []string `json:"erased_customers,omitempty"`
}

// AttachmentOpener decrypts an attachment as a download does.
type AttachmentOpener interface {
	Open(ctx context.Context, id string) (cases.Attachment, io.ReadCloser, error)
}

// HoldFinder finds a hold (cases.ErrNotFound when there is none) and
// decides what an ad-hoc scope matches (retention.Holds).
type HoldFinder interface {
	Get(ctx context.Context, id string) (retention.Hold, error)
	ValidateScope(ctx context.Context, sc *retention.HoldScope) error
	Matching(ctx context.Context, sc retention.HoldScope) ([]retention.ScopeItem, error)
}

// Options wires a Service.
type Options struct {
	DB          *sqldb.DB
	Blobs       archive.Blobs
	Attachments AttachmentOpener
	Holds       HoldFinder
	// Fields opens the personal fields the store keeps sealed (nil: the
	// store was written without sealing).
	Fields *sqlstore.Fields
	// Key encrypts packages at rest (Key derives it from the master key).
	Key []byte
	// AuditTx writes the export's audit events in its transactions.
	AuditTx cases.TxHook
	// TTL is how long a package is kept (default DefaultTTL).
	TTL time.Duration
	// LeaseTTL is how long a running export's lease lasts unless renewed
	// (default DefaultLeaseTTL): a run dead longer than that is marked
	// interrupted by the next recovery.
	LeaseTTL time.Duration
	// RenewEvery is how often (in real time) a run renews its lease
	// (default a third of LeaseTTL).
	RenewEvery time.Duration
	// Now is the clock of records and leases (default time.Now).
	Now func() time.Time
	// Go runs a job in the background (default: a goroutine); the server
	// passes its bg.Guard's Go.
	Go func(job string, fn func())
}

// Service runs exports.
type Service struct {
	o Options

	mu      sync.Mutex
	running map[string]context.CancelFunc
}

// Key derives the package key from the master key: packages may span
// customers, so no customer's data key fits them.
func Key(master []byte) ([]byte, error) {
	return hkdf.Key(sha256.New, master, nil, "casevault/export/v1", 32)
}

// New builds the service.
func New(o Options) *Service {
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	if o.RenewEvery <= 0 {
		o.RenewEvery = o.LeaseTTL / 3
	}
	if o.Go == nil {
		o.Go = func(_ string, fn func()) { go fn() }
	}
	return &Service{o: o, running: map[string]context.CancelFunc{}}
}

func blobKey(id string) string  { return blobPrefix + id + ".zip" }
func objectID(id string) string { return "export/" + id }

// Create validates in and records a running export of the hold, audited
// in the same transaction. Run writes its package.
func (s *Service) Create(ctx context.Context, in Input, actor cases.Actor) (Export, error) {
	in.HoldID = strings.TrimSpace(in.HoldID)
	switch in.Format {
	case "", FormatZIP:
		in.Format = FormatZIP
	default:
		return Export{}, cases.Invalid("format", `must be "zip"`)
	}

	scope, err := s.scope(ctx, in)
	if err != nil {
		return Export{}, err
	}
	var n int
	var what, field string
	if scope != nil {
		items, err := s.o.Holds.Matching(ctx, *scope)
		if err != nil {
			return Export{}, err
		}
		n, what, field = len(items), "scope", "scope"
	} else {
		if _, err := s.o.Holds.Get(ctx, in.HoldID); err != nil {
			return Export{}, err
		}
		if err := s.o.DB.Read.QueryRowContext(ctx, s.o.DB.Rebind(`SELECT COUNT(*) FROM hold_items WHERE hold_id = ?`), in.HoldID).Scan(&n); err != nil {
			return Export{}, sqldb.Fail("export coverage", err)
		}
		what, field = "hold "+in.HoldID, "hold_id"
	}
	if n == 0 {
		return Export{}, fmt.Errorf("%s: %w", what, errors.Join(ErrNothingCovered, cases.Invalid(field, "covers nothing to export")))
	}

	var scopeJSON []byte
	if scope != nil {
		if scopeJSON, err = json.Marshal(scope); err != nil {
			return Export{}, fmt.Errorf("encode export scope: %w", err)
		}
	}
	now := s.o.Now().UTC().Truncate(time.Microsecond)
	e := Export{ID: cases.NewID(), HoldID: in.HoldID, Scope: scope, Format: in.Format, Status: StatusRunning, CreatedBy: actor.Name,
		CreatedAt: now, ExpiresAt: now.Add(s.o.TTL)}
	err = s.o.DB.InTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, s.o.DB.Rebind(`INSERT INTO exports (id, hold_id, scope, format, status, created_by, created_at, expires_at, lease_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
			e.ID, e.HoldID, string(scopeJSON), e.Format, e.Status, e.CreatedBy, sqldb.Micros(e.CreatedAt), sqldb.Micros(e.ExpiresAt), sqldb.Micros(now.Add(s.o.LeaseTTL)))
		if err != nil {
			return sqldb.Fail("insert export", err)
		}
		detail := map[string]any{"hold_id": e.HoldID, "format": e.Format}
		if scope != nil {
			detail = map[string]any{"scope": json.RawMessage(scopeJSON), "format": e.Format}
		}
		return s.audit(ctx, tx, actor, "export.create", e.ID, detail)
	})
	if err != nil {
		return Export{}, err
	}
	return e, nil
}

// scope is in's validated scope, nil for an export of a hold: exactly one
// of hold_id and scope is given.
func (s *Service) scope(ctx context.Context, in Input) (*retention.HoldScope, error) {
	given := len(in.Scope) > 0 && string(in.Scope) != "null"
	switch {
	case given && in.HoldID != "":
		return nil, cases.Invalid("scope", "give hold_id or scope, not both")
	case !given && in.HoldID == "":
		return nil, cases.Invalid("hold_id", "is required (or a scope)")
	case !given:
		return nil, nil
	}
	var sc retention.HoldScope
	if err := json.Unmarshal(in.Scope, &sc); err != nil {
		return nil, cases.Invalid("scope", fmt.Sprintf("must be a hold scope (case_ids, customer_ids, query, from, to): %v", err))
	}
	if err := s.o.Holds.ValidateScope(ctx, &sc); err != nil {
		return nil, err
	}
	return &sc, nil
}

// Start creates an export and runs it in the background; ctx bounds the
// run (the server's lifetime), not the request. done is closed when the
// run ends.
func (s *Service) Start(ctx context.Context, in Input, actor cases.Actor) (e Export, done <-chan struct{}, err error) {
	e, err = s.Create(ctx, in, actor)
	if err != nil {
		return Export{}, nil, err
	}
	ch := make(chan struct{})
	s.o.Go("export", func() {
		defer close(ch)
		_ = s.Run(ctx, e.ID, nil)
	})
	return e, ch, nil
}

func (s *Service) audit(ctx context.Context, tx *sql.Tx, actor cases.Actor, action, id string, detail map[string]any) error {
	if s.o.AuditTx == nil {
		return nil
	}
	return s.o.AuditTx(ctx, tx, cases.Change{Actor: actor, Action: action, TargetType: "export", TargetID: id, Detail: detail})
}

const exportCols = `id, hold_id, format, status, created_by, created_at, finished_at, expires_at, items_total, items_done, bytes_total, bytes_done, size, sha256, error, summary, scope`

func scanExport(row interface{ Scan(...any) error }) (Export, error) {
	var e Export
	var created, expires int64
	var finished sql.NullInt64
	var summary, scope string
	err := row.Scan(&e.ID, &e.HoldID, &e.Format, &e.Status, &e.CreatedBy, &created, &finished, &expires,
		&e.Progress.ItemsTotal, &e.Progress.ItemsDone, &e.Progress.BytesTotal, &e.Progress.BytesDone, &e.Size, &e.SHA256, &e.Error, &summary, &scope)
	if err != nil {
		return e, err
	}
	if scope != "" {
		e.Scope = &retention.HoldScope{}
		if err := json.Unmarshal([]byte(scope), e.Scope); err != nil {
			return e, fmt.Errorf("export %s scope: %w: %w", e.ID, sqldb.ErrBadRow, err)
		}
	}
	e.CreatedAt, e.ExpiresAt, e.FinishedAt = sqldb.FromMicros(created), sqldb.FromMicros(expires), sqldb.TimePtr(finished)
	if summary != "" && summary != "{}" {
		e.Summary = &Summary{}
		if err := json.Unmarshal([]byte(summary), e.Summary); err != nil {
			return e, fmt.Errorf("export %s summary: %w: %w", e.ID, sqldb.ErrBadRow, err)
		}
	}
	return e, nil
}

// Get returns an export (cases.ErrNotFound when there is none).
func (s *Service) Get(ctx context.Context, id string) (Export, error) {
	e, err := scanExport(s.o.DB.Read.QueryRowContext(ctx, s.o.DB.Rebind(`SELECT `+exportCols+` FROM exports WHERE id = ?`), id))
	if errors.Is(err, sql.ErrNoRows) {
		return Export{}, fmt.Errorf("export %q: %w", id, cases.ErrNotFound)
	}
	if err != nil {
		return Export{}, sqldb.Fail("export "+id, err)
	}
	return e, nil
}

// OpenRange streams n bytes from off of a complete package, decrypting.
func (s *Service) OpenRange(ctx context.Context, e Export, off, n int64) (io.ReadCloser, error) {
	if e.Status != StatusComplete {
		return nil, fmt.Errorf("export %s is %s: %w", e.ID, e.Status, ErrNotReady)
	}
	return archive.OpenStream(ctx, s.o.Blobs, blobKey(e.ID), s.o.Key, objectID(e.ID), e.Size, off, n)
}

// RecordDownload audits a download of the package (the API records its
// downloads through its read audit; the CLI through here).
func (s *Service) RecordDownload(ctx context.Context, id string, actor cases.Actor, detail map[string]any) error {
	return s.o.DB.InTx(ctx, func(tx *sql.Tx) error {
		return s.audit(ctx, tx, actor, "export.download", id, detail)
	})
}

// Delete cancels a running export, removes its package and marks it
// deleted; the row stays for the chain of custody.
func (s *Service) Delete(ctx context.Context, id string, actor cases.Actor) error {
	e, err := s.Get(ctx, id)
	if err != nil {
		return err
	}
	if e.Status == StatusDeleted {
		return fmt.Errorf("export %q: %w", id, cases.ErrNotFound)
	}

	s.mu.Lock()
	cancel := s.running[id]
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}

	return s.retire(ctx, e, StatusDeleted, actor, "export.delete", nil)
}

// retire removes the package and sets a final status, audited. The blob
// goes first: a row saying "deleted" must never outlive the bytes. With
// leaseBefore, only a running export whose lease expired before it is
// retired (one renewed meanwhile is alive and left alone).
func (s *Service) retire(ctx context.Context, e Export, status string, actor cases.Actor, action string, leaseBefore *time.Time) error {
	if err := s.o.Blobs.Delete(ctx, blobKey(e.ID)); err != nil {
		return fmt.Errorf("delete export package %s: %w", e.ID, err)
	}
	return s.o.DB.InTx(ctx, func(tx *sql.Tx) error {
		q, args := `UPDATE exports SET status = ? WHERE id = ?`, []any{status, e.ID}
		if leaseBefore != nil {
			q, args = q+` AND status = ? AND lease_until < ?`, append(args, StatusRunning, sqldb.Micros(*leaseBefore))
		}
		res, err := tx.ExecContext(ctx, s.o.DB.Rebind(q), args...)
		if err != nil {
			return sqldb.Fail("retire export", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return sqldb.Fail("retire export", err)
		} else if n == 0 {
			return nil
		}
		return s.audit(ctx, tx, actor, action, e.ID, map[string]any{"previous_status": e.Status})
	})
}

// Expire removes the packages of exports past their expiry and reports
// how many; exports still running are left to finish.
func (s *Service) Expire(ctx context.Context) (int, error) {
	rows, err := sqldb.Collect(ctx, s.o.DB.Read, s.o.DB.Rebind(`SELECT `+exportCols+` FROM exports WHERE expires_at <= ? AND status IN (?, ?, ?)`),
		[]any{sqldb.Micros(s.o.Now()), StatusComplete, StatusFailed, StatusInterrupted}, func(rows *sql.Rows) (Export, error) { return scanExport(rows) })
	if err != nil {
		return 0, sqldb.Fail("expired exports", err)
	}
	for i, e := range rows {
		if err := s.retire(ctx, e, StatusExpired, cases.SystemActor(), "export.expire", nil); err != nil {
			return i, err
		}
	}
	return len(rows), nil
}

// Recover marks the exports left running by a process that died as
// interrupted, removing whatever they stored: those whose lease expired.
// A run another replica (or a CLI process) is alive in renews its lease
// and is left alone. Call it at start-up.
func (s *Service) Recover(ctx context.Context) (int, error) {
	now := s.o.Now()
	rows, err := sqldb.Collect(ctx, s.o.DB.Read, s.o.DB.Rebind(`SELECT `+exportCols+` FROM exports WHERE status = ? AND lease_until < ?`),
		[]any{StatusRunning, sqldb.Micros(now)}, func(rows *sql.Rows) (Export, error) { return scanExport(rows) })
	if err != nil {
		return 0, sqldb.Fail("running exports", err)
	}
	for i, e := range rows {
		if err := s.retire(ctx, e, StatusInterrupted, cases.SystemActor(), "export.interrupted", &now); err != nil {
			return i, err
		}
	}
	return len(rows), nil
}

// renewing renews the lease of the running export id until stop is
// called. The returned context is cancelled when the lease cannot be
// renewed because the row is no longer running (deleted, or marked
// interrupted by a replica that found the lease expired): the run must
// not go on writing a package nobody may name.
func (s *Service) renewing(ctx context.Context, id string) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(s.o.RenewEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}

			res, err := s.o.DB.Write.ExecContext(ctx, s.o.DB.Rebind(`UPDATE exports SET lease_until = ? WHERE id = ? AND status = ?`),
				sqldb.Micros(s.o.Now().Add(s.o.LeaseTTL)), id, StatusRunning)
			if err != nil {
				// An outage: try again at the next tick; the lease lasts
				// three ticks.
				continue
			}
			if n, err := res.RowsAffected(); err == nil && n == 0 {
				cancel(fmt.Errorf("export %s lease lost: %w", id, ErrNotReady))
				return
			}
		}
	}()
	return ctx, func() {
		close(done)
		wg.Wait()
		cancel(nil)
	}
}
