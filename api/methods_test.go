package api_test

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
)

// Every GET route answers HEAD like GET: same status and content type, no
// body.
func TestHeadOnEveryGetRoute(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		admin := h.tokens[auth.RoleAdmin]
		cust := h.mustCreate("/api/v1/customers", map[string]any{"name": "Head"})["id"].(string)
		cs := h.mustCreate("/api/v1/cases", map[string]any{"customer_id": cust, "subject": "s", "channel": "web"})["id"].(string)
		ct := h.mustCreate("/api/v1/cases/"+cs+"/contacts", map[string]any{"channel": "web", "direction": "note", "author": "a", "body": "b"})["id"].(string)
		att := h.mustCreateRaw("/api/v1/contacts/"+ct+"/attachments?filename=x.txt", "hello")["id"].(string)
		hold := h.mustCreate("/api/v1/holds", map[string]any{"matter": "m", "reason": "r", "scope": map[string]any{"case_ids": []string{cs}}})["id"].(string)
		run := h.mustCreateStatus("/api/v1/retention/runs", map[string]any{"dry_run": true}, 202)["id"].(string)
		waitRuns(t, h)
		bm, err := h.backups.Backup(context.Background(), "test", cases.Actor{Name: "test"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		exp := h.completeExport(t, hold)
		// The case was the first: its number is 1.
		ids := map[string]string{"by-number": "1", "customers": cust, "cases": cs, "contacts": ct, "attachments": att, "holds": hold, "runs": run, "backups": bm.ID, "tokens": "x", "matters": "m", "exports": exp}
		n := 0
		for _, rt := range h.srv.App().GetRoutes(true) {
			if rt.Method != "GET" {
				continue
			}
			segs := strings.Split(rt.Path, "/")
			for i, s := range segs {
				if strings.HasPrefix(s, ":") {
					segs[i] = ids[segs[i-1]]
				}
			}
			path := strings.Join(segs, "/")
			if path == "/api/v1/customers" {
				path += "?email=head%40example.com" // a lookup needs what to look up (422 without)
			}
			get := h.do("GET", path, admin, nil)
			head := h.do("HEAD", path, admin, nil)
			n++
			if head.status != get.status || head.header.Get("Content-Type") != get.header.Get("Content-Type") {
				t.Errorf("HEAD %s = %d %q, GET = %d %q", path, head.status, head.header.Get("Content-Type"), get.status, get.header.Get("Content-Type"))
			}
			if get.status >= 400 {
				t.Errorf("GET %s = %d: %s", path, get.status, get.body)
			}
			if len(head.body) != 0 {
				t.Errorf("HEAD %s sent a body: %.100s", path, head.body)
			}
		}
		if n < 20 {
			t.Fatalf("only %d GET routes", n)
		}
		// HEAD needs a token like GET does.
		if r := h.do("HEAD", "/api/v1/customers/"+cust, "", nil); r.status != 401 {
			t.Fatalf("HEAD without a token = %d", r.status)
		}
	})
}

// A HEAD of a streamed (chunked) download leaves nothing after its
// headers on the connection: fasthttp ended the skipped stream with its
// trailer's CRLF, which a kept-alive client read as the start of the next
// response ("malformed HTTP response"), now and then.
func TestHeadOfAStreamLeavesNothingOnTheConnection(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		cust := h.mustCreate("/api/v1/customers", map[string]any{"name": "Stream"})["id"].(string)
		path := "/api/v1/customers/" + cust + "/export"
		if get := h.do("GET", path, h.tokens[auth.RoleAdmin], nil); get.status != 200 || get.header.Get("Content-Length") != "" {
			t.Fatalf("GET %s = %d, Content-Length %q: want a chunked 200", path, get.status, get.header.Get("Content-Length"))
		}

		conn, err := net.Dial("tcp", strings.TrimPrefix(h.base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		req := "HEAD " + path + " HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + h.tokens[auth.RoleAdmin] + "\r\n\r\n"
		if _, err := conn.Write([]byte(req)); err != nil {
			t.Fatal(err)
		}
		rd := bufio.NewReader(conn)
		if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(rd, &http.Request{Method: "HEAD"})
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("HEAD %s = %d", path, resp.StatusCode)
		}

		// Anything more within half a second belongs to no response.
		if err := conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if b, err := rd.Peek(1); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("after the HEAD response the connection held %q (%v), want nothing", b, err)
		}
	})
}

// Contacts are immutable, but who may learn that needs a token: without one
// every method is 401, like every other API route; with one, 405.
func TestContactWritesNeedATokenBeforeTheirMethodIsRefused(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		cust := h.mustCreate("/api/v1/customers", map[string]any{"name": "Immutable"})["id"].(string)
		cs := h.mustCreate("/api/v1/cases", map[string]any{"customer_id": cust, "subject": "s", "channel": "web"})["id"].(string)
		ct := h.mustCreate("/api/v1/cases/"+cs+"/contacts", map[string]any{"channel": "web", "direction": "note", "author": "a", "body": "b"})["id"].(string)
		for _, m := range []string{"PATCH", "PUT", "DELETE"} {
			for name, tok := range map[string]string{"no token": "", "garbage token": "cvt_garbage", "revoked token": h.revokd} {
				if r := h.do(m, "/api/v1/contacts/"+ct, tok, map[string]any{"body": "x"}); r.status != 401 {
					t.Errorf("%s with %s = %d, want 401", m, name, r.status)
				}
			}
			for _, role := range auth.Roles {
				r := h.do(m, "/api/v1/contacts/"+ct, h.tokens[role], map[string]any{"body": "x"})
				if r.status != 405 || r.header.Get("Allow") == "" {
					t.Errorf("%s as %s = %d (Allow %q), want 405", m, role, r.status, r.header.Get("Allow"))
				}
			}
		}
	})
}

// Listing tokens reveals who holds access; it is on record like any read.
func TestTokenListIsAudited(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		if r := h.do("GET", "/api/v1/tokens", h.tokens[auth.RoleAdmin], nil); r.status != 200 {
			t.Fatalf("list tokens = %d", r.status)
		}
		if got := strings.Join(h.audit.events, "\n"); !strings.Contains(got, "token.list:ok:") {
			t.Fatalf("token list not audited; have:\n%s", got)
		}
	})
}
