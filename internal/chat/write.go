package chat

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/supportchat/supportchat/internal/tenant"
)

// maxCommitAttempts bounds the compare-and-swap retries of one write to a busy conversation.
const maxCommitAttempts = 16

// derivedSubjectChars is how much of the first message becomes the subject when none is given.
const derivedSubjectChars = 80

// StartInput is a customer's new conversation.
type StartInput struct {
	// Subject is optional; without it the first line of Message is used.
	Subject string
	Message string
	Context *Context
	// Seed, when set, makes the ids of the conversation and its messages a function of it, so a
	// retried request (same Idempotency-Key) finds what the first attempt stored.
	Seed string
}

// SendInput is a new message.
type SendInput struct {
	Body string
	// Seed works as in StartInput.
	Seed string
}

// idFor returns the n-th id of a write: derived from seed when there is one, new otherwise.
func (s *Service) idFor(seed string, n int) string {
	if seed == "" {
		return s.newID()
	}
	sum := sha256.Sum256([]byte(seed + ":" + strconv.Itoa(n)))
	return hex.EncodeToString(sum[:12])
}

// Start creates a conversation of the calling customer with its first message, and the away
// prompt as a system message when support is not online. Returns Forbidden for admins and
// Invalid for bad input.
func (s *Service) Start(ctx context.Context, in StartInput) (*View, error) {
	t, caller, err := scope(ctx)
	if err != nil {
		return nil, err
	}
	if caller.IsAdmin() {
		return nil, Errorf(Forbidden, "only customers start conversations")
	}
	body, err := cleanBody("message", in.Message)
	if err != nil {
		return nil, err
	}
	subject, err := startSubject(in.Subject, body)
	if err != nil {
		return nil, err
	}
	cctx, err := cleanContext(in.Context)
	if err != nil {
		return nil, err
	}
	now := s.clock()
	customer := Participant{ID: caller.ID, Role: RoleCustomer, Name: caller.Name}
	c := newConversation(s.idFor(in.Seed, 0), t.ID, customer, subject, cctx, now)
	c.addMessage(s.idFor(in.Seed, 1), customer, body, now)
	if err := s.addAwayNotice(ctx, t, c, in.Seed, now); err != nil {
		return nil, err
	}
	if err := s.store.CreateConversation(ctx, c); err != nil {
		if !errors.Is(err, ErrConflict) || in.Seed == "" {
			return nil, err
		}
		// The same request was stored before (a retry, or a racing twin): answer with it.
		prev, err := s.store.Conversation(ctx, t.ID, c.ID)
		if err != nil {
			return nil, err
		}
		if prev.Customer.ID != caller.ID {
			return nil, Errorf(Conflict, "conversation id already taken")
		}
		s.flush(ctx, prev)
		return startedView(prev, caller), nil
	}
	created := c.clone()
	s.flush(ctx, c)
	s.publish(ctx, Event{Type: EventConversationCreated, TenantID: t.ID, ConversationID: c.ID, CustomerID: caller.ID, At: now, Conversation: created})
	for i := range created.Pending {
		s.publish(ctx, Event{Type: EventMessageCreated, TenantID: t.ID, ConversationID: c.ID, CustomerID: caller.ID, At: now, Message: &created.Pending[i], Conversation: created})
	}
	return startedView(created, caller), nil
}

// startedView returns the view of a newly started conversation: its first message and the away
// notice that came with it.
func startedView(c *Conversation, caller Caller) *View {
	v := viewOf(c, caller, 0)
	for _, m := range c.Latest {
		if m.Seq == 1 || m.Seq == 2 && m.Sender.Role == RoleSystem {
			v.Messages = append(v.Messages, m)
		}
	}
	return &v
}

// Send adds a message by the caller (the conversation's customer or an admin) to conversation
// id. Returns NotFound when the caller may not see it, Invalid for a bad body, and Conflict when
// the conversation stays too busy to commit.
func (s *Service) Send(ctx context.Context, id string, in SendInput) (*Message, error) {
	t, caller, err := scope(ctx)
	if err != nil {
		return nil, err
	}
	body, err := cleanBody("body", in.Body)
	if err != nil {
		return nil, err
	}
	msgID := s.idFor(in.Seed, 1)
	sender := Participant{ID: caller.ID, Role: caller.Role, Name: caller.Name}
	for range maxCommitAttempts {
		c, err := s.visible(ctx, t, caller, id)
		if err != nil {
			return nil, err
		}
		if in.Seed != "" {
			if m, ok, err := s.sentBefore(ctx, c, msgID); err != nil || ok {
				return m, err
			}
		}
		if err := s.writePending(ctx, c); err != nil {
			return nil, err
		}
		next := c.clone()
		next.Pending = nil
		next.Version++
		now := s.clock()
		m := next.addMessage(msgID, sender, body, now)
		if !caller.IsAdmin() {
			if err := s.addAwayNotice(ctx, t, next, in.Seed, now); err != nil {
				return nil, err
			}
		}
		if err := s.store.UpdateConversation(ctx, next, c.Version); err != nil {
			if errors.Is(err, ErrConflict) {
				continue
			}
			return nil, err
		}
		committed := next.clone()
		s.flush(ctx, next)
		for i := range committed.Pending {
			s.publish(ctx, Event{Type: EventMessageCreated, TenantID: t.ID, ConversationID: id, CustomerID: c.Customer.ID, At: now, Message: &committed.Pending[i], Conversation: committed})
		}
		return &m, nil
	}
	return nil, Errorf(Conflict, "the conversation is too busy right now; retry the request")
}

