package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/casevault/casevault/retention"
)

// config is every setting of the binary. Each has a flag and an environment
// variable (flag wins); the README's configuration table lists them.
type config struct {
	DataDir           string
	Listen            string
	DatabaseURL       string
	SQLiteSync        string
	JSONBodyLimit     int64
	AttachmentLimit   int64
	LogFormat         string
	LogLevel          string
	ShutdownTimeout   time.Duration
	GC                gcConfig
	S3Endpoint        string
	S3Bucket          string
	S3AccessKey       string
	S3SecretKey       string
	S3Region          string
	S3TLS             bool
	S3ObjectLock      bool
	S3Timeout         time.Duration
	MasterKeyHex      string
	ReconcileCron     string
	MeiliURL          string
	MeiliKey          string
	MeiliIndexVersion int
	AuditRetention    time.Duration
	RetentionCron     string
	RetentionFile     string
	AuditPruneCron    string
	Backup            backupConfig
}

// backupConfig is the backup target, keys and the backups' own retention.
type backupConfig struct {
	Cron, ForgetCron                   string
	Dir                                string
	S3Endpoint, S3Bucket, S3Region     string
	S3AccessKey, S3SecretKey, Prefix   string
	S3TLS                              bool
	Recipients, IdentityFile           string
	KeepDaily, KeepWeekly, KeepMonthly int
}

type setting struct {
	flag, env, def, help string
	// secret settings are never folded into the flag's default, so that
	// --help cannot print them.
	secret bool
}

