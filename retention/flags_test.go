package retention_test

import (
	"context"
	"errors"
	"testing"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
	"github.com/casevault/casevault/sqldb"
)

// flagEnv is the retention environment with a FlagMirror on a fake bucket.
type flagEnv struct {
	*env
	fs     *flagStore
	mirror *retention.FlagMirror
}

func newFlagEnv(e *env, o retention.FlagMirrorOptions) *flagEnv {
	fe := &flagEnv{env: e, fs: newFlagStore()}
	if o.Flags == nil {
		o.Flags = fe.fs
	}
	o.OnChange = auditHook(e.db.Dialect)
	fe.mirror = retention.NewFlagMirror(e.db, e.holds, o)
	return fe
}

var legalActor = cases.Actor{Name: "legal", Role: "legal"}

func (fe *flagEnv) placeHold(s retention.HoldScope) retention.Hold {
	fe.t.Helper()
	h, err := fe.holds.Place(fe.ctx, retention.HoldInput{Matter: "M", Reason: "r", Scope: s}, legalActor, nil)
	if err != nil {
		fe.t.Fatal(err)
	}
	return h
}

// attach adds an attachment to a new contact of the case and returns its id
// and blob key.
func (fe *flagEnv) attach(caseID, body string) (id, key string) {
	fe.t.Helper()
	key = fe.attachment(fe.contact(caseID, base, purposes(cases.PurposeNotification), contactOpt{body: body}))
	if err := fe.db.Read.QueryRowContext(fe.ctx, fe.db.Rebind(`SELECT id FROM attachments WHERE blob_key = ?`), key).Scan(&id); err != nil {
		fe.t.Fatal(err)
	}
	return id, key
}

func (fe *flagEnv) status(h retention.Hold) retention.Mirroring {
	fe.t.Helper()
	h, err := fe.holds.Get(fe.ctx, h.ID)
	if err != nil {
		fe.t.Fatal(err)
	}
	m, err := fe.mirror.Status(fe.ctx, h)
	if err != nil {
		fe.t.Fatal(err)
	}
	return m
}

func (fe *flagEnv) reconcile(full bool) retention.FlagReport {
	fe.t.Helper()
	rep, err := fe.mirror.Reconcile(fe.ctx, retention.ReconcileOptions{Full: full})
	if err != nil {
		fe.t.Fatalf("reconcile: %v (%+v)", err, rep)
	}
	return rep
}

// TestLaterAttachmentsFlagged (issue 21 §5): a blob added to a held case
// after the hold was placed gets the flag at once (the upload hook), and a
// blob that comes under a hold later (a contact that starts matching a
// query hold) gets it from the reconciler; blobs no hold covers never do.
func TestLaterAttachmentsFlagged(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		fe := newFlagEnv(e, retention.FlagMirrorOptions{})
		held := fe.newCase(fe.customer())
		_, before := fe.attach(held, "")
		h := fe.placeHold(retention.HoldScope{CaseIDs: []string{held}})
		if m, err := fe.mirror.MirrorHold(fe.ctx, h); err != nil || m.State != retention.MirrorComplete || !fe.fs.flag(before) {
			t.Fatalf("placing: %+v %v, flag %v", m, err, fe.fs.flag(before))
		}

		later, laterKey := fe.attach(held, "")
		if st := fe.status(h); st.State != retention.MirrorPending || st.Pending != 1 {
			t.Fatalf("status with an unflagged later blob: %+v, want pending 1", st)
		}
		if err := fe.mirror.AttachmentAdded(fe.ctx, later); err != nil {
			t.Fatal(err)
		}
		if !fe.fs.flag(laterKey) {
			t.Fatal("a blob uploaded into a held case after the hold has no flag")
		}
		if st := fe.status(h); st.State != retention.MirrorComplete || st.Blobs != 2 || st.Flagged != 2 {
			t.Fatalf("status: %+v, want complete 2/2", st)
		}
		free, freeKey := fe.attach(fe.newCase(fe.customer()), "")
		if err := fe.mirror.AttachmentAdded(fe.ctx, free); err != nil || fe.fs.flag(freeKey) {
			t.Fatalf("unheld upload: flag %v, %v", fe.fs.flag(freeKey), err)
		}

		// A query hold; a case that starts matching it afterwards.
		q := fe.placeHold(retention.HoldScope{Query: "refund"})
		if _, err := fe.mirror.MirrorHold(fe.ctx, q); err != nil {
			t.Fatal(err)
		}
		grown := fe.newCase(fe.customer())
		_, grownKey := fe.attach(grown, "I want a refund")
		if rep := fe.reconcile(true); rep.Set != 1 || !fe.fs.flag(grownKey) || len(rep.Pending) != 0 {
			t.Fatalf("reconcile: %+v, grown flag %v; want it set", rep, fe.fs.flag(grownKey))
		}
		if fe.fs.flag(freeKey) {
			t.Fatal("the reconciler flagged a blob no hold covers")
		}
		if n := fe.count(`SELECT COUNT(*) FROM audit_events WHERE action IN ('hold.flags', 'attachment.legal_hold')`); n < 3 {
			t.Errorf("%d audit events about flags, want one per change", n)
		}
	})
}

