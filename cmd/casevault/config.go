package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/casevault/casevault/archive/backup"
	"github.com/casevault/casevault/retention"
)

// config is every setting of the binary, typed. Each has a flag and an
// environment variable (flag wins); options() is the table they come from.
type config struct {
	DataDir           string
	Listen            string
	DatabaseURL       string
	SQLiteSync        string
	JSONBodyLimit     byteSize
	AttachmentLimit   byteSize
	LogFormat         string
	LogLevel          string
	ShutdownTimeout   time.Duration
	GCPercent         int
	MemoryLimit       byteSize
	GoMaxProcs        int
	PprofListen       string
	S3                s3Config
	MasterKeyHex      string
	ReconcileCron     string
	FlagsCron         string
	ExportTTL         period
	ExportExpiryCron  string
	MeiliURL          string
	MeiliKey          string
	MeiliIndexVersion int
	AuditRetention    period
	RetentionCron     string
	RetentionFile     string
	AuditPruneCron    string
	Backup            backupConfig
	Console           consoleConfig

	// Runtime is derived from GCPercent, MemoryLimit and GoMaxProcs (and
	// GOGC, GOMAXPROCS) by load.
	Runtime runtimeConfig
	// source says where each setting the command reads came from:
	// "default", "flag" or "env".
	source map[string]string
}

// consoleConfig is the web console's settings.
type consoleConfig struct {
	Enabled, SecureCookies bool
	Idle, Absolute         time.Duration
	OIDC                   oidcConfig
}

// oidcConfig is the console's OpenID Connect sign-in (off without an
// issuer).
type oidcConfig struct {
	Issuer, ClientID, SecretFile, RedirectURL, RoleClaim, Roles string
}

// s3Config is an S3 endpoint with its credentials.
type s3Config struct {
	Endpoint, Bucket, Region string
	AccessKey, SecretKey     string
	TLS, ObjectLock          bool
	Timeout                  time.Duration
}

// backupConfig is the backup target, keys and the backups' own retention.
type backupConfig struct {
	Cron, ForgetCron, DrillCron        string
	Dir, Prefix                        string
	S3                                 s3Config
	Recipients, IdentityFile           string
	KeepDaily, KeepWeekly, KeepMonthly int
}

// newConfig returns the configuration with every default applied.
func newConfig() *config {
	c := &config{source: map[string]string{}}
	fs := pflag.NewFlagSet("defaults", pflag.ContinueOnError)
	for _, o := range options() {
		o.bind(fs, c)
	}
	return c
}

// flags registers the options a command uses (u) as its own flags.
func (c *config) flags(cmd *cobra.Command, u uses) *cobra.Command {
	for _, o := range options() {
		if o.uses&u != 0 {
			o.bind(cmd.Flags(), c)
		}
	}
	return cmd
}

// load reads the environment for the command's settings that no flag set,
// then checks and derives the values. Its errors are usage errors.
func (c *config) load(fs *pflag.FlagSet) error {
	for _, o := range options() {
		f := fs.Lookup(o.name)
		if f == nil {
			continue
		}

		c.source[o.name] = "default"
		if f.Changed {
			c.source[o.name] = "flag"
			continue
		}

		v, ok := os.LookupEnv(o.env())
		if !ok || (o.secret && v == "") {
			continue
		}
		if err := f.Value.Set(v); err != nil {
			return fmt.Errorf("%s: %w", o.env(), err)
		}
		c.source[o.name] = "env"
	}
	return c.resolve()
}

// resolve checks the values and fills in the derived ones.
func (c *config) resolve() error {
	c.SQLiteSync = strings.ToUpper(c.SQLiteSync)
	if c.JSONBodyLimit <= 0 || c.AttachmentLimit <= 0 {
		return fmt.Errorf("--json-body-limit and --attachment-limit must be sizes above 0")
	}

	var err error
	if c.Runtime, err = c.goRuntime(); err != nil {
		return err
	}

	if c.MeiliIndexVersion < 1 {
		return fmt.Errorf("--meili-index-version must be a positive integer")
	}
	if c.S3.Timeout <= 0 {
		return fmt.Errorf("--s3-timeout must be a positive duration such as 30s")
	}

	if c.DataDir == "" {
		return fmt.Errorf("--data-dir must not be empty")
	}
	if c.DataDir, err = filepath.Abs(c.DataDir); err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	if c.Backup.Dir == "" {
		c.Backup.Dir = filepath.Join(c.DataDir, "backups")
	}

	for name, n := range map[string]int{"backup-keep-daily": c.Backup.KeepDaily, "backup-keep-weekly": c.Backup.KeepWeekly, "backup-keep-monthly": c.Backup.KeepMonthly} {
		if n < 0 {
			return fmt.Errorf("--%s must be a whole number, 0 or more", name)
		}
	}
	return nil
}

// keepPolicy is the configured keep rules with the backups' own retention
// from the retention schedule (its "backups" rule; none means no age limit).
func (c *config) keepPolicy(sc retention.Schedule) backup.KeepPolicy {
	p := backup.KeepPolicy{Daily: c.Backup.KeepDaily, Weekly: c.Backup.KeepWeekly, Monthly: c.Backup.KeepMonthly}
	if sc.Backups != nil {
		p.MaxAge = sc.Backups.Keep.Std()
	}
	return p
}
