package cluster

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
)

// ErrBackupsNotShared: other replicas are live and this replica's backups
// would not go to the repository they share, encrypted to the recipients
// they share: each replica would keep its own backups, on its own disk
// or under its own key, and no single repository would hold them all.
// It is a conflict (the API answers 409).
var ErrBackupsNotShared = fmt.Errorf("backups are not shared by the live replicas (%w)", cases.ErrConflict)

// Backups is where a replica's backups go.
type Backups struct {
	// Repo names the repository: "local:<dir>" or "s3:<endpoint>/<bucket>/<prefix>".
	Repo string
	// Recipients are the configured age recipients ("" when the replica
	// uses a key of its own, generated in its data directory).
	Recipients string
}

// Local reports whether the repository is on the replica's own disk.
func (b Backups) Local() bool { return strings.HasPrefix(b.Repo, "local:") }

// recipientsDigest identifies a recipient list without storing it
// (whitespace and order do not matter).
func recipientsDigest(r string) string {
	fields := strings.FieldsFunc(r, func(c rune) bool { return c == ',' || c == ' ' || c == '\n' || c == '\t' })
	if len(fields) == 0 {
		return ""
	}
	sort.Strings(fields)
	sum := sha256.Sum256([]byte(strings.Join(fields, "\n")))
	return hex.EncodeToString(sum[:])
}

// Replica is one registered replica.
type Replica struct {
	ID        string
	Host      string
	StartedAt time.Time
	SeenAt    time.Time
	// BackupRepo and recipients as registered (recipients as a digest).
	BackupRepo       string
	BackupRecipients string
}

// Registry is the table of live replicas: each renews its row every
// Interval while it runs; a row not renewed for TTL is a replica gone.
type Registry struct {
	db      *sqldb.DB
	self    Replica
	ttl     time.Duration
	now     func() time.Time
	backups Backups
}

// RegistryOptions configures a Registry.
type RegistryOptions struct {
	ID, Host string
	Backups  Backups
	// TTL is how long a replica counts as live after its last heartbeat
	// (default 45 s: three missed 15 s beats).
	TTL time.Duration
	Now func() time.Time
}

// Interval is how often a replica should call Beat: a third of ttl.
func (r *Registry) Interval() time.Duration { return r.ttl / 3 }

// NewRegistry builds this replica's entry in the registry.
func NewRegistry(db *sqldb.DB, opts RegistryOptions) *Registry {
	if opts.TTL <= 0 {
		opts.TTL = 45 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ID == "" {
		opts.ID = NewReplicaID()
	}
	now := opts.Now()
	return &Registry{db: db, ttl: opts.TTL, now: opts.Now, backups: opts.Backups, self: Replica{
		ID: opts.ID, Host: opts.Host, StartedAt: now, BackupRepo: opts.Backups.Repo, BackupRecipients: recipientsDigest(opts.Backups.Recipients)}}
}

// ID is this replica's id.
func (r *Registry) ID() string { return r.self.ID }

// Beat registers this replica or renews its row.
func (r *Registry) Beat(ctx context.Context) error {
	now := r.now().UnixMicro()
	_, err := r.db.Write.ExecContext(ctx, r.db.Rebind(`INSERT INTO replicas (id, host, started_at, seen_at, backup_repo, backup_recipients) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at`),
		r.self.ID, r.self.Host, r.self.StartedAt.UnixMicro(), now, r.self.BackupRepo, r.self.BackupRecipients)
	return sqldb.Fail("replica heartbeat", err)
}

// Leave removes this replica's row (a clean shutdown), and the rows of
// replicas gone for long (ten TTLs), so the table stays small.
func (r *Registry) Leave(ctx context.Context) error {
	_, err := r.db.Write.ExecContext(ctx, r.db.Rebind(`DELETE FROM replicas WHERE id = ? OR seen_at < ?`),
		r.self.ID, r.now().Add(-10*r.ttl).UnixMicro())
	return sqldb.Fail("replica leave", err)
}

// Others lists the other live replicas.
func (r *Registry) Others(ctx context.Context) ([]Replica, error) {
	rows, err := sqldb.Collect(ctx, r.db.Read, r.db.Rebind(`SELECT id, host, started_at, seen_at, backup_repo, backup_recipients FROM replicas
		WHERE id <> ? AND seen_at >= ? ORDER BY id`), []any{r.self.ID, r.now().Add(-r.ttl).UnixMicro()}, func(rows *sql.Rows) (Replica, error) {
		var rp Replica
		var started, seen int64
		err := rows.Scan(&rp.ID, &rp.Host, &started, &seen, &rp.BackupRepo, &rp.BackupRecipients)
		rp.StartedAt, rp.SeenAt = time.UnixMicro(started).UTC(), time.UnixMicro(seen).UTC()
		return rp, err
	})
	if err != nil {
		return nil, sqldb.Fail("list replicas", err)
	}
	return rows, nil
}

// CheckBackups says whether this replica may back up: alone, always; with
// other live replicas, only into the same shared (S3) repository as each
// of them, encrypted to the same configured recipients. The error wraps
// ErrBackupsNotShared and says what differs and what to configure.
func (r *Registry) CheckBackups(ctx context.Context) error {
	others, err := r.Others(ctx)
	if err != nil || len(others) == 0 {
		return err
	}

	hosts := make([]string, len(others))
	for i, o := range others {
		hosts[i] = o.Host
	}
	live := fmt.Sprintf("%d other replica(s) are live (%s)", len(others), strings.Join(hosts, ", "))
	switch {
	case r.backups.Local():
		return fmt.Errorf("%w: %s and this replica's backup repository is on its own disk (%s); with several replicas set --backup-s3-endpoint (one repository for all) and --backup-recipients",
			ErrBackupsNotShared, live, strings.TrimPrefix(r.backups.Repo, "local:"))
	case r.self.BackupRecipients == "":
		return fmt.Errorf("%w: %s and this replica encrypts to a backup key of its own; with several replicas set --backup-recipients (the same on every replica)", ErrBackupsNotShared, live)
	}
	for _, o := range others {
		switch {
		case o.BackupRepo != r.self.BackupRepo:
			return fmt.Errorf("%w: replica %s (%s) backs up to another repository; every replica must use the same --backup-s3-endpoint, bucket and prefix", ErrBackupsNotShared, o.ID, o.Host)
		case o.BackupRecipients != r.self.BackupRecipients:
			return fmt.Errorf("%w: replica %s (%s) encrypts backups to other recipients; every replica must use the same --backup-recipients", ErrBackupsNotShared, o.ID, o.Host)
		}
	}
	return nil
}
