package chat

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/supportchat/supportchat/internal/tenant"
)

var (
	t0       = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	ada      = Participant{ID: "ada", Role: RoleCustomer, Name: "Ada"}
	grace    = Participant{ID: "grace", Role: RoleAdmin, Name: "Grace"}
	alan     = Participant{ID: "alan", Role: RoleAdmin, Name: "Alan"}
	system   = Participant{ID: "system", Role: RoleSystem}
	adaCall  = Caller{ID: "ada", Role: RoleCustomer}
	teamCall = Caller{ID: "alan", Role: RoleAdmin}
)

// mustRecord applies ch to c and returns its entry, failing when ch changes nothing.
func mustRecord(t *testing.T, c *Conversation, ch Change, now time.Time) Entry {
	t.Helper()
	e, ok := c.Record(ch, now)
	if !ok {
		t.Fatalf("%s %s changed nothing", ch.kind, ch.id)
	}
	return e
}

// say records a message of sender and returns it.
func say(t *testing.T, c *Conversation, id string, sender Participant, body string, now time.Time) Message {
	t.Helper()
	return *mustRecord(t, c, messageChange(id, sender, body), now).Message
}

func TestMessagesMoveCountersReadMarksAndStatus(t *testing.T) {
	c := newConversation("c1", "shop", ada, "order", nil, t0)
	say(t, c, "m1", ada, "hi", t0)
	say(t, c, "m2", system, "away", t0)
	say(t, c, "m3", ada, "hello?", t0.Add(time.Second))
	if got := c.UnreadFor(teamCall); got != 2 {
		t.Errorf("team unread = %d, want 2 (the system message does not count)", got)
	}
	if got := c.UnreadFor(adaCall); got != 0 {
		t.Errorf("customer unread = %d, want 0", got)
	}
	c.Status = StatusResolved
	say(t, c, "m4", grace, "here", t0.Add(90*time.Second))
	if c.Status != StatusResolved {
		t.Error("an admin message must not reopen")
	}
	if c.UnreadFor(teamCall) != 0 || c.UnreadFor(adaCall) != 1 {
		t.Errorf("after the reply: team %d, customer %d; want 0, 1", c.UnreadFor(teamCall), c.UnreadFor(adaCall))
	}
	if c.FirstReplyAt == nil || c.FirstReplySeconds != 90 {
		t.Errorf("first reply = %v, %d s", c.FirstReplyAt, c.FirstReplySeconds)
	}
	say(t, c, "m5", alan, "also here", t0.Add(100*time.Second))
	if c.FirstReplySeconds != 90 {
		t.Error("a second reply changed the first reply time")
	}
	thanks := say(t, c, "m6", ada, "thanks", t0.Add(2*time.Minute))
	if c.Status != StatusOpen {
		t.Error("a customer message must reopen a resolved conversation")
	}
	want := []string{"ada", "grace", "alan"}
	var got []string
	for _, p := range c.Participants() {
		got = append(got, p.ID)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("participants (-want +got):\n%s", diff)
	}
	if c.UnreadFor(teamCall) != 1 {
		t.Fatalf("team unread = %d before reading, want 1", c.UnreadFor(teamCall))
	}
	read := mustRecord(t, c, readChange("r1", teamCall, &thanks), t0.Add(3*time.Minute))
	if read.Seq != 7 || read.State.TeamRead != thanks.CustomerN || c.UnreadFor(teamCall) != 0 {
		t.Errorf("read entry %d with team read %d, unread %d; want entry 7 with %d and 0", read.Seq, read.State.TeamRead, c.UnreadFor(teamCall), thanks.CustomerN)
	}
	if _, ok := c.Record(readChange("r2", teamCall, &thanks), t0.Add(4*time.Minute)); ok {
		t.Error("reading the same message twice recorded a second entry")
	}
	if c.Seq != 7 || len(c.Latest) != 6 {
		t.Errorf("seq %d, latest %d; want 7, 6", c.Seq, len(c.Latest))
	}
	if !c.UpdatedAt.Equal(t0.Add(2 * time.Minute)) {
		t.Errorf("updated at %v, want the last message's time: reading is not activity", c.UpdatedAt)
	}
}

