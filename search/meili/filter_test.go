package meili

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/search"
)

func TestQuote(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "open", `"open"`},
		{"empty", "", `""`},
		{"double quote", `a"b`, `"a\"b"`},
		{"backslash", `a\b`, `"a\\b"`},
		{"trailing backslash", `a\`, `"a\\"`},
		{"backslash then quote", `\"`, `"\\\""`},
		{"injection OR", `open" OR customer_id = "x`, `"open\" OR customer_id = \"x"`},
		{"parentheses", `(a) OR (b)`, `"(a) OR (b)"`},
		{"brackets and commas", `x", "y"]`, `"x\", \"y\"]"`},
		{"chinese", "退款", `"退款"`},
		{"newline kept literally", "a\nb", "\"a\nb\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := quote(tt.in)
			if got != tt.want {
				t.Fatalf("quote(%q) = %s, want %s", tt.in, got, tt.want)
			}
			// The literal must parse back to exactly the input and use up the
			// whole string: nothing escapes the quotes.
			back, rest, err := readString(got)
			if err != nil || rest != "" || back != tt.in {
				t.Fatalf("readString(%s) = %q, rest %q, err %v", got, back, rest, err)
			}
		})
	}
}

func TestFilterConstructors(t *testing.T) {
	tests := []struct {
		name string
		got  filterExpr
		want string
	}{
		{"eq", eq(attrStatus, "open"), `x_status = "open"`},
		{"eq injection", eq(attrStatus, `open" OR customer_id = "x`), `x_status = "open\" OR customer_id = \"x"`},
		{"eq field syntax as value", eq(attrCustomerID, "status:open OR customer:x"), `x_customer_id = "status:open OR customer:x"`},
		{"in one", in(attrTags, []string{"vip"}), `x_tags IN ["vip"]`},
		{"in many", in(attrCaseID, []string{"a", `b"`, `c\`}), `x_case_id IN ["a", "b\"", "c\\"]`},
		{"in closing bracket", in(attrTags, []string{`x"] OR tags IN ["y`}), `x_tags IN ["x\"] OR tags IN [\"y"]`},
		{"anyOf one", anyOf(attrChannel, []string{"email"}), `x_channel = "email"`},
		{"anyOf two", anyOf(attrChannel, []string{"email", "phone"}), `x_channel IN ["email", "phone"]`},
		{"gte", gte(attrOccurredAt, 1700000000000000), `occurred_at >= 1700000000000000`},
		{"lt negative", lt(attrRev, -5), `rev < -5`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got.String() != tt.want {
				t.Fatalf("got %s, want %s", tt.got, tt.want)
			}
			// Every constructor output is exactly one predicate.
			if _, err := parsePredicate(tt.got.String()); err != nil {
				t.Fatalf("not a single predicate: %v", err)
			}
		})
	}
}

func TestEncodeValue(t *testing.T) {
	for _, v := range []string{"", "VIP", "vip", `x" OR status = "y`, "退款", "a\x00b"} {
		enc := encodeValue(v)
		if strings.ToLower(enc) != enc || strings.ContainsAny(enc, `"\ `) {
			t.Errorf("encodeValue(%q) = %q: has something Meilisearch could fold or parse", v, enc)
		}
		if decodeValue(enc) != v {
			t.Errorf("decodeValue(encodeValue(%q)) = %q", v, decodeValue(enc))
		}
	}
	if encodeValue("VIP") == encodeValue("vip") {
		t.Error("VIP and vip encode alike")
	}
}

func TestBuildFilter(t *testing.T) {
	from := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	to := from.Add(time.Hour)
	tests := []struct {
		name string
		f    search.Filter
		want []any
	}{
		{"empty", search.Filter{}, []any{}},
		{"each field its own element", search.Filter{
			Statuses:    []string{"open", "pending"},
			Channels:    []string{"email"},
			Priorities:  []string{"high"},
			CustomerIDs: []string{`x" OR status = "closed`},
			Assignees:   []string{`a\`},
			Tags:        []string{"vip", "(b)"},
			Purposes:    []string{"fraud_monitoring"},
			CaseIDs:     []string{"c1"},
			From:        from,
			To:          to,
		}, []any{
			`x_case_id = "` + encodeValue("c1") + `"`,
			`x_status IN ["` + encodeValue("open") + `", "` + encodeValue("pending") + `"]`,
			`x_channel = "` + encodeValue("email") + `"`,
			`x_priority = "` + encodeValue("high") + `"`,
			`x_customer_id = "` + encodeValue(`x" OR status = "closed`) + `"`,
			`x_assignee = "` + encodeValue(`a\`) + `"`,
			`x_tags IN ["` + encodeValue("vip") + `", "` + encodeValue("(b)") + `"]`,
			`x_purposes = "` + encodeValue("fraud_monitoring") + `"`,
			`occurred_at >= 1767323045000006`,
			`occurred_at < 1767326645000006`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := filterArray(buildFilter(tt.f)...)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %#v\nwant %#v", got, tt.want)
			}
		})
	}
}
