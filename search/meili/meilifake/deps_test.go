package meilifake

import (
	"os/exec"
	"strings"
	"testing"
)

// The fake imports testing and fails the test that started it: it must
// never reach the binary.
func TestNotLinkedIntoTheBinary(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/casevault/casevault/cmd/casevault").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, p := range strings.Fields(string(out)) {
		if p == "github.com/casevault/casevault/search/meili/meilifake" {
			t.Errorf("cmd/casevault depends on %s", p)
		}
	}
}
