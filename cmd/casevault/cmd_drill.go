package main

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/casevault/casevault/archive"
	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/archive/local"
	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/auth"
	"github.com/casevault/casevault/cases"
	"github.com/casevault/casevault/sqldb"
)

// drillReport is what a disaster-recovery drill found. Steps lists every
// step in order with its outcome; Server and Attachments are what the
// restored instance answered over HTTP.
type drillReport struct {
	Backup             string            `json:"backup"`
	Scratch            string            `json:"scratch"`
	TablesMismatched   int               `json:"tables_mismatched"`
	AuditOK            bool              `json:"audit_ok"`
	AuditEvents        int64             `json:"audit_events"`
	AttachmentsChecked int               `json:"attachments_checked"`
	AttachmentsFailed  int               `json:"attachments_failed"`
	Removed            bool              `json:"scratch_removed"`
	Server             drillServer       `json:"server"`
	Attachments        []drillAttachment `json:"attachments"`
	Steps              []drillStep       `json:"steps"`
	Problems           []string          `json:"problems"`
}

// drillServer is the restored instance the drill started.
type drillServer struct {
	// Addr is the loopback address it listened on.
	Addr string `json:"addr"`
	// ReadyzStatus is the HTTP status of its last GET /readyz (200 once ready).
	ReadyzStatus int `json:"readyz_status"`
	// Checks is each readiness check's status (ok, degraded, down).
	Checks map[string]string `json:"checks"`
	// Stopped: it shut down cleanly when the drill was done with it.
	Stopped bool `json:"stopped"`
}

// drillAttachment is one sampled attachment read through the restored
// instance's API.
type drillAttachment struct {
	ID     string `json:"id"`
	Status int    `json:"status"`
	Bytes  int64  `json:"bytes"`
	// SHA256OK: the bytes served hash to the digest recorded at upload.
	SHA256OK bool `json:"sha256_ok"`
}

// drillStep is one step of the drill: restore, start, readyz,
// attachments, audit, token_revoke, stop, remove.
type drillStep struct {
	Name       string `json:"name"`
	OK         bool   `json:"ok"`
	DurationMS int64  `json:"duration_ms"`
	Detail     string `json:"detail,omitempty"`
}

// drillOptions are the drill's settings beyond the configuration.
type drillOptions struct {
	sample        int
	allowUnsigned bool
	progress      func(backup.Progress)
	// log receives the scratch server's warnings and errors (nil: none).
	log *slog.Logger
	// readyTimeout bounds the wait for the scratch server's /readyz.
	readyTimeout time.Duration
}

func newBackupDrillCmd(cfg *config, opts *backupOptions) *cobra.Command {
	var sample int
	cmd := &cobra.Command{
		Use:   "drill [--sample N]",
		Short: "Restore the latest backup into a scratch directory, start a server on it (loopback), read a sample of attachments and verify the audit chain through its API, stop it and remove it",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rep := newReporter(cmd, opts.json)
			return rep.fail(runBackupDrill(cmd.Context(), cfg, drillOptions{sample: sample, allowUnsigned: opts.allowUnsigned, progress: rep.progress}, rep))
		},
	}
	cmd.Flags().IntVar(&sample, "sample", 20, "attachments to read in full through the restored server (random sample)")
	cmd.Flags().BoolVar(&opts.allowUnsigned, "allow-unsigned", false, unsignedHelp)
	return cfg.flags(cmd, useDB|useBlobs|useBackup)
}

// runBackupDrill runs the drill and reports it; problems exit 4.
func runBackupDrill(ctx context.Context, cfg *config, o drillOptions, rep *reporter) error {
	if o.sample < 0 {
		return usagef("--sample must not be negative")
	}
	out, err := drill(ctx, cfg, o)
	if err != nil {
		return err
	}
	if err := rep.done(out, out.print); err != nil {
		return err
	}
	if len(out.Problems) > 0 {
		return exitCodeError{exitDamaged, fmt.Errorf("drill of backup %s: %d problems", out.Backup, len(out.Problems))}
	}
	return nil
}

func (out drillReport) print(w io.Writer) {
	fmt.Fprintf(w, "drill of backup %s in %s\n", out.Backup, out.Scratch)
	for _, s := range out.Steps {
		res := "ok"
		if !s.OK {
			res = "FAILED"
		}
		fmt.Fprintf(w, "  %-13s %-6s %6d ms  %s\n", s.Name, res, s.DurationMS, s.Detail)
	}
	fmt.Fprintf(w, "restored server on %s: /readyz %d, stopped %v; scratch removed %v\n", out.Server.Addr, out.Server.ReadyzStatus, out.Server.Stopped, out.Removed)
	fmt.Fprintf(w, "audit chain: ok %v (%d events); attachments read through the API: %d, failed %d\n", out.AuditOK, out.AuditEvents, out.AttachmentsChecked, out.AttachmentsFailed)
	for _, p := range out.Problems {
		fmt.Fprintln(w, "  PROBLEM:", p)
	}
	if len(out.Problems) == 0 {
		fmt.Fprintln(w, "the latest backup restores, starts and serves with this instance's master key")
	}
}

