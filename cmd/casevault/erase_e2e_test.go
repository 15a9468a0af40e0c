package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestCustomerEraseKill9IsAllOrNothing: `customer erase` killed with
// SIGKILL at growing delays leaves the customer either whole (profile,
// every contact, a readable attachment) or erased (410, case 404), never
// in between; the last attempt, not killed, erases.
func TestCustomerEraseKill9IsAllOrNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	p, tok := startAdmin(t, dir)
	s := seed(t, p.api(), tok, "Kill9", 1<<16)
	const contacts = 2 + 150
	for i := 2; i < contacts; i++ {
		addContact(t, p.api(), tok, s.caseID, "chat", fmt.Sprintf("message %d", i))
	}
	stop(t, p)

	erased := false
	for _, delay := range []time.Duration{0, 20 * time.Millisecond, 80 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond, 900 * time.Millisecond, 1400 * time.Millisecond, -1} {
		cmd := exec.Command(binary(t), "customer", "erase", s.customer, "--reason", "kill -9 test", "--force", "--data-dir", dir)
		if delay < 0 {
			// Not killed: it erases, or, erased already, is refused (13).
			out, err := cmd.CombinedOutput()
			if want := map[bool]int{false: exitOK, true: exitRefused}[erased]; cmd.ProcessState.ExitCode() != want {
				t.Fatalf("erase (erased already: %v): %v: %s", erased, err, out)
			}
		} else {
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(delay)
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}

		p, _ = startAdmin(t, dir)
		code, _ := call(t, "GET", p.api()+"/customers/"+s.customer, tok, nil)
		caseCode, cs := call(t, "GET", p.api()+"/cases/"+s.caseID, tok, nil)
		attCode, _ := call(t, "GET", p.api()+"/attachments/"+s.attachment, tok, nil)
		stop(t, p)
		t.Logf("kill at %v: customer %d, case %d, attachment %d", delay, code, caseCode, attCode)
		switch {
		case code == 200:
			if erased {
				t.Fatalf("after %v: the erased customer is back", delay)
			}
			items, _ := cs["contacts"].([]any)
			if caseCode != 200 || len(items) != contacts || attCode != 200 {
				t.Fatalf("after a kill at %v: customer there but case %d with %d contacts (want %d), attachment %d: a partial erasure", delay, caseCode, len(items), contacts, attCode)
			}
		case code == 410:
			erased = true
			if caseCode != 404 || attCode != 404 {
				t.Fatalf("after %v: customer erased but case %d, attachment %d", delay, caseCode, attCode)
			}
		default:
			t.Fatalf("after %v: GET customer = %d", delay, code)
		}
	}
	if !erased {
		t.Fatal("the unkilled erasure did not erase")
	}
}
