package retention_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
)

// flagStore is a bucket's legal-hold flags (one version per key, "v1");
// keys in fail refuse changes, keys in gone do not exist, and while down
// is set every call fails as an outage.
type flagStore struct {
	mu    sync.Mutex
	on    map[string]bool
	fail  map[string]bool
	gone  map[string]bool
	down  bool
	calls int
}

func newFlagStore() *flagStore {
	return &flagStore{on: map[string]bool{}, fail: map[string]bool{}, gone: map[string]bool{}}
}

func (f *flagStore) SetVersionLegalHold(_ context.Context, key, version string, on bool) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	switch {
	case f.down:
		return "", fmt.Errorf("bucket: %w", archive.ErrUnavailable)
	case f.fail[key]:
		return "", errors.New("bucket refused")
	case f.gone[key] || (version != "" && version != "v1"):
		return "", fmt.Errorf("%s: %w", key, archive.ErrNotFound)
	}
	f.on[key] = on
	return "v1", nil
}

func (f *flagStore) VersionLegalHold(_ context.Context, key, version string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	switch {
	case f.down:
		return false, fmt.Errorf("bucket: %w", archive.ErrUnavailable)
	case f.gone[key] || (version != "" && version != "v1"):
		return false, fmt.Errorf("%s: %w", key, archive.ErrNotFound)
	}
	return f.on[key], nil
}

func (f *flagStore) setDown(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

func (f *flagStore) flag(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.on[key]
}

// TestFlagsClearedWhenGraceEnds: a released hold's S3 legal-hold flags
// stay through its release grace and are cleared by the first sweep after
// it (recorded, so not again); a blob another hold still preserves keeps
// its flag; a flag the bucket refuses to clear is tried again next sweep.
func TestFlagsClearedWhenGraceEnds(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		fs := newFlagStore()
		sw := retention.NewSweeper(e.db, retention.SweeperOptions{Policy: e.policy, Holds: e.holds, OnChange: auditHook(e.db.Dialect),
			Blobs: e.blobs, LegalHolds: fs})
		sweep := func() retention.RunReport {
			t.Helper()
			// Nothing is due at base: only the flags can change.
			rep, err := sw.Run(e.ctx, retention.RunOptions{Now: base})
			if err != nil {
				t.Fatal(err)
			}
			return rep
		}
		legal := cases.Actor{Name: "legal", Role: "legal"}
		withBlob := func() (caseID, key string) {
			cs := e.newCase(e.customer())
			return cs, e.attachment(e.contact(cs, base, purposes(cases.PurposeNotification), contactOpt{}))
		}
		placeOn := func(caseID string) retention.Hold {
			t.Helper()
			h, err := e.holds.Place(e.ctx, retention.HoldInput{Matter: "M", Reason: "r", Scope: retention.HoldScope{CaseIDs: []string{caseID}}}, legal, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.holds.ApplyObjectLock(e.ctx, fs, h, true); err != nil {
				t.Fatal(err)
			}
			return h
		}
		release := func(h retention.Hold) {
			t.Helper()
			if _, err := e.holds.Release(e.ctx, h.ID, "done", legal, nil); err != nil {
				t.Fatal(err)
			}
		}

		alone, aloneKey := withBlob()
		shared, sharedKey := withBlob()
		refused, refusedKey := withBlob()
		hAlone, hShared, hRefused := placeOn(alone), placeOn(shared), placeOn(refused)
		placeOn(shared) // a second hold on the same case, never released
		release(hAlone)
		release(hShared)
		release(hRefused)

		if rep := sweep(); rep.FlagsCleared != 0 || !fs.flag(aloneKey) || !fs.flag(sharedKey) || !fs.flag(refusedKey) {
			t.Fatalf("during the grace: cleared %d, flags %v; want all still set", rep.FlagsCleared, fs.on)
		}

		e.pastGrace()
		fs.fail[refusedKey] = true
		rep := sweep()
		if rep.FlagsCleared != 1 || fs.flag(aloneKey) || !fs.flag(sharedKey) || !fs.flag(refusedKey) || rep.Errors == 0 {
			t.Fatalf("after the grace: report %+v, flags %v; want only %s cleared and the refusal counted", rep, fs.on, aloneKey)
		}
		recorded := `SELECT COUNT(*) FROM legal_holds WHERE flags_cleared_at IS NOT NULL AND id = ?`
		if e.count(recorded, hAlone.ID) != 1 || e.count(recorded, hShared.ID) != 1 || e.count(recorded, hRefused.ID) != 0 {
			t.Errorf("flags_cleared_at: alone %d, shared %d, refused %d; want 1 1 0",
				e.count(recorded, hAlone.ID), e.count(recorded, hShared.ID), e.count(recorded, hRefused.ID))
		}

		delete(fs.fail, refusedKey)
		calls := fs.calls
		if rep := sweep(); rep.FlagsCleared != 1 || fs.flag(refusedKey) || fs.calls != calls+1 {
			t.Fatalf("retry: report %+v, %d calls; want only the refused flag cleared, once", rep, fs.calls-calls)
		}
		if rep := sweep(); rep.FlagsCleared != 0 || fs.calls != calls+1 || !fs.flag(sharedKey) {
			t.Fatalf("once recorded, a hold's flags are not cleared again: %+v", rep)
		}
	})
}
