package bleve

import (
	"fmt"
	"testing"
)

// TestCaseNumbers: a case ID has one number in every segment that holds
// it, numbers are below the count returned, a segment no longer in the
// snapshot is forgotten, and numbering restarts (consistently) once the
// IDs seen outgrow the live segments' twice over.
func TestCaseNumbers(t *testing.T) {
	seg := func(ids ...string) *segColumns { return &segColumns{caseID: column{dict: ids}} }
	snap := func(ids []uint64, cols ...*segColumns) *snapshotColumns {
		return &snapshotColumns{cols: cols, segIDs: ids}
	}
	var cn caseNumbers
	check := func(sv *snapshotColumns) {
		t.Helper()
		nums, n := cn.forSnapshot(sv)
		byID := map[string]int32{}
		byNum := map[int32]string{}
		for i, sc := range sv.cols {
			for o, id := range sc.caseID.dict {
				got := nums[i][o]
				if got < 0 || int(got) >= n {
					t.Fatalf("case %s numbered %d, not below %d", id, got, n)
				}
				if want, ok := byID[id]; ok && want != got {
					t.Fatalf("case %s numbered %d in segment %d and %d before", id, got, i, want)
				}
				if other, ok := byNum[got]; ok && other != id {
					t.Fatalf("number %d given to %s and %s", got, id, other)
				}
				byID[id], byNum[got] = got, id
			}
		}
	}

	a, b := seg("c1", "c2", "c3"), seg("c3", "c4", "c1")
	check(snap([]uint64{1, 2}, a, b))
	check(snap([]uint64{1, 2, 3}, a, b, seg("c5", "c2")))
	if _, ok := cn.segs[3]; !ok {
		t.Fatal("segment 3 not kept")
	}
	check(snap([]uint64{1, 2}, a, b))
	if _, ok := cn.segs[3]; ok {
		t.Fatal("segment 3 kept after it left the snapshot")
	}

	// many segments come and go (merges): the numbers restart, bounded
	for k := range 50 {
		ids := make([]string, 100)
		for i := range ids {
			ids[i] = fmt.Sprintf("m%d-%d", k, i)
		}
		check(snap([]uint64{1, uint64(100 + k)}, a, seg(ids...)))
	}
	if len(cn.ids) > 2*103+1024 {
		t.Fatalf("%d case IDs kept for 103 live ones", len(cn.ids))
	}
}