// drill is the disaster-recovery steps on a scratch directory: it proves
// the latest backup restores, that a server starts on it with this
// instance's master key and becomes ready, that it serves attachments
// intact and that its audit chain verifies. Problems found are in the
// report; an error means the drill could not run (a wrong master key is
// one: the restored server refuses to start, exit 15).
func drill(ctx context.Context, cfg *config, o drillOptions) (drillReport, error) {
	if o.progress == nil {
		o.progress = func(backup.Progress) {}
	}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if o.readyTimeout <= 0 {
		o.readyTimeout = time.Minute
	}
	repo, keys, err := openRestoreRepo(cfg, o.allowUnsigned, nil)
	if err != nil {
		return drillReport{}, err
	}
	id, err := repo.Resolve(ctx, backup.Latest)
	if err != nil {
		return drillReport{}, err
	}
	master, err := archive.LoadMasterKey(cfg.DataDir, cfg.MasterKeyHex)
	if err != nil {
		return drillReport{}, fmt.Errorf("%w: the drill needs the instance's master key: %w", archive.ErrNoMasterKey, err)
	}

	scratch, err := os.MkdirTemp("", "casevault-drill-")
	if err != nil {
		return drillReport{}, fmt.Errorf("drill: %w", err)
	}
	defer os.RemoveAll(scratch) // also when the drill fails
	out := drillReport{Backup: id, Scratch: scratch, Attachments: []drillAttachment{}, Steps: []drillStep{}, Problems: []string{}}
	target := filepath.Join(scratch, "data")
	step := func(name string, start time.Time, ok bool, detail string) {
		out.Steps = append(out.Steps, drillStep{Name: name, OK: ok, DurationMS: time.Since(start).Milliseconds(), Detail: detail})
		o.progress(backup.Progress{Phase: "drill " + name, Done: 1, Total: 1, Unit: "steps"})
	}

	// The scratch restore gets its own local blob store, never the
	// instance's bucket, and no live tombstones (the drill proves the
	// backups alone).
	t0 := time.Now()
	fr := backup.FullRestore{Repo: repo, Identity: keys.Identity, To: target, Synchronous: cfg.SQLiteSync,
		Blobs:    func(ctx context.Context, t *backup.Target) (archive.Blobs, error) { return localBlobs(t.Dir) },
		Audit:    restoreAudit,
		Progress: o.progress, Actor: cases.CLIActor()}
	res, err := fr.Run(ctx, id)
	if err != nil {
		return out, err
	}
	if out.TablesMismatched = res.Mismatched(); out.TablesMismatched > 0 {
		out.Problems = append(out.Problems, fmt.Sprintf("%d tables do not match the backup's digests", out.TablesMismatched))
	}
	step("restore", t0, out.TablesMismatched == 0, fmt.Sprintf("%d tables, %d attachment blobs", len(res.Tables), res.Blobs))

	sample, secret, tokenID, err := drillPrepare(ctx, target, o.sample)
	if err != nil {
		return out, err
	}
	if err := drillServe(ctx, cfg, target, master, sample, secret, tokenID, o, &out, step); err != nil {
		return out, err
	}

	t0 = time.Now()
	out.Removed = os.RemoveAll(scratch) == nil
	step("remove", t0, out.Removed, scratch)
	if !out.Removed {
		out.Problems = append(out.Problems, "the scratch directory could not be removed: "+scratch)
	}
	return out, nil
}

// localBlobs is the attachment store under a data directory.
func localBlobs(dir string) (archive.Blobs, error) { return local.New(filepath.Join(dir, "blobs")) }

// drillSample is an attachment the drill reads, with what it must read.
type drillSample struct {
	id, sha256 string
}

