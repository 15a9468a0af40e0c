package retention

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
)

const day = 24 * time.Hour

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"3y", 3 * 365 * day},
		{"1y", 365 * day},
		{"90d", 90 * day},
		{"365d", 365 * day},
		{"12h", 12 * time.Hour},
		{"15m", 15 * time.Minute},
		{"30s", 30 * time.Second},
		{"0d", 0},
		{"007d", 7 * day},
		{"292y", 292 * 365 * day},                 // the longest whole number of years that fits
		{"106751d", 106751 * day},                 // longest in days
		{"9223372036s", 9223372036 * time.Second}, // longest in seconds
		{"153722867m", 153722867 * time.Minute},   // longest in minutes
		{"2562047h", 2562047 * time.Hour},         // longest in hours
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			d, err := ParseDuration(tt.in)
			if err != nil {
				t.Fatalf("ParseDuration(%q): %v", tt.in, err)
			}
			if !d.Valid() || d.Std() != tt.want {
				t.Fatalf("ParseDuration(%q) = %v (valid %v), want %v", tt.in, d.Std(), d.Valid(), tt.want)
			}
			// String is canonical and parses back to the same value.
			back, err := ParseDuration(d.String())
			if err != nil || back != d {
				t.Fatalf("round trip %q -> %q -> %+v, %v", tt.in, d.String(), back, err)
			}
			if tt.in[0] != '0' && d.String() != tt.in {
				t.Fatalf("String() = %q, want %q", d.String(), tt.in)
			}
		})
	}
}

func TestParseDurationErrors(t *testing.T) {
	for _, in := range []string{
		"", "3", "y", "d", "-1d", "+1d", "1w", "1D", "1Y", "1.5d", " 1d", "1d ", "1 d", "1dd", "d1",
		"1e3d", "0x10d", "3years", "∞d", "１d",
		"99999999999y", "293y", "106752d", "2562048h", "153722868m", "9223372037s",
		"9223372036854775807s", "9223372036854775808s", "99999999999999999999999d",
	} {
		t.Run(in, func(t *testing.T) {
			d, err := ParseDuration(in)
			if err == nil {
				t.Fatalf("ParseDuration(%q) = %v, want an error", in, d)
			}
			if d.Valid() {
				t.Fatalf("ParseDuration(%q) returned a valid duration with its error", in)
			}
		})
	}
}

func TestDurationJSON(t *testing.T) {
	d, err := ParseDuration("90d")
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(d)
	if err != nil || string(b) != `"90d"` {
		t.Fatalf("Marshal = %s, %v; want \"90d\"", b, err)
	}
	var back Duration
	if err := json.Unmarshal(b, &back); err != nil || back != d {
		t.Fatalf("Unmarshal(%s) = %+v, %v", b, back, err)
	}
	// Bad text decodes into an invalid Duration that keeps the text.
	var bad Duration
	if err := json.Unmarshal([]byte(`"1w"`), &bad); err != nil {
		t.Fatalf("Unmarshal bad text: %v", err)
	}
	if bad.Valid() || bad.String() != "1w" {
		t.Fatalf("bad text gave %+v", bad)
	}
	if b, err := json.Marshal(bad); err != nil || string(b) != `"1w"` {
		t.Fatalf("Marshal invalid = %s, %v", b, err)
	}
	// A non-string decodes too (invalid), so that Validate can name the
	// element: a decoding error could only name "purposes.keep".
	var s Schedule
	if err := json.Unmarshal([]byte(`{"purposes":[{"purpose":"security","keep":5}]}`), &s); err != nil {
		t.Fatalf("numeric keep: %v, want it decoded for Validate to report", err)
	}
	if s.Purposes[0].Keep.Valid() {
		t.Fatalf("numeric keep decoded as valid %v", s.Purposes[0].Keep)
	}
}

