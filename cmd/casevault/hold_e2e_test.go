package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// The hold commands: a hold's report page by page and whole, as the API
// prints it, read-audited; reinstating a released hold within its grace,
// with the exit codes of a bad cursor or missing reason (2), an unknown
// hold (1) and a hold that cannot be reinstated (13).
func TestHoldCommands(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir)
	admin := adminToken(t, dir)
	base := "http://" + p.addr + "/api/v1"
	_, tok := call(t, "POST", base+"/tokens", admin, map[string]any{"name": "legal-cli", "role": "legal"})
	legal := tok["token"].(string)

	_, cust := call(t, "POST", base+"/customers", admin, map[string]any{"name": "Held"})
	_, cs := call(t, "POST", base+"/cases", admin, map[string]any{"customer_id": cust["id"], "subject": "dispute", "channel": "email"})
	caseID := cs["id"].(string)
	for _, body := range []string{"first", "second"} {
		if code, _ := call(t, "POST", base+"/cases/"+caseID+"/contacts", admin, map[string]any{"channel": "email", "direction": "inbound", "author": "c", "body": body}); code != 201 {
			t.Fatalf("contact: %d", code)
		}
	}
	code, hold := call(t, "POST", base+"/holds", legal, map[string]any{"matter": "M-CLI", "reason": "claim", "scope": map[string]any{"customer_ids": []any{cust["id"]}}})
	if code != 201 {
		t.Fatalf("place hold: %d %v", code, hold)
	}
	holdID := hold["id"].(string)
	if code, body := call(t, "POST", base+"/holds/"+holdID+"/release", legal, map[string]any{"reason": "settled"}); code != 200 {
		t.Fatalf("release: %d %v", code, body)
	}
	stop(t, p)

	var page struct {
		Items []struct {
			Kind string `json:"kind"`
		} `json:"items"`
		Next string `json:"next_cursor"`
	}
	decode := func(out string) {
		t.Helper()
		page.Items, page.Next = nil, ""
		if err := json.Unmarshal([]byte(out), &page); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	data := []string{"--data-dir", dir}
	decode(cvOK(t, nil, append([]string{"hold", "items", holdID, "--json"}, data...)...))
	if len(page.Items) != 3 || page.Items[0].Kind != "case" || page.Next != "" {
		t.Fatalf("report %+v, want the case and its 2 contacts", page)
	}
	decode(cvOK(t, nil, append([]string{"hold", "items", holdID, "--json", "--limit", "1", "--all"}, data...)...))
	if len(page.Items) != 3 {
		t.Fatalf("--all by pages of 1: %+v", page)
	}
	out := cvOK(t, nil, append([]string{"hold", "items", holdID, "--limit", "2"}, data...)...)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[2], "next: --cursor "+caseID+"/") {
		t.Fatalf("human output:\n%s", out)
	}

	tests := []struct {
		name string
		want int
		args []string
	}{
		{"bad cursor", exitUsage, []string{"hold", "items", holdID, "--cursor", "nope"}},
		{"unknown hold", exitError, []string{"hold", "items", "0197a000-0000-7000-8000-000000000000"}},
		{"reinstate without a reason", exitUsage, []string{"hold", "reinstate", holdID}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { cvCode(t, tt.want, nil, append(tt.args, data...)...) })
	}

	var h map[string]any
	if err := json.Unmarshal([]byte(cvOK(t, nil, append([]string{"hold", "reinstate", holdID, "--reason", "released by mistake", "--json"}, data...)...)), &h); err != nil {
		t.Fatal(err)
	}
	if h["active"] != true || h["reinstated_by"] == "" {
		t.Fatalf("reinstated hold %v", h)
	}
	cvCode(t, exitRefused, nil, append([]string{"hold", "reinstate", holdID, "--reason", "again"}, data...)...)
	if out := cvOK(t, nil, append([]string{"audit", "export"}, data...)...); !strings.Contains(out, "hold.reinstate") || !strings.Contains(out, "hold.report") {
		t.Fatalf("audit trail lacks hold.reinstate or hold.report")
	}
}
