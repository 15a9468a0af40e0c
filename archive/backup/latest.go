package backup

import (
	"context"
	"fmt"
)

// Latest names the newest complete backup wherever a backup id is asked
// for (as restic's "latest").
const Latest = "latest"

// Resolve returns id, or for Latest the id of the newest complete backup
// (ErrNotFound in an empty repository).
func (r *Repo) Resolve(ctx context.Context, id string) (string, error) {
	if id != Latest {
		return id, nil
	}
	ms, _, err := r.List(ctx)
	if err != nil {
		return "", err
	}
	if len(ms) == 0 {
		return "", fmt.Errorf("%w: %s: the repository holds no complete backup", ErrNotFound, Latest)
	}
	return ms[len(ms)-1].ID, nil
}