// drillPrepare picks the attachments to read (of customers not erased:
// an erased customer's attachments cannot be decrypted by design) and
// creates the drill's admin token in the scratch copy, audited there like
// `token create`. The token exists only in the scratch copy, and the
// drill revokes it before it stops the server.
func drillPrepare(ctx context.Context, dir string, n int) (sample []drillSample, secret, tokenID string, err error) {
	db, err := sqldb.Open(ctx, sqldb.Config{Path: filepath.Join(dir, "casevault.db")})
	if err != nil {
		return nil, "", "", err
	}
	defer db.Close()
	sample, err = sqldb.Collect(ctx, db.Read, `SELECT a.id, a.sha256 FROM attachments a JOIN customer_keys k ON k.customer_id = a.customer_id AND k.destroyed_at IS NULL ORDER BY random() LIMIT ?`,
		[]any{n}, func(rows *sql.Rows) (drillSample, error) {
			var s drillSample
			return s, rows.Scan(&s.id, &s.sha256)
		})
	if err != nil {
		return nil, "", "", fmt.Errorf("drill: sample attachments: %w", err)
	}
	alog := audit.New(db)
	defer alog.Close(context.WithoutCancel(ctx))
	sink := auditSink{log: alog}
	tok, secret, err := auth.NewTokens(db).Create(ctx, "backup-drill", auth.RoleAdmin, func(ctx context.Context, tx *sql.Tx, tok auth.Token) error {
		return sink.hook(ctx, tx, cliChange("token.create", "token", tok.ID, map[string]any{"name": tok.Name, "role": string(tok.Role)}))
	})
	if err != nil {
		return nil, "", "", fmt.Errorf("drill: token in the scratch copy: %w", err)
	}
	return sample, secret, tok.ID, nil
}

// drillServe starts serve in process on the restored directory (loopback,
// a port of its own, no scheduled jobs), waits for /readyz, reads the
// sample through the API, verifies the audit chain through the API,
// revokes the drill's token and stops the server. The server always stops
// before this returns (the scratch directory is removed next).
func drillServe(ctx context.Context, cfg *config, dir string, master []byte, sample []drillSample, secret, tokenID string, o drillOptions, out *drillReport,
	step func(name string, start time.Time, ok bool, detail string)) error {
	t0 := time.Now()
	scfg, err := scratchConfig(dir, master, cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("drill: listen on loopback: %w", err)
	}
	out.Server.Addr = ln.Addr().String()
	base := "http://" + out.Server.Addr
	sctx, stopServer := context.WithCancel(ctx)
	defer stopServer()
	errc := make(chan error, 1)
	go func() {
		err := serve(sctx, scfg, o.log, io.Discard, serveHooks{ln: ln, noCron: true})
		ln.Close() // when serve failed before serving on it
		errc <- err
	}()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		stopServer()
		return <-errc
	}
	defer stop() //nolint:errcheck // the error path's stop; the normal one is below

	client := &http.Client{Timeout: 30 * time.Second}
	// Ready: /readyz answers 200 (store, index and blob store reachable).
	deadline := time.Now().Add(o.readyTimeout)
	for {
		status, checks, rerr := drillReadyz(ctx, client, base)
		out.Server.ReadyzStatus, out.Server.Checks = status, checks
		if status == http.StatusOK {
			step("start", t0, true, "serve on "+out.Server.Addr)
			step("readyz", t0, true, fmt.Sprintf("%d; %s", status, checkList(checks)))
			break
		}
		select {
		case err := <-errc:
			stopped = true
			step("start", t0, false, err.Error())
			return fmt.Errorf("drill: the restored instance did not start: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			detail := fmt.Sprintf("not ready after %s: status %d; %s", o.readyTimeout, status, checkList(checks))
			if rerr != nil {
				detail += ": " + rerr.Error()
			}
			step("readyz", t0, false, detail)
			out.Problems = append(out.Problems, "the restored instance did not become ready: "+detail)
			return drillStop(stop, out, step)
		}
	}

	t0 = time.Now()
	for _, s := range sample {
		a := drillRead(ctx, client, base, secret, s)
		out.Attachments = append(out.Attachments, a)
		if a.Status == http.StatusOK && a.SHA256OK {
			out.AttachmentsChecked++
			continue
		}
		out.AttachmentsFailed++
		out.Problems = append(out.Problems, fmt.Sprintf("attachment %s: HTTP %d, %d bytes, sha-256 matches %v", a.ID, a.Status, a.Bytes, a.SHA256OK))
	}
	step("attachments", t0, out.AttachmentsFailed == 0, fmt.Sprintf("%d read through GET /api/v1/attachments/{id}, %d failed", out.AttachmentsChecked, out.AttachmentsFailed))

	t0 = time.Now()
	var ver audit.VerifyResult
	status, err := drillJSON(ctx, client, http.MethodGet, base+"/api/v1/audit/verify", secret, &ver)
	switch {
	case err != nil || status != http.StatusOK:
		out.Problems = append(out.Problems, fmt.Sprintf("audit verify through the API: HTTP %d: %v", status, err))
		step("audit", t0, false, fmt.Sprintf("HTTP %d", status))
	default:
		out.AuditOK, out.AuditEvents = ver.OK, ver.Events
		if !ver.OK {
			out.Problems = append(out.Problems, "audit chain: "+ver.Reason)
		}
		step("audit", t0, ver.OK, fmt.Sprintf("GET /api/v1/audit/verify: ok %v, %d events", ver.OK, ver.Events))
	}

	t0 = time.Now()
	status, err = drillJSON(ctx, client, http.MethodDelete, base+"/api/v1/tokens/"+tokenID, secret, nil)
	revoked := err == nil && status == http.StatusNoContent
	if !revoked {
		out.Problems = append(out.Problems, fmt.Sprintf("revoking the drill's token on the restored instance: HTTP %d: %v", status, err))
	}
	step("token_revoke", t0, revoked, fmt.Sprintf("DELETE /api/v1/tokens/%s: HTTP %d", tokenID, status))

	return drillStop(stop, out, step)
}

