package retention

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqlstore"
)

// Erasure of a customer on request (GDPR Art. 17, PIPL Art. 47; issue 15):
// everything of theirs goes in one transaction, and their data key is
// destroyed in it, so that every copy of their sealed fields and files,
// backups included, becomes unreadable at the same commit.

// Fault-injection points of an erasure (EraserOptions.Fault), both inside
// its transaction: after the customer's rows were deleted (the key not yet
// destroyed, no record written), and just before the commit.
const (
	FaultEraseDeleted      = "retention.erase.deleted"
	FaultEraseBeforeCommit = "retention.erase.before_commit"
)

// ItemEraseCustomer is the disposition action of an erasure's record of the
// customer (the profile; its cases each get an ItemDeleteCase record).
const ItemEraseCustomer = "erase_customer"

// RuleErasure is the rule name of an erasure's disposition records.
const RuleErasure = "erasure"

// AuditEraseCustomer is the audit action of an erasure.
const AuditEraseCustomer = "customer.erase"

// ErrOpenCases refuses the erasure of a customer with open cases unless
// forced: closing a case is a decision the erasure should not take silently.
var ErrOpenCases = errors.New("the customer has open cases")

// OpenCasesError names the open cases (it matches ErrOpenCases and
// cases.ErrConflict: 409).
type OpenCasesError struct{ CaseIDs []string }

func (e *OpenCasesError) Error() string {
	return fmt.Sprintf("the customer has %d open case(s); erase with force=true to delete them too", len(e.CaseIDs))
}

func (e *OpenCasesError) Is(target error) bool {
	return target == ErrOpenCases || target == cases.ErrConflict
}

// KeyShredder destroys a customer's data key (archive.Keyring).
type KeyShredder interface {
	DestroyTx(ctx context.Context, tx *sql.Tx, customerID string) error
	Forget(customerID string)
}

// EscrowPurger removes a customer's data key from the backups' key escrow
// (archive/backup.Service): with it gone, no backup can open the
// customer's sealed rows or files.
type EscrowPurger interface {
	PurgeEscrow(ctx context.Context, customerID string) error
}

