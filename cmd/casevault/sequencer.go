package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/casevault/casevault/audit"
	"github.com/casevault/casevault/sqldb"
)

// sequencerDegraded is the age of the oldest unsequenced audit event above
// which /readyz reports the sequencer degraded (its target is under 1 s).
const sequencerDegraded = 5 * time.Second

// sequencingDelay registers the histogram of the delay from an audit
// event's time to its sequencing commit.
func sequencingDelay(reg prometheus.Registerer) prometheus.Histogram {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "casevault_audit_sequencing_delay_seconds",
		Help:    "Delay from an audit event's time to the commit that sequenced it (deferred sequencing, PostgreSQL).",
		Buckets: []float64{.01, .025, .05, .1, .2, .3, .5, .75, 1, 2, 5, 10},
	})
	reg.MustRegister(h)
	return h
}

// sequencerProbe is the readiness check of deferred audit sequencing:
// pending events and the oldest one's age, this replica's last pass;
// degraded when the oldest waits longer than sequencerDegraded or the last
// pass failed.
func sequencerProbe(l *audit.Log) func(ctx context.Context) (any, error) {
	return func(ctx context.Context) (any, error) {
		if !l.Deferred() {
			return map[string]any{"mode": "direct"}, nil
		}
		st, err := l.Pending(ctx)
		if err != nil {
			return nil, err
		}
		ss := l.SequencerState()
		detail := map[string]any{"mode": "deferred", "pending": st.Pending, "oldest_pending_seconds": st.OldestSeconds,
			"sequenced_here": ss.Sequenced, "last_pass": ss.LastPass, "last_error": ss.LastError,
			// a failed vacuum of audit_pending slows sequencing, never
			// stops it: shown, not degraded
			"vacuums_here": ss.Vacuums, "vacuum_error": ss.VacuumError}
		switch {
		case st.OldestSeconds > sequencerDegraded.Seconds():
			return detail, fmt.Errorf("the oldest unsequenced audit event waits %.1fs (%d pending)", st.OldestSeconds, st.Pending)
		case ss.LastError != "":
			return detail, fmt.Errorf("the last sequencing pass failed: %s", ss.LastError)
		}
		return detail, nil
	}
}

// faultPoint is the fault injection of the kill -9 tests (README "Fault
// injection"): when CASEVAULT_TEST_FAULT names a point and the file
// CASEVAULT_TEST_FAULT_ARM names exists, the process kills itself with
// SIGKILL on reaching that point. Unset, it does nothing.
func faultPoint(log *slog.Logger) func(point string) {
	want, arm := os.Getenv("CASEVAULT_TEST_FAULT"), os.Getenv("CASEVAULT_TEST_FAULT_ARM")
	if want == "" || arm == "" {
		return nil
	}
	return func(point string) {
		if point != want {
			return
		}
		if _, err := os.Stat(arm); err != nil {
			return
		}
		log.Warn("fault injection: killing the process", "point", point)
		if p, err := os.FindProcess(os.Getpid()); err == nil {
			_ = p.Signal(os.Kill) // SIGKILL
		}
		select {} // the signal is on its way
	}
}

var (
	vacuumsDesc        = prometheus.NewDesc("casevault_queue_vacuums_total", "Vacuums this replica ran of a queue table (PostgreSQL; sqldb.Churn).", []string{"table"}, nil)
	vacuumFailuresDesc = prometheus.NewDesc("casevault_queue_vacuum_failures_total", "Vacuums of a queue table that failed; the table is vacuumed again at the next threshold.", []string{"table"}, nil)
)

// churnCollector reports the queue tables' vacuums.
type churnCollector []*sqldb.Churn

func (c churnCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- vacuumsDesc
	ch <- vacuumFailuresDesc
}

func (c churnCollector) Collect(ch chan<- prometheus.Metric) {
	for _, churn := range c {
		st := churn.Stats()
		ch <- prometheus.MustNewConstMetric(vacuumsDesc, prometheus.CounterValue, float64(st.Vacuums), st.Table)
		ch <- prometheus.MustNewConstMetric(vacuumFailuresDesc, prometheus.CounterValue, float64(st.Failures), st.Table)
	}
}
