package api_test

import (
	"encoding/json"
	"flag"
	"os"
	"reflect"
	"testing"
)

var updateDoc = flag.Bool("update-openapi", false, "write the served OpenAPI document to api/apiclient/openapi.json")

// committedDoc is the copy of /openapi.json the generated client
// (api/apiclient) is built from.
const committedDoc = "apiclient/openapi.json"

// TestCommittedOpenAPIDocument fails when the served document differs from
// the committed copy the client is generated from: after changing a route,
// run this test with -update-openapi, then go generate ./api/apiclient.
func TestCommittedOpenAPIDocument(t *testing.T) {
	h := newHarness(t, "sqlite")
	served := h.srv.Document()
	b, err := json.MarshalIndent(served, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if *updateDoc {
		if err := os.WriteFile(committedDoc, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	raw, err := os.ReadFile(committedDoc)
	if err != nil {
		t.Fatal(err)
	}
	var want, got any
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("the served OpenAPI document differs from %s: run go test ./api -run TestCommittedOpenAPIDocument -update-openapi, then go generate ./api/apiclient", committedDoc)
	}
}
