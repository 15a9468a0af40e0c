package audit

// SetPruneStep lets tests prune in small steps to exercise the batching.
func SetPruneStep(l *Log, n int64) { l.pruneStep = n }
