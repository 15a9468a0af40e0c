package meilifake

import (
	"bytes"
	"net/http"
	"testing"
)

// TestTaskSummary: the summary scripts/bench.sh prints tells a deletion by
// filter (never batched by Meilisearch) from one by id.
func TestTaskSummary(t *testing.T) {
	f := New(t)
	post := func(path, body string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, f.URL()+path, bytes.NewBufferString(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+APIKey)
		resp, err := f.Srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST %s: %s", path, resp.Status)
		}
	}

	post("/indexes", `{"uid":"p","primaryKey":"id"}`)
	post("/indexes/p/documents", `[{"id":"1"},{"id":"2"}]`)
	post("/indexes/p/documents", `[{"id":"3"}]`)
	post("/indexes/p/documents/delete-batch", `["1"]`)
	post("/indexes/p/documents/delete", `{"filter":"id = 2"}`)

	want := "tasks: 2 document additions, 1 deletions by filter, 1 deletions by id, 1 others"
	if got := f.taskSummary(); got != want {
		t.Errorf("summary %q, want %q", got, want)
	}
}
