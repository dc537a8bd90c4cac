package testenv

import (
	"bufio"
	"io"
	"strings"
)

// SSEEvent is one event read from a Server-Sent Events stream. A comment line makes an event
// with only Comment; a retry field is reported in Comment as "retry <ms>".
type SSEEvent struct {
	ID, Type, Data, Comment string
}

// ReadSSE parses the Server-Sent Events of r and sends each event, and each comment, to
// events, until r ends.
func ReadSSE(r io.Reader, events chan<- SSEEvent) {
	sc := bufio.NewScanner(r)
	var ev SSEEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev != (SSEEvent{}) {
				events <- ev
			}
			ev = SSEEvent{}
		case strings.HasPrefix(line, ":"):
			ev.Comment = strings.TrimSpace(line[1:])
		case strings.HasPrefix(line, "id: "):
			ev.ID = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.Type = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.Data = line[6:]
		case strings.HasPrefix(line, "retry: "):
			ev.Comment = "retry " + line[7:]
		}
	}
}
