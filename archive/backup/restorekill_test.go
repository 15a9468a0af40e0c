package backup_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/archive/local"
	"github.com/casevault/casevault/sqldb"
)

// restoreChildEnv carries the repository, key file, target and backup ID
// to the child process TestRestoreKilledBeforeCommit kills.
const restoreChildEnv = "CASEVAULT_TEST_RESTORE_KILL"

// A restore killed after every row is loaded but before the commit leaves
// a target that is empty and in WAL mode, never one that looks restored:
// SQLite loads in rollback-journal mode (restore.go, sqliteLoad) with
// rows already written into the database file, and the journal takes them
// back at the next open. A restore into that target then succeeds.
func TestRestoreKilledBeforeCommit(t *testing.T) {
	if cfg := os.Getenv(restoreChildEnv); cfg != "" {
		restoreAndDie(t, strings.Split(cfg, "\n"))
		return
	}
	ctx := context.Background()
	src := newInstance(t, sqldb.SQLite)
	src.seed(30, 20)
	repo, repoDir := newRepo(t)
	keyFile := filepath.Join(t.TempDir(), "backup.key")
	keys, err := backup.LoadKeys(backup.KeyConfig{DefaultIdentityFile: keyFile}, true)
	if err != nil {
		t.Fatal(err)
	}
	m, err := src.service(repo, keys).Backup(ctx, "test", operator, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "restored")

	cmd := exec.Command(os.Args[0], "-test.run=^TestRestoreKilledBeforeCommit$", "-test.v")
	cmd.Env = append(os.Environ(), restoreChildEnv+"="+strings.Join([]string{repoDir, keyFile, dir, m.ID}, "\n"))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() {
		t.Fatalf("the restoring process was not killed: %v\n%s", err, out)
	}
	var before, atKill int64
	if i := strings.Index(string(out), "database file:"); i < 0 {
		t.Fatalf("child output:\n%s", out)
	} else if _, err := fmt.Sscanf(string(out[i:]), "database file: %d bytes before, %d when killed", &before, &atKill); err != nil {
		t.Fatalf("child output: %v\n%s", err, out)
	}
	t.Logf("database file %d bytes before the load, %d when the restore was killed", before, atKill)
	if atKill <= before {
		t.Fatalf("database file %d bytes before the load, %d when killed: the load wrote nothing into it, the test tests nothing", before, atKill)
	}

	tg, err := backup.OpenTarget(ctx, dir, "FULL")
	if err != nil {
		t.Fatalf("killed restore's target: %v", err) // ErrTargetInUse when rows survived
	}
	var mode string
	if err := tg.DB.Read.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal mode %q, %v", mode, err)
	}
	blobs, err := local.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	restoreInto(t, repo, m.ID, keys, &instance{db: tg.DB, blobs: blobs})
	if n := (&instance{t: t, ctx: ctx, db: tg.DB}).count(`SELECT COUNT(*) FROM contacts`); n != 600 {
		t.Fatalf("%d contacts after the second restore, want 600", n)
	}
	tg.Close()
}

// restoreAndDie is the child: it restores with a page cache small enough
// that the load spills rows into the database file, and kills itself once
// every row is loaded, before the attachments are waited for and the
// transaction commits.
func restoreAndDie(t *testing.T, cfg []string) {
	repoDir, keyFile, dir, id := cfg[0], cfg[1], cfg[2], cfg[3]
	ctx := context.Background()
	st, err := local.New(repoDir)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := backup.OpenRepo(st, "", backup.RepoOptions{Signer: signer(t, master)})
	if err != nil {
		t.Fatal(err)
	}
	keys, err := backup.LoadKeys(backup.KeyConfig{IdentityFile: keyFile}, false)
	if err != nil {
		t.Fatal(err)
	}
	tg, err := backup.OpenTarget(ctx, dir, "FULL")
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := local.New(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	size := func() int64 {
		fi, err := os.Stat(filepath.Join(dir, "casevault.db"))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	before := size()
	opts := backup.RestoreOptions{Target: tg.DB, Blobs: blobs, Identity: keys.Identity, Actor: operator,
		Progress: func(p backup.Progress) {
			if p.Phase == "tables" && p.Total > 0 && p.Done == p.Total {
				fmt.Printf("database file: %d bytes before, %d when killed\n", before, size())
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			}
		}}
	_, err = repo.Restore(ctx, id, backup.WithLoadCache(opts, 64))
	t.Fatalf("restore returned (%v) instead of being killed", err)
}
