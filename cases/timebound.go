package cases

import (
	"fmt"
	"time"
)

// TimeFormats says, in messages, which time values ParseTime accepts.
const TimeFormats = "RFC 3339 (2026-11-30T08:00:00Z) or YYYY-MM-DD"

// ParseTime reads a time bound the way the API accepts one everywhere
// (audit from/to, search from/to and after:/before:, the CLI's date
// flags): RFC 3339, or a date meaning its UTC midnight. Empty is the zero
// time (no bound). A bad value is a ValidationError naming field.
func ParseTime(field, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}

	for _, layout := range []string{time.RFC3339Nano, time.DateOnly} {
		t, err := time.Parse(layout, v)
		if err != nil {
			continue
		}
		if err := CheckTimeBound(field, v, t); err != nil {
			return time.Time{}, err
		}
		return t.UTC(), nil
	}
	return time.Time{}, Invalid(field, fmt.Sprintf("must be %s, not %q", TimeFormats, v))
}

// CheckTimeBound refuses a bound t (read from v) at or before the zero
// time: the zero time means "no bound" to every caller, so such a bound
// would vanish without a word. ParseTime applies it; so must any other
// way of reading a bound (search's relative ages, 36600y).
func CheckTimeBound(field, v string, t time.Time) error {
	if !t.After(time.Time{}) {
		return Invalid(field, fmt.Sprintf("must be after %s, not %q", time.Time{}.Format(time.RFC3339), v))
	}
	return nil
}