// TestNonStringKeep (issue 21, smaller): a keep that is not a string is
// reported at its element, saying what a duration looks like. Before, the
// API answered 422 at "purposes.keep" with "must be an object".
func TestNonStringKeep(t *testing.T) {
	for _, keep := range []string{`90`, `{"days":90}`, `[90]`, `true`} {
		t.Run(keep, func(t *testing.T) {
			doc := strings.Replace(`{"purposes":[
				{"purpose":"customer_service","keep":"3y","from":"case_closed","action":"delete"},
				{"purpose":"authentication","keep":"1y","from":"capture","action":"delete"},
				{"purpose":"security","keep":"2y","from":"capture","action":"delete"},
				{"purpose":"fraud_monitoring","keep":"5y","from":"capture","action":"delete"},
				{"purpose":"notification","keep":KEEP,"from":"capture","action":"delete"},
				{"purpose":"improvement","keep":"1y","from":"capture","action":"anonymize"},
				{"purpose":"personalization","keep":"1y","from":"capture","action":"delete"},
				{"purpose":"legal_obligation","keep":"7y","from":"capture","action":"delete"},
				{"purpose":"consented","keep":"1y","from":"capture","action":"delete"}]}`, "KEEP", keep, 1)
			var sc Schedule
			if err := json.Unmarshal([]byte(doc), &sc); err != nil {
				t.Fatalf("decode: %v", err)
			}
			var ve *cases.ValidationError
			if err := sc.Validate(); !errors.As(err, &ve) || len(ve.Fields) != 1 {
				t.Fatalf("Validate = %v, want one field error", err)
			}
			f := ve.Fields[0]
			if f.Field != "purposes[4].keep" || !strings.Contains(f.Message, "a duration such as 90d") {
				t.Fatalf("problem %+v, want purposes[4].keep saying \"a duration such as 90d\"", f)
			}
		})
	}
}

func TestDefaultSchedule(t *testing.T) {
	s := DefaultSchedule()
	if err := s.Validate(); err != nil {
		t.Fatalf("default schedule invalid: %v", err)
	}
	if s.Version != 1 {
		t.Fatalf("version %d", s.Version)
	}
	want := map[cases.Purpose]struct {
		keep   time.Duration
		from   string
		action string
	}{
		cases.PurposeCustomerService: {3 * 365 * day, FromCaseClosed, ActionDelete},
		cases.PurposeAuthentication:  {365 * day, FromCapture, ActionDelete},
		cases.PurposeSecurity:        {2 * 365 * day, FromCapture, ActionDelete},
		cases.PurposeFraudMonitoring: {5 * 365 * day, FromCapture, ActionDelete},
		cases.PurposeNotification:    {90 * day, FromCapture, ActionDelete},
		cases.PurposeImprovement:     {365 * day, FromCapture, ActionAnonymize},
		cases.PurposePersonalization: {365 * day, FromCapture, ActionDelete},
		cases.PurposeLegalObligation: {7 * 365 * day, FromCapture, ActionDelete},
		cases.PurposeConsented:       {365 * day, FromCapture, ActionDelete},
	}
	if len(s.Purposes) != len(want) {
		t.Fatalf("%d purpose rules, want %d", len(s.Purposes), len(want))
	}
	for _, r := range s.Purposes {
		w, ok := want[r.Purpose]
		if !ok || r.Keep.Std() != w.keep || r.From != w.from || r.Action != w.action {
			t.Errorf("rule %+v (keep %v), want %+v", r, r.Keep.Std(), w)
		}
	}
	cats := map[cases.Category]time.Duration{cases.CategoryLocation: 30 * day, cases.CategoryDevice: 90 * day}
	if len(s.Categories) != len(cats) {
		t.Fatalf("%d category rules", len(s.Categories))
	}
	for _, r := range s.Categories {
		if cats[r.Category] != r.Keep.Std() || r.Action != ActionRedact {
			t.Errorf("category rule %+v", r)
		}
	}
}

func TestScheduleJSONRoundTrip(t *testing.T) {
	s := DefaultSchedule()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, frag := range []string{
		`"version":1`,
		`{"purpose":"customer_service","keep":"3y","from":"case_closed","action":"delete"}`,
		`{"purpose":"notification","keep":"90d","from":"capture","action":"delete"}`,
		`{"category":"location","keep":"30d","action":"redact"}`,
	} {
		if !strings.Contains(string(b), frag) {
			t.Errorf("JSON %s lacks %s", b, frag)
		}
	}
	var back Schedule
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, s) {
		t.Fatalf("round trip changed the schedule:\n got %+v\nwant %+v", back, s)
	}
}

// problemFields returns the sorted field paths of a *cases.ValidationError.
func problemFields(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	var v *cases.ValidationError
	if !errors.As(err, &v) {
		t.Fatalf("error %v (%T) is not a *cases.ValidationError", err, err)
	}
	var fields []string
	for _, p := range v.Fields {
		if p.Message == "" {
			t.Errorf("problem %q has no message", p.Field)
		}
		fields = append(fields, p.Field)
	}
	slices.Sort(fields)
	return fields
}

