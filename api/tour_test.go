package api_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/api/apiclient"
	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/testkit"
)

// TestGeneratedClientRunsTheTour runs README's "A short tour" through the
// client oapi-codegen generated from the OpenAPI document (api/apiclient),
// against a real server on a loopback port, with every exchange checked
// against the document by the harness transport. A document a client could
// not be generated from, or one that says something else than the server
// does, fails here.
func TestGeneratedClientRunsTheTour(t *testing.T) {
	h := newHarness(t, "sqlite")
	ctx := context.Background()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = h.ix.Run(runCtx)
	}()
	t.Cleanup(func() {
		stop()
		<-done
	})
	token := h.tokens[auth.RoleAdmin]
	c, err := apiclient.NewClientWithResponses(h.base, apiclient.WithHTTPClient(h.client),
		apiclient.WithRequestEditorFn(func(_ context.Context, req *http.Request) error {
			req.Header.Set("Authorization", "Bearer "+token)
			return nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	str := func(s string) *string { return &s }

	// A customer who did not consent to location tracking.
	no := false
	cust, err := c.PostCustomersWithResponse(ctx, apiclient.NewCustomer{Name: str("Li Wei"), Email: str("li@example.com"),
		Consents: &apiclient.ConsentsInput{Location: &no}})
	if err != nil || cust.JSON201 == nil {
		t.Fatalf("create customer: %v %s", err, body(cust))
	}

	// A case, then a contact: the card number is masked, the location
	// dropped, retain_until set.
	channel := apiclient.NewCaseChannel("phone")
	cs, err := c.PostCasesWithResponse(ctx, apiclient.NewCase{CustomerId: &cust.JSON201.Id, Subject: str("Double charge"), Channel: &channel, Tags: &[]string{"vip"}})
	if err != nil || cs.JSON201 == nil {
		t.Fatalf("create case: %v %s", err, body(cs))
	}
	purposes := []apiclient.NewContactPurposes{"customer_service", "fraud_monitoring"}
	cch, dir := apiclient.NewContactChannel("phone"), apiclient.NewContactDirection("inbound")
	lat, lon := 31.2, 121.5
	ct, err := c.PostCasesByIdContactsWithResponse(ctx, cs.JSON201.Id, apiclient.NewContact{Channel: &cch, Direction: &dir, Author: str("Li Wei"),
		Body: str("My card 4111 1111 1111 1111 was charged twice. 我被重复扣款了"), Purposes: &purposes,
		Location: &apiclient.LocationInput{Lat: &lat, Lon: &lon}})
	if err != nil || ct.JSON201 == nil {
		t.Fatalf("log contact: %v %s", err, body(ct))
	}
	if strings.Contains(ct.JSON201.Body, "4111 1111 1111 1111") || !ct.JSON201.LocationDropped || ct.JSON201.RetainUntil == nil {
		t.Errorf("contact = body %q, location_dropped %v, retain_until %v", ct.JSON201.Body, ct.JSON201.LocationDropped, ct.JSON201.RetainUntil)
	}

	// Attach a file (raw body, SHA-256 checked) and read a range of it.
	read, err := c.GetCasesByIdWithResponse(ctx, cs.JSON201.Id)
	if err != nil || read.JSON200 == nil || read.JSON200.Contacts == nil || len(*read.JSON200.Contacts) != 1 {
		t.Fatalf("read case: %v %s", err, body(read))
	}
	contactID := (*read.JSON200.Contacts)[0].Id
	note := "call recording placeholder\n"
	sum := sha256.Sum256([]byte(note))
	att, err := c.PostContactsByIdAttachmentsWithBodyWithResponse(ctx, contactID, &apiclient.PostContactsByIdAttachmentsParams{Filename: str("note.txt")},
		"text/plain", strings.NewReader(note), func(_ context.Context, req *http.Request) error {
			req.Header.Set("X-Content-SHA256", hex.EncodeToString(sum[:]))
			return nil
		})
	if err != nil || att.JSON201 == nil {
		t.Fatalf("attach: %v %s", err, body(att))
	}
	dl, err := c.GetAttachmentsById(ctx, att.JSON201.Id, func(_ context.Context, req *http.Request) error {
		req.Header.Set("Range", "bytes=0-3")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(dl.Body)
	dl.Body.Close()
	if dl.StatusCode != http.StatusPartialContent || string(got) != "call" {
		t.Errorf("ranged download = %d %q", dl.StatusCode, got)
	}

	// Search: typos, Chinese with a field term, the index status.
	var total int64
	testkit.Eventually(t, 15*time.Second, "the contact to be searchable", func() bool {
		s, err := c.GetSearchWithResponse(ctx, &apiclient.GetSearchParams{Q: str("charjed")})
		if err != nil || s.JSON200 == nil {
			return false
		}
		total = s.JSON200.Total
		return total >= 1
	})
	zh, err := c.GetSearchWithResponse(ctx, &apiclient.GetSearchParams{Q: str("扣款 tag:vip")})
	if err != nil || zh.JSON200 == nil || zh.JSON200.Total != 1 || zh.JSON200.Hits == nil || !strings.Contains((*zh.JSON200.Hits)[0].Snippet, "<mark>") {
		t.Errorf("Chinese search: %v %s", err, body(zh))
	}
	if st, err := c.GetSearchStatusWithResponse(ctx); err != nil || st.JSON200 == nil {
		t.Errorf("search status: %v %s", err, body(st))
	}

	// A token for an agent; the audit trail and its verification.
	tok, err := c.PostTokensWithResponse(ctx, apiclient.TokenInput{Name: str("alice"), Role: str("agent")})
	if err != nil || tok.JSON201 == nil || tok.JSON201.Token == "" {
		t.Fatalf("create token: %v %s", err, body(tok))
	}
	// (The harness's store records no write events of its own, so the
	// tour's contact.* becomes the read of the case it made.)
	ev, err := c.GetAuditWithResponse(ctx, &apiclient.GetAuditParams{Action: str("case.*")})
	if err != nil || ev.JSON200 == nil || ev.JSON200.Items == nil || len(*ev.JSON200.Items) == 0 || (*ev.JSON200.Items)[0].Action != "case.read" {
		t.Errorf("audit list: %v %s", err, body(ev))
	}
	v, err := c.GetAuditVerifyWithResponse(ctx)
	if err != nil || v.JSON200 == nil || !v.JSON200.Ok {
		t.Errorf("audit verify: %v %s", err, body(v))
	}
}

// body shows a generated response's raw body in a failure.
func body(r any) string {
	v := reflect.ValueOf(r)
	if !v.IsValid() || v.IsNil() {
		return "(no response)"
	}
	return string(v.Elem().FieldByName("Body").Bytes())
}