// TestFlagsRetriedAfterOutage (issue 21 §6): a hold placed while the bucket
// is down is pending (in its status and readiness) and its flags are set
// by the first reconciler pass after the bucket is back; a release whose
// grace ends during an outage has its flags cleared by the first pass
// after it.
func TestFlagsRetriedAfterOutage(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		fe := newFlagEnv(e, retention.FlagMirrorOptions{})
		cs := fe.newCase(fe.customer())
		_, k1 := fe.attach(cs, "")
		_, k2 := fe.attach(cs, "")

		fe.fs.setDown(true)
		h := fe.placeHold(retention.HoldScope{CaseIDs: []string{cs}})
		calls := fe.fs.calls
		m, err := fe.mirror.MirrorHold(fe.ctx, h)
		if err == nil || m.State != retention.MirrorPending || m.Error == "" {
			t.Fatalf("placing during an outage: %+v %v; want pending with the error", m, err)
		}
		if fe.fs.calls-calls != 1 {
			t.Errorf("%d calls to a bucket that is down, want 1 (the rest wait for the reconciler)", fe.fs.calls-calls)
		}
		if st := fe.status(h); st.State != retention.MirrorPending {
			t.Fatalf("status: %+v", st)
		}
		if _, err := fe.mirror.Readiness(fe.ctx); err == nil {
			t.Fatal("readiness is fine while a hold is pending")
		}
		if _, err := fe.mirror.Reconcile(fe.ctx, retention.ReconcileOptions{}); err == nil {
			t.Fatal("a pass against a bucket that is down reported no error")
		}

		fe.fs.setDown(false)
		if rep := fe.reconcile(false); rep.Set != 2 || len(rep.Pending) != 0 || !fe.fs.flag(k1) || !fe.fs.flag(k2) {
			t.Fatalf("after the outage: %+v; want both flags set", rep)
		}
		if st := fe.status(h); st.State != retention.MirrorComplete {
			t.Fatalf("status after the pass: %+v", st)
		}
		if _, err := fe.mirror.Readiness(fe.ctx); err != nil {
			t.Fatalf("readiness after the pass: %v", err)
		}

		// Released; the grace ends while the bucket is down.
		if _, err := fe.holds.Release(fe.ctx, h.ID, "settled", legalActor, nil); err != nil {
			t.Fatal(err)
		}
		if rep := fe.reconcile(false); rep.Cleared != 0 || !fe.fs.flag(k1) {
			t.Fatalf("during the grace: %+v, flag %v; want kept", rep, fe.fs.flag(k1))
		}
		fe.pastGrace()
		fe.fs.setDown(true)
		if _, err := fe.mirror.Reconcile(fe.ctx, retention.ReconcileOptions{}); err == nil {
			t.Fatal("clearing against a bucket that is down reported no error")
		}
		if st := fe.status(h); st.State != retention.MirrorPending {
			t.Fatalf("released hold with flags left: %+v, want pending", st)
		}
		fe.fs.setDown(false)
		if rep := fe.reconcile(false); rep.Cleared != 2 || fe.fs.flag(k1) || fe.fs.flag(k2) {
			t.Fatalf("after the outage: %+v; want both flags cleared", rep)
		}
		if st := fe.status(h); st.State != retention.MirrorComplete {
			t.Fatalf("released hold, flags cleared: %+v", st)
		}
		if n := fe.count(`SELECT COUNT(*) FROM legal_hold_flags`); n != 0 {
			t.Errorf("%d flags still recorded", n)
		}
	})
}

