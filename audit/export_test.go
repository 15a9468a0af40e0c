package audit

// SetPruneStep lets tests prune in small steps to exercise the batching.
func SetPruneStep(l *Log, n int64) { l.pruneStep = n }

// VerifySQL forces the database/sql walk (used on SQLite) on any engine.
var VerifySQL = (*Log).verifySQL