func TestValidate(t *testing.T) {
	edit := func(fn func(*Schedule)) Schedule {
		s := DefaultSchedule()
		fn(&s)
		return s
	}
	decode := func(doc string) Schedule {
		var s Schedule
		if err := json.Unmarshal([]byte(doc), &s); err != nil {
			t.Fatalf("decode %s: %v", doc, err)
		}
		return s
	}
	allMissing := make([]string, len(cases.Purposes))
	for i := range allMissing {
		allMissing[i] = "purposes"
	}
	tests := []struct {
		name string
		s    Schedule
		want []string
	}{
		{"default", DefaultSchedule(), nil},
		{"no categories is fine", edit(func(s *Schedule) { s.Categories = nil }), nil},
		{"empty", Schedule{}, allMissing},
		{"missing purpose", edit(func(s *Schedule) { s.Purposes = slices.Delete(s.Purposes, 4, 5) }), []string{"purposes"}},
		{"duplicate purpose", edit(func(s *Schedule) { s.Purposes = append(s.Purposes, s.Purposes[1]) }), []string{"purposes[9].purpose"}},
		{"unknown purpose", edit(func(s *Schedule) { s.Purposes[2].Purpose = "marketing" }), []string{"purposes", "purposes[2].purpose"}},
		{"empty purpose", edit(func(s *Schedule) { s.Purposes[0].Purpose = "" }), []string{"purposes", "purposes[0].purpose"}},
		{"zero keep", edit(func(s *Schedule) { s.Purposes[2].Keep = mustParse("0d") }), []string{"purposes[2].keep"}},
		{"missing keep", edit(func(s *Schedule) { s.Purposes[3].Keep = Duration{} }), []string{"purposes[3].keep"}},
		{"bad from", edit(func(s *Schedule) { s.Purposes[1].From = "closed" }), []string{"purposes[1].from"}},
		{"empty from", edit(func(s *Schedule) { s.Purposes[1].From = "" }), []string{"purposes[1].from"}},
		{"redact is not a purpose action", edit(func(s *Schedule) { s.Purposes[5].Action = ActionRedact }), []string{"purposes[5].action"}},
		{"negative version", edit(func(s *Schedule) { s.Version = -1 }), []string{"version"}},
		{"unknown category", edit(func(s *Schedule) { s.Categories[0].Category = "genome" }), []string{"categories[0].category"}},
		// Issue 21 §4: categories kept inside the contact cannot be
		// redacted on their own; such a rule was stored and never enforced.
		{"payment rule refused", edit(func(s *Schedule) { s.Categories[0].Category = cases.CategoryPayment }), []string{"categories[0].category"}},
		{"browsing rule refused", edit(func(s *Schedule) {
			s.Categories = append(s.Categories, CategoryRule{Category: cases.CategoryBrowsing, Keep: mustParse("30d"), Action: ActionRedact})
		}), []string{"categories[2].category"}},
		{"duplicate category", edit(func(s *Schedule) { s.Categories = append(s.Categories, s.Categories[0]) }), []string{"categories[2].category"}},
		{"category delete", edit(func(s *Schedule) { s.Categories[1].Action = ActionDelete }), []string{"categories[1].action"}},
		{"category zero keep", edit(func(s *Schedule) { s.Categories[1].Keep = mustParse("0s") }), []string{"categories[1].keep"}},
		{"no backup rule is fine", edit(func(s *Schedule) { s.Backups = nil }), nil},
		{"backup zero keep", edit(func(s *Schedule) { s.Backups.Keep = mustParse("0d") }), []string{"backups.keep"}},
		{"backup missing keep", edit(func(s *Schedule) { s.Backups = &BackupRule{} }), []string{"backups.keep"}},
		{"backup keep from JSON", decode(`{"purposes":[],"backups":{"keep":"-3d"}}`), append([]string{"backups.keep"}, allMissing...)},
		{"no release grace is fine (default)", edit(func(s *Schedule) { s.HoldReleaseGrace = nil }), nil},
		{"zero release grace is fine", edit(func(s *Schedule) { s.HoldReleaseGrace = ptr(mustParse("0s")) }), nil},
		{"release grace over a year", edit(func(s *Schedule) { s.HoldReleaseGrace = ptr(mustParse("366d")) }), []string{"hold_release_grace"}},
		{"release grace from JSON", decode(`{"purposes":[],"hold_release_grace":"30 days"}`), append([]string{"hold_release_grace"}, allMissing...)},
		{"empty release grace from JSON", decode(`{"purposes":[],"hold_release_grace":""}`), append([]string{"hold_release_grace"}, allMissing...)},
		{"several at once", edit(func(s *Schedule) {
			s.Purposes[0].Keep = Duration{}
			s.Purposes[0].Action = "archive"
			s.Purposes[8].From = ""
			s.Categories[0].Action = ""
		}), []string{"categories[0].action", "purposes[0].action", "purposes[0].keep", "purposes[8].from"}},
		{"bad durations from JSON", decode(`{"version":2,"purposes":[
			{"purpose":"customer_service","keep":"1w","from":"case_closed","action":"delete"},
			{"purpose":"authentication","keep":"-1d","from":"capture","action":"delete"},
			{"purpose":"security","keep":"99999999999y","from":"capture","action":"delete"},
			{"purpose":"fraud_monitoring","keep":"","from":"capture","action":"delete"},
			{"purpose":"notification","keep":null,"from":"capture","action":"delete"},
			{"purpose":"improvement","keep":"1y","from":"capture","action":"anonymize"},
			{"purpose":"personalization","keep":"1y","from":"capture","action":"delete"},
			{"purpose":"legal_obligation","keep":"7y","from":"capture","action":"delete"},
			{"purpose":"consented","keep":"1y","from":"capture","action":"delete"}],
			"categories":[{"category":"location","keep":"3","action":"redact"}]}`),
			[]string{"categories[0].keep", "purposes[0].keep", "purposes[1].keep", "purposes[2].keep", "purposes[3].keep", "purposes[4].keep"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := problemFields(t, tt.s.Validate())
			if !slices.Equal(got, tt.want) {
				t.Fatalf("problems at %q, want %q (error: %v)", got, tt.want, tt.s.Validate())
			}
		})
	}
}

