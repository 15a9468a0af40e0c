package blobtest

import (
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

// listeningPort finds a listener of this process by its socket, and
// nothing for a process that listens on no port.
func TestListeningPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, want, _ := net.SplitHostPort(ln.Addr().String())

	port, err := listeningPort(os.Getpid())
	if err != nil || port != want {
		t.Fatalf("listeningPort(self) = %q, %v; want %s", port, err, want)
	}

	ln.Close()
	if port, err := listeningPort(os.Getpid()); err == nil {
		t.Fatalf("listeningPort after the listener closed = %q, want an error", port)
	}
}

// The private server answers as versitygw on the endpoint it reports, and
// a restart after a kill comes back on that same endpoint.
func TestVersityGWOwnsItsEndpoint(t *testing.T) {
	s := StartVersityGW(t)
	isVersity := func(when string) {
		t.Helper()
		res, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + s.Endpoint + "/")
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		res.Body.Close()
		if got := res.Header.Get("Server"); got != "VERSITYGW" {
			t.Fatalf("%s: %s answered as %q, not versitygw", when, s.Endpoint, got)
		}
	}
	isVersity("after start")
	endpoint := s.Endpoint

	s.Kill()
	if _, err := net.DialTimeout("tcp", endpoint, time.Second); err == nil {
		t.Fatal("something still answers on the killed server's endpoint")
	}
	s.Restart(t)
	if s.Endpoint != endpoint {
		t.Fatalf("restarted on %s, want %s", s.Endpoint, endpoint)
	}
	isVersity("after a restart")
}