// sentBefore finds the message msgID if an earlier attempt of the same request stored it.
func (s *Service) sentBefore(ctx context.Context, c *Conversation, msgID string) (*Message, bool, error) {
	if m, ok := c.heldMessage(msgID); ok {
		if err := s.writePending(ctx, c); err != nil {
			return nil, false, err
		}
		s.clearPending(ctx, c)
		return &m, true, nil
	}
	m, err := s.store.Message(ctx, c.TenantID, c.ID, msgID)
	switch {
	case err == nil:
		return m, true, nil
	case isNotFound(err):
		return nil, false, nil
	default:
		return nil, false, err
	}
}

// addAwayNotice adds the away prompt as a system message when support is not online and the
// conversation has had no notice in this away period (one starts whenever support was online
// after the last notice).
func (s *Service) addAwayNotice(ctx context.Context, t *tenant.Tenant, c *Conversation, seed string, now time.Time) error {
	settings, _, err := s.effectiveSettings(ctx, t)
	if err != nil {
		return err
	}
	presence := s.teamPresence(ctx, t.ID)
	if supportAt(now, settings, presence).Status == SupportOnline {
		return nil
	}
	if c.AwayNoticeAt != nil && !c.AwayNoticeAt.Before(presence.LastOnlineAt) {
		return nil
	}
	system := Participant{ID: string(RoleSystem), Role: RoleSystem, Name: t.Name}
	c.addMessage(s.idFor(seed, 2), system, settings.AwayPrompt, now)
	at := now
	c.AwayNoticeAt = &at
	return nil
}

// writePending copies the pending messages of c into the message history.
func (s *Service) writePending(ctx context.Context, c *Conversation) error {
	if len(c.Pending) == 0 {
		return nil
	}
	return s.store.InsertMessages(ctx, c.TenantID, c.Pending)
}

// clearPending removes the pending messages of c from the stored conversation once they are in
// the history. A failure only leaves work for the next reader.
func (s *Service) clearPending(ctx context.Context, c *Conversation) {
	if len(c.Pending) == 0 {
		return
	}
	if err := s.store.ClearPending(ctx, c.TenantID, c.ID, c.Pending[0].ID); err != nil {
		s.log.WarnContext(ctx, "clearing pending messages", "tenant", c.TenantID, "conversation", c.ID, "error", err)
	}
}

// flush writes the pending messages of a just-committed conversation into the history. The
// commit is durable already, so a failure is logged, not returned: the next reader or writer of
// the conversation finishes the job.
func (s *Service) flush(ctx context.Context, c *Conversation) {
	if err := s.writePending(ctx, c); err != nil {
		s.log.WarnContext(ctx, "writing pending messages; a later request completes them", "tenant", c.TenantID, "conversation", c.ID, "error", err)
		return
	}
	s.clearPending(ctx, c)
	c.Pending = nil
}

// visible returns conversation id if caller may see it. Another customer's conversation, another
// tenant's, a malformed id and a missing one all return the same NotFound.
func (s *Service) visible(ctx context.Context, t *tenant.Tenant, caller Caller, id string) (*Conversation, error) {
	notFound := Errorf(NotFound, "conversation not found")
	if !isObjectID(id) {
		return nil, notFound
	}
	c, err := s.store.Conversation(ctx, t.ID, id)
	if err != nil {
		if isNotFound(err) {
			return nil, notFound
		}
		return nil, err
	}
	if !c.VisibleTo(caller) {
		return nil, notFound
	}
	return c, nil
}

// startSubject returns the validated subject, or the first line of the message without one.
func startSubject(subject, body string) (string, error) {
	if subject != "" {
		return cleanText("subject", subject, MaxSubjectChars)
	}
	line, _, _ := strings.Cut(body, "\n")
	line = strings.TrimSpace(line)
	if utf8.RuneCountInString(line) > derivedSubjectChars {
		line = string([]rune(line)[:derivedSubjectChars-1]) + "…"
	}
	return line, nil
}

// cleanContext validates the storefront context of a new conversation.
func cleanContext(c *Context) (*Context, error) {
	if c == nil {
		return nil, nil
	}
	var out Context
	var err error
	for _, f := range []struct {
		field string
		in    string
		out   *string
		max   int
	}{
		{"context.order_id", c.OrderID, &out.OrderID, maxContextChars},
		{"context.product_id", c.ProductID, &out.ProductID, maxContextChars},
		{"context.page_url", c.PageURL, &out.PageURL, maxPageURLChars},
	} {
		if f.in == "" {
			continue
		}
		if *f.out, err = cleanText(f.field, f.in, f.max); err != nil {
			return nil, err
		}
	}
	if out.PageURL != "" {
		u, err := url.Parse(out.PageURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, FieldError("context.page_url", "must be an absolute http or https URL")
		}
	}
	if out == (Context{}) {
		return nil, nil
	}
	return &out, nil
}