// TestUploadDuringOutage: an upload into a held case while the bucket is
// down leaves the hold pending; the reconciler flags the blob.
func TestUploadDuringOutage(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		fe := newFlagEnv(e, retention.FlagMirrorOptions{})
		cs := fe.newCase(fe.customer())
		h := fe.placeHold(retention.HoldScope{CaseIDs: []string{cs}})
		if _, err := fe.mirror.MirrorHold(fe.ctx, h); err != nil {
			t.Fatal(err)
		}
		fe.fs.setDown(true)
		id, key := fe.attach(cs, "")
		if err := fe.mirror.AttachmentAdded(fe.ctx, id); err == nil {
			t.Fatal("flagging during an outage reported no error")
		}
		if _, err := fe.mirror.Readiness(fe.ctx); err == nil {
			t.Fatal("readiness fine with a pending hold")
		}
		fe.fs.setDown(false)
		if rep := fe.reconcile(false); rep.Set != 1 || !fe.fs.flag(key) || len(rep.Pending) != 0 {
			t.Fatalf("light pass: %+v, flag %v", rep, fe.fs.flag(key))
		}
	})
}

// TestFlagDriftRepaired: a full pass reads flags back from the bucket and
// sets again one lifted behind casevault's back, forgets one whose version
// is gone, and clears a recorded flag no hold covers any more.
func TestFlagDriftRepaired(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		fe := newFlagEnv(e, retention.FlagMirrorOptions{})
		cs := fe.newCase(fe.customer())
		_, lifted := fe.attach(cs, "")
		_, kept := fe.attach(cs, "")
		h := fe.placeHold(retention.HoldScope{CaseIDs: []string{cs}})
		if _, err := fe.mirror.MirrorHold(fe.ctx, h); err != nil {
			t.Fatal(err)
		}
		other := fe.newCase(fe.customer())
		_, stray := fe.attach(other, "")
		if _, err := fe.db.Write.ExecContext(fe.ctx, fe.db.Rebind(`INSERT INTO legal_hold_flags (blob_key, version_id, set_at, checked_at) VALUES (?, 'v1', 0, 0)`), stray); err != nil {
			t.Fatal(err)
		}
		fe.fs.on[stray] = true
		fe.fs.on[lifted] = false

		rep := fe.reconcile(true)
		if rep.Restored != 1 || !fe.fs.flag(lifted) || !fe.fs.flag(kept) {
			t.Fatalf("read back: %+v; want the lifted flag set again", rep)
		}
		if rep.Cleared != 1 || fe.fs.flag(stray) {
			t.Fatalf("stray flag: %+v, flag %v; want cleared", rep, fe.fs.flag(stray))
		}
		if n := fe.count(`SELECT COUNT(*) FROM audit_events WHERE action IN ('legal_hold_flags.verify', 'legal_hold_flags.clear')`); n != 2 {
			t.Errorf("%d audit events for the repairs, want 2", n)
		}
	})
}

// TestMirroringUnavailable: without flags (local disk) or on a bucket
// without object lock every hold's mirroring is unavailable and readiness
// is fine; a bucket that cannot be asked yet leaves holds pending until
// it answers.
func TestMirroringUnavailable(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		cs := e.newCase(e.customer())
		e.attachment(e.contact(cs, base, purposes(cases.PurposeNotification), contactOpt{}))
		h, err := e.holds.Place(e.ctx, retention.HoldInput{Matter: "M", Reason: "r", Scope: retention.HoldScope{CaseIDs: []string{cs}}}, legalActor, nil)
		if err != nil {
			t.Fatal(err)
		}

		local := retention.NewFlagMirror(e.db, e.holds, retention.FlagMirrorOptions{})
		noLock := retention.NewFlagMirror(e.db, e.holds, retention.FlagMirrorOptions{Flags: retention.NewBucketFlags(newFlagStore(),
			func(context.Context) (bool, error) { return false, nil })})
		for name, m := range map[string]*retention.FlagMirror{"local": local, "no object lock": noLock} {
			st, err := m.Status(e.ctx, h)
			if err != nil || st.State != retention.MirrorUnavailable || st.Reason == "" {
				t.Errorf("%s: status %+v %v", name, st, err)
			}
			if _, err := m.Readiness(e.ctx); err != nil {
				t.Errorf("%s: readiness %v", name, err)
			}
			if rep, err := m.Reconcile(e.ctx, retention.ReconcileOptions{}); err != nil || rep.Available {
				t.Errorf("%s: reconcile %+v %v", name, rep, err)
			}
		}

		fs := newFlagStore()
		down := true
		asked := retention.NewFlagMirror(e.db, e.holds, retention.FlagMirrorOptions{Flags: retention.NewBucketFlags(fs,
			func(context.Context) (bool, error) {
				if down {
					return false, errors.New("connection refused")
				}
				return true, nil
			})})
		if st, _ := asked.Status(e.ctx, h); st.State != retention.MirrorPending {
			t.Errorf("bucket not answering: status %+v, want pending", st)
		}
		if _, err := asked.Readiness(e.ctx); err == nil {
			t.Error("bucket not answering: readiness fine")
		}
		down = false
		if rep, err := asked.Reconcile(e.ctx, retention.ReconcileOptions{}); err != nil || !rep.Available || rep.Set != 1 {
			t.Errorf("bucket answering: %+v %v; want the flag set", rep, err)
		}
	})
}

