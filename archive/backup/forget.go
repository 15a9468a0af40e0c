package backup

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/cases"
)

// KeepPolicy says which backups forget keeps: the newest backup of each of
// the last Daily days, Weekly ISO weeks and Monthly months that have one
// (like restic's --keep-daily/weekly/monthly). MaxAge, when set, is the
// backups' own retention (the "archiving and backup" purpose): nothing
// older survives, whatever the buckets say.
type KeepPolicy struct {
	Daily   int           `json:"keep_daily"`
	Weekly  int           `json:"keep_weekly"`
	Monthly int           `json:"keep_monthly"`
	MaxAge  time.Duration `json:"max_age"`
	// Last keeps the newest Last backups; Within every backup taken within
	// that long before now (restic's --keep-last, --keep-within).
	Last   int           `json:"keep_last,omitempty"`
	Within time.Duration `json:"keep_within,omitempty"`
	// Tags keeps every backup carrying one of them (restic's --keep-tag).
	Tags []string `json:"keep_tags,omitempty"`
}

// CheckTags refuses a tag that is empty, longer than 64 bytes or not made
// of letters, digits, '.', '_' and '-' (tags are shown and matched as
// given, so they stay plain).
func CheckTags(tags []string) error {
	for _, t := range tags {
		if t == "" || len(t) > 64 || strings.TrimLeft(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
			return fmt.Errorf("%w: tag %q: use 1 to 64 letters, digits, '.', '_' or '-'", ErrBadTag, t)
		}
	}
	return nil
}

// ErrBadTag is a tag CheckTags refuses.
var ErrBadTag = errors.New("bad backup tag")

// HasRule reports whether p keeps anything (forget refuses a policy that
// would remove every backup).
func (p KeepPolicy) HasRule() bool {
	return p.Daily > 0 || p.Weekly > 0 || p.Monthly > 0 || p.Last > 0 || p.Within > 0 || len(p.Tags) > 0
}

// Decision is forget's verdict on one backup.
type Decision struct {
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	Keep    bool      `json:"keep"`
	Reasons []string  `json:"reasons"`
}

// Plan decides, newest first, which backups to keep.
func Plan(ms []Manifest, p KeepPolicy, now time.Time) ([]Decision, error) {
	if p.Daily < 0 || p.Weekly < 0 || p.Monthly < 0 || p.MaxAge < 0 || p.Last < 0 || p.Within < 0 {
		return nil, errors.New("keep counts and durations must not be negative")
	}

	if !p.HasRule() {
		return nil, errors.New("no keep rule given: refusing to forget every backup (set --keep-last, --keep-within, --keep-tag, --keep-daily, --keep-weekly or --keep-monthly)")
	}

	if err := CheckTags(p.Tags); err != nil {
		return nil, err
	}

	sorted := append([]Manifest(nil), ms...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].SnapshotAt.After(sorted[j].SnapshotAt) })
	type bucket struct {
		name string
		n    int
		key  func(t time.Time) string
		seen map[string]bool
	}

	buckets := []*bucket{
		{name: "daily", n: p.Daily, key: func(t time.Time) string { return t.Format("2006-01-02") }},
		{name: "weekly", n: p.Weekly, key: func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%d-W%02d", y, w) }},
		{name: "monthly", n: p.Monthly, key: func(t time.Time) string { return t.Format("2006-01") }},
	}

	for _, b := range buckets {
		b.seen = map[string]bool{}
	}

	out := make([]Decision, 0, len(sorted))
	for i, m := range sorted {
		t := m.SnapshotAt.UTC()
		d := Decision{ID: m.ID, Time: t, Reasons: []string{}}
		if i < p.Last {
			d.Keep = true
			d.Reasons = append(d.Reasons, fmt.Sprintf("last %d", p.Last))
		}
		if p.Within > 0 && now.Sub(t) <= p.Within {
			d.Keep = true
			d.Reasons = append(d.Reasons, "within "+p.Within.String())
		}
		for _, tag := range p.Tags {
			if slices.Contains(m.Tags, tag) {
				d.Keep = true
				d.Reasons = append(d.Reasons, "tag "+tag)
			}
		}
		for _, b := range buckets {
			k := b.key(t)
			if len(b.seen) < b.n && !b.seen[k] {
				b.seen[k] = true
				d.Keep = true
				d.Reasons = append(d.Reasons, b.name+" "+k)
			}
		}
		if d.Keep && p.MaxAge > 0 && now.Sub(t) > p.MaxAge {
			d.Keep = false
			d.Reasons = []string{"older than the backup retention of " + p.MaxAge.String()}
		}
		if !d.Keep && len(d.Reasons) == 0 {
			d.Reasons = append(d.Reasons, "no keep rule matched")
		}
		out = append(out, d)
	}

	return out, nil
}

// ForgetReport is what forget did (or, on a dry run, would do).
type ForgetReport struct {
	DryRun         bool       `json:"dry_run"`
	Decisions      []Decision `json:"decisions"`
	Removed        []string   `json:"removed"`
	ObjectsRemoved int        `json:"objects_removed"`
	BytesFreed     int64      `json:"bytes_freed"`
	Leftovers      int        `json:"leftovers_removed"`
}

