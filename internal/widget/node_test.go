package widget

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// requireNodeEnv names the variable that turns a missing node from a skip into a failure.
const requireNodeEnv = "CHAT_REQUIRE_NODE"

// TestModulesInNode runs the modules' unit tests (*.test.mjs: the event stream's parser and
// backoff, the merges of the list) with Node's built-in test runner. The modules touch the DOM
// only inside functions, so they import in Node as they are served.
func TestModulesInNode(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		if os.Getenv(requireNodeEnv) == "" {
			t.Skipf("node is not on PATH (set %s=1 to fail instead)", requireNodeEnv)
		}
		t.Fatalf("node is not on PATH and %s is set: %v", requireNodeEnv, err)
	}
	files, err := filepath.Glob("*.test.mjs")
	if err != nil || len(files) == 0 {
		t.Fatalf("no *.test.mjs files (%v)", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, append([]string{"--test"}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("node --test %v: %v\n%s", files, err, out)
	}
	if testing.Verbose() {
		t.Logf("node --test %v:\n%s", files, out)
	}
}