// settings is the single table the flags, the env fallbacks and
// `casevault config` are generated from.
func settings() []setting {
	return []setting{
		{flag: "data-dir", env: "CASEVAULT_DATA_DIR", def: "./data", help: "directory for the SQLite database, blobs, index, keys and backups"},
		{flag: "listen", env: "CASEVAULT_LISTEN", def: "127.0.0.1:8080", help: "HTTP listen address"},
		{flag: "database-url", env: "CASEVAULT_DATABASE_URL", def: "", help: "postgres:// URL; empty means SQLite at <data-dir>/casevault.db"},
		{flag: "sqlite-synchronous", env: "CASEVAULT_SQLITE_SYNCHRONOUS", def: "FULL", help: "SQLite synchronous pragma (FULL survives power loss; NORMAL survives a process kill)"},
		{flag: "json-body-limit", env: "CASEVAULT_JSON_BODY_LIMIT", def: "1MiB", help: "largest JSON request body"},
		{flag: "attachment-limit", env: "CASEVAULT_ATTACHMENT_LIMIT", def: "100MiB", help: "largest attachment upload"},
		{flag: "log-format", env: "CASEVAULT_LOG_FORMAT", def: "auto", help: "auto (text on a terminal, else JSON), text or json"},
		{flag: "log-level", env: "CASEVAULT_LOG_LEVEL", def: "info", help: "debug, info, warn or error"},
		{flag: "s3-endpoint", env: "CASEVAULT_S3_ENDPOINT", def: "", help: "S3 endpoint host:port for attachments; empty keeps them on local disk under <data-dir>/blobs"},
		{flag: "s3-bucket", env: "CASEVAULT_S3_BUCKET", def: "casevault", help: "S3 bucket (created at start if missing)"},
		{flag: "s3-access-key", env: "CASEVAULT_S3_ACCESS_KEY", def: "", help: "S3 access key", secret: true},
		{flag: "s3-secret-key", env: "CASEVAULT_S3_SECRET_KEY", def: "", help: "S3 secret key (prefer the environment variable)", secret: true},
		{flag: "s3-region", env: "CASEVAULT_S3_REGION", def: "us-east-1", help: "S3 region"},
		{flag: "s3-tls", env: "CASEVAULT_S3_TLS", def: "true", help: "use HTTPS to reach S3"},
		{flag: "s3-object-lock", env: "CASEVAULT_S3_OBJECT_LOCK", def: "false", help: "create a missing bucket with object lock (legal holds set S3 legal-hold flags)"},
		{flag: "s3-timeout", env: "CASEVAULT_S3_TIMEOUT", def: "30s", help: "longest wait for the S3 server in one call or transfer step; past it the request gets 503"},
		{flag: "master-key", env: "CASEVAULT_MASTER_KEY", def: "", help: "64 hex characters; empty uses <data-dir>/master.key, generated at first start (prefer the environment variable)", secret: true},
		{flag: "reconcile-schedule", env: "CASEVAULT_RECONCILE_SCHEDULE", def: "@hourly", help: "cron schedule of the attachment reconciler (orphan blobs, missing blobs)"},
		{flag: "meili-url", env: "CASEVAULT_MEILI_URL", def: "", help: "Meilisearch URL; empty uses the embedded Bleve index under <data-dir>/index"},
		{flag: "meili-key", env: "CASEVAULT_MEILI_KEY", def: "", help: "Meilisearch API key", secret: true},
		{flag: "meili-index-version", env: "CASEVAULT_MEILI_INDEX_VERSION", def: "1", help: "Meilisearch index version (cases_vN); raise it and reindex after a settings change"},
		{flag: "retention-schedule", env: "CASEVAULT_RETENTION_SCHEDULE", def: "@hourly", help: "cron schedule of the retention sweeper"},
		{flag: "retention-schedule-file", env: "CASEVAULT_RETENTION_SCHEDULE_FILE", def: "", help: "JSON retention schedule applied at start (versioned and audited when it differs)"},
		{flag: "audit-retention", env: "CASEVAULT_AUDIT_RETENTION", def: "2y", help: "how long audit events are kept (purpose security); older ones are pruned behind a checkpoint"},
		{flag: "audit-prune-schedule", env: "CASEVAULT_AUDIT_PRUNE_SCHEDULE", def: "30 3 * * *", help: "cron schedule of the audit pruning job"},
		{flag: "backup-schedule", env: "CASEVAULT_BACKUP_SCHEDULE", def: "0 2 * * *", help: "cron schedule of backups (UTC); empty or off disables them"},
		{flag: "backup-forget-schedule", env: "CASEVAULT_BACKUP_FORGET_SCHEDULE", def: "30 3 * * *", help: "cron schedule of backup forget (keep rules below); empty or off disables it"},
		{flag: "backup-dir", env: "CASEVAULT_BACKUP_DIR", def: "", help: "backup repository directory; empty means <data-dir>/backups (unused when --backup-s3-endpoint is set)"},
		{flag: "backup-s3-endpoint", env: "CASEVAULT_BACKUP_S3_ENDPOINT", def: "", help: "S3 endpoint host:port for backups (may differ from the attachments'); empty uses --backup-dir"},
		{flag: "backup-s3-bucket", env: "CASEVAULT_BACKUP_S3_BUCKET", def: "casevault-backups", help: "S3 bucket for backups (created if missing)"},
		{flag: "backup-s3-access-key", env: "CASEVAULT_BACKUP_S3_ACCESS_KEY", def: "", help: "S3 access key for backups", secret: true},
		{flag: "backup-s3-secret-key", env: "CASEVAULT_BACKUP_S3_SECRET_KEY", def: "", help: "S3 secret key for backups (prefer the environment variable)", secret: true},
		{flag: "backup-s3-region", env: "CASEVAULT_BACKUP_S3_REGION", def: "us-east-1", help: "S3 region for backups"},
		{flag: "backup-s3-tls", env: "CASEVAULT_BACKUP_S3_TLS", def: "true", help: "use HTTPS to reach the backup S3 endpoint"},
		{flag: "backup-s3-prefix", env: "CASEVAULT_BACKUP_S3_PREFIX", def: "", help: "key prefix of the backup repository inside the bucket (e.g. prod/)"},
		{flag: "backup-recipients", env: "CASEVAULT_BACKUP_RECIPIENTS", def: "", help: "age public keys (age1...) backups are encrypted to, comma separated; empty uses the backup identity's"},
		{flag: "backup-identity-file", env: "CASEVAULT_BACKUP_IDENTITY_FILE", def: "", help: "age identity file for restore and verify --read-data; empty means <data-dir>/backup.key, generated by the first backup when no recipients are set"},
		{flag: "backup-keep-daily", env: "CASEVAULT_BACKUP_KEEP_DAILY", def: "7", help: "scheduled forget keeps the newest backup of this many days"},
		{flag: "backup-keep-weekly", env: "CASEVAULT_BACKUP_KEEP_WEEKLY", def: "5", help: "scheduled forget keeps the newest backup of this many ISO weeks"},
		{flag: "backup-keep-monthly", env: "CASEVAULT_BACKUP_KEEP_MONTHLY", def: "12", help: "scheduled forget keeps the newest backup of this many months"},
		{flag: "gc-percent", env: "CASEVAULT_GC_PERCENT", def: "400", help: "Go GC target: heap growth in percent before a collection (GOGC); higher trades memory for CPU. An explicit GOGC wins over the default"},
		{flag: "memory-limit", env: "CASEVAULT_MEMORY_LIMIT", def: "", help: "soft limit of the Go heap (e.g. 800MiB; GOMEMLIMIT): the GC works harder near it. Empty means none; in a container set about 80% of its memory"},
		{flag: "shutdown-timeout", env: "CASEVAULT_SHUTDOWN_TIMEOUT", def: "30s", help: "how long SIGTERM waits for in-flight requests"},
	}
}

// addFlags registers the settings on a command as persistent flags.
func addFlags(cmd *cobra.Command, c *config) {
	for _, s := range settings() {
		def := s.def
		if v, ok := os.LookupEnv(s.env); ok && !s.secret {
			def = v
		}
		cmd.PersistentFlags().String(s.flag, def, s.help+" (env "+s.env+")")
	}
}

