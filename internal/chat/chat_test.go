package chat

import (
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

func TestMessagesMoveCountersReadMarksAndStatus(t *testing.T) {
	c := newConversation("c1", "shop", ada, "order", nil, t0)
	c.addMessage("m1", ada, "hi", t0)
	c.addMessage("m2", system, "away", t0)
	c.addMessage("m3", ada, "hello?", t0.Add(time.Second))
	if got := c.UnreadFor(teamCall); got != 2 {
		t.Errorf("team unread = %d, want 2 (the system message does not count)", got)
	}
	if got := c.UnreadFor(adaCall); got != 0 {
		t.Errorf("customer unread = %d, want 0", got)
	}
	c.Status = StatusResolved
	c.addMessage("m4", grace, "here", t0.Add(90*time.Second))
	if c.Status != StatusResolved {
		t.Error("an admin message must not reopen")
	}
	if c.UnreadFor(teamCall) != 0 || c.UnreadFor(adaCall) != 1 {
		t.Errorf("after the reply: team %d, customer %d; want 0, 1", c.UnreadFor(teamCall), c.UnreadFor(adaCall))
	}
	if c.FirstReplyAt == nil || c.FirstReplySeconds != 90 {
		t.Errorf("first reply = %v, %d s", c.FirstReplyAt, c.FirstReplySeconds)
	}
	c.addMessage("m5", alan, "also here", t0.Add(100*time.Second))
	if c.FirstReplySeconds != 90 {
		t.Error("a second reply changed the first reply time")
	}
	thanks := c.addMessage("m6", ada, "thanks", t0.Add(2*time.Minute))
	if c.Status != StatusOpen {
		t.Error("a customer message must reopen a resolved conversation")
	}
	want := []string{"ada", "grace", "alan"}
	var got []string
	for _, p := range c.Participants {
		got = append(got, p.ID)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("participants (-want +got):\n%s", diff)
	}
	if c.UnreadFor(teamCall) != 1 || !c.markRead(teamCall, thanks) || c.markRead(teamCall, thanks) || c.UnreadFor(teamCall) != 0 {
		t.Error("the team's read mark must move once to the newest message and never twice")
	}
	if c.LastSeq != 6 || len(c.Pending) != 6 || len(c.Latest) != 6 {
		t.Errorf("seq %d, pending %d, latest %d", c.LastSeq, len(c.Pending), len(c.Latest))
	}
}

func TestUpdatedAtNeverMovesBack(t *testing.T) {
	c := newConversation("c1", "shop", ada, "", nil, t0)
	c.addMessage("m1", ada, "hi", t0.Add(time.Minute))
	m := c.addMessage("m2", grace, "slow clock", t0)
	if !c.UpdatedAt.Equal(t0.Add(time.Minute)) || !m.CreatedAt.Equal(t0.Add(time.Minute)) {
		t.Errorf("updated %v, message %v: a slow clock moved time back", c.UpdatedAt, m.CreatedAt)
	}
}

func TestLatestKeepsTheNewest(t *testing.T) {
	c := newConversation("c1", "shop", ada, "", nil, t0)
	for i := range MaxLatest + 5 {
		c.addMessage(strings.Repeat("m", i+1), ada, "x", t0)
	}
	if len(c.Latest) != MaxLatest || c.Latest[MaxLatest-1].Seq != MaxLatest+5 || c.Latest[0].Seq != 6 {
		t.Errorf("latest holds %d, seq %d..%d", len(c.Latest), c.Latest[0].Seq, c.Latest[len(c.Latest)-1].Seq)
	}
	v := viewOf(c, adaCall, 3)
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
	tests := []struct {
		name     string
		now      time.Time
		settings Settings
		presence TeamPresence
		want     Support
	}{
		{"an admin online inside hours", wednesdayNoon, withHours, TeamPresence{Online: 1}, Support{Status: SupportOnline, Available: true}},
		{"nobody online", wednesdayNoon, withHours, TeamPresence{}, Support{Status: SupportOffline, Reason: ReasonNoAdminOnline, Prompt: "away"}},
		{"everyone away", wednesdayNoon, withHours, TeamPresence{Away: 2}, Support{Status: SupportAway, Reason: ReasonAdminsAway, Prompt: "away"}},
		{"online but outside hours", saturday, withHours, TeamPresence{Online: 1}, Support{Status: SupportAway, Reason: ReasonOutsideBusinessHours, Prompt: "away", NextAvailableAt: &monday9}},
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
	file := tenant.Chat{AwayPrompt: "file prompt", BusinessHours: hours}
	prompt, yes := "api prompt", true
	tests := []struct {
		name string
		o    Overrides
		want Settings
	}{
		{"nothing overridden", Overrides{}, Settings{AwayPrompt: "file prompt", BusinessHours: hours}},
		{"prompt and unassign", Overrides{AwayPrompt: &prompt, UnassignOnAway: &yes}, Settings{AwayPrompt: "api prompt", BusinessHours: hours, UnassignOnAway: true}},
		{"hours removed", Overrides{BusinessHoursSet: true}, Settings{AwayPrompt: "file prompt"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.o.Apply(file)
			if got.AwayPrompt != tt.want.AwayPrompt || got.BusinessHours != tt.want.BusinessHours || got.UnassignOnAway != tt.want.UnassignOnAway {
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
	if _, err := decodeCursor(encodeCursor(p, open), ListFilter{}); ErrorCode(err) != Invalid {
		t.Errorf("a cursor of another filter = %v, want Invalid", err)
	}
	for _, bad := range []string{"", "abc", "AAAA", strings.Repeat("A", 40)} {
		if _, err := decodeCursor(bad, open); ErrorCode(err) != Invalid {
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
	if _, err := cleanContext(&Context{PageURL: "javascript:alert(1)"}); ErrorCode(err) != Invalid {
		t.Errorf("javascript page_url = %v", err)
	}
}

func code(err error) Code {
	if err == nil {
		return ""
	}
	return ErrorCode(err)
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
