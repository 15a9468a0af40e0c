package api_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/testkit"
)

// runIndexer runs the harness's indexer until the test ends.
func runIndexer(t *testing.T, h *harness) {
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = h.ix.Run(ctx)
	}()
	t.Cleanup(func() {
		stop()
		<-done
	})
}

// TestCustomerSearch (issue 15 §4, issue 16 §2): GET /customers?q= and the
// customer: term of GET /search find customers by name (any script,
// typo-tolerant, Chinese by substring) through the index and by e-mail and
// phone exactly through the keyed hashes; free text finds a case by its
// customer's name; a rename is found by the new name; bad input is 422
// naming q; and after an erasure neither route finds anything of the
// customer (nor does the index hold their name).
func TestCustomerSearch(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		runIndexer(t, h)
		agent, sup := h.tokens[auth.RoleAgent], h.tokens[auth.RoleSupervisor]
		newCustomer := func(body map[string]any) string {
			return h.mustCreate("/api/v1/customers", body)["id"].(string)
		}
		chen := newCustomer(map[string]any{"name": "Chen Jing", "email": "Chen.Jing@Example.org", "phone": "+86 10 6552 9999"})
		wang := newCustomer(map[string]any{"name": "王小明", "email": "wang@example.cn"})
		olga := newCustomer(map[string]any{"name": "Ольга Смирнова"})
		caseless := newCustomer(map[string]any{"name": "Casper Caseless", "email": "casper@example.org"})
		caseOf := map[string]string{}
		for _, c := range []struct{ cust, subject, body string }{
			{chen, "Broken screen", "The screen cracked"},
			{wang, "退款", "我想申请退款"},
			{olga, "Late delivery", "The parcel is late"},
		} {
			cs := h.mustCreate("/api/v1/cases", map[string]any{"customer_id": c.cust, "subject": c.subject, "channel": "email"})["id"].(string)
			h.mustCreate("/api/v1/cases/"+cs+"/contacts", map[string]any{"channel": "email", "direction": "inbound", "author": "customer", "body": c.body})
			caseOf[c.cust] = cs
		}

		ids := func(r resp) []string {
			var out []string
			for _, it := range r.json(t)["items"].([]any) {
				out = append(out, it.(map[string]any)["id"].(string))
			}
			return out
		}
		hitCases := func(r resp) []string {
			var out []string
			for _, it := range r.json(t)["hits"].([]any) {
				out = append(out, it.(map[string]any)["case_id"].(string))
			}
			slices.Sort(out)
			return out
		}
		// eventually: the index follows the writes asynchronously
		expect := func(t *testing.T, path string, got func(resp) []string, want ...string) {
			t.Helper()
			slices.Sort(want)
			var last string
			ok := false
			testkit.Eventually(t, 10*time.Second, path, func() bool {
				r := h.do("GET", path, agent, nil)
				if r.status != 200 {
					last = fmt.Sprintf("status %d %s", r.status, r.body)
					return false
				}
				g := got(r)
				slices.Sort(g)
				last = fmt.Sprintf("%v", g)
				ok = slices.Equal(g, want)
				return ok
			})
			if !ok {
				t.Errorf("GET %s = %s, want %v", path, last, want)
			}
		}
		find := func(q string) string { return "/api/v1/customers?q=" + url.QueryEscape(q) }
		srch := func(q string) string { return "/api/v1/search?q=" + url.QueryEscape(q) }

		for _, c := range []struct {
			q    string
			want []string
		}{
			{"Chen", []string{chen}},
			{"chen jing", []string{chen}},
			{"小明", []string{wang}},
			{"Смирнов", []string{olga}}, // a typo
			{"  CHEN.JING@example.ORG ", []string{chen}},
			{"86-10-65529999", []string{chen}},
			{"casper@example.org", []string{caseless}}, // exact lookups reach caseless customers
			{"Casper", []string{caseless}},             // a customer without a case is found by name too
			{"Caspar", []string{caseless}},             // with a typo
			{"Screen", nil},                            // subjects and bodies are not names
			{"nobody@example.org", nil},
		} {
			t.Run("find "+c.q, func(t *testing.T) { expect(t, find(c.q), ids, c.want...) })
		}

		for _, c := range []struct {
			q    string
			want []string
		}{
			{"customer:Chen", []string{caseOf[chen]}},
			{`customer:"chen jing"`, []string{caseOf[chen]}},
			{"customer:chen.jing@example.org", []string{caseOf[chen]}},
			{`customer:"+86 10 6552 9999"`, []string{caseOf[chen]}},
			{"customer:" + olga, []string{caseOf[olga]}}, // an ID still works
			{"customer:小明", []string{caseOf[wang]}},
			{"customer:Chen OR customer:Смирнова", []string{caseOf[chen], caseOf[olga]}},
			{"-customer:Chen", []string{caseOf[wang], caseOf[olga]}},
			{"customer:Chen screen", []string{caseOf[chen]}},
			{"customer:Chen late", nil},
			{"customer:Screen", nil}, // a subject word is not a name
			{"customer:Casper", nil}, // a customer without a case has no case to find
			{"Смирнова", []string{caseOf[olga]}},
			{"王小明 退款", []string{caseOf[wang]}},
		} {
			t.Run("search "+c.q, func(t *testing.T) { expect(t, srch(c.q), hitCases, c.want...) })
		}
		t.Run("customer_id narrows customer:", func(t *testing.T) {
			expect(t, srch("customer:Chen")+"&customer_id="+olga, hitCases)
		})

		for _, c := range []struct{ name, path, says string }{
			{"empty q", "/api/v1/customers?q=", "q is empty"},
			{"blank q", "/api/v1/customers?q=%20%20", "q is empty"},
			{"q too long", find(strings.Repeat("a", 321)), "q too long"},
			{"q and email", find("Chen") + "&email=chen.jing%40example.org", "cannot be combined"},
			{"q and phone", find("Chen") + "&phone=861065529999", "cannot be combined"},
			{"q without letters", find("***"), "no letter or digit"},
			{"customer: too long", srch(`customer:"` + strings.Repeat("a", 330) + `"`), "longer than 320 bytes"},
		} {
			t.Run("bad "+c.name, func(t *testing.T) {
				r := h.do("GET", c.path, agent, nil)
				if r.status != 422 || !strings.Contains(string(r.body), c.says) || !strings.Contains(string(r.body), `"q"`) {
					t.Errorf("status %d %s, want 422 naming q and saying %q", r.status, r.body, c.says)
				}
			})
		}

		t.Run("pages", func(t *testing.T) {
			var lees []string
			for i := range 5 {
				lees = append(lees, newCustomer(map[string]any{"name": fmt.Sprintf("Leeroy %c", 'A'+i)}))
			}
			expect(t, find("Leeroy")+"&limit=500", ids, lees...)
			// limit 2: three pages, each customer once, best first
			var seen []string
			next := find("Leeroy") + "&limit=2"
			for page := 0; next != ""; page++ {
				if page > 3 {
					t.Fatalf("more than 3 pages of 5 customers at limit 2")
				}
				r := h.do("GET", next, agent, nil)
				if r.status != 200 {
					t.Fatalf("GET %s: %d %s", next, r.status, r.body)
				}
				body := r.json(t)
				got := ids(r)
				if want := min(2, 5-2*page); len(got) != want {
					t.Fatalf("page %d: %v, want %d customers", page, got, want)
				}
				seen = append(seen, got...)
				next = ""
				if c, ok := body["next_cursor"].(string); ok {
					next = find("Leeroy") + "&limit=2&cursor=" + url.QueryEscape(c)
				}
			}
			slices.Sort(seen)
			want := slices.Clone(lees)
			slices.Sort(want)
			if !slices.Equal(seen, want) {
				t.Errorf("pages held %v, want each of %v once", seen, want)
			}
			// the exact lookup pages the same way
			r := h.do("GET", "/api/v1/customers?email=casper%40example.org&limit=1", agent, nil)
			if r.status != 200 || len(ids(r)) != 1 || r.json(t)["next_cursor"] != nil {
				t.Errorf("exact lookup, limit 1: %d %s", r.status, r.body)
			}
		})

		for _, c := range []struct{ name, path, field, says string }{
			{"limit 0", find("Chen") + "&limit=0", "limit", "from 1 to 500"},
			{"limit 501", find("Chen") + "&limit=501", "limit", "from 1 to 500"},
			{"limit not a number", find("Chen") + "&limit=ten", "limit", "from 1 to 500"},
			{"bad cursor", find("Chen") + "&cursor=bm9wZQ", "cursor", "malformed cursor"},
			{"cursor too deep", find("Chen") + "&cursor=" + base64.RawURLEncoding.EncodeToString([]byte("o:100001")), "cursor", "malformed cursor"},
			{"bad cursor of a lookup", "/api/v1/customers?email=casper%40example.org&cursor=%%%", "cursor", "malformed cursor"},
			{"unknown parameter", find("Chen") + "&page=2", "page", "valid: email, phone, q, limit, cursor"},
		} {
			t.Run("bad "+c.name, func(t *testing.T) {
				r := h.do("GET", c.path, agent, nil)
				if r.status != 422 || !strings.Contains(string(r.body), c.says) || !strings.Contains(string(r.body), `"`+c.field+`"`) {
					t.Errorf("status %d %s, want 422 naming %s and saying %q", r.status, r.body, c.field, c.says)
				}
			})
		}

		t.Run("renamed", func(t *testing.T) {
			if r := h.do("PATCH", "/api/v1/customers/"+olga, agent, map[string]any{"name": "Olga Ivanova"}); r.status != 200 {
				t.Fatalf("rename: %d %s", r.status, r.body)
			}
			expect(t, find("Ivanova"), ids, olga)
			expect(t, find("Смирнова"), ids)
			expect(t, srch("customer:Ivanova"), hitCases, caseOf[olga])
		})

		t.Run("erased", func(t *testing.T) {
			if r := h.do("DELETE", "/api/v1/customers/"+chen+"?force=true", sup, map[string]any{"reason": "GDPR Art. 17"}); r.status != 200 {
				t.Fatalf("erase: %d %s", r.status, r.body)
			}
			expect(t, find("Chen"), ids)
			expect(t, find("chen.jing@example.org"), ids)
			expect(t, srch("customer:Chen"), hitCases)
			expect(t, srch("Chen"), hitCases)
			// the index itself no longer holds the name (derived data)
			testkit.Eventually(t, 10*time.Second, "name purged from the index", func() bool {
				got, err := h.ix.CustomerIDsByName(context.Background(), "Chen Jing", 0, 10)
				return err == nil && len(got) == 0
			})
		})

		t.Run("erased without a case", func(t *testing.T) {
			if r := h.do("DELETE", "/api/v1/customers/"+caseless, sup, map[string]any{"reason": "GDPR Art. 17"}); r.status != 200 {
				t.Fatalf("erase: %d %s", r.status, r.body)
			}
			expect(t, find("Casper"), ids)
			testkit.Eventually(t, 10*time.Second, "name purged from the index", func() bool {
				got, err := h.ix.CustomerIDsByName(context.Background(), "Casper Caseless", 0, 10)
				return err == nil && len(got) == 0
			})
		})
	})
}