// load reads the flag values (env already folded into the defaults).
func (c *config) load(fs *pflag.FlagSet) error {
	secret := map[string]string{}
	for _, st := range settings() {
		if st.secret {
			secret[st.flag] = st.env
		}
	}
	get := func(name string) string {
		f := fs.Lookup(name)
		if f == nil {
			return ""
		}
		if env, ok := secret[name]; ok && !f.Changed {
			return os.Getenv(env)
		}
		return f.Value.String()
	}
	c.DataDir = get("data-dir")
	c.Listen = get("listen")
	c.DatabaseURL = get("database-url")
	c.SQLiteSync = strings.ToUpper(get("sqlite-synchronous"))
	c.LogFormat = get("log-format")
	c.LogLevel = get("log-level")
	var err error
	if c.JSONBodyLimit, err = parseSize(get("json-body-limit")); err != nil {
		return fmt.Errorf("--json-body-limit: %w", err)
	}
	if c.AttachmentLimit, err = parseSize(get("attachment-limit")); err != nil {
		return fmt.Errorf("--attachment-limit: %w", err)
	}
	if c.GC, err = loadGC(fs, get); err != nil {
		return err
	}
	if c.ShutdownTimeout, err = time.ParseDuration(get("shutdown-timeout")); err != nil {
		return fmt.Errorf("--shutdown-timeout: %w", err)
	}
	c.S3Endpoint, c.S3Bucket, c.S3Region = get("s3-endpoint"), get("s3-bucket"), get("s3-region")
	c.S3AccessKey, c.S3SecretKey, c.MasterKeyHex = get("s3-access-key"), get("s3-secret-key"), get("master-key")
	c.ReconcileCron = get("reconcile-schedule")
	c.MeiliURL, c.MeiliKey = get("meili-url"), get("meili-key")
	if c.MeiliIndexVersion, err = strconv.Atoi(get("meili-index-version")); err != nil || c.MeiliIndexVersion < 1 {
		return fmt.Errorf("--meili-index-version must be a positive integer")
	}
	if c.S3TLS, err = strconv.ParseBool(get("s3-tls")); err != nil {
		return fmt.Errorf("--s3-tls: %w", err)
	}
	if c.S3ObjectLock, err = strconv.ParseBool(get("s3-object-lock")); err != nil {
		return fmt.Errorf("--s3-object-lock: %w", err)
	}
	if c.S3Timeout, err = time.ParseDuration(get("s3-timeout")); err != nil || c.S3Timeout <= 0 {
		return fmt.Errorf("--s3-timeout must be a positive duration such as 30s")
	}
	ar, err := retention.ParseDuration(get("audit-retention"))
	if err != nil {
		return fmt.Errorf("--audit-retention: %w", err)
	}
	c.AuditRetention = ar.Std()
	c.AuditPruneCron = get("audit-prune-schedule")
	c.RetentionCron, c.RetentionFile = get("retention-schedule"), get("retention-schedule-file")
	if c.DataDir == "" {
		return fmt.Errorf("--data-dir must not be empty")
	}
	abs, err := filepath.Abs(c.DataDir)
	if err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	c.DataDir = abs
	return c.loadBackup(get)
}

func (c *config) loadBackup(get func(string) string) error {
	b := &c.Backup
	b.Cron, b.ForgetCron = get("backup-schedule"), get("backup-forget-schedule")
	b.Dir, b.Prefix = get("backup-dir"), get("backup-s3-prefix")
	if b.Dir == "" {
		b.Dir = filepath.Join(c.DataDir, "backups")
	}
	b.S3Endpoint, b.S3Bucket, b.S3Region = get("backup-s3-endpoint"), get("backup-s3-bucket"), get("backup-s3-region")
	b.S3AccessKey, b.S3SecretKey = get("backup-s3-access-key"), get("backup-s3-secret-key")
	var err error
	if b.S3TLS, err = strconv.ParseBool(get("backup-s3-tls")); err != nil {
		return fmt.Errorf("--backup-s3-tls: %w", err)
	}
	b.Recipients, b.IdentityFile = get("backup-recipients"), get("backup-identity-file")
	for _, k := range []struct {
		flag string
		dst  *int
	}{{"backup-keep-daily", &b.KeepDaily}, {"backup-keep-weekly", &b.KeepWeekly}, {"backup-keep-monthly", &b.KeepMonthly}} {
		n, err := strconv.Atoi(get(k.flag))
		if err != nil || n < 0 {
			return fmt.Errorf("--%s must be a whole number, 0 or more", k.flag)
		}
		*k.dst = n
	}
	return nil
}

// parseSize reads 1048576, 512KiB, 1MiB, 100MiB, 2GiB (also KB/MB/GB as powers of 1024).
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.m
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q (examples: 1048576, 1MiB, 100MiB)", s)
	}
	return n * mult, nil
}
