// Package retention holds the retention schedule: how long contacts are kept
// for each purpose they serve, and when categories of personal data in them
// are minimized.
package retention

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/casevault/casevault/cases"
)

// Clock starts a purpose's retention period.
const (
	FromCapture    = "capture"     // when the contact happened (occurred_at)
	FromCaseClosed = "case_closed" // when its case was (last) closed
)

// Actions taken when a period ends.
const (
	ActionDelete    = "delete"
	ActionAnonymize = "anonymize"
	ActionRedact    = "redact"
)

// Duration is a retention period written as a count and a unit: "3y", "90d",
// "12h", "15m", "30s". A year is 365 days and a day 24 hours: retention
// periods are legal durations counted in whole units, and fixed lengths keep
// retain_until independent of time zones and leap years.
//
// The count and unit are kept as written so that String round-trips ("365d"
// stays "365d", not "1y"). A Duration decoded from JSON text that does not
// parse is kept, invalid, so Schedule.Validate can report it with its field
// path; use Valid to tell.
type Duration struct {
	n    int64
	unit byte   // 0 when invalid or zero value
	raw  string // the text an invalid Duration was decoded from
	// notText marks a Duration decoded from a JSON value that is not a
	// string (raw then holds that JSON, e.g. 90 or {"d":90}).
	notText bool
}

// unitLength is the length of one unit, or 0 for an unknown unit.
func unitLength(u byte) time.Duration {
	switch u {
	case 'y':
		return 365 * 24 * time.Hour
	case 'd':
		return 24 * time.Hour
	case 'h':
		return time.Hour
	case 'm':
		return time.Minute
	case 's':
		return time.Second
	}
	return 0
}

