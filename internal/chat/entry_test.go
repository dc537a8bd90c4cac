package chat

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// logOfFour records four entries of a conversation of ada: her message, grace's reply, an
// assignment and her read mark, and returns the conversation after them with the entries.
func logOfFour(t *testing.T) (*Conversation, []Entry) {
	t.Helper()
	c := newConversation("c1", "shop", ada, "order", nil, t0)
	entries := []Entry{
		mustRecord(t, c, messageChange("m1", ada, "hi"), t0),
		mustRecord(t, c, messageChange("m2", grace, "hello"), t0.Add(time.Minute)),
		mustRecord(t, c, updateChange("u1", grace, func(c *Conversation) bool { c.Assignee = "grace"; return true }), t0.Add(2*time.Minute)),
		mustRecord(t, c, readChange("r1", adaCall, nil), t0.Add(3*time.Minute)),
	}
	return c, entries
}

func TestFromLogRebuildsTheConversation(t *testing.T) {
	live, entries := logOfFour(t)
	rebuilt, ok := FromLog(entries)
	if !ok {
		t.Fatal("FromLog of a whole log = false")
	}
	if diff := cmp.Diff(live, rebuilt); diff != "" {
		t.Errorf("FromLog differs from the conversation recorded live (-live +rebuilt):\n%s", diff)
	}
	if _, ok := FromLog(entries[1:]); ok {
		t.Error("FromLog of a log without its first entry = true")
	}
	if _, ok := FromLog(nil); ok {
		t.Error("FromLog of nothing = true")
	}
	// A view behind its log, followed by the rest, is the same conversation.
	view, _ := FromLog(entries[:2])
	if diff := cmp.Diff(live, view.FollowedBy(entries[2:])); diff != "" {
		t.Errorf("a view followed by the rest of its log differs (-live +followed):\n%s", diff)
	}
}

func TestReadWithoutATargetReadsTheNewestWhenRecorded(t *testing.T) {
	c := newConversation("c1", "shop", ada, "", nil, t0)
	mustRecord(t, c, messageChange("m1", ada, "hi"), t0)
	read := readChange("r1", teamCall, nil) // planned when m1 was the newest
	mustRecord(t, c, messageChange("m2", ada, "anyone?"), t0.Add(time.Second))
	mustRecord(t, c, read, t0.Add(2*time.Second))
	if got := c.UnreadFor(teamCall); got != 0 {
		t.Errorf("team unread after reading the newest = %d, want 0: the mark goes to the message newest when it is recorded", got)
	}
	if _, ok := c.Record(readChange("r2", teamCall, nil), t0.Add(3*time.Second)); ok {
		t.Error("reading the newest again recorded an entry")
	}
	empty := newConversation("c2", "shop", ada, "", nil, t0)
	if _, ok := empty.Record(readChange("r3", teamCall, nil), t0); ok {
		t.Error("reading a conversation without messages recorded an entry")
	}
}

func TestEventsOf(t *testing.T) {
	c, entries := logOfFour(t)
	type got struct {
		ID, Type, Message string
		Seq               int64
		Assignee          string
		Latest            []string
	}
	var all []got
	for _, e := range entries {
		for _, ev := range EventsOf(c, e) {
			g := got{ID: ev.ID, Type: string(ev.Type), Seq: ev.Conversation.Seq, Assignee: ev.Conversation.Assignee}
			if ev.Message != nil {
				g.Message = ev.Message.ID
			}
			for _, m := range ev.Conversation.Latest {
				g.Latest = append(g.Latest, m.ID)
			}
			all = append(all, g)
		}
	}
	want := []got{
		{ID: "shop:c1:1/conversation.created", Type: "conversation.created", Seq: 1, Latest: []string{"m1"}},
		{ID: "shop:c1:1/message.created", Type: "message.created", Message: "m1", Seq: 1, Latest: []string{"m1"}},
		{ID: "shop:c1:2/message.created", Type: "message.created", Message: "m2", Seq: 2, Latest: []string{"m1", "m2"}},
		{ID: "shop:c1:3/conversation.updated", Type: "conversation.updated", Seq: 3, Assignee: "grace", Latest: []string{"m1", "m2"}},
		{ID: "shop:c1:4/conversation.updated", Type: "conversation.updated", Seq: 4, Assignee: "grace", Latest: []string{"m1", "m2"}},
	}
	if diff := cmp.Diff(want, all); diff != "" {
		t.Errorf("events of the log (-want +got):\n%s", diff)
	}
	// The events of an entry are the same whatever the conversation has become since.
	later := c.Clone()
	mustRecord(t, later, messageChange("m3", grace, "anything else?"), t0.Add(time.Hour))
	if diff := cmp.Diff(EventsOf(c, entries[2]), EventsOf(later, entries[2])); diff != "" {
		t.Errorf("events of entry 3 changed with later entries (-then +now):\n%s", diff)
	}
}

func TestListFilterMatches(t *testing.T) {
	c, _ := logOfFour(t) // ada's, open, assigned to grace, read by the team
	grace, none := "grace", ""
	for _, tc := range []struct {
		name string
		f    ListFilter
		want bool
	}{
		{"no filter", ListFilter{}, true},
		{"its customer", ListFilter{CustomerID: "ada"}, true},
		{"another customer", ListFilter{CustomerID: "bob"}, false},
		{"open", ListFilter{Status: StatusOpen}, true},
		{"resolved", ListFilter{Status: StatusResolved}, false},
		{"its assignee", ListFilter{Assignee: &grace}, true},
		{"unassigned", ListFilter{Assignee: &none}, false},
		{"unread by the team", ListFilter{TeamUnread: true}, false},
		{"updated since before it", ListFilter{UpdatedSince: t0}, true},
		{"updated since its last change", ListFilter{UpdatedSince: c.UpdatedAt}, false},
	} {
		if got := tc.f.Matches(c); got != tc.want {
			t.Errorf("%s: Matches = %v, want %v", tc.name, got, tc.want)
		}
	}
}
