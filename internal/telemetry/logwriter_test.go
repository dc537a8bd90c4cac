package telemetry_test

import (
	"bufio"
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/supportchat/supportchat/internal/telemetry"
)

// syncBuffer is a bytes.Buffer that counts the writes it gets.
type syncBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	writes int
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.writes++
	return b.buf.Write(p)
}

// TestLogWriterKeepsEveryLineWholeAndInOrder has many goroutines log different lines at once,
// closes the writer, and finds every line once, whole, and each goroutine's lines in order.
func TestLogWriterKeepsEveryLineWholeAndInOrder(t *testing.T) {
	out := &syncBuffer{}
	w := telemetry.NewLogWriter(out)
	const writers, lines = 16, 2000
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range lines {
				if _, err := fmt.Fprintf(w, "{\"writer\":%d,\"line\":%d,\"pad\":\"%0200d\"}\n", g, i, i); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := fmt.Fprintln(w, `{"after":"close"}`); err != nil {
		t.Fatal(err)
	}
	next := make([]int, writers)
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(out.buf.Bytes()))
	for sc.Scan() {
		var g, i int
		var pad string
		if sc.Text() == `{"after":"close"}` {
			continue
		}
		if _, err := fmt.Sscanf(sc.Text(), "{\"writer\":%d,\"line\":%d,\"pad\":%q}", &g, &i, &pad); err != nil || len(pad) != 200 {
			t.Fatalf("line %d %q is not whole: %v", n, sc.Text(), err)
		}
		if i != next[g] {
			t.Fatalf("writer %d: line %d after line %d", g, i, next[g]-1)
		}
		next[g]++
		n++
	}
	if n != writers*lines {
		t.Fatalf("%d lines written, want %d", n, writers*lines)
	}
	if !bytes.HasSuffix(out.buf.Bytes(), []byte("{\"after\":\"close\"}\n")) {
		t.Error("a line written after Close is missing")
	}
	t.Logf("%d lines in %d writes", n, out.writes)
	if out.writes >= n {
		t.Errorf("%d writes for %d lines: want lines gathered into fewer writes", out.writes, n)
	}
}
