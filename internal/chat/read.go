package chat

import (
	"context"
	"hash/fnv"
	"slices"
)

// History limits.
const (
	DefaultHistoryLimit = 50
	MaxHistoryLimit     = 100
)

// HistoryQuery is a request for one page of a conversation's messages. A zero Limit takes the default.
type HistoryQuery struct {
	Limit  int
	Before string
}

// HistoryPage is one page of messages, oldest first.
type HistoryPage struct {
	Messages []Message
	// NextCursor continues towards older messages; empty at the start of the conversation.
	NextCursor string
}

// ReadState is the caller's side's read state after marking a conversation read.
type ReadState struct {
	ConversationID string
	UnreadCount    int64
}

// Conversation returns conversation id as the caller sees it, with its newest messages (0..20),
// as its log stands. Returns NotFound when the caller may not see it.
func (s *Service) Conversation(ctx context.Context, id string, messages *int) (*Summary, error) {
	t, caller, err := scope(ctx)
	if err != nil {
		return nil, err
	}
	n := DefaultListMessages
	if messages != nil {
		n = *messages
	}
	if n < 0 || n > MaxLatest {
		return nil, FieldError("messages", "must be between 0 and %d", MaxLatest)
	}
	c, err := s.visible(ctx, t, caller, id, s.log.Conversation)
	if err != nil {
		return nil, err
	}
	v := summaryOf(c, caller, n)
	return &v, nil
}

// History returns a page of the messages of conversation id, newest page first and oldest first
// within the page. It reads the log itself, so it shows every committed message. Returns
// NotFound when the caller may not see the conversation and Invalid for bad parameters.
func (s *Service) History(ctx context.Context, id string, q HistoryQuery) (*HistoryPage, error) {
	t, caller, err := scope(ctx)
	if err != nil {
		return nil, err
	}
	limit := q.Limit
	if limit == 0 {
		limit = DefaultHistoryLimit
	}
	if limit < 1 || limit > MaxHistoryLimit {
		return nil, FieldError("limit", "must be between 1 and %d", MaxHistoryLimit)
	}
	// Who may see a conversation never changes, so its view, however far behind, tells.
	if _, err := s.visible(ctx, t, caller, id, s.log.View); err != nil {
		return nil, err
	}
	var before int64
	if q.Before != "" {
		if before, err = decodeHistoryCursor(q.Before, id); err != nil {
			return nil, err
		}
	}
	msgs, err := s.store.Messages(ctx, t.ID, id, before, limit+1)
	if err != nil {
		return nil, err
	}
	page := &HistoryPage{}
	if len(msgs) > limit {
		msgs = msgs[:limit]
		page.NextCursor = encodeHistoryCursor(msgs[limit-1].Seq, id)
	}
	slices.Reverse(msgs)
	page.Messages = msgs
	return page, nil
}

// MarkRead moves the read mark of the caller's side (the customer, or the tenant's whole team
// for admins) up to message messageID, or to the newest message when it is empty. Read marks
// never move backwards. Returns NotFound when the caller may not see the conversation and
// Invalid when the message is not one of it.
func (s *Service) MarkRead(ctx context.Context, id, messageID string) (*ReadState, error) {
	t, caller, err := scope(ctx)
	if err != nil {
		return nil, err
	}
	c, res, err := s.writeTo(ctx, t, caller, id, func(c *Conversation) ([]Change, error) {
		m, err := s.readTarget(ctx, c, messageID)
		if err != nil {
			return nil, err
		}
		return []Change{readChange(s.newID(), caller, m)}, nil
	})
	if err != nil {
		return nil, err
	}
	if res == nil {
		return &ReadState{ConversationID: id, UnreadCount: c.UnreadFor(caller)}, nil
	}
	return &ReadState{ConversationID: id, UnreadCount: res.Conversation.UnreadFor(caller)}, nil
}

// readTarget returns the message to mark read up to: messageID, or nil for the newest message
// when the read mark is recorded.
func (s *Service) readTarget(ctx context.Context, c *Conversation, messageID string) (*Message, error) {
	if messageID == "" {
		return nil, nil
	}
	if m, ok := c.latestMessage(messageID); ok {
		return &m, nil
	}
	notOurs := FieldError("message_id", "is not a message of this conversation")
	if !isObjectID(messageID) {
		return nil, notOurs
	}
	e, err := s.store.Entry(ctx, c.TenantID, c.ID, messageID)
	if isNotFound(err) || err == nil && e.Message == nil {
		return nil, notOurs
	}
	if err != nil {
		return nil, err
	}
	return e.Message, nil
}

// encodeHistoryCursor returns the cursor for messages before seq in conversation convID.
func encodeHistoryCursor(seq int64, convID string) string {
	return cursor{pos: seq, binding: idHash(convID)}.encode()
}

// decodeHistoryCursor returns the seq of a cursor made by encodeHistoryCursor for convID.
func decodeHistoryCursor(s, convID string) (int64, error) {
	c, ok := parseCursor(s)
	if !ok || c.tail != "" || c.binding != idHash(convID) || c.pos < 1 {
		return 0, FieldError("before", "is not a cursor of this conversation's messages")
	}
	return c.pos, nil
}

func idHash(id string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(id))
	return h.Sum32()
}