// TestQueryHoldWithoutEngine: without a search engine (the CLI) a query
// hold flags only what it recorded, never every blob its other criteria
// allow, and no flag it may cover is cleared.
func TestQueryHoldWithoutEngine(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		fe := newFlagEnv(e, retention.FlagMirrorOptions{})
		recorded := fe.newCase(fe.customer())
		_, recKey := fe.attach(recorded, "a refund please")
		fe.placeHold(retention.HoldScope{Query: "refund"})
		_, otherKey := fe.attach(fe.newCase(fe.customer()), "nothing to see")

		blind := retention.NewHoldsWith(e.db, retention.HoldsOptions{Policy: e.policy, Now: e.clock.Now})
		m := retention.NewFlagMirror(e.db, blind, retention.FlagMirrorOptions{Flags: fe.fs})
		if _, err := m.Reconcile(fe.ctx, retention.ReconcileOptions{Full: true}); err != nil {
			t.Fatal(err)
		}
		if !fe.fs.flag(recKey) || fe.fs.flag(otherKey) {
			t.Fatalf("flags recorded=%v other=%v; want true false", fe.fs.flag(recKey), fe.fs.flag(otherKey))
		}
	})
}

// TestFlagPassOneOwner: on PostgreSQL a pass runs in one replica at a time.
func TestFlagPassOneOwner(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		if e.db.Dialect != sqldb.Postgres {
			t.Skip("the lock across processes is PostgreSQL's")
		}
		fe := newFlagEnv(e, retention.FlagMirrorOptions{})
		conn, err := e.db.Write.Conn(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(e.ctx, `SELECT pg_advisory_lock(7345017, hashtext(current_schema()))`); err != nil {
			t.Fatal(err)
		}
		if _, err := fe.mirror.Reconcile(e.ctx, retention.ReconcileOptions{}); !errors.Is(err, retention.ErrFlagsBusy) {
			t.Fatalf("pass while another replica holds the lock: %v, want ErrFlagsBusy", err)
		}
		if _, err := conn.ExecContext(e.ctx, `SELECT pg_advisory_unlock(7345017, hashtext(current_schema()))`); err != nil {
			t.Fatal(err)
		}
		fe.reconcile(false)
	})
}

// TestMissingBlobStaysPending: a held blob missing from the bucket keeps
// its hold pending (the error names it) without holding up the rest of the
// pass: other holds' flags are still set and ended holds' still cleared.
func TestMissingBlobStaysPending(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		fe := newFlagEnv(e, retention.FlagMirrorOptions{})
		ended := fe.newCase(fe.customer())
		_, endedKey := fe.attach(ended, "")
		he := fe.placeHold(retention.HoldScope{CaseIDs: []string{ended}})
		if _, err := fe.mirror.MirrorHold(fe.ctx, he); err != nil {
			t.Fatal(err)
		}
		if _, err := fe.holds.Release(fe.ctx, he.ID, "done", legalActor, nil); err != nil {
			t.Fatal(err)
		}
		fe.pastGrace()

		broken := fe.newCase(fe.customer())
		_, lost := fe.attach(broken, "")
		fe.fs.gone[lost] = true
		hb := fe.placeHold(retention.HoldScope{CaseIDs: []string{broken}})
		good := fe.newCase(fe.customer())
		_, goodKey := fe.attach(good, "")
		hg := fe.placeHold(retention.HoldScope{CaseIDs: []string{good}})

		rep, err := fe.mirror.Reconcile(fe.ctx, retention.ReconcileOptions{Full: true})
		if err == nil || !errors.Is(err, archive.ErrNotFound) {
			t.Fatalf("pass with a missing blob: %v, want its error", err)
		}
		if !fe.fs.flag(goodKey) || fe.fs.flag(endedKey) || rep.Cleared != 1 {
			t.Fatalf("the rest of the pass: %+v, good %v ended %v", rep, fe.fs.flag(goodKey), fe.fs.flag(endedKey))
		}
		if len(rep.Pending) != 1 || rep.Pending[0] != hb.ID {
			t.Fatalf("pending %v, want only %s", rep.Pending, hb.ID)
		}
		if st := fe.status(hg); st.State != retention.MirrorComplete {
			t.Fatalf("good hold %+v", st)
		}
	})
}
