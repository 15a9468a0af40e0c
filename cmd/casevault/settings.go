package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"

	"github.com/casevault/casevault/retention"
)

// uses says which commands take a setting as a flag: each command shows
// only the flags it reads.
type uses uint16

const (
	useDB        uses = 1 << iota // every command that opens the database
	useLog                        // commands that log
	useServer                     // serve only
	useBlobs                      // the attachment store and the master key
	useSearch                     // the search engine
	useRetention                  // the retention schedule file
	useAudit                      // the audit retention
	useBackup                     // the backup repository and keys
	useAll       = 1<<iota - 1
)

// option is one setting: a flag, its environment variable and its default.
// The option table is the one place the flags, the env fallbacks, `casevault
// config` and the README's configuration table come from (after miniflux's
// config/options.go).
type option struct {
	name, def, help string
	// secret settings are never shown: not as a flag default (so --help
	// cannot print them) nor by `casevault config` (only set or unset).
	secret bool
	uses   uses
	// field is the typed config field the option fills: *string, *bool,
	// *int, *time.Duration, *byteSize or *period.
	field func(c *config) any
}

// env is the option's environment variable: CASEVAULT_ and the flag name.
func (o option) env() string {
	return "CASEVAULT_" + strings.ToUpper(strings.ReplaceAll(o.name, "-", "_"))
}

// bind registers the option as a typed flag bound to its config field and
// sets the field to the default.
func (o option) bind(fs *pflag.FlagSet, c *config) *pflag.Flag {
	usage := o.help + " (env " + o.env() + ")"
	switch p := o.field(c).(type) {
	case *string:
		fs.StringVar(p, o.name, "", usage)
	case *bool:
		fs.BoolVar(p, o.name, false, usage)
	case *int:
		fs.IntVar(p, o.name, 0, usage)
	case *time.Duration:
		fs.DurationVar(p, o.name, 0, usage)
	case pflag.Value:
		fs.Var(p, o.name, usage)
	default:
		panic(fmt.Sprintf("option %s: field of type %T", o.name, p))
	}
	f := fs.Lookup(o.name)
	if err := f.Value.Set(o.def); err != nil {
		panic(fmt.Sprintf("option %s: default %q: %v", o.name, o.def, err))
	}
	f.DefValue = f.Value.String()
	return f
}

// byteSize is a size flag: 1048576, 512KiB, 100MiB, 2GiB (go-humanize: KB,
// MB, GB are powers of 1000). Empty is 0.
type byteSize int64

func (b *byteSize) Set(s string) error {
	if strings.TrimSpace(s) == "" {
		*b = 0
		return nil
	}
	n, err := humanize.ParseBytes(s)
	if err != nil || n == 0 || n > 1<<62 {
		return fmt.Errorf("bad size %q (examples: 1048576, 1MiB, 100MiB)", s)
	}
	*b = byteSize(n)
	return nil
}

func (b *byteSize) String() string {
	if *b == 0 {
		return ""
	}
	return humanize.IBytes(uint64(*b))
}

func (b *byteSize) Type() string { return "size" }

// period is a retention-style duration flag: 90d, 6m, 2y (retention.ParseDuration).
type period struct {
	d    time.Duration
	text string
}

func (p *period) Set(s string) error {
	d, err := retention.ParseDuration(s)
	if err != nil {
		return err
	}
	p.d, p.text = d.Std(), s
	return nil
}

func (p *period) String() string { return p.text }
func (p *period) Type() string   { return "period" }
