package search

import (
	"context"
	"errors"
	"fmt"
)

// ErrUnavailable marks an engine that cannot answer now: unreachable, out
// of disk, or being reopened after a failure. The API answers 503.
var ErrUnavailable = errors.New("search engine unavailable")

// ErrBroken marks an engine error after which the engine's in-memory state
// can no longer be trusted (say Bleve failed to persist a batch on a full
// disk: the batch is visible in memory but not on disk, and later batches
// would build on it). The indexer closes such an engine and reopens it from
// what it persisted (Options.Reopen); the outbox still holds every change
// not confirmed, so nothing acknowledged is lost.
var ErrBroken = errors.New("search engine must be reopened")

// Unavailable returns an engine that answers every call with ErrUnavailable
// and cause: it stands in for an engine that could not be opened (a full
// disk at start-up) or is being reopened, so that the server runs with
// search degraded, and the indexer replaces it through Options.Reopen.
func Unavailable(name string, cause error) Engine {
	return unavailable{name: name, err: fmt.Errorf("%w: %w", ErrUnavailable, cause)}
}

type unavailable struct {
	name string
	err  error
}

func (u unavailable) Name() string                                  { return u.name }
func (u unavailable) IndexName() string                             { return "" }
func (u unavailable) Index(context.Context, []CaseDoc) error        { return u.err }
func (u unavailable) Delete(context.Context, []string) error        { return u.err }
func (u unavailable) Search(context.Context, Query) (Result, error) { return Result{}, u.err }
func (u unavailable) Count(context.Context) (int64, error)          { return 0, u.err }
func (u unavailable) Ping(context.Context) error                    { return u.err }
func (u unavailable) Close() error                                  { return nil }

// needsReopen reports whether an engine error calls for closing the engine
// and opening it again.
func needsReopen(err error) bool {
	return errors.Is(err, ErrBroken) || isPanic(err)
}
