package api_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/retention"
)

// TestScheduleRefusals: a category rule no sweep enforces (issue 21 §4)
// and a keep that is not a duration string (issue 21, smaller) are 422s
// naming the element; nothing is stored.
func TestScheduleRefusals(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		admin := h.tokens[auth.RoleAdmin]
		doc := func(edit func(m map[string]any)) map[string]any {
			var m map[string]any
			b, _ := json.Marshal(retention.DefaultSchedule())
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			edit(m)
			return m
		}
		tests := []struct {
			name, field, says string
			body              map[string]any
		}{
			{"payment redaction", "categories[2].category", `\"payment\" cannot be redacted`, doc(func(m map[string]any) {
				m["categories"] = append(m["categories"].([]any), map[string]any{"category": "payment", "keep": "30d", "action": "redact"})
			})},
			{"browsing redaction", "categories[0].category", `\"browsing\" cannot be redacted`, doc(func(m map[string]any) {
				m["categories"].([]any)[0].(map[string]any)["category"] = "browsing"
			})},
			{"numeric keep", "purposes[4].keep", "a duration such as 90d", doc(func(m map[string]any) {
				m["purposes"].([]any)[4].(map[string]any)["keep"] = 90
			})},
			{"object keep", "purposes[0].keep", "a duration such as 90d", doc(func(m map[string]any) {
				m["purposes"].([]any)[0].(map[string]any)["keep"] = map[string]any{"years": 3}
			})},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				r := h.do("PUT", "/api/v1/retention/schedule", admin, tt.body)
				if r.status != 422 || !strings.Contains(string(r.body), tt.field) || !strings.Contains(string(r.body), tt.says) {
					t.Fatalf("PUT = %d %s; want 422 naming %s and saying %s", r.status, r.body, tt.field, tt.says)
				}
			})
		}

		r := h.do("GET", "/api/v1/retention/schedule/versions", admin, nil)
		if r.status != 200 {
			t.Fatalf("versions: %d %s", r.status, r.body)
		}
		items := r.json(t)["items"].([]any)
		if len(items) != 1 || items[0].(map[string]any)["actor"] != "default" {
			t.Fatalf("a refused PUT stored something: %s", r.body)
		}
	})
}

// TestScheduleVersions (issue 21 §10): the history lists every version,
// newest first, with who stored it, when and the digest of the document;
// the newest is marked current and agrees with GET /retention/schedule.
func TestScheduleVersions(t *testing.T) {
	forEachDialect(t, func(t *testing.T, h *harness) {
		admin, legal := h.tokens[auth.RoleAdmin], h.tokens[auth.RoleLegal]
		sc := retention.DefaultSchedule()
		sc.Purposes[4].Keep, _ = retention.ParseDuration("400d")
		for range 2 {
			if r := h.do("PUT", "/api/v1/retention/schedule", admin, sc); r.status != 200 {
				t.Fatalf("PUT: %d %s", r.status, r.body)
			}
			sc.Purposes[4].Keep, _ = retention.ParseDuration("30d")
		}

		r := h.do("GET", "/api/v1/retention/schedule/versions", legal, nil)
		if r.status != 200 {
			t.Fatalf("versions: %d %s", r.status, r.body)
		}
		var body struct {
			Items []retention.ScheduleVersion `json:"items"`
		}
		if err := json.Unmarshal(r.body, &body); err != nil {
			t.Fatal(err)
		}
		vs := body.Items
		if len(vs) != 2 || vs[0].Version != 3 || vs[1].Version != 2 || !vs[0].Current || vs[1].Current {
			t.Fatalf("versions = %+v, want v3 (current), v2", vs)
		}
		for _, v := range vs {
			if v.Actor != "test-admin" || v.CreatedAt == nil || !strings.HasPrefix(v.Digest, "sha256:") || len(v.Digest) != len("sha256:")+64 {
				t.Fatalf("version %+v: want actor, time and digest", v)
			}
		}
		if vs[0].Digest == vs[1].Digest {
			t.Fatal("two different documents with one digest")
		}
		cur := h.do("GET", "/api/v1/retention/schedule", legal, nil).json(t)
		if cur["version"] != float64(3) {
			t.Fatalf("GET schedule is v%v, want the current version 3", cur["version"])
		}
	})
}
