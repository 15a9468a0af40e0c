package main

import (
	"testing"
	"time"
)

// TestScheduleTicksSharedAcrossReplicas: two replicas whose crons start
// 1.3 s apart compute the same ticks for every kind of schedule, so one
// of them claims each tick (issue 19 §4). robfig/cron's own @every counts
// from each process's start, which gave the replicas different ticks.
func TestScheduleTicksSharedAcrossReplicas(t *testing.T) {
	start := time.Date(2026, 12, 1, 8, 0, 0, 400_000_000, time.UTC)
	for _, spec := range []string{"@every 3s", "@every 1m", "*/2 * * * * *", "0 2 * * *", "@hourly"} {
		t.Run(spec, func(t *testing.T) {
			s, err := parseSchedule(spec)
			if err != nil {
				t.Fatal(err)
			}
			ticks := func(from time.Time) []time.Time {
				var out []time.Time
				for at := s.Next(from); len(out) < 4; at = s.Next(at) {
					out = append(out, at)
				}
				return out
			}
			a, b := ticks(start), ticks(start.Add(1300*time.Millisecond))
			// The later replica may miss the first tick of the other.
			if !b[0].Equal(a[0]) {
				a = a[1:]
			}
			for i := range a {
				if !a[i].Equal(b[i]) {
					t.Fatalf("replica ticks differ: %v and %v", a, b)
				}
			}
		})
	}
	for _, bad := range []string{"not a schedule", "* * * * * * *", "@every nothing"} {
		if _, err := parseSchedule(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
