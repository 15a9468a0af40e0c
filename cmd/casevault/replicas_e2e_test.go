package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/casevault/casevault/archive/blobtest"
	"github.com/casevault/casevault/search/meili/meilifake"
	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/testkit"
)

// Two servers on one PostgreSQL database write concurrently (issue 19 §4):
// every acknowledged write is readable and searchable on both replicas,
// audited exactly once (each replica's sequencer competes for the one
// sequencer lock), and the audit trail is one chain that verifies.
func TestTwoReplicasOnePostgresChain(t *testing.T) {
	cfg := sqldbtest.Config(t, sqldb.Postgres)
	env := "CASEVAULT_DATABASE_URL=" + cfg.URL
	d1, d2 := t.TempDir(), t.TempDir()
	p1, tok := startAdmin(t, d1, env)
	// Every replica uses the instance's master key (issue 20 §14).
	p2 := start(t, d2, env, instanceKey(t, d1)) // same database: no new admin token
	if _, err := os.Stat(filepath.Join(d2, "admin.token")); err == nil {
		t.Fatal("second replica bootstrapped another admin token")
	}
	bases := []string{p1.api(), p2.api()}
	_, cust := call(t, "POST", bases[0]+"/customers", tok, map[string]any{"name": "Replicated"})
	var caseIDs []string
	for i := 0; i < 4; i++ {
		_, cs := call(t, "POST", bases[i%2]+"/cases", tok, map[string]any{"customer_id": cust["id"], "subject": fmt.Sprint("r", i), "channel": "chat"})
		caseIDs = append(caseIDs, cs["id"].(string))
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	acked := map[string]string{} // contact id -> its one word
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				word := fmt.Sprintf("zq%dx%d", w, i)
				code, ct := call(t, "POST", bases[w%2]+"/cases/"+caseIDs[(w+i)%len(caseIDs)]+"/contacts", tok,
					map[string]any{"channel": "chat", "direction": "inbound", "author": "r", "body": "replica write " + word})
				mu.Lock()
				if code != 201 {
					failed++
				} else {
					acked[ct["id"].(string)] = word
				}
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	if failed > 0 {
		t.Fatalf("%d of 400 concurrent writes failed across replicas", failed)
	}

	// Readable on both.
	for _, b := range bases {
		seen := map[string]bool{}
		for _, id := range caseIDs {
			code, full := call(t, "GET", b+"/cases/"+id, tok, nil)
			if code != 200 {
				t.Fatalf("case %s on %s: %d", id, b, code)
			}
			for _, c := range full["contacts"].([]any) {
				seen[c.(map[string]any)["id"].(string)] = true
			}
		}
		for id := range acked {
			if !seen[id] {
				t.Errorf("acknowledged contact %s not readable on %s", id, b)
			}
		}
	}

	// Searchable on both: each contact's own word finds it (its case's
	// best-matching contact; fuzzy matching may bring other cases too).
	for _, b := range bases {
		left := maps.Clone(acked)
		testkit.Eventually(t, 60*time.Second, "every contact searchable on "+b, func() bool {
			for id, word := range left {
				code, res := call(t, "GET", b+"/search?q="+word, tok, nil)
				if code != 200 || !strings.Contains(toJSON(res), id) {
					return false
				}
				delete(left, id)
			}
			return true
		})
	}

	// Audited once, in one chain, once the sequencers caught up.
	for _, b := range bases {
		testkit.Eventually(t, 30*time.Second, "a verified chain with nothing pending on "+b, func() bool {
			code, ver := call(t, "GET", b+"/audit/verify", tok, nil)
			return code == 200 && ver["ok"] == true && ver["pending"] == float64(0)
		})
	}
	events := map[string]int{}
	cursor := ""
	for {
		code, list := call(t, "GET", bases[1]+"/audit?action=contact.create&limit=500&cursor="+cursor, tok, nil)
		if code != 200 {
			t.Fatalf("audit list: %d", code)
		}
		for _, it := range list["items"].([]any) {
			ev := it.(map[string]any)
			if ev["pending"] == true {
				t.Errorf("event %v still pending after verify reported none", ev["target_id"])
			}
			events[ev["target_id"].(string)]++
		}
		next, _ := list["next_cursor"].(string)
		if next == "" {
			break
		}
		cursor = next
	}
	if len(events) != len(acked) {
		t.Errorf("%d contacts have contact.create events, want %d", len(events), len(acked))
	}
	for id := range acked {
		if events[id] != 1 {
			t.Errorf("contact %s has %d contact.create events, want 1", id, events[id])
		}
	}
}

// searchTotal is how many cases a search finds on one replica (-1 when the
// request failed).
func searchTotal(t *testing.T, base, tok, q string) int {
	t.Helper()
	code, res := call(t, "GET", base+"/search?q="+url.QueryEscape(q), tok, nil)
	if code != 200 {
		return -1
	}
	n, _ := res["total"].(float64)
	return int(n)
}

// Three replicas on one PostgreSQL and one S3 bucket (issue 20 §2–4),
// once with embedded Bleve indexes and once sharing one Meilisearch index
// (the OpenAPI-validating fake, fresh per run, so a fresh index): every
// acknowledged write is found on every replica within 2 s, a delete
// disappears everywhere, a query hold placed on A protects contacts written
// through B from a sweep on C, and every replica's status lists the
// consumers at the head — three embedded ones, or the one shared consumer
// with exactly one writer.
func TestThreeReplicasOneChangeFeed(t *testing.T) {
	engines := []struct {
		name string
		// env starts the engine's backing service, if any, before the
		// replicas so that it outlives them.
		env    func(t *testing.T) []string
		shared bool
	}{
		{name: "bleve", env: func(*testing.T) []string { return nil }},
		{name: "meilisearch", shared: true, env: func(t *testing.T) []string {
			f := meilifake.New(t)
			return []string{"CASEVAULT_MEILI_URL=" + f.URL(), "CASEVAULT_MEILI_KEY=" + meilifake.APIKey}
		}},
	}
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			threeReplicas(t, eng.env(t), eng.shared)
		})
	}
}

