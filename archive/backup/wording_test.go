package backup_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/retention"
)

// TestRestoreCaseNamesWhyDeleted: the refusal to restore a deleted case says
// how it was deleted, from its disposition record: by request, or by the
// retention run and rule that disposed of it.
func TestRestoreCaseNamesWhyDeleted(t *testing.T) {
	tests := []struct {
		name    string
		delete  func(t *testing.T, in *instance, caseID string)
		want    string
		notWant string
	}{
		{"by request", func(t *testing.T, in *instance, caseID string) {
			if err := in.deleter.DeleteCase(context.Background(), caseID, operator); err != nil {
				t.Fatal(err)
			}
		}, "deleted by request", "retention"},
		{"by retention", func(t *testing.T, in *instance, caseID string) {
			closed := base
			if _, err := in.store.UpdateCase(context.Background(), caseID, func(c *cases.Case) error { c.Status, c.ClosedAt = cases.StatusClosed, &closed; return nil }, change(caseID)); err != nil {
				t.Fatal(err)
			}
			if _, err := in.sweeper.Run(context.Background(), retention.RunOptions{Now: base.AddDate(4, 0, 0)}); err != nil {
				t.Fatal(err)
			}
		}, "deleted by retention run", "by request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forEachDialect(t, func(t *testing.T, in *instance) {
				ctx := context.Background()
				ids := in.seed(1, 1)
				repo, _ := newRepo(t)
				keys := newKeys(t)
				m, err := in.service(repo, keys).Backup(ctx, "test", operator, nil)
				if err != nil {
					t.Fatal(err)
				}
				tt.delete(t, in, ids[0])
				_, err = repo.RestoreCase(ctx, m.ID, ids[0], backup.CaseRestoreOptions{DB: in.db, Blobs: in.blobs, Identity: keys.Identity, Actor: operator})
				if !errors.Is(err, backup.ErrDeleted) {
					t.Fatalf("restore of a deleted case: %v, want ErrDeleted", err)
				}
				if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), tt.notWant) {
					t.Errorf("refusal %q: want it to say %q, never %q", err, tt.want, tt.notWant)
				}
			})
		})
	}
}