func TestEntriesCarryTheStateAfterThem(t *testing.T) {
	c := newConversation("c1", "shop", ada, "order", &ShopContext{OrderID: "o-1"}, t0)
	first := mustRecord(t, c, messageChange("m1", ada, "hi"), t0)
	if first.Seq != 1 || first.Header == nil || first.Header.Subject != "order" || first.Header.Context.OrderID != "o-1" {
		t.Fatalf("first entry = %+v, want seq 1 with the header", first)
	}
	reply := mustRecord(t, c, messageChange("m2", grace, "hello"), t0.Add(time.Minute))
	if reply.Header != nil || reply.State.Seq != 2 || reply.State.AdminCount != 1 || len(reply.State.Admins) != 1 {
		t.Errorf("second entry = %+v, want seq 2, no header, the admin counted", reply)
	}
	// Later changes do not reach into entries already recorded.
	mustRecord(t, c, updateChange("u1", grace, func(c *Conversation) bool { c.Assignee = "grace"; return true }), t0.Add(2*time.Minute))
	say(t, c, "m3", alan, "me too", t0.Add(3*time.Minute))
	if reply.State.Assignee != "" || len(reply.State.Admins) != 1 {
		t.Errorf("a recorded state changed afterwards: %+v", reply.State)
	}
	// The state of the last entry and the latest messages rebuild the conversation.
	rebuilt := conversationAt(*first.Header, c.State)
	rebuilt.Latest = c.Latest
	if diff := cmp.Diff(c, rebuilt); diff != "" {
		t.Errorf("rebuilt conversation differs (-live +rebuilt):\n%s", diff)
	}
}

func TestAwayNoticeOncePerPeriod(t *testing.T) {
	c := newConversation("c1", "shop", ada, "", nil, t0)
	say(t, c, "m1", ada, "hi", t0)
	period := t0.Add(-time.Hour)
	notice := awayNoticeChange(awayNoticeID("shop", "c1", period), systemParticipant("Shop"), "away", period)
	mustRecord(t, c, notice, t0)
	if _, ok := c.Record(notice, t0.Add(time.Minute)); ok {
		t.Error("a second notice in the same away period")
	}
	next := t0.Add(10 * time.Minute) // support was online again
	if awayNoticeID("shop", "c1", next) == awayNoticeID("shop", "c1", period) {
		t.Error("two away periods share a notice id")
	}
	mustRecord(t, c, awayNoticeChange(awayNoticeID("shop", "c1", next), systemParticipant("Shop"), "away", next), t0.Add(11*time.Minute))
}

func TestSameChange(t *testing.T) {
	c := newConversation("c1", "shop", ada, "", nil, t0)
	stored := mustRecord(t, c, messageChange("m1", ada, "hi"), t0)
	for _, tt := range []struct {
		name string
		ch   Change
		want bool
	}{
		{"the same message again", messageChange("m1", ada, "hi"), true},
		{"another body under the same id", messageChange("m1", ada, "bye"), false},
		{"another sender under the same id", messageChange("m1", grace, "hi"), false},
		{"a read mark under a message's id", readChange("m1", adaCall, nil), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.ch.Same(&stored); got != tt.want {
				t.Errorf("same = %v, want %v", got, tt.want)
			}
		})
	}
	notice := mustRecord(t, c, awayNoticeChange("n1", systemParticipant("Shop"), "old prompt", t0), t0)
	if !awayNoticeChange("n1", systemParticipant("Shop"), "edited prompt", t0).Same(&notice) {
		t.Error("an away notice with an edited prompt is not the notice of its period")
	}
}

func TestUpdatedAtNeverMovesBack(t *testing.T) {
	c := newConversation("c1", "shop", ada, "", nil, t0)
	say(t, c, "m1", ada, "hi", t0.Add(time.Minute))
	m := say(t, c, "m2", grace, "slow clock", t0)
	if !c.UpdatedAt.Equal(t0.Add(time.Minute)) || !m.CreatedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("updated %v, message %v: a slow clock moved time back", c.UpdatedAt, m.CreatedAt)
	}
}

