package api_test

import (
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/casevault/casevault/api"
	"github.com/casevault/casevault/auth"
)

func TestBadInputIsRejectedWithoutSideEffects(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		agent := h.tokens[auth.RoleAgent]
		cust := h.mustCreate("/api/v1/customers", map[string]any{"name": "Bad Input"})
		cs := h.mustCreate("/api/v1/cases", map[string]any{"customer_id": cust["id"], "subject": "s", "channel": "web"})
		custID, caseID := cust["id"].(string), cs["id"].(string)
		contacts := "/api/v1/cases/" + caseID + "/contacts"
		okContact := func(mod func(m map[string]any)) map[string]any {
			m := map[string]any{"channel": "email", "direction": "inbound", "author": "x", "body": "hello"}
			mod(m)
			return m
		}
		big := strings.Repeat("a", 70<<10)
		admin, legal, backup := h.tokens[auth.RoleAdmin], h.tokens[auth.RoleLegal], h.tokens[auth.RoleBackup]
		cases := []struct {
			name, method, path string
			body               any
			status             int
			field              string
			token              string // default: agent
		}{
			{"malformed JSON", "POST", "/api/v1/customers", `{"name":`, 400, "", ""},
			{"not an object", "POST", "/api/v1/customers", `["name"]`, 400, "", ""},
			{"trailing data", "POST", "/api/v1/customers", `{"name":"a"} {"name":"b"}`, 400, "", ""},
			{"empty body", "POST", "/api/v1/customers", ``, 400, "", ""},
			{"invalid UTF-8", "POST", "/api/v1/customers", "{\"name\":\"\xff\xfe\"}", 422, "name", ""},
			{"unknown field", "POST", "/api/v1/customers", `{"name":"a","nickname":"b"}`, 422, "nickname", ""},
			{"wrong type", "POST", "/api/v1/customers", `{"name":5}`, 422, "name", ""},
			{"wrong nested type", "POST", "/api/v1/customers", `{"name":"a","consents":{"location":"yes"}}`, 422, "consents.location", ""},
			{"missing name", "POST", "/api/v1/customers", `{}`, 422, "name", ""},
			{"NUL in name", "POST", "/api/v1/customers", `{"name":"a\u0000b"}`, 422, "name", ""},
			{"over-long name", "POST", "/api/v1/customers", map[string]any{"name": strings.Repeat("n", 201)}, 422, "name", ""},
			{"body over limit", "POST", "/api/v1/customers", `{"name":"` + big + `"}`, 413, "", ""},
			{"unknown channel", "POST", "/api/v1/cases", map[string]any{"customer_id": custID, "subject": "s", "channel": "fax"}, 422, "channel", ""},
			{"unknown priority", "POST", "/api/v1/cases", map[string]any{"customer_id": custID, "subject": "s", "channel": "web", "priority": "meh"}, 422, "priority", ""},
			{"missing subject", "POST", "/api/v1/cases", map[string]any{"customer_id": custID, "channel": "web"}, 422, "subject", ""},
			{"over-long subject", "POST", "/api/v1/cases", map[string]any{"customer_id": custID, "channel": "web", "subject": strings.Repeat("s", 501)}, 422, "subject", ""},
			{"customer does not exist", "POST", "/api/v1/cases", map[string]any{"customer_id": "0190a0a0-0000-7000-8000-000000000000", "subject": "s", "channel": "web"}, 422, "customer_id", ""},
			{"bad tag", "POST", "/api/v1/cases", map[string]any{"customer_id": custID, "subject": "s", "channel": "web", "tags": []string{"a b"}}, 422, "tags[0]", ""},
			{"tags wrong type", "POST", "/api/v1/cases", `{"customer_id":"x","subject":"s","channel":"web","tags":"vip"}`, 422, "tags", ""},
			{"unknown status", "PATCH", "/api/v1/cases/" + caseID, map[string]any{"status": "done"}, 422, "status", ""},
			{"empty subject patch", "PATCH", "/api/v1/cases/" + caseID, map[string]any{"subject": "  "}, 422, "subject", ""},
			{"unknown direction", "POST", contacts, okContact(func(m map[string]any) { m["direction"] = "sideways" }), 422, "direction", ""},
			{"unknown purpose", "POST", contacts, okContact(func(m map[string]any) { m["purposes"] = []string{"marketing"} }), 422, "purposes[0]", ""},
			{"only purpose without its consent", "POST", contacts, okContact(func(m map[string]any) { m["purposes"] = []string{"personalization"} }), 422, "purposes[0]", ""},
			{"unknown category", "POST", contacts, okContact(func(m map[string]any) { m["categories"] = []string{"dna"} }), 422, "categories[0]", ""},
			{"missing body", "POST", contacts, okContact(func(m map[string]any) { delete(m, "body") }), 422, "body", ""},
			{"bad occurred_at", "POST", contacts, okContact(func(m map[string]any) { m["occurred_at"] = "yesterday" }), 422, "occurred_at", ""},
			{"future occurred_at", "POST", contacts, okContact(func(m map[string]any) { m["occurred_at"] = "2999-01-01T00:00:00Z" }), 422, "occurred_at", ""},
			{"latitude out of range", "POST", contacts, okContact(func(m map[string]any) { m["location"] = map[string]any{"lat": 91, "lon": 0} }), 422, "location.lat", ""},
			{"contact on missing case", "POST", "/api/v1/cases/nope/contacts", okContact(func(map[string]any) {}), 404, "", ""},
			{"missing case", "GET", "/api/v1/cases/0190a0a0-0000-7000-8000-000000000000", nil, 404, "", ""},
			{"missing customer patch", "PATCH", "/api/v1/customers/nope", map[string]any{"name": "x"}, 404, "", ""},
			{"missing contact", "GET", "/api/v1/contacts/nope", nil, 404, "", ""},
			{"limit zero", "GET", "/api/v1/cases?limit=0", nil, 422, "limit", ""},
			{"limit too big", "GET", "/api/v1/cases?limit=501", nil, 422, "limit", ""},
			{"garbage cursor", "GET", "/api/v1/cases?cursor=%%%", nil, 422, "cursor", ""},
			{"unknown status filter", "GET", "/api/v1/cases?status=zzz", nil, 422, "status", ""},
			{"SQL in filter", "GET", "/api/v1/cases?assignee=x'%20OR%20'1'='1", nil, 200, "", ""},
			{"token role unknown", "POST", "/api/v1/tokens", map[string]any{"name": "n", "role": "root"}, 403, "", ""},

			// The same answer on both engines: NUL and invalid UTF-8 in any
			// text field or query parameter are 422 naming it, before the
			// store sees them (PostgreSQL cannot store a NUL; SQLite can,
			// which made SQLite backups unrestorable into PostgreSQL).
			{"NUL in contact body", "POST", contacts, `{"channel":"email","direction":"inbound","author":"x","body":"a\u0000b"}`, 422, "body", ""},
			{"NUL in contact author", "POST", contacts, `{"channel":"email","direction":"inbound","author":"x\u0000","body":"b"}`, 422, "author", ""},
			{"invalid UTF-8 in contact body", "POST", contacts, "{\"channel\":\"email\",\"direction\":\"inbound\",\"author\":\"x\",\"body\":\"a\xffb\"}", 422, "body", ""},
			{"NUL in nested label", "POST", contacts, `{"channel":"email","direction":"inbound","author":"x","body":"b","location":{"lat":1,"lon":2,"label":"\u0000"}}`, 422, "location.label", ""},
			{"NUL in a tag", "POST", "/api/v1/cases", `{"customer_id":"` + custID + `","subject":"s","channel":"web","tags":["ok","a\u0000"]}`, 422, "tags[1]", ""},
			{"NUL in case subject patch", "PATCH", "/api/v1/cases/" + caseID, `{"subject":"a\u0000"}`, 422, "subject", ""},
			{"NUL in token name", "POST", "/api/v1/tokens", `{"name":"a\u0000b","role":"agent"}`, 422, "name", admin},
			{"invalid UTF-8 in token name", "POST", "/api/v1/tokens", "{\"name\":\"a\xc3\",\"role\":\"agent\"}", 422, "name", admin},
			{"junk cursor", "GET", "/api/v1/cases?cursor=garbage", nil, 422, "cursor", ""},
			{"junk cursor on a customer's cases", "GET", "/api/v1/customers/" + custID + "/cases?cursor=garbage", nil, 422, "cursor", ""},
			{"junk cursor on the audit trail", "GET", "/api/v1/audit?cursor=garbage", nil, 422, "cursor", legal},
			{"seq-order audit cursor on a time-bounded list", "GET", "/api/v1/audit?from=2026-01-01&cursor=YTEuNQ", nil, 422, "cursor", legal},      // "a1.5"
			{"time-order audit cursor on an unbounded list", "GET", "/api/v1/audit?cursor=dDEuMTcwMDAwMDAwMDAwMDAwMC41", nil, 422, "cursor", legal}, // "t1.1700000000000000.5"
			{"junk cursor on search", "GET", "/api/v1/search?q=x&cursor=garbage", nil, 422, "cursor", ""},
			{"unknown search field", "GET", "/api/v1/search?q=subject%3Arefund", nil, 422, "q", ""},
			{"negated unknown search field", "GET", "/api/v1/search?q=refund+-Foo%3Abar", nil, 422, "q", ""},
			{"unbalanced parenthesis in search", "GET", "/api/v1/search?q=%28refund+OR+chargeback", nil, 422, "q", ""},
			{"dangling OR in search", "GET", "/api/v1/search?q=refund+OR", nil, 422, "q", ""},
			{"junk cursor on tokens", "GET", "/api/v1/tokens?cursor=garbage", nil, 422, "cursor", admin},
			{"junk cursor on holds", "GET", "/api/v1/holds?cursor=garbage", nil, 422, "cursor", legal},
			{"empty cursor is the first page", "GET", "/api/v1/holds?cursor=", nil, 200, "", legal},
			{"junk cursor on backups", "GET", "/api/v1/backups?cursor=garbage", nil, 422, "cursor", backup},
			{"NUL in assignee filter", "GET", "/api/v1/cases?assignee=a%00b", nil, 422, "assignee", ""},
			{"invalid UTF-8 customer filter", "GET", "/api/v1/cases?customer_id=%ff", nil, 422, "customer_id", ""},
			{"invalid UTF-8 tag filter", "GET", "/api/v1/cases?tag=%c3", nil, 422, "tag", ""},
			{"invalid UTF-8 audit actor", "GET", "/api/v1/audit?actor=%ff", nil, 422, "actor", legal},
			{"NUL in audit target", "GET", "/api/v1/audit?target=case:%00", nil, 422, "target", legal},
			{"unknown audit outcome", "GET", "/api/v1/audit?outcome=bogus", nil, 422, "outcome", legal},
			{"audit from not a time", "GET", "/api/v1/audit?from=30/11/2026", nil, 422, "from", legal},
			{"audit to not a time", "GET", "/api/v1/audit?to=yesterday", nil, 422, "to", legal},
			// The zero time is "no bound": a bound at or before it would vanish.
			{"audit from at the zero time", "GET", "/api/v1/audit?from=0001-01-01", nil, 422, "from", legal},
			{"search from before year 1", "GET", "/api/v1/search?from=0000-06-01", nil, 422, "from", ""},
			// As status:, in q: values named, none given.
			{"search status filter of commas", "GET", "/api/v1/search?q=x&status=,", nil, 422, "status", ""},
			{"search tag filter of commas", "GET", "/api/v1/search?q=x&tag=%20,%20", nil, 422, "tag", ""},
			{"search q before: at the zero time", "GET", "/api/v1/search?q=" + url.QueryEscape("refund before:0001-01-01T00:00:00Z"), nil, 422, "q", ""},
			{"search q age past year 1", "GET", "/api/v1/search?q=" + url.QueryEscape("after:36600y"), nil, 422, "q", ""},
			{"NUL in attachment filename", "POST", "/api/v1/contacts/nope/attachments?filename=a%00.txt", "bytes", 422, "filename", ""},
			{"URL over the limit", "GET", "/api/v1/search?q=" + strings.Repeat("<", 1000) + "&x=" + strings.Repeat("<", 2800), nil, 414, "", ""},
			{"URL over the limit by a byte", "GET", "/api/v1/cases?tag=" + strings.Repeat("a", api.MaxURLBytes-len("/api/v1/cases?tag=")+1), nil, 414, "", ""},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				h := h.with(t)
				before := h.counts()
				tok := agent
				if tc.token != "" {
					tok = tc.token
				}
				r := h.do(tc.method, tc.path, tok, tc.body)
				if r.status != tc.status {
					t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
				}
				if r.status >= 400 && r.header.Get("Content-Type") != "application/problem+json" {
					t.Fatalf("content type %q", r.header.Get("Content-Type"))
				}
				if tc.field != "" {
					p := r.json(t)
					errs, _ := p["errors"].([]any)
					found := false
					for _, e := range errs {
						if e.(map[string]any)["field"] == tc.field {
							found = true
						}
					}
					if !found {
						t.Fatalf("problem does not name field %q: %s", tc.field, r.body)
					}
				}
				if tc.method == "GET" && tc.status == 200 {
					if n := len(r.json(t)["items"].([]any)); n != 0 {
						t.Fatalf("injection matched %d cases", n)
					}
				}
				if after := h.counts(); !reflect.DeepEqual(before, after) {
					t.Fatalf("bad input changed data: %v -> %v", before, after)
				}
			})
		}

		// A chunked body (no Content-Length) over the limit is cut off too.
		req, _ := http.NewRequest("POST", h.liveURL(t)+"/api/v1/customers", io.MultiReader(strings.NewReader(`{"name":"`), strings.NewReader(big), strings.NewReader(`"}`)))
		req.ContentLength = -1
		req.TransferEncoding = []string{"chunked"}
		req.Header.Set("Authorization", "Bearer "+agent)
		req.Header.Set("Content-Type", "application/json")
		res, err := h.live(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 413 {
			t.Fatalf("chunked over-limit body = %d, want 413", res.StatusCode)
		}
		// The admin token-creation path validates the role too.
		r := h.do("POST", "/api/v1/tokens", h.tokens[auth.RoleAdmin], map[string]any{"name": "n", "role": "root"})
		if r.status != 422 {
			t.Fatalf("unknown role = %d", r.status)
		}
	})
}

// A chunked JSON body that fails validation must not hang the connection
// (a second read of a finished chunked stream would wait for the next request).
func TestChunkedInvalidBodyThenNextRequest(t *testing.T) {
	h := newHarness(t, "sqlite")
	for i := 0; i < 3; i++ {
		req, _ := http.NewRequest("POST", h.base+"/api/v1/customers", io.MultiReader(strings.NewReader(`{"name":`), strings.NewReader(`""}`)))
		req.ContentLength = -1
		req.Header.Set("Authorization", "Bearer "+h.tokens[auth.RoleAgent])
		req.Header.Set("Content-Type", "application/json")
		res, err := h.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 422 {
			t.Fatalf("round %d: %d, want 422", i, res.StatusCode)
		}
	}
}