// drillStop stops the scratch server and records whether it stopped
// cleanly.
func drillStop(stop func() error, out *drillReport, step func(name string, start time.Time, ok bool, detail string)) error {
	t0 := time.Now()
	err := stop()
	out.Server.Stopped = err == nil
	detail := "stopped cleanly"
	if err != nil {
		detail = err.Error()
		out.Problems = append(out.Problems, "the restored instance did not stop cleanly: "+detail)
	}
	step("stop", t0, err == nil, detail)
	return nil
}

// scratchConfig is the configuration of the restored scratch instance:
// defaults (SQLite, local blobs, Bleve index, all under dir), the
// instance's master key, parent's SQLite sync and Go runtime, no backups,
// a short shutdown.
func scratchConfig(dir string, master []byte, parent *config) (*config, error) {
	c := newConfig()
	c.DataDir = dir
	c.Listen = "127.0.0.1:0"
	c.SQLiteSync = parent.SQLiteSync
	c.MasterKeyHex = hex.EncodeToString(master)
	c.Backup.Cron, c.Backup.ForgetCron, c.Backup.DrillCron = "off", "off", "off"
	c.ShutdownTimeout = 10 * time.Second
	if err := c.resolve(); err != nil {
		return nil, fmt.Errorf("drill: scratch configuration: %w", err)
	}

	// The scratch instance runs in this process, whose runtime parent set
	// up: a scheduled drill runs inside serve, which has doubled
	// GOMAXPROCS since parent read the cores, so resolve read twice them.
	c.Runtime = parent.Runtime
	return c, nil
}

// drillReadyz asks the restored server whether it is ready.
func drillReadyz(ctx context.Context, client *http.Client, base string) (int, map[string]string, error) {
	var body struct {
		Checks map[string]struct {
			Status string `json:"status"`
		} `json:"checks"`
	}
	status, err := drillJSON(ctx, client, http.MethodGet, base+"/readyz", "", &body)
	checks := map[string]string{}
	for name, c := range body.Checks {
		checks[name] = c.Status
	}
	return status, checks, err
}

// checkList is readiness checks as "name status" in name order.
func checkList(checks map[string]string) string {
	names := slices.Sorted(maps.Keys(checks))
	for i, n := range names {
		names[i] = n + " " + checks[n]
	}
	return strings.Join(names, ", ")
}

// drillJSON makes one request to the restored server and decodes its JSON
// reply into v (nil: the body is discarded).
func drillJSON(ctx context.Context, client *http.Client, method, url, token string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return 0, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if v == nil || res.StatusCode >= 300 {
		_, err = io.Copy(io.Discard, res.Body)
		return res.StatusCode, err
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		return res.StatusCode, fmt.Errorf("%s %s: %w", method, url, err)
	}
	return res.StatusCode, nil
}

// drillRead downloads one attachment in full through the API and checks
// the bytes against the digest recorded at upload (the server decrypts;
// a chunk that does not authenticate ends the response early).
func drillRead(ctx context.Context, client *http.Client, base, token string, s drillSample) drillAttachment {
	a := drillAttachment{ID: s.id}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/v1/attachments/"+s.id, nil)
	if err != nil {
		return a
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := client.Do(req)
	if err != nil {
		return a
	}
	defer res.Body.Close()
	a.Status = res.StatusCode
	h := sha256.New()
	n, err := io.Copy(h, res.Body)
	a.Bytes = n
	a.SHA256OK = err == nil && res.StatusCode == http.StatusOK && hex.EncodeToString(h.Sum(nil)) == s.sha256
	return a
}