func TestLatestKeepsTheNewest(t *testing.T) {
	c := newConversation("c1", "shop", ada, "", nil, t0)
	for i := range MaxLatest + 5 {
		say(t, c, strings.Repeat("m", i+1), ada, "x", t0)
	}
	if len(c.Latest) != MaxLatest || c.Latest[MaxLatest-1].Seq != MaxLatest+5 || c.Latest[0].Seq != 6 {
		t.Errorf("latest holds %d, seq %d..%d", len(c.Latest), c.Latest[0].Seq, c.Latest[len(c.Latest)-1].Seq)
	}
	v := summaryOf(c, adaCall, 3)
	if len(v.Messages) != 3 || v.Messages[2].Seq != MaxLatest+5 {
		t.Errorf("view of 3 = %+v", v.Messages)
	}
}

func TestSupportAt(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	hours, err := tenant.ParseBusinessHours("Europe/Berlin", map[string][]string{"mon": {"09:00-18:00"}, "wed": {"09:00-18:00"}})
	if err != nil {
		t.Fatal(err)
	}
	withHours := Settings{AwayPrompt: "away", BusinessHours: hours}
	noHours := Settings{AwayPrompt: "away"}
	wednesdayNoon := time.Date(2026, 11, 25, 12, 0, 0, 0, berlin)
	saturday := time.Date(2026, 11, 28, 12, 0, 0, 0, berlin)
	monday9 := time.Date(2026, 11, 30, 9, 0, 0, 0, berlin).UTC()
	closing := time.Date(2026, 11, 25, 18, 0, 0, 0, berlin).UTC() // Support.Until inside hours
	tests := []struct {
		name     string
		now      time.Time
		settings Settings
		presence TeamPresence
		want     Support
	}{
		{"an admin online inside hours", wednesdayNoon, withHours, TeamPresence{Online: 1}, Support{Status: SupportOnline, Available: true, Until: closing}},
		{"nobody online", wednesdayNoon, withHours, TeamPresence{}, Support{Status: SupportOffline, Reason: ReasonNoAdminOnline, Prompt: "away", Until: closing}},
		{"everyone away", wednesdayNoon, withHours, TeamPresence{Away: 2}, Support{Status: SupportAway, Reason: ReasonAdminsAway, Prompt: "away", Until: closing}},
		{"a status that lapses before closing", wednesdayNoon, withHours, TeamPresence{Online: 1, NextExpiry: wednesdayNoon.Add(time.Minute)}, Support{Status: SupportOnline, Available: true, Until: wednesdayNoon.Add(time.Minute)}},
		{"online but outside hours", saturday, withHours, TeamPresence{Online: 1}, Support{Status: SupportAway, Reason: ReasonOutsideBusinessHours, Prompt: "away", NextAvailableAt: &monday9, Until: monday9}},
		{"no hours, online on a Saturday", saturday, noHours, TeamPresence{Online: 1}, Support{Status: SupportOnline, Available: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, supportAt(tt.now, tt.settings, tt.presence)); diff != "" {
				t.Errorf("supportAt (-want +got):\n%s", diff)
			}
		})
	}
}

