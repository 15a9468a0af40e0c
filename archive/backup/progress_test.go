package backup

import (
	"testing"
	"time"

	"github.com/casevault/casevault/testkit"
)

func TestThrottle(t *testing.T) {
	clock := testkit.NewClock(time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC))
	var got []Progress
	p := throttle(func(e Progress) { got = append(got, e) }, clock.Now)

	for i := int64(1); i <= 1000; i++ {
		p(Progress{Phase: "attachments", Done: i, Total: 1000})
		if i%100 == 0 {
			clock.Advance(progressEvery / 4)
		}
	}
	p(Progress{Phase: "tables", Done: 1, Total: 10})
	if len(got) < 3 || len(got) > 10 {
		t.Fatalf("%d events for 1001 reports in 2.5 intervals; want the first, the last and few between", len(got))
	}
	if got[0].Done != 1 || got[len(got)-2].Done != 1000 || got[len(got)-1].Phase != "tables" {
		t.Fatalf("first, last or phase change dropped: %+v", got)
	}

	p(Progress{Phase: "tables", Done: 2, Total: 10})
	if got[len(got)-1].Done == 2 {
		t.Fatal("an event within the interval was passed on")
	}
	clock.Advance(progressEvery)
	p(Progress{Phase: "tables", Done: 3, Total: 10})
	if got[len(got)-1].Done != 3 {
		t.Fatal("an event after the interval was dropped")
	}

	throttle(nil, clock.Now)(Progress{}) // nil is allowed
}