// EraserOptions wires an Eraser.
type EraserOptions struct {
	// Holds refuses the erasure of a customer any active hold covers.
	Holds *Holds
	// Keys destroys the customer's data key in the erasure's transaction.
	Keys KeyShredder
	// Fields opens the name, e-mail, phone and subjects whose keyed digests
	// the records keep (nil: the store writes clear text).
	Fields *sqlstore.Fields
	// OnChange writes the audit events, in the transaction.
	OnChange cases.TxHook
	// Blobs removes the attachments' blobs after commit (nil: left to the
	// reconciler as orphans).
	Blobs BlobRemover
	// DigestKey keys the records' digests (see DigestKey).
	DigestKey []byte
	// Escrow purges the customer's entry in the backups' key escrow after
	// commit (nil, or a failure: the deletion stays pending in
	// key_escrow_pending, recorded by Keys.DestroyTx, and the next backup
	// run finishes it).
	Escrow EscrowPurger
	// Notify wakes the indexer after commit.
	Notify func()
	// BeforeCommit runs last in the transaction (nil: nothing): the
	// fault-injection tests stop the process there.
	BeforeCommit func(ctx context.Context) error
	// Fault is called at the fault-injection points inside the
	// transaction (FaultErase*; nil: nothing): the kill -9 tests of the
	// binary kill the process there (README "Fault injection").
	Fault func(point string)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Eraser erases customers.
type Eraser struct {
	db   *sqldb.DB
	opts EraserOptions
}

// NewEraser builds an Eraser.
func NewEraser(db *sqldb.DB, opts EraserOptions) *Eraser {
	if opts.Notify == nil {
		opts.Notify = func() {}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Eraser{db: db, opts: opts}
}

// EraseRequest is one erasure.
type EraseRequest struct {
	CustomerID string
	Reason     string
	// Force erases a customer with open cases (deleting them too).
	Force bool
}

// Erasure is what an erasure did: ids and counts, nothing personal.
type Erasure struct {
	CustomerID    string    `json:"customer_id"`
	DispositionID string    `json:"disposition_id"`
	Cases         []string  `json:"cases"`
	OpenCases     int       `json:"open_cases"`
	Contacts      int       `json:"contacts"`
	Attachments   int       `json:"attachments"`
	Blobs         int       `json:"blobs"`
	At            time.Time `json:"erased_at"`
	// EscrowPending: the customer's key is still in the backups' key
	// escrow (the repository could not be reached); the next backup run
	// removes it, and does not complete until it has.
	EscrowPending bool `json:"escrow_pending"`
}

// Erase erases a customer: their cases, contacts, attachments rows and
// profile are deleted, their data key destroyed, the index told (outbox),
// a disposition record written for the customer and for each case (ids,
// counts and keyed digests only) and the erasure audited, all in one
// transaction; blobs are purged after the commit (a blob left behind is an
// orphan the reconciler reports). Refused: an unknown customer
// (cases.ErrNotFound), one already erased (cases.ErrErased), one any active
// hold covers (*HeldError naming the holds), one with open cases without
// Force (*OpenCasesError).
func (e *Eraser) Erase(ctx context.Context, req EraseRequest, actor cases.Actor) (Erasure, error) {
	var out Erasure
	var w batchWork
	err := e.db.InTx(ctx, func(tx *sql.Tx) error {
		now := e.opts.Now().UTC()
		w = batchWork{key: e.opts.DigestKey}
		out = Erasure{CustomerID: req.CustomerID, At: now, Cases: []string{}}

		// Under the lock placing a hold takes: no hold slips in between
		// the check and the commit.
		if _, err := lockState(ctx, e.db, tx); err != nil {
			return err
		}
		set, err := sqlstore.ReadErasure(ctx, e.db, tx, e.opts.Fields, req.CustomerID)
		if errors.Is(err, cases.ErrNotFound) {
			if at, aerr := sqlstore.ErasedAt(ctx, e.db, tx, req.CustomerID); aerr != nil {
				return aerr
			} else if at != nil {
				return fmt.Errorf("customer %s: %w", req.CustomerID, cases.ErrErased)
			}
		}
		if err != nil {
			return err
		}

		if err := e.checkHolds(ctx, set); err != nil {
			return err
		}
		var open []string
		for _, c := range set.Cases {
			out.Cases = append(out.Cases, c.ID)
			if c.Open {
				open = append(open, c.ID)
			}
		}
		if len(open) > 0 && !req.Force {
			return &OpenCasesError{CaseIDs: open}
		}
		out.OpenCases, out.Contacts, out.Attachments = len(open), len(set.Contacts), len(set.Attachments)

		e.records(&w, set, &out, now, actor, req)
		if err := sqlstore.DeleteCustomer(ctx, e.db, tx, req.CustomerID); err != nil {
			return err
		}
		e.fault(FaultEraseDeleted)
		if e.opts.Keys != nil {
			if err := e.opts.Keys.DestroyTx(ctx, tx, req.CustomerID); err != nil {
				return err
			}
		}
		if err := w.commit(ctx, e.db, tx, func(ctx context.Context, tx *sql.Tx, chs []cases.Change) error {
			return each(ctx, tx, e.opts.OnChange, chs)
		}); err != nil {
			return err
		}

		e.fault(FaultEraseBeforeCommit)
		if e.opts.BeforeCommit != nil {
			return e.opts.BeforeCommit(ctx)
		}
		return nil
	})
	if err != nil {
		return Erasure{}, err
	}

	if e.opts.Keys != nil {
		e.opts.Keys.Forget(req.CustomerID)
	}
	e.opts.Fields.Forget(req.CustomerID)
	e.opts.Notify()
	w.purgeBlobs(ctx, e.db, e.opts.Blobs, e.opts.Now().UTC())
	out.EscrowPending = true
	if e.opts.Escrow != nil {
		out.EscrowPending = e.opts.Escrow.PurgeEscrow(ctx, req.CustomerID) != nil
	}
	return out, nil
}

// checkHolds refuses with a *HeldError when a hold covers the customer,
// one of their cases or one of their contacts.
func (e *Eraser) checkHolds(ctx context.Context, set sqlstore.ErasureSet) error {
	if e.opts.Holds == nil {
		return nil
	}
	id := set.Customer.ID
	refs := make([]ContactRef, 0, 1+len(set.Cases)+len(set.Contacts))
	refs = append(refs, ContactRef{CustomerID: id})
	for _, c := range set.Cases {
		refs = append(refs, ContactRef{CaseID: c.ID, CustomerID: id})
	}
	for _, c := range set.Contacts {
		refs = append(refs, ContactRef{ContactID: c.ID, CaseID: c.CaseID, CustomerID: id, OccurredAt: c.OccurredAt})
	}
	held, err := e.opts.Holds.HeldBy(ctx, refs)
	if err != nil {
		return err
	}
	if len(held) > 0 {
		return &HeldError{HoldIDs: held}
	}
	return nil
}

// records queues the erasure's disposition records and audit events: one
// record per case (what a restore replays to drop the case) with its
// attachments' blobs, and one for the customer with the counts.
func (e *Eraser) records(w *batchWork, set sqlstore.ErasureSet, out *Erasure, now time.Time, actor cases.Actor, req EraseRequest) {
	blobsOf := map[string][]string{}
	seen := map[string]bool{}
	for _, a := range set.Attachments {
		if !seen[a.BlobKey] {
			seen[a.BlobKey] = true
			blobsOf[a.CaseID] = append(blobsOf[a.CaseID], a.BlobKey)
		}
	}
	out.Blobs = len(seen)

	id := set.Customer.ID
	for _, c := range set.Cases {
		d := caseDisposition(c.ID, id, RuleErasure, now, c.Subject)
		d.blobs = blobsOf[c.ID]
		w.dispose(d, actor, AuditDeleteCase)
	}

	counts, _ := json.Marshal(map[string]int{"cases": len(set.Cases), "contacts": len(set.Contacts), "attachments": len(set.Attachments)})
	d := disposition{id: cases.NewID(), customerID: id, purposes: []cases.Purpose{}, rule: RuleErasure, action: ItemEraseCustomer,
		detail: string(counts), at: now}
	d.digest = keyedDigest(w.key, destroyedCustomer(set.Customer))
	w.disps = append(w.disps, d)
	out.DispositionID = d.id

	w.changes = append(w.changes, cases.Change{Actor: actor, Action: AuditEraseCustomer, TargetType: "customer", TargetID: id,
		Detail: map[string]any{"disposition_id": d.id, "reason": req.Reason, "force": req.Force, "cases": out.Cases,
			"open_cases": out.OpenCases, "contacts": out.Contacts, "attachments": out.Attachments}})
}

// destroyedCustomer describes an erased profile for its keyed digest.
func destroyedCustomer(c cases.Customer) any {
	return map[string]any{"name": c.Name, "email": c.Email, "phone": c.Phone, "external_ref": c.ExternalRef}
}

func (e *Eraser) fault(point string) {
	if e.opts.Fault != nil {
		e.opts.Fault(point)
	}
}
