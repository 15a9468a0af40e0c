package backup

import (
	"sync"
	"time"
)

// progressEvery is the most often a phase reports; copying 1 GiB would
// otherwise report every 32 KiB read.
const progressEvery = 100 * time.Millisecond

// throttle wraps fn so that it is called at most every progressEvery per
// phase, always for a phase's first and last event, from one goroutine at
// a time (the attachment copy reports from several workers). now is the
// clock the interval is measured on.
func throttle(fn func(Progress), now func() time.Time) func(Progress) {
	if fn == nil {
		return func(Progress) {}
	}
	var mu sync.Mutex
	// per phase: a backup dumps tables while it copies attachments
	last := map[string]time.Time{}
	return func(p Progress) {
		mu.Lock()
		defer mu.Unlock()
		t := now()
		if at, ok := last[p.Phase]; ok && t.Sub(at) < progressEvery && (p.Total <= 0 || p.Done < p.Total) {
			return
		}
		last[p.Phase] = t
		fn(p)
	}
}