func threeReplicas(t *testing.T, engineEnv []string, shared bool) {
	s3 := blobtest.EnvS3(t)
	cfg := sqldbtest.Config(t, sqldb.Postgres)
	env := []string{"CASEVAULT_DATABASE_URL=" + cfg.URL, "CASEVAULT_MASTER_KEY=" + strings.Repeat("5a", 32),
		"CASEVAULT_S3_ENDPOINT=" + s3.Endpoint, "CASEVAULT_S3_BUCKET=" + s3.Bucket, "CASEVAULT_S3_ACCESS_KEY=" + s3.AccessKey,
		"CASEVAULT_S3_SECRET_KEY=" + s3.SecretKey, "CASEVAULT_S3_TLS=false", "CASEVAULT_BACKUP_SCHEDULE=off"}
	env = append(env, engineEnv...)
	pa, tok := startAdmin(t, t.TempDir(), env...)
	a := pa.api()

	// Contacts for authentication are due a second after capture; the
	// schedule is set before B and C start, so all three stamp and sweep
	// by it whichever way schedules travel between replicas.
	_, sched := call(t, "GET", a+"/retention/schedule", tok, nil)
	for _, p := range sched["purposes"].([]any) {
		if p := p.(map[string]any); p["purpose"] == "authentication" {
			p["keep"] = "1s"
		}
	}
	if code, r := call(t, "PUT", a+"/retention/schedule", tok, sched); code != 200 {
		t.Fatalf("schedule: %d %v", code, r)
	}
	b, c := start(t, t.TempDir(), env...).api(), start(t, t.TempDir(), env...).api()
	bases := []string{a, b, c}
	_, cust := call(t, "POST", a+"/customers", tok, map[string]any{"name": "Feed"})

	// Every acknowledged write, through any replica, on every replica.
	t.Run("writes", func(t *testing.T) {
		const n = 24
		var wg sync.WaitGroup
		failed := make(chan string, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				base := bases[i%3]
				code, cs := call(t, "POST", base+"/cases", tok, map[string]any{"customer_id": cust["id"], "subject": fmt.Sprint("feed case ", i), "channel": "chat"})
				if code != 201 {
					failed <- fmt.Sprint("case ", i, ": ", code)
					return
				}
				code, _ = call(t, "POST", base+"/cases/"+cs["id"].(string)+"/contacts", tok,
					map[string]any{"channel": "chat", "direction": "inbound", "author": "r", "body": fmt.Sprint("quokka sighting ", i)})
				if code != 201 {
					failed <- fmt.Sprint("contact ", i, ": ", code)
				}
			}()
		}
		wg.Wait()
		close(failed)
		for f := range failed {
			t.Fatal("write failed: ", f)
		}
		acked := time.Now()
		for i, base := range bases {
			testkit.Eventually(t, 30*time.Second, fmt.Sprint("replica ", i, " finds all ", n, " cases"), func() bool { return searchTotal(t, base, tok, "quokka") == n })
			if late := time.Since(acked); late > 2*time.Second {
				t.Errorf("replica %d found every acknowledged write only %s after the last was acknowledged, want within 2s", i, late.Round(time.Millisecond))
			}
		}

	})

	// A delete through A disappears from every replica's index.
	t.Run("deletes", func(t *testing.T) {
		code, cs := call(t, "POST", b+"/cases", tok, map[string]any{"customer_id": cust["id"], "subject": "wombat complaint", "channel": "email"})
		if code != 201 {
			t.Fatalf("case: %d", code)
		}
		for i, base := range bases {
			testkit.Eventually(t, 30*time.Second, fmt.Sprint("replica ", i, " finds the wombat case"), func() bool { return searchTotal(t, base, tok, "wombat") == 1 })
		}
		if code, r := call(t, "DELETE", a+"/cases/"+cs["id"].(string), tok, nil); code != 204 {
			t.Fatalf("delete: %d %v", code, r)
		}
		deleted := time.Now()
		for i, base := range bases {
			testkit.Eventually(t, 30*time.Second, fmt.Sprint("replica ", i, " forgets the deleted case"), func() bool { return searchTotal(t, base, tok, "wombat") == 0 })
			if late := time.Since(deleted); late > 2*time.Second {
				t.Errorf("replica %d dropped the deleted case only %s after the delete, want within 2s", i, late.Round(time.Millisecond))
			}
		}

	})

	// A query hold placed on A; due contacts written through B (half of
	// them held); a sweep on C deletes only the others.
	t.Run("query hold", func(t *testing.T) {
		if code, r := call(t, "POST", a+"/holds", tok, map[string]any{"matter": "m", "reason": "r", "scope": map[string]any{"query": "kangaroo"}}); code != 201 {
			t.Fatalf("hold: %d %v", code, r)
		}
		var held, free []string
		for i := range 6 {
			body := fmt.Sprint("login code ", i)
			if i%2 == 0 {
				body += " kangaroo"
			}
			_, cs := call(t, "POST", b+"/cases", tok, map[string]any{"customer_id": cust["id"], "subject": fmt.Sprint("due ", i), "channel": "chat"})
			code, ct := call(t, "POST", b+"/cases/"+cs["id"].(string)+"/contacts", tok,
				map[string]any{"channel": "chat", "direction": "inbound", "author": "r", "body": body, "purposes": []string{"authentication"}})
			if code != 201 {
				t.Fatalf("due contact: %d %v", code, ct)
			}
			if i%2 == 0 {
				held = append(held, ct["id"].(string))
			} else {
				free = append(free, ct["id"].(string))
			}
		}
		// a one-off delete on C of a held case just written through B is
		// refused (409 naming the hold, or 503 while C's index catches up)
		_, fresh := call(t, "POST", b+"/cases", tok, map[string]any{"customer_id": cust["id"], "subject": "fresh", "channel": "chat"})
		call(t, "POST", b+"/cases/"+fresh["id"].(string)+"/contacts", tok, map[string]any{"channel": "chat", "direction": "inbound", "author": "r", "body": "kangaroo seen"})
		if code, r := call(t, "DELETE", c+"/cases/"+fresh["id"].(string), tok, nil); code != 409 && code != 503 {
			t.Errorf("delete on C of a case the query hold covers, written through B: %d %v, want 409 or 503", code, r)
		}
		exists := func(id string) bool {
			code, _ := call(t, "GET", a+"/contacts/"+id, tok, nil)
			return code == 200
		}
		testkit.Eventually(t, 60*time.Second, "a sweep on C that is not deferred", func() bool {
			code, run := call(t, "POST", c+"/retention/runs", tok, map[string]any{"dry_run": false})
			if code != 202 {
				return false
			}
			rep := waitRun(t, c+"/retention/runs/"+run["id"].(string), tok)
			// the last written becomes due a second after its capture
			return rep["status"] == "succeeded" && (!exists(free[len(free)-1]) || !exists(held[len(held)-1]))
		})
		for _, id := range held {
			if !exists(id) {
				t.Errorf("held contact %s, written through B, deleted by the sweep on C", id)
			}
		}
		for _, id := range free {
			if exists(id) {
				t.Errorf("due contact %s outside the hold kept", id)
			}
		}

	})

	// Every replica's status: the consumers at the head — three embedded
	// ones, each its replica's writer, or the one shared consumer with
	// exactly one writer among the replicas.
	t.Run("status", func(t *testing.T) {
		wantConsumers, wantEngine := 3, "bleve"
		if shared {
			wantConsumers, wantEngine = 1, "meilisearch"
		}
		writers := 0
		for i, base := range bases {
			var st map[string]any
			testkit.Eventually(t, 30*time.Second, fmt.Sprint("replica ", i, " status lists ", wantConsumers, " consumers at the head"), func() bool {
				var code int
				code, st = call(t, "GET", base+"/search/status", tok, nil)
				cons, _ := st["consumers"].([]any)
				if code != 200 || len(cons) != wantConsumers {
					return false
				}
				for _, c := range cons {
					if c.(map[string]any)["position"] != st["head"] || c.(map[string]any)["pending"] != 0.0 {
						return false
					}
				}
				return st["pending"] == 0.0 && st["healthy"] == true
			})
			if st["engine"] != wantEngine {
				t.Errorf("replica %d searches with %v, want %s", i, st["engine"], wantEngine)
			}
			if st["writer"] == true {
				writers++
			}
			if !shared && st["writer"] != true {
				t.Errorf("replica %d does not write its own embedded index: %v", i, st)
			}
		}
		if shared && writers != 1 {
			t.Errorf("%d replicas write the shared Meilisearch index, want exactly 1", writers)
		}
	})
}

