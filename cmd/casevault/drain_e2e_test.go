package main

import (
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// SIGTERM during an upload: the request in flight completes with 201, then
// the process exits cleanly.
func TestSIGTERMDrainsInFlightRequests(t *testing.T) {
	dir := t.TempDir()
	p, tok := startAdmin(t, dir)
	base := p.api()
	_, contact := newContact(t, base, tok, "b")

	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", base+"/contacts/"+contact+"/attachments?filename=slow.txt", pr)
	req.Header.Set("Authorization", "Bearer "+tok)
	// The first half is more than the kernel's loopback buffers hold
	// (net.ipv4.tcp_rmem and tcp_wmem allow a few MiB each), so once it is
	// written the server is provably reading the body: the upload is in
	// flight. (A request still sitting in the socket of an idle keep-alive
	// connection when SIGTERM arrives is not, and is rightly dropped.)
	const size = 80 << 20 // half of it exceeds tcp_rmem max (32 MiB here) plus tcp_wmem max (4 MiB)
	req.ContentLength = size
	type result struct {
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		res, err := (&http.Client{Timeout: 60 * time.Second}).Do(req)
		if err != nil {
			done <- result{0, err}
			return
		}
		res.Body.Close()
		done <- result{res.StatusCode, nil}
	}()
	chunk := []byte(strings.Repeat("x", 64<<10))
	sent := 0
	for ; sent < size/2; sent += len(chunk) {
		if _, err := pw.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the server is now shutting down with the upload in flight
	for ; sent < size; sent += len(chunk) {
		if _, err := pw.Write(chunk); err != nil {
			t.Fatalf("server dropped the in-flight upload: %v", err)
		}
	}
	pw.Close()
	r := <-done
	if r.err != nil || r.code != 201 {
		t.Fatalf("in-flight upload during SIGTERM: %d %v", r.code, r.err)
	}
	select {
	case <-p.exited:
		if err := p.err; err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.stderr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not exit after draining")
	}
}
