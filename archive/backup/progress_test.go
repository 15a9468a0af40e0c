package backup

import (
	"testing"
	"time"
)

func TestThrottle(t *testing.T) {
	var got []Progress
	p := throttle(func(e Progress) { got = append(got, e) })
	for i := int64(1); i <= 1000; i++ {
		p(Progress{Phase: "attachments", Done: i, Total: 1000})
	}
	p(Progress{Phase: "tables", Done: 1, Total: 10})
	if len(got) < 3 || len(got) > 10 {
		t.Fatalf("%d events for 1001 reports in well under a second; want the first, the last and few between", len(got))
	}
	if got[0].Done != 1 || got[len(got)-2].Done != 1000 || got[len(got)-1].Phase != "tables" {
		t.Fatalf("first, last or phase change dropped: %+v", got)
	}
	time.Sleep(progressEvery)
	p(Progress{Phase: "tables", Done: 2, Total: 10})
	if got[len(got)-1].Done != 2 {
		t.Fatal("an event after the interval was dropped")
	}
	throttle(nil)(Progress{}) // nil is allowed
}
