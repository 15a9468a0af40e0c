package main

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/casevault/casevault/sqlstore"
)

// contactBatchMetrics are the store's contact batches as counters. An
// operator reads the writer's load from them: the rate of
// casevault_contact_batch_seconds_total over casevault_contact_batch_slots
// is the fraction of time the slots were busy (near 1: the writes are at
// their ceiling), and contacts over batches the mean batch.
func contactBatchMetrics(s *sqlstore.Store) []prometheus.Collector {
	counter := func(name, help string, v func(sqlstore.ContactBatchStats) float64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return v(s.ContactBatchStats()) })
	}
	return []prometheus.Collector{
		counter("casevault_contact_batches_total", "Contact batches this replica has written (each one transaction).",
			func(st sqlstore.ContactBatchStats) float64 { return float64(st.Batches) }),
		counter("casevault_contact_batch_contacts_total", "Contacts taken into contact batches.",
			func(st sqlstore.ContactBatchStats) float64 { return float64(st.Contacts) }),
		counter("casevault_contact_batch_seconds_total", "Time contact batches ran, summed over the slots.",
			func(st sqlstore.ContactBatchStats) float64 { return st.Busy.Seconds() }),
		counter("casevault_contact_batch_overflows_total", "Contact batches started beside batches that had run for the stall (a batch waiting on a lock, or a slow commit).",
			func(st sqlstore.ContactBatchStats) float64 { return float64(st.Overflows) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "casevault_contact_batch_slots", Help: "How many contact batches may run at once (SQLite: 1)."},
			func() float64 { return float64(s.ContactBatchStats().Slots) }),
	}
}