func TestValidationErrorMessage(t *testing.T) {
	s := DefaultSchedule()
	s.Purposes[2].Keep = Duration{raw: "1w"}
	err := s.Validate()
	if err == nil || !strings.Contains(err.Error(), "purposes[2].keep") || !strings.Contains(err.Error(), `"1w"`) {
		t.Fatalf("error %q should name purposes[2].keep and the bad text", err)
	}
}

func TestRetainUntil(t *testing.T) {
	s := DefaultSchedule()
	captured := time.Date(2026, 1, 1, 8, 30, 0, 0, time.UTC)
	closed := time.Date(2026, 6, 30, 12, 0, 0, 0, time.UTC)
	// Expected dates worked out by calendar: a "year" is 365 days, so they
	// drift by the leap days in between (2028-02-29, 2032-02-29).
	tests := []struct {
		name     string
		purposes []cases.Purpose
		closedAt *time.Time
		want     *time.Time
		rule     cases.Purpose
	}{
		{"customer service, case open", []cases.Purpose{cases.PurposeCustomerService}, nil, nil, cases.PurposeCustomerService},
		{"customer service, case closed", []cases.Purpose{cases.PurposeCustomerService}, &closed,
			ptr(time.Date(2029, 6, 29, 12, 0, 0, 0, time.UTC)), cases.PurposeCustomerService},
		{"empty means customer service, open", nil, nil, nil, cases.PurposeCustomerService},
		{"empty means customer service, closed", []cases.Purpose{}, &closed,
			ptr(time.Date(2029, 6, 29, 12, 0, 0, 0, time.UTC)), cases.PurposeCustomerService},
		{"authentication", []cases.Purpose{cases.PurposeAuthentication}, nil,
			ptr(time.Date(2027, 1, 1, 8, 30, 0, 0, time.UTC)), cases.PurposeAuthentication},
		{"security", []cases.Purpose{cases.PurposeSecurity}, nil,
			ptr(time.Date(2028, 1, 1, 8, 30, 0, 0, time.UTC)), cases.PurposeSecurity},
		{"fraud monitoring", []cases.Purpose{cases.PurposeFraudMonitoring}, nil,
			ptr(time.Date(2030, 12, 31, 8, 30, 0, 0, time.UTC)), cases.PurposeFraudMonitoring},
		{"notification", []cases.Purpose{cases.PurposeNotification}, nil,
			ptr(time.Date(2026, 4, 1, 8, 30, 0, 0, time.UTC)), cases.PurposeNotification},
		{"improvement", []cases.Purpose{cases.PurposeImprovement}, nil,
			ptr(time.Date(2027, 1, 1, 8, 30, 0, 0, time.UTC)), cases.PurposeImprovement},
		{"personalization", []cases.Purpose{cases.PurposePersonalization}, nil,
			ptr(time.Date(2027, 1, 1, 8, 30, 0, 0, time.UTC)), cases.PurposePersonalization},
		{"legal obligation", []cases.Purpose{cases.PurposeLegalObligation}, nil,
			ptr(time.Date(2032, 12, 30, 8, 30, 0, 0, time.UTC)), cases.PurposeLegalObligation},
		{"consented", []cases.Purpose{cases.PurposeConsented}, nil,
			ptr(time.Date(2027, 1, 1, 8, 30, 0, 0, time.UTC)), cases.PurposeConsented},
		{"capture clock ignores closing", []cases.Purpose{cases.PurposeSecurity}, &closed,
			ptr(time.Date(2028, 1, 1, 8, 30, 0, 0, time.UTC)), cases.PurposeSecurity},
		{"longest wins", []cases.Purpose{cases.PurposeNotification, cases.PurposeFraudMonitoring, cases.PurposeSecurity}, nil,
			ptr(time.Date(2030, 12, 31, 8, 30, 0, 0, time.UTC)), cases.PurposeFraudMonitoring},
		{"longest wins whatever the order", []cases.Purpose{cases.PurposeLegalObligation, cases.PurposeNotification}, nil,
			ptr(time.Date(2032, 12, 30, 8, 30, 0, 0, time.UTC)), cases.PurposeLegalObligation},
		{"open case beats 7 years", []cases.Purpose{cases.PurposeLegalObligation, cases.PurposeCustomerService}, nil,
			nil, cases.PurposeCustomerService},
		{"closed case: 7 years from capture beat 3 from closure", []cases.Purpose{cases.PurposeCustomerService, cases.PurposeLegalObligation}, &closed,
			ptr(time.Date(2032, 12, 30, 8, 30, 0, 0, time.UTC)), cases.PurposeLegalObligation},
		{"closed case: 3 years from closure beat 1 from capture", []cases.Purpose{cases.PurposeAuthentication, cases.PurposeCustomerService}, &closed,
			ptr(time.Date(2029, 6, 29, 12, 0, 0, 0, time.UTC)), cases.PurposeCustomerService},
		{"tie: first listed decides", []cases.Purpose{cases.PurposeConsented, cases.PurposeAuthentication}, nil,
			ptr(time.Date(2027, 1, 1, 8, 30, 0, 0, time.UTC)), cases.PurposeConsented},
		{"unknown purpose keeps", []cases.Purpose{cases.PurposeNotification, "marketing"}, nil, nil, "marketing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, rule := s.RetainUntil(tt.purposes, captured, tt.closedAt)
			if !sameTime(got, tt.want) || rule.Purpose != tt.rule {
				t.Fatalf("RetainUntil = %v, %q; want %v, %q", fmtTime(got), rule.Purpose, fmtTime(tt.want), tt.rule)
			}
			if got != nil && got.Location() != time.UTC {
				t.Fatalf("result in %v, want UTC", got.Location())
			}
			if want, ok := s.Rule(tt.rule); ok && rule != want {
				t.Fatalf("deciding rule %+v, want the schedule's %+v", rule, want)
			}
			// The cases.RetentionPolicy adapter gives the same date.
			rules, err := s.Policy().RulesIn(context.Background(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if p := rules.RetainUntil(tt.purposes, captured, tt.closedAt); !sameTime(p, got) {
				t.Fatalf("Policy().RetainUntil = %v, want %v", fmtTime(p), fmtTime(got))
			}
		})
	}
}

func TestRetainUntilReopened(t *testing.T) {
	s := DefaultSchedule()
	captured := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	closed := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	purposes := []cases.Purpose{cases.PurposeCustomerService, cases.PurposeNotification}

	if until, _ := s.RetainUntil(purposes, captured, nil); until != nil {
		t.Fatalf("open: %v, want nil", until)
	}
	until, _ := s.RetainUntil(purposes, captured, &closed)
	if want := closed.Add(3 * 365 * day); until == nil || !until.Equal(want) {
		t.Fatalf("closed: %v, want %v", fmtTime(until), want)
	}
	// Reopening clears closed_at: the clock stops again.
	if until, rule := s.RetainUntil(purposes, captured, nil); until != nil || rule.Purpose != cases.PurposeCustomerService {
		t.Fatalf("reopened: %v, %q; want nil, customer_service", fmtTime(until), rule.Purpose)
	}
	// Closed again later: counted from the new closing.
	closed2 := time.Date(2027, 2, 1, 0, 0, 0, 0, time.UTC)
	if until, _ := s.RetainUntil(purposes, captured, &closed2); until == nil || !until.Equal(closed2.Add(3*365*day)) {
		t.Fatalf("closed again: %v", fmtTime(until))
	}
}

func TestRetainUntilNonUTCInput(t *testing.T) {
	s := DefaultSchedule()
	shanghai := time.FixedZone("CST", 8*3600)
	captured := time.Date(2026, 1, 1, 0, 30, 0, 0, shanghai) // 2025-12-31T16:30Z
	until, _ := s.RetainUntil([]cases.Purpose{cases.PurposeNotification}, captured, nil)
	want := time.Date(2026, 3, 31, 16, 30, 0, 0, time.UTC)
	if until == nil || !until.Equal(want) || until.Location() != time.UTC {
		t.Fatalf("got %v, want %v", fmtTime(until), want)
	}
}

func TestCategoryDue(t *testing.T) {
	s := DefaultSchedule()
	captured := time.Date(2026, 1, 1, 8, 30, 0, 0, time.UTC)
	tests := []struct {
		cat  cases.Category
		want time.Time
		ok   bool
	}{
		{cases.CategoryLocation, time.Date(2026, 1, 31, 8, 30, 0, 0, time.UTC), true},
		{cases.CategoryDevice, time.Date(2026, 4, 1, 8, 30, 0, 0, time.UTC), true},
		{cases.CategoryPayment, time.Time{}, false},
		{"genome", time.Time{}, false},
	}
	for _, tt := range tests {
		got, ok := s.CategoryDue(tt.cat, captured)
		if ok != tt.ok || !got.Equal(tt.want) {
			t.Errorf("CategoryDue(%q) = %v, %v; want %v, %v", tt.cat, got, ok, tt.want, tt.ok)
		}
	}
}

func sameTime(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

func fmtTime(t *time.Time) string {
	if t == nil {
		return "nil"
	}
	return t.Format(time.RFC3339)
}

// TestReleaseGrace: a schedule without the setting (stored before it
// existed) gets the default; the setting round-trips through JSON.
func TestReleaseGrace(t *testing.T) {
	tests := []struct {
		doc  string
		want time.Duration
	}{
		{`{}`, DefaultHoldReleaseGrace},
		{`{"hold_release_grace":"7d"}`, 7 * 24 * time.Hour},
		{`{"hold_release_grace":"0s"}`, 0},
	}
	for _, tt := range tests {
		var s Schedule
		if err := json.Unmarshal([]byte(tt.doc), &s); err != nil {
			t.Fatal(err)
		}
		if got := s.ReleaseGrace(); got != tt.want {
			t.Errorf("%s: grace %v, want %v", tt.doc, got, tt.want)
		}
	}
	if got := DefaultSchedule().ReleaseGrace(); got != DefaultHoldReleaseGrace {
		t.Errorf("default schedule grace %v", got)
	}
}

// TestEveryAcceptedCategoryIsEnforced (issue 21 §4): every category a
// schedule may name has a sweep phase, and every other known category is
// refused with a message naming it.
func TestEveryAcceptedCategoryIsEnforced(t *testing.T) {
	for _, cat := range cases.Categories {
		t.Run(string(cat), func(t *testing.T) {
			s := DefaultSchedule()
			s.Categories = []CategoryRule{{Category: cat, Keep: mustParse("30d"), Action: ActionRedact}}
			err := s.Validate()
			_, enforced := categoryColumns[cat]
			switch {
			case enforced && err != nil:
				t.Fatalf("enforced category refused: %v", err)
			case !enforced && err == nil:
				t.Fatalf("a rule for %s is accepted but no sweep phase enforces it", cat)
			case !enforced && !strings.Contains(err.Error(), string(cat)):
				t.Fatalf("error %q does not name %s", err, cat)
			}
		})
	}
}
