package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// The README's configuration table is the output of `casevault config --defaults`;
// this fails when a setting is added or changed without updating it.
func TestReadmeConfigurationTableIsCurrent(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if code := run([]string{"config", "--defaults"}, &out, &out); code != exitOK {
		t.Fatalf("config exit %d: %s", code, out.String())
	}
	if !strings.Contains(string(readme), out.String()) {
		t.Fatalf("README.md does not contain the current settings table; paste the output of `casevault config --defaults`:\n%s", out.String())
	}
	if !strings.Contains(string(readme), "go run ./cmd/casevault serve") || !strings.Contains(string(readme), "make test") {
		t.Fatal("README must open with the two commands")
	}
}
