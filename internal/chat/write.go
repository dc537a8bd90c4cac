package chat

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/supportchat/supportchat/internal/tenant"
)

// derivedSubjectChars is how much of the first message becomes the subject when none is given.
const derivedSubjectChars = 80

// StartInput is a customer's new conversation.
type StartInput struct {
	// Subject is optional; without it the first line of Message is used.
	Subject string
	Message string
	Context *ShopContext
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
func (s *Service) Start(ctx context.Context, in StartInput) (*Summary, error) {
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
	shopCtx, err := cleanContext(in.Context)
	if err != nil {
		return nil, err
	}
	customer := caller.participant()
	c := newConversation(s.idFor(in.Seed, 0), t.ID, customer, subject, shopCtx, s.clock())
	changes, err := s.withAwayNotice(ctx, t, c.ID, messageChange(s.idFor(in.Seed, 1), customer, body))
	if err != nil {
		return nil, err
	}
	res, err := s.log.Commit(ctx, c, changes)
	if err != nil {
		return nil, err
	}
	v := summaryOf(res.Conversation, caller, 0)
	for _, e := range res.Entries {
		if e.Message != nil {
			v.Messages = append(v.Messages, *e.Message)
		}
	}
	return &v, nil
}

// Send adds a message by the caller (the conversation's customer or an admin) to conversation
// id, followed by the away prompt when a customer writes while support is not online. Returns
// NotFound when the caller may not see the conversation, Invalid or TooLarge for a bad body,
// and the log's errors (see Log.Commit).
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
	_, res, err := s.writeTo(ctx, t, caller, id, func(c *Conversation) ([]Change, error) {
		msg := messageChange(msgID, caller.participant(), body)
		if caller.IsAdmin() {
			return []Change{msg}, nil
		}
		return s.withAwayNotice(ctx, t, c.ID, msg)
	})
	if err != nil {
		return nil, err
	}
	m, ok := res.Message(msgID)
	if !ok {
		return nil, errors.New("send: the committed message is missing from the write's entries")
	}
	return m, nil
}

// withAwayNotice returns the changes of a customer's message into conversation convID: the
// message, followed by the away prompt when support is not online. The notice's id is derived
// from the away period (which begins whenever support was last online), so a conversation gets
// one notice per period however many customer messages race for it.
func (s *Service) withAwayNotice(ctx context.Context, t *tenant.Tenant, convID string, msg Change) ([]Change, error) {
	settings, _, err := s.effectiveSettings(ctx, t)
	if err != nil {
		return nil, err
	}
	presence := s.teamPresence(ctx, t.ID)
	if supportAt(s.clock(), settings, presence).Status == SupportOnline {
		return []Change{msg}, nil
	}
	period := presence.LastOnlineAt
	notice := awayNoticeChange(awayNoticeID(t.ID, convID, period), systemParticipant(t.Name), settings.AwayPrompt, period)
	return []Change{msg, notice}, nil
}

// writeTo makes one write to conversation id as caller (see Log.Write): plan gets the view if
// caller may see it. Returns NotFound when the caller may not see the conversation, and plan's
// and the log's errors.
func (s *Service) writeTo(ctx context.Context, t *tenant.Tenant, caller Caller, id string, plan func(c *Conversation) ([]Change, error)) (*Conversation, *Committed, error) {
	if !isObjectID(id) {
		return nil, nil, errConversationNotFound
	}
	c, res, err := s.log.Write(ctx, t.ID, id, func(c *Conversation) ([]Change, error) {
		if !c.VisibleTo(caller) {
			return nil, errConversationNotFound
		}
		return plan(c)
	})
	if isNotFound(err) {
		return nil, nil, errConversationNotFound
	}
	return c, res, err
}

// errConversationNotFound is the answer for another customer's conversation, another
// tenant's, a malformed id and a missing one alike.
var errConversationNotFound = Errorf(NotFound, "conversation not found")

// visible returns conversation id, read with read (Log.View or Log.Conversation), if caller
// may see it. Another customer's conversation, another tenant's, a malformed id and a missing
// one all return the same NotFound.
func (s *Service) visible(ctx context.Context, t *tenant.Tenant, caller Caller, id string, read func(ctx context.Context, tenantID, id string) (*Conversation, error)) (*Conversation, error) {
	if !isObjectID(id) {
		return nil, errConversationNotFound
	}
	c, err := read(ctx, t.ID, id)
	if err != nil {
		if isNotFound(err) {
			return nil, errConversationNotFound
		}
		return nil, err
	}
	if !c.VisibleTo(caller) {
		return nil, errConversationNotFound
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
func cleanContext(c *ShopContext) (*ShopContext, error) {
	if c == nil {
		return nil, nil
	}
	var out ShopContext
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
	if out == (ShopContext{}) {
		return nil, nil
	}
	return &out, nil
}