// Two replicas on one PostgreSQL with short schedules (issue 19 §4: cron
// jobs run once across replicas): a retention sweep every 2 s (a seconds
// field) and a backup every 3 s (@every, aligned on the clock so that
// replicas started at different moments share ticks) on both. Both crons
// fire every tick (the other replica logs that it did not run it), exactly
// one replica claims each, and the audit log (retention.run names its
// tick) and the backup runs show one run per tick.
func TestTwoReplicasRunEachTickOnce(t *testing.T) {
	cfg := sqldbtest.Config(t, sqldb.Postgres)
	s3 := blobtest.StartVersityGW(t)
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "backup.key")
	if err := os.WriteFile(keyFile, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"CASEVAULT_DATABASE_URL=" + cfg.URL,
		"CASEVAULT_BACKUP_S3_ENDPOINT=" + s3.Endpoint, "CASEVAULT_BACKUP_S3_BUCKET=cv-ticks", "CASEVAULT_BACKUP_S3_TLS=false",
		"CASEVAULT_BACKUP_S3_ACCESS_KEY=" + s3.AccessKey, "CASEVAULT_BACKUP_S3_SECRET_KEY=" + s3.SecretKey,
		"CASEVAULT_BACKUP_RECIPIENTS=" + id.Recipient().String(), "CASEVAULT_BACKUP_IDENTITY_FILE=" + keyFile,
		"CASEVAULT_RETENTION_SCHEDULE=*/2 * * * * *", "CASEVAULT_BACKUP_SCHEDULE=@every 3s"}
	d1, d2 := t.TempDir(), t.TempDir()
	p1, tok := startAdmin(t, d1, env...)
	time.Sleep(1300 * time.Millisecond) // the replicas start at different moments
	p2 := start(t, d2, append(env, instanceKey(t, d1))...)
	seed(t, p1.api(), tok, "Ticks", 1<<10)

	// ticks reads both replicas' logs: per job and tick, which replicas
	// claimed it and which saw it run by another.
	type seen struct{ claimed, other []int }
	ticks := func() map[string]map[string]*seen {
		out := map[string]map[string]*seen{}
		for i, p := range []*proc{p1, p2} {
			for _, l := range strings.Split(p.stderr.String(), "\n") {
				var ev struct{ Msg, Job, Tick string }
				if json.Unmarshal([]byte(l), &ev) != nil || ev.Job == "" {
					continue
				}
				if out[ev.Job] == nil {
					out[ev.Job] = map[string]*seen{}
				}
				s := out[ev.Job][ev.Tick]
				if s == nil {
					s = &seen{}
					out[ev.Job][ev.Tick] = s
				}
				switch ev.Msg {
				case "scheduled job's tick claimed":
					s.claimed = append(s.claimed, i)
				case "scheduled job's tick run by another replica":
					s.other = append(s.other, i)
				}
			}
		}
		return out
	}
	// bothFired counts the ticks of a job that one replica ran and the
	// other saw run by it.
	bothFired := func(job string) int {
		n := 0
		for _, s := range ticks()[job] {
			if len(s.claimed) == 1 && len(s.other) == 1 && s.claimed[0] != s.other[0] {
				n++
			}
		}
		return n
	}
	testkit.Eventually(t, 90*time.Second, "3 shared ticks of the sweep and of the backup", func() bool {
		return bothFired("cron.retention") >= 3 && bothFired("cron.backup") >= 3
	})

	// The records, with the replicas still serving: audit events of the
	// scheduled sweeps (by tick) and the scheduled backup runs.
	var sweeps []string
	for _, b := range []string{p1.api(), p2.api()} {
		testkit.Eventually(t, 30*time.Second, "nothing pending in the audit chain", func() bool {
			code, ver := call(t, "GET", b+"/audit/verify", tok, nil)
			return code == 200 && ver["ok"] == true
		})
	}
	code, list := call(t, "GET", p2.api()+"/audit?action=retention.run&limit=500", tok, nil)
	if code != 200 {
		t.Fatalf("audit list: %d", code)
	}
	for _, it := range list["items"].([]any) {
		det, _ := it.(map[string]any)["detail"].(map[string]any)
		if det["scheduled"] == true {
			sweeps = append(sweeps, det["tick"].(string))
		}
	}
	code, bl := call(t, "GET", p1.api()+"/backups", tok, nil)
	if code != 200 {
		t.Fatalf("backups: %d %v", code, bl)
	}
	var backupStarts []time.Time
	for _, r := range bl["runs"].([]any) {
		run := r.(map[string]any)
		if run["kind"] == "backup" && run["origin"] == "schedule" {
			at, err := time.Parse(time.RFC3339Nano, run["started_at"].(string))
			if err != nil {
				t.Fatal(err)
			}
			backupStarts = append(backupStarts, at)
		}
	}
	stop(t, p1)
	stop(t, p2)

	all := ticks()
	for job, byTick := range all {
		for tick, s := range byTick {
			if len(s.claimed) > 1 {
				t.Errorf("%s tick %s claimed by replicas %v", job, tick, s.claimed)
			}
		}
	}
	// Every scheduled sweep in the audit log names a tick one replica
	// claimed, once.
	perTick := map[string]int{}
	for _, tick := range sweeps {
		perTick[tick]++
	}
	for tick, n := range perTick {
		s := all["cron.retention"][tick] // both RFC 3339 in UTC
		if n != 1 || s == nil || len(s.claimed) != 1 {
			t.Errorf("retention tick %s: %d audited sweeps, claims %v", tick, n, s)
		}
	}
	if len(perTick) < 3 {
		t.Errorf("%d scheduled sweeps audited, want at least 3: %v", len(perTick), sweeps)
	}
	// One scheduled backup per 3-second tick (a run starts within its
	// tick's second; a second run of a tick would share its slot).
	slots := map[int64]int{}
	for _, at := range backupStarts {
		slots[at.Unix()/3]++
	}
	for slot, n := range slots {
		if n != 1 {
			t.Errorf("backup tick %s: %d scheduled backups", time.Unix(slot*3, 0).UTC(), n)
		}
	}
	if len(slots) < 3 {
		t.Errorf("%d scheduled backups, want at least 3", len(slots))
	}
}
