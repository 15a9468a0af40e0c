package search

import (
	"context"
	"time"
)

// OutboxEntry is one pending change: the case whose documents must be
// refreshed. (Defined by the lead so the SQL store can implement Source;
// the indexer consumes it.)
type OutboxEntry struct {
	Seq       int64
	CaseID    string
	CreatedAt time.Time
}

// Source is what the indexer needs from the store.
type Source interface {
	PendingOutbox(ctx context.Context, limit int) ([]OutboxEntry, error)
	MarkOutboxDone(ctx context.Context, seqs []int64) error
	// LoadCaseDocs returns the current state; a missing ID means the case is gone.
	LoadCaseDocs(ctx context.Context, caseIDs []string) (map[string]CaseDoc, error)
	OutboxStats(ctx context.Context) (pending int64, oldest time.Time, err error)
	// ListCaseIDs pages through every case ID in ascending order (full reindex).
	ListCaseIDs(ctx context.Context, after string, limit int) ([]string, error)
}
