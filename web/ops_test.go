package web

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/casevault/casevault/archive/backup"
)

// TestRunProgress: a run's phases as reported from several goroutines (a
// backup dumps tables while workers copy attachments), the latest of each
// shown, and runs forgotten a while after they ended.
func TestRunProgress(t *testing.T) {
	p := newRunProgress()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep := p.report("r1")
			for i := int64(1); i <= 100; i++ {
				rep(backup.Progress{Phase: fmt.Sprintf("phase-%d", w%2), Done: i, Total: 100, Unit: "rows"})
				_ = p.phases("r1")
			}
		}()
	}
	wg.Wait()
	got := p.phases("r1")
	if len(got) != 2 || got[0].Phase != "phase-0" || got[1].Phase != "phase-1" {
		t.Fatalf("phases %+v", got)
	}
	for _, ph := range got {
		if ph.Done != 100 || ph.Percent != 100 || !ph.TotalKnown {
			t.Errorf("phase %+v, want done", ph)
		}
	}
	p.report("r2")(backup.Progress{Phase: "blobs", Done: 5, Unit: "bytes"})
	if ph := p.phases("r2"); len(ph) != 1 || ph[0].TotalKnown || ph[0].Percent != 0 {
		t.Errorf("unknown total: %+v", ph)
	}

	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p.end("r1", at)
	p.end("r2", at.Add(progressKeep))
	if p.phases("r1") == nil {
		t.Fatal("an ended run forgotten at once")
	}
	p.end("r3", at.Add(progressKeep+time.Minute)) // unknown run: only prunes
	if p.phases("r1") != nil {
		t.Error("a run ended over progressKeep ago is still kept")
	}
	if p.phases("r2") == nil {
		t.Error("a run ended a minute ago is forgotten")
	}
}