// Forget removes the backups p does not keep, then every object no
// remaining backup references, under the run lease.
// origin says who asked (cli, schedule, api), as for backup runs.
func (s *Service) Forget(ctx context.Context, p KeepPolicy, dryRun bool, origin string, actor cases.Actor) (ForgetReport, error) {
	now := s.opts.Now()
	lctx, release, err := s.lease(ctx, "forget-"+newID(now))
	if err != nil {
		return ForgetReport{}, err
	}
	defer release()
	rep, err := s.repo.forget(lctx, p, dryRun, now)
	if err != nil || dryRun {
		return rep, err
	}
	if s.opts.OnChange != nil {
		err = s.recordForget(lctx, rep, origin, actor)
	}
	return rep, err
}

func (s *Service) recordForget(ctx context.Context, rep ForgetReport, origin string, actor cases.Actor) error {
	id := "forget-" + newID(s.opts.Now())
	if err := s.recordStart(ctx, id, "forget", origin, s.opts.Now()); err != nil {
		return err
	}
	return s.recordEnd(ctx, id, rep, nil, &cases.Change{Actor: actor, Action: "backup.forget", TargetType: "backup", TargetID: strings.Join(rep.Removed, ","),
		Detail: map[string]any{"removed": len(rep.Removed), "objects_removed": rep.ObjectsRemoved, "bytes_freed": rep.BytesFreed}})
}

func (r *Repo) forget(ctx context.Context, p KeepPolicy, dryRun bool, now time.Time) (ForgetReport, error) {
	// Unsigned manifests (backups of an older casevault) are listed too:
	// their files must not be pruned as unreferenced. But only signed
	// backups compete for the keep rules, so a planted unsigned manifest
	// can never push a real backup out; unsigned ones go by age alone.
	ms, bad, err := r.list(ctx, true)
	if err != nil {
		return ForgetReport{}, err
	}

	if len(bad) > 0 {
		return ForgetReport{}, fmt.Errorf("%w: manifest of backup %s: %s", ErrDamaged, bad[0].ID, bad[0].Error)
	}

	var signed []Manifest
	for _, m := range ms {
		if !m.Unsigned {
			signed = append(signed, m)
		}
	}

	ds, err := Plan(signed, p, now)
	if err != nil {
		return ForgetReport{}, err
	}

	for _, m := range ms {
		if !m.Unsigned {
			continue
		}
		d := Decision{ID: m.ID, Time: m.SnapshotAt.UTC(), Keep: true, Reasons: []string{"unsigned (written before casevault signed backups): kept until the backup retention removes it"}}
		if p.MaxAge > 0 && now.Sub(d.Time) > p.MaxAge {
			d.Keep, d.Reasons = false, []string{"unsigned, and older than the backup retention of " + p.MaxAge.String()}
		}
		ds = append(ds, d)
	}

	rep := ForgetReport{DryRun: dryRun, Decisions: ds, Removed: []string{}}
	keep := map[string]bool{}
	for _, d := range ds {
		if d.Keep {
			keep[d.ID] = true
		} else {
			rep.Removed = append(rep.Removed, d.ID)
		}
	}

	used := map[string]bool{}
	for _, m := range ms {
		if keep[m.ID] {
			for _, o := range m.Objects() {
				used[o] = true
			}
		}
	}

	objs, err := r.objects(ctx)
	if err != nil {
		return ForgetReport{}, err
	}

	for k, size := range objs {
		if !used[k] {
			rep.ObjectsRemoved++
			rep.BytesFreed += size
		}
	}

	if dryRun {
		return rep, nil
	}

	for _, id := range rep.Removed {
		// Manifest first: from then on the backup is not listed, and a
		// crash leaves unlisted leftovers for the next forget, never a
		// listed backup with files missing.
		if err := r.st.Delete(ctx, r.key(snapshotsDir+id+"/"+manifestName)); err != nil {
			return rep, fmt.Errorf("forget %s: %w", id, err)
		}
	}

	for k := range objs {
		if !used[k] {
			if err := r.st.Delete(ctx, r.key(k)); err != nil {
				return rep, fmt.Errorf("prune %s: %w", k, err)
			}
		}
	}

	n, err := r.removeLeftovers(ctx, keep, now.Add(-time.Hour))
	rep.Leftovers = n
	return rep, err
}

// removeLeftovers deletes snapshot files without a manifest (forgotten or
// interrupted backups) and temporary objects older than before.
func (r *Repo) removeLeftovers(ctx context.Context, keep map[string]bool, before time.Time) (int, error) {
	var dead []string
	manifest := map[string]bool{}
	for _, dir := range []string{snapshotsDir, tmpDir} {
		err := r.st.List(ctx, r.key(dir), func(bi archive.BlobInfo) error {
			rel := bi.Key[len(r.prefix):]
			if dir == tmpDir {
				if bi.ModTime.Before(before) {
					dead = append(dead, bi.Key)
				}
				return nil
			}
			id, _, _ := strings.Cut(strings.TrimPrefix(rel, snapshotsDir), "/")
			if keep[id] {
				return nil
			}
			has, ok := manifest[id]
			if !ok {
				_, err := r.st.Stat(ctx, r.key(snapshotsDir+id+"/"+manifestName))
				has = err == nil
				manifest[id] = has
			}
			if !has {
				dead = append(dead, bi.Key)
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("list leftovers: %w", err)
		}
	}
	for _, k := range dead {
		if err := r.st.Delete(ctx, k); err != nil {
			return 0, fmt.Errorf("remove %s: %w", k, err)
		}
	}
	return len(dead), nil
}
