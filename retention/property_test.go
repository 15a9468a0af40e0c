package retention_test

import (
	"database/sql"
	"encoding/json"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
)

// modelHold is the test's own idea of a hold, to judge coverage
// independently of the package.
type modelHold struct {
	id       string
	caseID   string
	customer string
	word     string
	from, to *time.Time
}

type modelContact struct {
	id, caseID, customer string
	occurred             time.Time
	purposes             []cases.Purpose
	body                 string
	location, device     bool
	anonymized           bool
	closedAt             *time.Time
}

func (e *env) allContacts(t *testing.T) map[string]modelContact {
	rows, err := e.db.Read.QueryContext(e.ctx, `SELECT c.id, c.case_id, c.customer_id, c.occurred_at, c.purposes, c.body, c.location, c.device, c.anonymized_at, k.closed_at
		FROM contacts c JOIN cases k ON k.id = c.case_id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]modelContact{}
	for rows.Next() {
		var m modelContact
		var occ int64
		var ps string
		var loc, dev sql.NullString
		var anon, closed sql.NullInt64
		if err := rows.Scan(&m.id, &m.caseID, &m.customer, &occ, &ps, &m.body, &loc, &dev, &anon, &closed); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(ps), &m.purposes); err != nil {
			t.Fatal(err)
		}
		m.occurred = time.UnixMicro(occ).UTC()
		m.location, m.device, m.anonymized = loc.Valid, dev.Valid, anon.Valid
		if closed.Valid {
			m.closedAt = tp(time.UnixMicro(closed.Int64).UTC())
		}
		out[m.id] = m
	}
	return out
}

// heldBy decides coverage from the model: every given criterion matches; a
// word hold matches a case when any of its contacts' bodies holds the word.
func heldBy(holds []modelHold, c modelContact, all map[string]modelContact) bool {
	for _, h := range holds {
		if h.caseID != "" && h.caseID != c.caseID {
			continue
		}
		if h.customer != "" && h.customer != c.customer {
			continue
		}
		if h.from != nil && c.occurred.Before(*h.from) {
			continue
		}
		if h.to != nil && !c.occurred.Before(*h.to) {
			continue
		}
		if h.word != "" {
			found := false
			for _, o := range all {
				if o.caseID == c.caseID && strings.Contains(o.body, h.word) {
					found = true
				}
			}
			if !found {
				continue
			}
		}
		return true
	}
	return false
}

func TestPropertySweepRespectsHoldsAndDates(t *testing.T) {
	const ops = 140
	seeds := []int64{1, 2}
	if testing.Short() {
		seeds = seeds[:1]
	}
	// The model's customers outlive their cases: the customer_profile rule
	// (tested in profiles_test.go) must not delete them under it.
	keepProfiles := func(sc *retention.Schedule) {
		d, _ := retention.ParseDuration("100y")
		sc.CustomerProfile = &retention.ProfileRule{Keep: d}
	}
	forEachDialect(t, func(t *testing.T, e *env) {
		sc := retention.DefaultSchedule()
		keepProfiles(&sc)
		if _, err := e.sched.Put(e.ctx, sc, cases.Actor{Name: "admin"}, nil); err != nil {
			t.Fatal(err)
		}
		var holds []modelHold // outlives a seed: so do the holds in the database
		for _, seed := range seeds {
			rng := rand.New(rand.NewSource(seed))
			var custs, caseIDs []string
			for range 3 {
				custs = append(custs, e.customer())
			}
			caseCust := map[string]string{}
			for i := range 6 {
				id := e.newCase(custs[i%3])
				caseIDs = append(caseIDs, id)
				caseCust[id] = custs[i%3]
			}
			liveCases := func() []string {
				var out []string
				for _, id := range caseIDs {
					if e.count(`SELECT COUNT(*) FROM cases WHERE id = ?`, id) == 1 {
						out = append(out, id)
					}
				}
				return out
			}
			clock := base.Add(time.Duration(seed) * 400 * day)
			words := []string{"refund", "chargeback", "delivery", "invoice"}
			durations := []string{"1h", "12h", "1d", "30d", "90d", "1y", "2y"}
			sweeps, disposed, skipped, redacted := 0, 0, 0, 0
			for op := range ops {
				switch k := rng.Intn(20); {
				case k < 8: // add a contact
					live := liveCases()
					if len(live) == 0 {
						id := e.newCase(custs[rng.Intn(3)])
						caseIDs = append(caseIDs, id)
						live = []string{id}
					}
					cs := live[rng.Intn(len(live))]
					ps := []cases.Purpose{cases.Purposes[rng.Intn(len(cases.Purposes))]}
					if rng.Intn(3) == 0 {
						ps = append(ps, cases.Purposes[rng.Intn(len(cases.Purposes))])
						slices.Sort(ps)
						ps = slices.Compact(ps)
					}
					body := words[rng.Intn(len(words))] + " question " + words[rng.Intn(len(words))]
					occurred := clock.Add(-time.Duration(rng.Int63n(int64(500 * day))))
					e.contact(cs, occurred, ps, contactOpt{body: body, location: rng.Intn(2) == 0, device: rng.Intn(2) == 0})
				case k < 10: // close or reopen a case
					live := liveCases()
					if len(live) == 0 {
						continue
					}
					cs := live[rng.Intn(len(live))]
					if rng.Intn(2) == 0 {
						e.setClosed(cs, tp(clock))
					} else {
						e.setClosed(cs, nil)
					}
				case k < 12: // place a hold
					var sc retention.HoldScope
					var mh modelHold
					switch rng.Intn(4) {
					case 0:
						live := liveCases()
						if len(live) == 0 {
							continue
						}
						mh.caseID = live[rng.Intn(len(live))]
						sc.CaseIDs = []string{mh.caseID}
					case 1:
						mh.customer = custs[rng.Intn(3)]
						sc.CustomerIDs = []string{mh.customer}
					case 2:
						f := clock.Add(-time.Duration(rng.Int63n(int64(400 * day))))
						to := f.Add(time.Duration(1 + rng.Int63n(int64(100*day))))
						mh.from, mh.to = &f, &to
						sc.From, sc.To = &f, &to
					case 3:
						mh.word = words[rng.Intn(len(words))]
						sc.Query = mh.word
					}
					h, err := e.holds.Place(e.ctx, retention.HoldInput{Matter: "M", Reason: "r", Scope: sc}, cases.Actor{Name: "legal"}, nil)
					if err != nil {
						t.Fatalf("op %d: place %+v: %v", op, sc, err)
					}
					mh.id = h.ID
					holds = append(holds, mh)
				case k < 13: // release a hold
					if len(holds) == 0 {
						continue
					}
					i := rng.Intn(len(holds))
					if _, err := e.holds.Release(e.ctx, holds[i].id, "done", cases.Actor{Name: "legal"}, nil); err != nil {
						t.Fatalf("op %d: release: %v", op, err)
					}
					e.pastGrace() // the model knows no grace
					holds = slices.Delete(holds, i, i+1)
				case k < 14: // change the schedule
					sc := retention.DefaultSchedule()
					for i := range sc.Purposes {
						sc.Purposes[i].Keep, _ = retention.ParseDuration(durations[rng.Intn(len(durations))])
						sc.Purposes[i].From = []string{retention.FromCapture, retention.FromCaseClosed}[rng.Intn(2)]
						sc.Purposes[i].Action = []string{retention.ActionDelete, retention.ActionAnonymize}[rng.Intn(2)]
					}
					for i := range sc.Categories {
						sc.Categories[i].Keep, _ = retention.ParseDuration(durations[rng.Intn(len(durations))])
					}
					keepProfiles(&sc)
					if _, err := e.sched.Put(e.ctx, sc, cases.Actor{Name: "admin"}, nil); err != nil {
						t.Fatalf("op %d: put schedule: %v", op, err)
					}
					// Half the time the sweep runs before the recompute caught up.
					if rng.Intn(2) == 0 {
						if _, err := retention.Recompute(e.ctx, e.db, e.policy, retention.RecomputeOptions{BatchSize: 7}); err != nil {
							t.Fatal(err)
						}
					}
				case k < 17: // move the clock
					clock = clock.Add(time.Duration(rng.Int63n(int64(200 * day))))
				default: // sweep, and check
					sweeps++
					before := e.allContacts(t)
					sc := e.policy.Schedule()
					rep, err := e.sweeper.Run(e.ctx, retention.RunOptions{Now: clock, BatchSize: 1 + rng.Intn(5)})
					if err != nil || rep.Errors != 0 || rep.Status != retention.StatusSucceeded {
						t.Fatalf("op %d: sweep: %+v, %v", op, rep, err)
					}
					disposed += rep.Deleted + rep.Anonymized
					skipped += rep.SkippedHeld
					redacted += rep.Redacted
					after := e.allContacts(t)
					for id, c := range before {
						a, exists := after[id]
						held := heldBy(holds, c, before)
						until, _ := sc.RetainUntil(c.purposes, c.occurred, c.closedAt)
						due := !c.anonymized && until != nil && !until.After(clock)
						switch {
						case held && (!exists || a.body != c.body || a.location != c.location || a.device != c.device || a.anonymized != c.anonymized):
							t.Fatalf("seed %d op %d: held contact %s changed: before %+v after %+v (exists %v)", seed, op, id, c, a, exists)
						case held:
						case due && exists && !a.anonymized:
							st, _ := e.state(id)
							t.Fatalf("seed %d op %d: unheld contact %s due %s survived the sweep at %s: %+v %+v report %+v", seed, op, id, until, clock, c, st, rep)
						case !due && (!exists || a.anonymized != c.anonymized):
							t.Fatalf("seed %d op %d: contact %s not due (until %v) was disposed of at %s", seed, op, id, until, clock)
						}
						if held || !exists {
							continue
						}
						for _, cr := range sc.Categories {
							if c.occurred.Add(cr.Keep.Std()).After(clock) {
								continue
							}
							if (cr.Category == cases.CategoryLocation && a.location) || (cr.Category == cases.CategoryDevice && a.device) {
								t.Fatalf("seed %d op %d: contact %s kept %s past its minimization", seed, op, id, cr.Category)
							}
						}
					}
				}
			}
			// The run must have exercised every path, or it proves nothing.
			if sweeps < 10 || disposed == 0 || skipped == 0 || redacted == 0 {
				t.Fatalf("seed %d: %d sweeps, %d disposed, %d held, %d redacted", seed, sweeps, disposed, skipped, redacted)
			}
			t.Logf("seed %d: %d sweeps, %d disposed, %d held, %d redacted", seed, sweeps, disposed, skipped, redacted)
		}
	})
}
