package httpapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/events"
)

// pagedSource replays its pages, then returns end; after each page it calls check.
type pagedSource struct {
	pages [][]events.Record
	end   error
	check func(page int)
}

func (pagedSource) Subscribe(context.Context, string) (*events.Subscription, error) {
	return nil, errors.New("not used")
}

func (s pagedSource) Replay(_ context.Context, _ string, _ chat.Caller, _, _ string, emit func([]events.Record) error) (string, error) {
	last := ""
	for i, page := range s.pages {
		if err := emit(page); err != nil {
			return "", err
		}
		s.check(i)
		last = page[len(page)-1].ID
	}
	return last, s.end
}

// TestAReplayReachesTheClientPageByPage replays three pages to a client and checks that each
// page was written and flushed before the next one was read; a replay that stops at its
// budget goes on with resync.
func TestAReplayReachesTheClientPageByPage(t *testing.T) {
	var pages [][]events.Record
	for p := range 3 {
		var page []events.Record
		for i := range 100 {
			page = append(page, events.Record{ID: fmt.Sprintf("%d-%d", p+1, i), Type: chat.EventMessageCreated, Admin: []byte(`{}`)})
		}
		pages = append(pages, page)
	}
	admin := chat.Caller{ID: "grace", Role: chat.RoleAdmin}
	for _, tc := range []struct {
		name     string
		end      error
		wantLast string
		wantTail string
	}{
		{"the whole replay", nil, "3-99", "id: 3-99\nevent: message.created\n"},
		{"a replay that reaches its budget", events.ErrReplayBudget, "9-0", "id: 9-0\nevent: resync\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var client bytes.Buffer
			flushes := 0
			w := &sseWriter{w: &client, flush: func() error { flushes++; return nil }}
			check := func(page int) {
				if want := fmt.Sprintf("id: %d-99\n", page+1); !strings.Contains(client.String(), want) || flushes != page+1 {
					t.Errorf("after page %d the client has %d bytes and %d flushes, want the page's events and %d flushes", page+1, client.Len(), flushes, page+1)
				}
			}
			s := &streamer{source: pagedSource{pages: pages, end: tc.end, check: check}}
			last, err := s.replay(context.Background(), w, "shop", admin, "1-0", "9-0")
			if err != nil || last != tc.wantLast {
				t.Errorf("replay = %s, %v; want %s, nil", last, err, tc.wantLast)
			}
			if err := w.flushNow(); err != nil {
				t.Fatal(err)
			}
			stream := strings.TrimSuffix(client.String(), "\n\n")
			if tail := stream[strings.LastIndex(stream, "\n\n")+2:]; !strings.HasPrefix(tail, tc.wantTail) {
				t.Errorf("the stream ends with %q, want %q", tail, tc.wantTail)
			}
		})
	}
}
