package cases_test

import (
	"errors"
	"testing"
	"time"

	"github.com/casevault/casevault/cases"
)

func TestParseTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{in: "", want: time.Time{}},
		{in: "2026-11-30", want: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)},
		{in: "2026-11-30T08:00:00Z", want: time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)},
		{in: "2026-11-30T09:00:00.5+01:00", want: time.Date(2026, 11, 30, 8, 0, 0, 5e8, time.UTC)},
		{in: "30/11/2026", bad: true},
		{in: "yesterday", bad: true},
		{in: "2026-13-01", bad: true},
		{in: "2026-11-30 08:00:00", bad: true},
		{in: " 2026-11-30", bad: true},
		{in: "2026-11-30T08:00:00", bad: true}, // no zone: ambiguous
		// At or before the zero time, which every caller reads as "no
		// bound": if accepted, the bound would vanish silently.
		{in: "0000-01-01", bad: true},
		{in: "0001-01-01", bad: true},
		{in: "0001-01-01T00:00:00Z", bad: true},
		{in: "0001-01-01T00:30:00+01:00", bad: true},
		{in: "0001-01-01T00:00:00.000000001Z", want: time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)},
		{in: "0001-01-02", want: time.Date(1, 1, 2, 0, 0, 0, 0, time.UTC)},
	} {
		got, err := cases.ParseTime("from", tc.in)
		if tc.bad {
			var ve *cases.ValidationError
			if !errors.As(err, &ve) || len(ve.Fields) != 1 || ve.Fields[0].Field != "from" {
				t.Errorf("ParseTime(%q) = %v, %v; want a ValidationError naming from", tc.in, got, err)
			}
			continue
		}
		if err != nil || !got.Equal(tc.want) || got.Location() != time.UTC {
			t.Errorf("ParseTime(%q) = %v, %v; want %v UTC", tc.in, got, err, tc.want)
		}
	}
}
