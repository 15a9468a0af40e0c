package sqlstore

import (
	"slices"
	"testing"

	"github.com/casevault/casevault/cases"
)

func TestTakeBatch(t *testing.T) {
	tests := []struct {
		name          string
		queue         []string // case of each queued contact
		busy          []string
		max           int
		batch, stayed []string
	}{
		{"nothing busy", []string{"a", "b", "a"}, nil, 10, []string{"a", "b", "a"}, nil},
		{"a busy case stays, in order", []string{"a", "b", "a", "c"}, []string{"a"}, 10, []string{"b", "c"}, []string{"a", "a"}},
		{"everything busy", []string{"a", "a"}, []string{"a"}, 10, nil, []string{"a", "a"}},
		{"at most max", []string{"a", "b", "c", "d"}, []string{"b"}, 2, []string{"a", "c"}, []string{"b", "d"}},
		{"empty queue", nil, []string{"a"}, 10, nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var queue []*contactReq
			for _, c := range tc.queue {
				queue = append(queue, &contactReq{c: &cases.Contact{CaseID: c}})
			}
			busy := map[string]int{}
			for _, c := range tc.busy {
				busy[c]++
			}

			batch, rest := takeBatch(slices.Clone(queue), busy, tc.max)

			ids := func(rs []*contactReq) (out []string) {
				for _, r := range rs {
					out = append(out, r.c.CaseID)
				}
				return out
			}
			if got := ids(batch); !slices.Equal(got, tc.batch) {
				t.Errorf("batch %v, want %v", got, tc.batch)
			}
			if got := ids(rest); !slices.Equal(got, tc.stayed) {
				t.Errorf("stayed %v, want %v", got, tc.stayed)
			}
			// each contact exactly once, the same requests
			all := append(slices.Clone(batch), rest...)
			for _, r := range queue {
				if n := slices.Index(all, r); n < 0 {
					t.Errorf("contact of case %s lost", r.c.CaseID)
				}
			}
		})
	}
}