// ParseDuration parses "<count><unit>" with a non-negative decimal count and
// a unit of y, d, h, m or s. Periods longer than time.Duration can hold
// (about 292 years) are an error.
func ParseDuration(s string) (Duration, error) {
	if s == "" {
		return Duration{}, fmt.Errorf("empty duration (want e.g. 3y, 90d, 12h, 15m, 30s)")
	}
	unit := s[len(s)-1]
	num := s[:len(s)-1]
	per := unitLength(unit)
	switch {
	case unit >= '0' && unit <= '9':
		return Duration{}, fmt.Errorf("duration %q has no unit (use y, d, h, m or s)", s)
	case per == 0:
		return Duration{}, fmt.Errorf("duration %q has unknown unit %q (use y, d, h, m or s)", s, string(unit))
	case num == "":
		return Duration{}, fmt.Errorf("duration %q has no number", s)
	}
	for i := 0; i < len(num); i++ {
		if num[i] < '0' || num[i] > '9' {
			return Duration{}, fmt.Errorf("duration %q: count must be a non-negative whole number", s)
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > int64(maxDuration/per) {
		return Duration{}, fmt.Errorf("duration %q is too long (at most %d%c)", s, int64(maxDuration/per), unit)
	}
	return Duration{n: n, unit: unit}, nil
}

const maxDuration = time.Duration(1<<63 - 1)

// Valid reports whether d holds a parsed duration (the zero Duration and one
// decoded from bad text are not valid).
func (d Duration) Valid() bool { return d.unit != 0 }

// Std returns d as a time.Duration; 0 when d is not valid.
func (d Duration) Std() time.Duration { return time.Duration(d.n) * unitLength(d.unit) }

// String returns d as written, e.g. "3y"; an invalid Duration returns the
// text it was decoded from.
func (d Duration) String() string {
	if !d.Valid() {
		return d.raw
	}
	return strconv.FormatInt(d.n, 10) + string(d.unit)
}

// MarshalJSON writes d as its string form.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a JSON string. Anything else — text that is not a
// valid duration, a number, an object — is kept as an invalid Duration
// rather than rejected, so that decoding a schedule succeeds and Validate
// names the element (e.g. purposes[2].keep) and says what a duration
// looks like; a decoding error could only name the list ("purposes.keep").
// null is the zero Duration (reported as missing).
func (d *Duration) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*d = Duration{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		*d = Duration{raw: string(b), notText: true}
		return nil
	}
	parsed, err := ParseDuration(s)
	if err != nil {
		*d = Duration{raw: s}
		return nil
	}
	*d = parsed
	return nil
}

// PurposeRule says how long contacts collected for a purpose are kept, from
// when, and what happens then.
type PurposeRule struct {
	Purpose cases.Purpose `json:"purpose"`
	Keep    Duration      `json:"keep"`
	From    string        `json:"from"`   // FromCapture or FromCaseClosed
	Action  string        `json:"action"` // ActionDelete or ActionAnonymize
}

// CategoryRule minimizes one category of personal data on its own clock,
// counted from capture.
type CategoryRule struct {
	Category cases.Category `json:"category"`
	Keep     Duration       `json:"keep"`
	Action   string         `json:"action"` // ActionRedact
}

// BackupRule is the retention of the backups themselves (the "archiving
// and backup" purpose): the backup forget removes every backup older than
// Keep, whatever its keep-daily/weekly/monthly rules would keep. Absent, no
// age limit applies (a gap in the schedule never causes deletion).
type BackupRule struct {
	Keep Duration `json:"keep"`
}

// ProfileRule is the retention of a customer profile (name, e-mail,
// phone, consents) once no case of the customer is left: the sweeper
// deletes the profile Keep after the later of its last case's disposal
// and the profile's last update, unless a legal hold covers the customer.
type ProfileRule struct {
	Keep Duration `json:"keep"`
}

// DefaultProfileKeep is the customer_profile rule of a schedule that does
// not set one.
const DefaultProfileKeep = 90 * 24 * time.Hour

// RuleCustomerProfile is the rule name a profile's disposition records.
const RuleCustomerProfile = "customer_profile"

// Schedule is the retention schedule document of the API.
type Schedule struct {
	Version    int            `json:"version"`
	Purposes   []PurposeRule  `json:"purposes"`
	Categories []CategoryRule `json:"categories"`
	Backups    *BackupRule    `json:"backups,omitempty"`
	// CustomerProfile: absent, DefaultProfileKeep (issue 15 §3: a profile
	// is personal data too, and outlived every case before).
	CustomerProfile *ProfileRule `json:"customer_profile,omitempty"`
	// HoldReleaseGrace is how long a released legal hold keeps preserving
	// (and may be reinstated): a mistaken release can be undone before
	// anything it held is disposed of. Absent: DefaultHoldReleaseGrace; "0s"
	// ends preservation at release.
	HoldReleaseGrace *Duration `json:"hold_release_grace,omitempty"`
}

// DefaultHoldReleaseGrace is the release grace of a schedule that does not
// set one (Microsoft Purview's "delay hold" is 30 days too).
const DefaultHoldReleaseGrace = 30 * 24 * time.Hour

// maxHoldReleaseGrace bounds the grace: a release that preserves for years
// would be no release.
const maxHoldReleaseGrace = 365 * 24 * time.Hour

// ProfileKeep is how long a customer profile without cases is kept.
func (s Schedule) ProfileKeep() time.Duration {
	if s.CustomerProfile == nil || !s.CustomerProfile.Keep.Valid() {
		return DefaultProfileKeep
	}
	return s.CustomerProfile.Keep.Std()
}

// ReleaseGrace is how long a hold released under s keeps preserving.
func (s Schedule) ReleaseGrace() time.Duration {
	if s.HoldReleaseGrace == nil || !s.HoldReleaseGrace.Valid() {
		return DefaultHoldReleaseGrace
	}
	return s.HoldReleaseGrace.Std()
}

func ptr[T any](v T) *T { return &v }

func mustParse(s string) Duration {
	d, err := ParseDuration(s)
	if err != nil {
		panic(err)
	}
	return d
}

// DefaultSchedule returns the schedule a new installation starts with.
func DefaultSchedule() Schedule {
	p := func(pur cases.Purpose, keep, from, action string) PurposeRule {
		return PurposeRule{Purpose: pur, Keep: mustParse(keep), From: from, Action: action}
	}
	return Schedule{
		Version: 1,
		Purposes: []PurposeRule{
			// The customer may come back about the matter; 3 years after closure is the general limitation period for claims.
			p(cases.PurposeCustomerService, "3y", FromCaseClosed, ActionDelete),
			// Identity-check records only matter while disputes about an access are plausible; a year covers statement and chargeback cycles.
			p(cases.PurposeAuthentication, "1y", FromCapture, ActionDelete),
			// Security logs are needed to investigate incidents, which are often discovered months later; 2 years.
			p(cases.PurposeSecurity, "2y", FromCapture, ActionDelete),
			// Anti-fraud and anti-money-laundering rules commonly require 5 years of records.
			p(cases.PurposeFraudMonitoring, "5y", FromCapture, ActionDelete),
			// A notification is useless once delivered; 90 days covers "I never got the message" complaints.
			p(cases.PurposeNotification, "90d", FromCapture, ActionDelete),
			// Service improvement needs trends, not people: after a year the contact is anonymized, not kept identifiable.
			p(cases.PurposeImprovement, "1y", FromCapture, ActionAnonymize),
			// Personalization relies on recent behaviour; older data adds little and would outlive the customer's expectations.
			p(cases.PurposePersonalization, "1y", FromCapture, ActionDelete),
			// Tax and commercial-record laws commonly require 7 years (the longest common statutory period).
			p(cases.PurposeLegalObligation, "7y", FromCapture, ActionDelete),
			// Consent-based processing is kept no longer than a year without renewal of the consent.
			p(cases.PurposeConsented, "1y", FromCapture, ActionDelete),
		},
		Categories: []CategoryRule{
			// Precise location is intrusive and only useful for the immediate request (e.g. a delivery): 30 days.
			{Category: cases.CategoryLocation, Keep: mustParse("30d"), Action: ActionRedact},
			// IP and user agent help with troubleshooting and abuse for a few months, then only identify people: 90 days.
			{Category: cases.CategoryDevice, Keep: mustParse("90d"), Action: ActionRedact},
		},
		// Backups exist to recover from disasters, which are noticed within
		// weeks; 400 days also covers a yearly audit of last year's state.
		Backups: &BackupRule{Keep: mustParse("400d")},
		// A profile whose cases are all gone only identifies someone who
		// no longer has business with us; 90 days covers a late reply.
		CustomerProfile: &ProfileRule{Keep: mustParse("90d")},
		// A mistaken release can be undone for a month.
		HoldReleaseGrace: ptr(mustParse("30d")),
	}
}

// problems collects a schedule's invalid fields (paths such as
// "purposes[2].keep") for a *cases.ValidationError, which the API answers
// with 422 and one field error per problem.
type problems struct {
	fields []cases.FieldError
}

func (p *problems) add(field, format string, args ...any) {
	p.fields = append(p.fields, cases.FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Validate checks that the schedule names every purpose exactly once with a
// positive period, a known clock and action, and minimizes only categories
// a sweep enforces (RedactableCategories), each at most once, by redaction. It returns a
// *cases.ValidationError listing every problem, or nil.
func (s Schedule) Validate() error {
	v := &problems{}
	if s.Version < 0 {
		v.add("version", "must not be negative")
	}

	seen := map[cases.Purpose]int{}
	for i, r := range s.Purposes {
		at := fmt.Sprintf("purposes[%d]", i)
		checkName(v, at, "purposes", "purpose", r.Purpose, cases.Purposes, seen, i)
		checkKeep(v, at+".keep", r.Keep)
		if r.From != FromCapture && r.From != FromCaseClosed {
			v.add(at+".from", "must be %q or %q, not %q", FromCapture, FromCaseClosed, r.From)
		}
		if r.Action != ActionDelete && r.Action != ActionAnonymize {
			v.add(at+".action", "must be %q or %q, not %q", ActionDelete, ActionAnonymize, r.Action)
		}
	}
	for _, p := range cases.Purposes {
		if _, ok := seen[p]; !ok {
			v.add("purposes", "missing purpose %q: the schedule must name every purpose", p)
		}
	}

	seenCat := map[cases.Category]int{}
	for i, r := range s.Categories {
		at := fmt.Sprintf("categories[%d]", i)
		checkName(v, at, "categories", "category", r.Category, cases.Categories, seenCat, i)
		if slices.Contains(cases.Categories, r.Category) && !slices.Contains(RedactableCategories(), r.Category) {
			v.add(at+".category", "category %q cannot be redacted on its own clock: only %s are kept in fields of their own; "+
				"the rest is part of the contact, which its purposes' keep governs", r.Category, list(RedactableCategories()))
		}
		checkKeep(v, at+".keep", r.Keep)
		if r.Action != ActionRedact {
			v.add(at+".action", "must be %q, not %q", ActionRedact, r.Action)
		}
	}

	if s.CustomerProfile != nil {
		checkKeep(v, "customer_profile.keep", s.CustomerProfile.Keep)
	}
	if s.Backups != nil {
		checkKeep(v, "backups.keep", s.Backups.Keep)
	}
	if g := s.HoldReleaseGrace; g != nil {
		switch {
		case !g.Valid():
			_, err := ParseDuration(g.raw)
			v.add("hold_release_grace", "%v", err)
		case g.Std() > maxHoldReleaseGrace:
			v.add("hold_release_grace", "must be at most 365d")
		}
	}
	if len(v.fields) > 0 {
		return &cases.ValidationError{Fields: v.fields}
	}
	return nil
}

func checkKeep(v *problems, field string, d Duration) {
	switch {
	case d.notText:
		v.add(field, "must be a duration such as 90d (a string: a count and a unit y, d, h, m or s), not %s", clip(d.raw))
	case !d.Valid() && d.raw == "":
		v.add(field, "required: a duration such as 3y, 90d, 12h, 15m or 30s")
	case !d.Valid():
		_, err := ParseDuration(d.raw)
		v.add(field, "%v", err)
	case d.n <= 0:
		v.add(field, "must be greater than zero")
	}
}

// clip shortens a rejected JSON value for a message.
func clip(s string) string {
	if r := []rune(s); len(r) > 40 {
		return string(r[:40]) + "…"
	}
	return s
}

// checkName checks the name (purpose or category) of entry i of a list
// field: given, one of known, and not already given by an earlier entry
// (seen maps the names so far to their entries).
func checkName[T ~string](v *problems, at, listField, kind string, name T, known []T, seen map[T]int, i int) {
	field := at + "." + kind
	switch first, dup := seen[name]; {
	case name == "":
		v.add(field, "required")
	case !slices.Contains(known, name):
		v.add(field, "unknown %s %q (one of %s)", kind, name, list(known))
	case dup:
		v.add(field, "%s %q is already given in %s[%d]", kind, name, listField, first)
	default:
		seen[name] = i
	}
}

func list[T ~string](xs []T) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = string(x)
	}
	return strings.Join(parts, ", ")
}

// RedactableCategories lists the categories a category rule may name: the
// ones kept in fields of their own, which a sweep can clear while keeping
// the contact. A rule for any other category would be stored and never
// enforced (while explain called it done), so Validate refuses it.
func RedactableCategories() []cases.Category {
	out := make([]cases.Category, 0, len(categoryColumns))
	for _, c := range cases.Categories { // in the documented order
		if _, ok := categoryColumns[c]; ok {
			out = append(out, c)
		}
	}
	return out
}

// Rule returns the rule for purpose p.
func (s Schedule) Rule(p cases.Purpose) (PurposeRule, bool) {
	for _, r := range s.Purposes {
		if r.Purpose == p {
			return r, true
		}
	}
	return PurposeRule{}, false
}

// RetainUntil returns until when a contact captured at capturedAt for the
// given purposes is kept, and the rule that decides it. No purposes means
// customer_service, the API default.
//
// When a contact serves several purposes the longest retention wins (design
// precedence rule 2). A rule counted from case_closed has no end while the
// case is open (caseClosedAt nil, including after a reopen): the result is
// then nil — kept until the case closes — and nil beats any date. On equal
// dates the first purpose listed decides.
//
// A purpose the schedule has no rule for also gives nil, with a rule naming
// only the purpose: a gap in the schedule must never cause deletion.
// Validate rules such gaps out.
func (s Schedule) RetainUntil(purposes []cases.Purpose, capturedAt time.Time, caseClosedAt *time.Time) (until *time.Time, rule PurposeRule) {
	if len(purposes) == 0 {
		purposes = []cases.Purpose{cases.PurposeCustomerService}
	}
	decided := false
	for _, p := range purposes {
		r, ok := s.Rule(p)
		if !ok {
			r = PurposeRule{Purpose: p}
		}
		var end *time.Time
		switch {
		case !ok:
			// No rule: no end.
		case r.From == FromCaseClosed && caseClosedAt == nil:
			// Clock not started.
		case r.From == FromCaseClosed:
			t := caseClosedAt.Add(r.Keep.Std()).UTC()
			end = &t
		default:
			t := capturedAt.Add(r.Keep.Std()).UTC()
			end = &t
		}
		if !decided || longer(end, until) {
			until, rule, decided = end, r, true
		}
	}
	return until, rule
}

// longer reports whether a ends strictly later than b, nil being no end.
func longer(a, b *time.Time) bool {
	switch {
	case b == nil:
		return false
	case a == nil:
		return true
	}
	return a.After(*b)
}

// CategoryDue returns when data of category cat captured at capturedAt is to
// be minimized, and false when the schedule has no rule for cat.
func (s Schedule) CategoryDue(cat cases.Category, capturedAt time.Time) (time.Time, bool) {
	for _, r := range s.Categories {
		if r.Category == cat {
			return capturedAt.Add(r.Keep.Std()).UTC(), true
		}
	}
	return time.Time{}, false
}

// CategoryKeep returns how long data of category cat is kept before it is
// minimized, and false when the schedule has no rule for cat.
func (s Schedule) CategoryKeep(cat cases.Category) (time.Duration, bool) {
	for _, r := range s.Categories {
		if r.Category == cat {
			return r.Keep.Std(), true
		}
	}
	return 0, false
}

// Policy adapts s to cases.RetentionPolicy, which needs only the date.
func (s Schedule) Policy() cases.RetentionPolicy { return policy{s} }

// policy is one schedule as the store's policy (its rules, whatever the
// transaction) and as the rules it gives.
type policy struct{ s Schedule }

func (p policy) RulesIn(context.Context, *sql.Tx) (cases.RetentionRules, error) { return p, nil }

func (p policy) RetainUntil(purposes []cases.Purpose, capturedAt time.Time, caseClosedAt *time.Time) *time.Time {
	until, _ := p.s.RetainUntil(purposes, capturedAt, caseClosedAt)
	return until
}
