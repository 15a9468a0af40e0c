package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/sqldb"
	"github.com/casevault/casevault/sqldb/sqldbtest"
	"github.com/casevault/casevault/testkit"
)

// pipelined is one request written back to back with others on a single
// keep-alive connection.
type pipelined struct {
	method, path, rid, body string
}

// pipeline writes every request in one go on one connection, then reads the
// responses in order. Fiber reuses the connection's buffers for each next
// request, so anything a handler kept from the previous one changes under it.
func pipeline(t *testing.T, addr, token string, reqs []pipelined) []*http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var buf bytes.Buffer
	for _, r := range reqs {
		fmt.Fprintf(&buf, "%s %s HTTP/1.1\r\nHost: casevault\r\nAuthorization: Bearer %s\r\nX-Request-Id: %s\r\n", r.method, r.path, token, r.rid)
		if r.body != "" {
			fmt.Fprintf(&buf, "Content-Type: application/json\r\nContent-Length: %d\r\n", len(r.body))
		}
		buf.WriteString("\r\n" + r.body)
	}
	if err := conn.SetDeadline(time.Now().Add(60 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(conn)
	out := make([]*http.Response, 0, len(reqs))
	for _, r := range reqs {
		req, _ := http.NewRequest(r.method, "http://"+addr+r.path, nil)
		res, err := http.ReadResponse(rd, req)
		if err != nil {
			t.Fatalf("response to %s %s (%s): %v", r.method, r.path, r.rid, err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		res.Body = io.NopCloser(bytes.NewReader(body))
		out = append(out, res)
	}
	return out
}

// The defect: a backup's audit event, appended after its handler returned,
// carried the request id of a later request on the same connection and
// sometimes no longer matched its own hash; /metrics stored label values that
// mutated into "POS" and "GETETE" and then answered 500 for ever.
func TestPipelinedRequestsKeepAuditChainAndMetrics(t *testing.T) {
	engines := []struct {
		name string
		env  func(t *testing.T) []string
	}{
		{"sqlite", func(t *testing.T) []string { return nil }},
		{"postgres", func(t *testing.T) []string {
			return []string{"CASEVAULT_DATABASE_URL=" + sqldbtest.Config(t, sqldb.Postgres).URL}
		}},
	}
	for _, eng := range engines {
		t.Run(eng.name, func(t *testing.T) {
			dir := t.TempDir()
			p, tok := startAdmin(t, dir, eng.env(t)...)
			base := "http://" + p.addr

			_, cust := call(t, "POST", base+"/api/v1/customers", tok, map[string]any{"name": "Pipeline"})
			_, cs := call(t, "POST", base+"/api/v1/cases", tok, map[string]any{"customer_id": cust["id"], "subject": "pipelined", "channel": "chat"})
			caseID, _ := cs["id"].(string)
			if caseID == "" {
				t.Fatalf("case not created: %v", cs)
			}

			backupRID := map[string]string{} // backup id -> request id that started it
			sent := map[string]bool{}
			for round := 0; round < 6; round++ {
				// Request ids of different lengths, so a later request's bytes
				// land where an earlier one's id was.
				bk := fmt.Sprintf("bk-%d-%s", round, strings.Repeat("A", 40+round*7))
				reqs := []pipelined{
					{method: "POST", path: "/api/v1/backups", rid: bk},
					{method: "GET", path: "/api/v1/cases?limit=5", rid: fmt.Sprintf("g-%d", round)},
					{method: "POST", path: "/api/v1/cases/" + caseID + "/contacts", rid: fmt.Sprintf("c-%d-xyz", round),
						body: `{"channel":"chat","direction":"inbound","author":"p","body":"pipelined contact ` + fmt.Sprint(round) + `"}`},
					{method: "DELETE", path: "/api/v1/contacts/00000000-0000-0000-0000-000000000000", rid: fmt.Sprintf("d-%d", round)},
					{method: "PUT", path: "/api/v1/contacts/00000000-0000-0000-0000-000000000000", rid: fmt.Sprintf("u-%d", round)},
					{method: "PATCH", path: "/api/v1/cases/" + caseID, rid: fmt.Sprintf("pa-%d-%s", round, strings.Repeat("B", 90)),
						body: fmt.Sprintf(`{"priority":"%s"}`, []string{"low", "normal", "high"}[round%3])},
					{method: "POST", path: "/api/v1/retention/runs", rid: fmt.Sprintf("rr-%d", round), body: `{"dry_run":true}`},
					{method: "POST", path: "/api/v1/search/reindex", rid: fmt.Sprintf("ri-%d", round)},
					{method: "GET", path: "/api/v1/tokens", rid: fmt.Sprintf("t-%d-%s", round, strings.Repeat("C", 100))},
				}
				for _, r := range reqs {
					sent[r.rid] = true
				}
				res := pipeline(t, p.addr, tok, reqs)
				for i, r := range res {
					if got := r.Header.Get("X-Request-Id"); got != reqs[i].rid {
						t.Errorf("%s %s: X-Request-Id %q, want %q", reqs[i].method, reqs[i].path, got, reqs[i].rid)
					}
					if r.StatusCode >= 500 {
						b, _ := io.ReadAll(r.Body)
						t.Errorf("%s %s: %d %s", reqs[i].method, reqs[i].path, r.StatusCode, b)
					}
				}
				if res[0].StatusCode == 202 {
					var m map[string]any
					_ = json.NewDecoder(res[0].Body).Decode(&m)
					id, _ := m["id"].(string)
					backupRID[id] = bk
					waitBackup(t, base, tok, id)
				}
			}
			if len(backupRID) == 0 {
				t.Fatal("no backup started through the pipeline")
			}

			// A backup's event is appended as its run ends, after the
			// manifest the wait above saw: wait for all of them.
			var events []map[string]any
			testkit.Eventually(t, 30*time.Second, "a backup.run event per backup", func() bool {
				events = auditEvents(t, base, tok)
				n := 0
				for _, ev := range events {
					if ev["action"] == "backup.run" {
						n++
					}
				}
				return n >= len(backupRID)
			})

			// Every event's request id is one this test sent, and each
			// backup's event carries the id of the request that started it.
			runs := 0
			for _, ev := range events {
				rid, _ := ev["request_id"].(string)
				if rid != "" && !sent[rid] && !uuidRE.MatchString(rid) {
					t.Errorf("event %v (%v) has request id %q, which no request sent", ev["seq"], ev["action"], rid)
				}
				if ev["action"] == "backup.run" {
					runs++
					id, _ := ev["target_id"].(string)
					if want := backupRID[id]; rid != want {
						t.Errorf("backup.run for %s: request id %q, want %q", id, rid, want)
					}
				}
			}
			if runs != len(backupRID) {
				t.Errorf("%d backup.run events, want %d", runs, len(backupRID))
			}
			code, ver := call(t, "GET", base+"/api/v1/audit/verify", tok, nil)
			if code != 200 || ver["ok"] != true {
				t.Fatalf("audit verify: %d %v", code, ver)
			}

			res, err := http.Get(base + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				t.Fatalf("/metrics: %d %s", res.StatusCode, body)
			}
			for _, m := range regexp.MustCompile(`method="([^"]*)"`).FindAllStringSubmatch(string(body), -1) {
				switch m[1] {
				case "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD":
				default:
					t.Errorf("/metrics has method label %q", m[1])
				}
			}
		})
	}
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// A client's X-Request-Id is echoed and recorded only when it is a bounded
// safe token; anything else is replaced by a generated id.
func TestClientRequestIDIsBounded(t *testing.T) {
	dir := t.TempDir()
	p, tok := startAdmin(t, dir)
	cases := []struct {
		name, rid string
		kept      bool
	}{
		{"token", "req-1.2_3:4", true},
		{"128 chars", strings.Repeat("a", 128), true},
		{"129 chars", strings.Repeat("a", 129), false},
		{"1 KiB", strings.Repeat("x", 1024), false},
		{"space", "a b", false},
		{"quote", `a"b`, false},
		{"html", "<script>", false},
		{"slash", "a/b", false},
		{"non-ascii", "请求", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := pipeline(t, p.addr, tok, []pipelined{{method: "GET", path: "/api/v1/tokens", rid: c.rid}})
			got := res[0].Header.Get("X-Request-Id")
			if c.kept && got != c.rid {
				t.Fatalf("X-Request-Id %q, want the client's %q", got, c.rid)
			}
			if !c.kept && !uuidRE.MatchString(got) {
				t.Fatalf("X-Request-Id %q, want a generated UUID", got)
			}
		})
	}
	for _, ev := range auditEvents(t, "http://"+p.addr, tok) {
		rid, _ := ev["request_id"].(string)
		if len(rid) > 128 {
			t.Errorf("event %v stored a %d-byte request id", ev["seq"], len(rid))
		}
	}
}

func waitBackup(t *testing.T, base, tok, id string) {
	t.Helper()
	testkit.Eventually(t, 60*time.Second, "backup "+id+" to finish", func() bool {
		code, b := call(t, "GET", base+"/api/v1/backups/"+id, tok, nil)
		// A complete backup answers with its manifest summary (no status).
		st, _ := b["status"].(string)
		return code == 200 && st != "running"
	})
}

// auditEvents pages through the whole audit trail.
func auditEvents(t *testing.T, base, tok string) []map[string]any {
	t.Helper()
	var all []map[string]any
	cursor := ""
	for {
		url := base + "/api/v1/audit?limit=500"
		if cursor != "" {
			url += "&cursor=" + cursor
		}
		code, page := call(t, "GET", url, tok, nil)
		if code != 200 {
			t.Fatalf("audit list: %d %v", code, page)
		}
		items, _ := page["items"].([]any)
		for _, it := range items {
			m, _ := it.(map[string]any)
			all = append(all, m)
		}
		next, _ := page["next_cursor"].(string)
		if next == "" {
			return all
		}
		cursor = next
	}
}
