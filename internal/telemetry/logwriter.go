package telemetry

import (
	"io"
	"sync"
)

// maxPendingLog bounds the log bytes a LogWriter holds before its writers wait.
const maxPendingLog = 1 << 20

// LogWriter passes log lines to an io.Writer (the process's stdout) in batches: a line is
// appended to a buffer and one goroutine writes whatever has gathered while its previous write
// was in progress. An idle service writes each line at once, as before; a busy one writes
// many lines per system call instead of one each. Lines stay whole and in order. Writers wait
// only while 1 MiB is pending, as they would on a slow stdout. Close writes what is left; a
// crash loses at most the lines of the write in progress and those gathered behind it.
type LogWriter struct {
	w io.Writer

	mu      sync.Mutex
	room    *sync.Cond // signalled when pending shrinks
	pending []byte
	closed  bool
	wake    chan struct{}
	done    chan struct{}
}

// NewLogWriter returns a LogWriter on w and starts its writer. Close it.
func NewLogWriter(w io.Writer) *LogWriter {
	l := &LogWriter{w: w, wake: make(chan struct{}, 1), done: make(chan struct{})}
	l.room = sync.NewCond(&l.mu)
	go l.run()
	return l
}

// Write queues p, one or more whole lines. It never fails; after Close it writes p directly.
func (l *LogWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	for len(l.pending) >= maxPendingLog && !l.closed {
		l.room.Wait()
	}
	if l.closed {
		l.mu.Unlock()
		return l.w.Write(p)
	}
	l.pending = append(l.pending, p...)
	select { // under the lock: Close cannot have closed wake yet
	case l.wake <- struct{}{}:
	default:
	}
	l.mu.Unlock()
	return len(p), nil
}

// run writes what is pending until Close.
func (l *LogWriter) run() {
	defer close(l.done)
	var batch []byte
	for {
		_, open := <-l.wake
		l.mu.Lock()
		batch, l.pending = l.pending, batch[:0]
		closed := l.closed
		l.room.Broadcast()
		l.mu.Unlock()
		if len(batch) > 0 {
			_, _ = l.w.Write(batch) // nowhere to report a failing stdout
		}
		if closed || !open {
			return
		}
	}
}

// Close writes the lines still pending and stops the writer; later lines are written directly.
func (l *LogWriter) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.room.Broadcast()
	l.mu.Unlock()
	close(l.wake)
	<-l.done
	return nil
}