func TestOverridesApply(t *testing.T) {
	hours, _ := tenant.ParseBusinessHours("Europe/Oslo", map[string][]string{"mon": {"08:00-16:00"}})
	file := tenant.Chat{AwayPrompt: "file prompt", BusinessHours: hours, Retention: tenant.Retention{ResolvedAfterDays: 30}}
	prompt, yes := "api prompt", true
	tests := []struct {
		name string
		o    Overrides
		want Settings
	}{
		{"nothing overridden", Overrides{}, Settings{AwayPrompt: "file prompt", BusinessHours: hours, Retention: tenant.Retention{ResolvedAfterDays: 30}}},
		{"prompt and unassign", Overrides{AwayPrompt: &prompt, UnassignOnAway: &yes}, Settings{AwayPrompt: "api prompt", BusinessHours: hours, UnassignOnAway: true, Retention: tenant.Retention{ResolvedAfterDays: 30}}},
		{"hours removed", Overrides{BusinessHoursSet: true}, Settings{AwayPrompt: "file prompt", Retention: tenant.Retention{ResolvedAfterDays: 30}}},
		{"retention set", Overrides{Retention: &tenant.Retention{ResolvedAfterDays: 7}}, Settings{AwayPrompt: "file prompt", BusinessHours: hours, Retention: tenant.Retention{ResolvedAfterDays: 7}}},
		{"retention removed", Overrides{Retention: &tenant.Retention{}}, Settings{AwayPrompt: "file prompt", BusinessHours: hours}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.o.Apply(file)
			if got.AwayPrompt != tt.want.AwayPrompt || got.BusinessHours != tt.want.BusinessHours || got.UnassignOnAway != tt.want.UnassignOnAway || got.Retention != tt.want.Retention {
				t.Errorf("Apply = %+v, want %+v", got, tt.want)
			}
		})
	}
	if got := (Overrides{}).Apply(tenant.Chat{}).AwayPrompt; got != tenant.DefaultAwayPrompt {
		t.Errorf("default prompt = %q", got)
	}
}

func TestCursors(t *testing.T) {
	open := ListFilter{Status: StatusOpen}
	p := Position{UpdatedAt: t0.Add(123 * time.Millisecond), ID: "0123456789abcdef01234567"}
	got, err := decodeCursor(encodeCursor(p, open), open)
	if err != nil || !got.UpdatedAt.Equal(p.UpdatedAt) || got.ID != p.ID {
		t.Fatalf("round trip = %+v, %v", got, err)
	}
	if _, err := decodeCursor(encodeCursor(p, open), ListFilter{}); code(err) != Invalid {
		t.Errorf("a cursor of another filter = %v, want Invalid", err)
	}
	for _, bad := range []string{"", "abc", "AAAA", strings.Repeat("A", 40)} {
		if _, err := decodeCursor(bad, open); code(err) != Invalid {
			t.Errorf("decodeCursor(%q) = %v, want Invalid", bad, err)
		}
	}
	h := encodeHistoryCursor(42, "0123456789abcdef01234567")
	if seq, err := decodeHistoryCursor(h, "0123456789abcdef01234567"); err != nil || seq != 42 {
		t.Errorf("history cursor = %d, %v", seq, err)
	}
	if _, err := decodeHistoryCursor(h, "abcdefabcdefabcdefabcdef"); err == nil {
		t.Error("a history cursor works on another conversation")
	}
}

func TestTextValidation(t *testing.T) {
	tests := []struct {
		in   string
		code Code
	}{
		{"  hello  ", ""},
		{"", Invalid},
		{" \n ", Invalid},
		{"bell\a", Invalid},
		{"\xff", Invalid},
		{strings.Repeat("ü", MaxBodyChars), ""},
		{strings.Repeat("ü", MaxBodyChars+1), TooLarge},
	}
	for _, tt := range tests {
		_, err := cleanBody("body", tt.in)
		if got := code(err); got != tt.code {
			t.Errorf("cleanBody(%.20q) code = %q, want %q", tt.in, got, tt.code)
		}
	}
	if s, _ := startSubject("", "First line that is the subject\nsecond"); s != "First line that is the subject" {
		t.Errorf("derived subject = %q", s)
	}
	if s, _ := startSubject("", strings.Repeat("a", 100)); len([]rune(s)) != derivedSubjectChars {
		t.Errorf("long derived subject has %d characters", len([]rune(s)))
	}
	if _, err := cleanContext(&ShopContext{PageURL: "javascript:alert(1)"}); code(err) != Invalid {
		t.Errorf("javascript page_url = %v", err)
	}
}

// code returns the code of err: "" for nil, Internal for an error that is not an *Error.
func code(err error) Code {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	}
	return Internal
}

func TestMedian(t *testing.T) {
	if median(nil) != nil {
		t.Error("median of nothing is not nil")
	}
	for _, tt := range []struct {
		in   []int64
		want int64
	}{{[]int64{5}, 5}, {[]int64{9, 1, 5}, 5}, {[]int64{1, 2, 3, 10}, 2}} {
		if got := *median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %d, want %d", tt.in, got, tt.want)
		}
	}
}
