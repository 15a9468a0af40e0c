package audit

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
)

// A detail FromChange marks canonical is kept as json.Marshal wrote it,
// and must be exactly what the general path (canonicalDetail) stores for
// it: the chain's hashes cannot depend on the path. A detail the general
// path would reorder, refuse or truncate is never marked.
func TestFlatDetailIsAlreadyCanonical(t *testing.T) {
	at := time.Date(2026, 12, 5, 23, 0, 0, 0, time.UTC)
	now := func() time.Time { return at }
	tests := []struct {
		name   string
		detail map[string]any
		fast   bool
	}{
		{"a contact's detail", map[string]any{"case_id": "c1", "masked_numbers": 2, "location_dropped": true, "purposes_dropped": []cases.Purpose{"marketing", "analytics"}, "corrects": "k1"}, true},
		{"strings with escapes", map[string]any{"q": "<a href=\"x\">&amp;</a> \u2028\u2029 \t\n\\", "zh": "退款", "nul": "a\x00b", "fffd": "\ufffd"}, true},
		{"a string not UTF-8", map[string]any{"bad": "\xff\xfe ok"}, false},
		{"a slice with a string not UTF-8", map[string]any{"bad": []string{"ok", "\xff"}}, false},
		{"numbers", map[string]any{"i": -42, "big": int64(math.MaxInt64), "u": uint64(math.MaxUint64), "f": 0.1, "e": 1e21, "tiny": 1e-7, "neg0": math.Copysign(0, -1), "f32": float32(0.1), "b": uint8(7)}, true},
		{"nil, empty and nil slices", map[string]any{"n": nil, "empty": []string{}, "none": []string(nil)}, true},
		{"no keys", map[string]any{}, true},
		{"a nested object", map[string]any{"changes": map[string]any{"z": 1, "a": 2}}, false},
		{"a struct", map[string]any{"at": at}, false},
		{"a slice of numbers", map[string]any{"ns": []int{3, 1}}, false},
		{"a slice of any", map[string]any{"xs": []any{"a", map[string]any{"password": "p"}}}, false},
		{"a string type with an encoding of its own", map[string]any{"o": objectString("x")}, false},
		{"a secret key", map[string]any{"api_token": "s"}, false},
		{"a secret key, upper case", map[string]any{"Password": "s"}, false},
		{"a secret nested", map[string]any{"x": map[string]any{"passphrase": "s"}}, false},
		{"over the size limit", map[string]any{"q": strings.Repeat("x", MaxDetailBytes)}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := FromChange(cases.Change{Action: "x.y", Detail: tt.detail}, OutcomeOK)
			if ev.canonical != tt.fast {
				t.Fatalf("marked canonical: %v, want %v (detail %s)", ev.canonical, tt.fast, ev.Detail)
			}

			general := ev
			general.canonical = false
			want, wantErr := normalize(general, now)
			got, err := normalize(ev, now)
			if !errors.Is(err, ErrSecret) && !errors.Is(err, ErrInvalid) && err != nil {
				t.Fatalf("normalize: %v", err)
			}
			if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
				t.Fatalf("normalize: %v, the general path: %v", err, wantErr)
			}
			if string(got.Detail) != string(want.Detail) {
				t.Fatalf("detail kept %s, the general path stores %s", got.Detail, want.Detail)
			}
			if err == nil && got.ComputeHash() != want.ComputeHash() {
				t.Fatal("the two paths hash the event differently")
			}
		})
	}
}

// objectString is a string that encodes as an object with its keys out of
// order, which the general path sorts.
type objectString string

func (objectString) MarshalJSON() ([]byte, error) { return []byte(`{"b":1,"a":2}`), nil }

// BenchmarkContactDetail: what a contact's audit event costs from its
// change to its stored detail, kept as FromChange marshalled it and
// through the general path, in one run.
func BenchmarkContactDetail(b *testing.B) {
	now := func() time.Time { return time.Date(2026, 12, 5, 23, 0, 0, 0, time.UTC) }
	ch := cases.Change{Action: "contact.create", TargetType: "contact", TargetID: "01a2487f-4176-7bc6-9237-4206818e3690",
		Detail: map[string]any{"case_id": "01a2487f-4169-7684-b2c2-e649819b2726", "masked_numbers": 0, "location_dropped": false, "purposes_dropped": []cases.Purpose(nil)}}
	for _, path := range []string{"kept", "general"} {
		b.Run(path, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ev := FromChange(ch, OutcomeOK)
				ev.canonical = ev.canonical && path == "kept"
				if _, err := normalize(ev, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
