package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/casevault/casevault/archive/backup"
)

// reporter prints progress (a bar on a terminal, JSON lines with --json)
// and the final result of a backup command.
type reporter struct {
	ctx  context.Context
	json bool
	out  io.Writer
	errw io.Writer
	tty  bool

	mu     sync.Mutex
	phase  string
	bar    *progressbar.ProgressBar
	closed bool
}

func newReporter(cmd *cobra.Command, asJSON bool) *reporter {
	r := &reporter{ctx: cmd.Context(), json: asJSON, out: cmd.OutOrStdout(), errw: cmd.ErrOrStderr()}
	if f, ok := r.errw.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		r.tty = true
	}
	return r
}

func (r *reporter) progress(p backup.Progress) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.json {
		_ = json.NewEncoder(r.out).Encode(struct {
			Type string `json:"type"`
			backup.Progress
		}{"progress", p})
		return
	}
	if !r.tty || r.closed {
		return
	}

	if r.bar == nil || p.Phase != r.phase {
		r.newBar(p)
	}
	_ = r.bar.Set64(p.Done)
}

// newBar ends the bar of the previous phase and starts p's.
func (r *reporter) newBar(p backup.Progress) {
	if r.bar != nil {
		_ = r.bar.Finish()
		fmt.Fprintln(r.errw)
	}
	total := p.Total
	if total <= 0 {
		total = -1
	}
	opts := []progressbar.Option{progressbar.OptionSetWriter(r.errw), progressbar.OptionSetDescription(p.Phase),
		progressbar.OptionThrottle(100 * time.Millisecond), progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true)}
	if p.Unit == "bytes" {
		opts = append(opts, progressbar.OptionShowBytes(true))
	} else {
		opts = append(opts, progressbar.OptionSetItsString(p.Unit))
	}
	r.bar = progressbar.NewOptions64(total, opts...)
	r.phase = p.Phase
}

// done ends the bar and prints the result: as one JSON object with
// --json, else by human.
func (r *reporter) done(result any, human func(w io.Writer)) error {
	r.mu.Lock()
	if r.bar != nil {
		_ = r.bar.Finish()
		fmt.Fprintln(r.errw)
	}
	r.closed = true
	r.mu.Unlock()

	if !r.json {
		human(r.out)
		return nil
	}
	raw, err := json.Marshal(result)
	if err != nil {
		return err
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		m = map[string]any{"result": result}
	}
	m["type"] = "result"
	return json.NewEncoder(r.out).Encode(m)
}

// fail prints an error object for scripts, with the exit code the process
// will end with (the message also goes to stderr as for every command).
func (r *reporter) fail(err error) error {
	if err == nil || !r.json {
		return err
	}
	err = interrupted(r.ctx, err)
	_ = json.NewEncoder(r.out).Encode(map[string]any{"type": "error", "error": err.Error(), "exit_code": exitCode(err)})
	return err
}

// humanBytes prints a byte count in binary units (1.5 MiB).
func humanBytes(n int64) string { return humanize.IBytes(uint64(max(n, 0))) }
