package chat

import (
	"context"
	"errors"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"time"
)

// List limits of PRODUCT.md.
const (
	DefaultListLimit    = 20
	MaxListLimit        = 100
	DefaultListMessages = 1
	// MaxListPageMessages bounds limit × messages, the messages one page may embed: a full
	// page of 100 conversations with their 5 newest messages, or 25 with 20. At most 4,000
	// characters each, a page stays within a few MB; the widget asks for 100 × 1.
	MaxListPageMessages = 500
)

// ListQuery is a request for one page of the caller's conversations. Zero Limit and a nil
// Messages take the defaults; UpdatedSince is for everyone, the other filters are for admins
// only.
type ListQuery struct {
	Limit    int
	Messages *int
	Cursor   string
	// UpdatedSince, when not zero, keeps the conversations updated strictly later (delta sync).
	// It counts to the millisecond, as updated_at does; any time is accepted, and one in the
	// future simply matches nothing yet.
	UpdatedSince time.Time
	// WithoutSupport leaves ListPage.Support empty, for a caller that has the support block
	// from its cache (or fetches it fresh for the cache).
	WithoutSupport bool

	Status     Status
	Assignee   string // "me", "none" or an admin id
	CustomerID string
	Unread     bool
}

// ListFilter selects conversations in the store.
type ListFilter struct {
	// CustomerID, when set, keeps the conversations of that customer.
	CustomerID string
	// Status, when set, keeps conversations in that status.
	Status Status
	// Assignee, when not nil, keeps conversations assigned to *Assignee ("" for unassigned).
	Assignee *string
	// TeamUnread keeps conversations with customer messages no admin has read.
	TeamUnread bool
	// UpdatedSince, when not zero, keeps conversations whose UpdatedAt is strictly later. It is
	// a whole millisecond in UTC, the precision of UpdatedAt and of the store.
	UpdatedSince time.Time
}

// Position is a place in a list ordered by UpdatedAt then ID, both descending.
type Position struct {
	UpdatedAt time.Time
	ID        string
}

// Summary is a conversation as one caller sees it: its header and state, its newest messages
// and the caller's unread count (docs/CONSISTENCY.md calls what reads return summaries). Not to
// be confused with a view, the stored projection of a conversation's log that lists query.
type Summary struct {
	*Conversation
	// Messages are the newest messages the caller asked for, oldest first.
	Messages    []Message
	UnreadCount int64
	// ShowAssignee is true for admins; customers do not see who is assigned.
	ShowAssignee bool
}

// ListPage is one page of a list.
type ListPage struct {
	Conversations []Summary
	// NextCursor continues the list; empty on the last page.
	NextCursor string
	Support    Support
}

// List returns a page of the caller's conversations (a customer's own, or all of the tenant's
// for admins), newest activity first, with the tenant's support status; with UpdatedSince, only
// those updated since (delta sync), in the same order and pages. Returns Invalid for bad
// parameters (a cursor of another list among them) and Forbidden when a customer uses an admin
// filter.
func (s *Service) List(ctx context.Context, q ListQuery) (*ListPage, error) {
	t, caller, err := scope(ctx)
	if err != nil {
		return nil, err
	}
	f, limit, messages, err := listParams(caller, q)
	if err != nil {
		return nil, err
	}
	var after *Position
	if q.Cursor != "" {
		if after, err = decodeCursor(q.Cursor, f); err != nil {
			return nil, err
		}
	}
	views, err := s.store.ListConversations(ctx, t.ID, f, after, limit+1)
	if err != nil {
		return nil, err
	}
	page := &ListPage{}
	if len(views) > limit {
		// The next page goes on after the last view this one read, wherever the log moves it.
		views = views[:limit]
		last := views[limit-1]
		page.NextCursor = encodeCursor(Position{UpdatedAt: last.UpdatedAt, ID: last.ID}, f)
	}
	convs, err := s.log.Refresh(ctx, views)
	if err != nil {
		return nil, err
	}
	// A view behind its log may have matched the filters or sorted where the log says it
	// should not: the page shows what the log says.
	convs = slices.DeleteFunc(convs, func(c *Conversation) bool { return c.Erased || !f.Matches(c) })
	slices.SortStableFunc(convs, newestFirst)
	page.Conversations = make([]Summary, len(convs))
	for i, c := range convs {
		page.Conversations[i] = summaryOf(c, caller, messages)
	}
	if !q.WithoutSupport {
		if page.Support, err = s.support(ctx, t); err != nil {
			return nil, err
		}
	}
	return page, nil
}

// Matches reports whether conversation c is one f selects.
func (f ListFilter) Matches(c *Conversation) bool {
	switch {
	case f.CustomerID != "" && c.Customer.ID != f.CustomerID,
		f.Status != "" && c.Status != f.Status,
		f.Assignee != nil && c.Assignee != *f.Assignee,
		f.TeamUnread && !c.TeamUnread(),
		!f.UpdatedSince.IsZero() && !c.UpdatedAt.After(f.UpdatedSince):
		return false
	}
	return true
}

// newestFirst orders conversations as lists do: latest activity first, greater id first among
// equal times.
func newestFirst(a, b *Conversation) int {
	if c := b.UpdatedAt.Compare(a.UpdatedAt); c != 0 {
		return c
	}
	return strings.Compare(b.ID, a.ID)
}

// summaryOf returns c as caller sees it, with its newest n messages.
func summaryOf(c *Conversation, caller Caller, n int) Summary {
	v := Summary{Conversation: c, UnreadCount: c.UnreadFor(caller), ShowAssignee: caller.IsAdmin()}
	if n > len(c.Latest) {
		n = len(c.Latest)
	}
	v.Messages = c.Latest[len(c.Latest)-n:]
	return v
}

// listParams validates q for caller and returns the store filter, page size and message count.
func listParams(caller Caller, q ListQuery) (ListFilter, int, int, error) {
	var f ListFilter
	limit := q.Limit
	if limit == 0 {
		limit = DefaultListLimit
	}
	if limit < 1 || limit > MaxListLimit {
		return f, 0, 0, FieldError("limit", "must be between 1 and %d", MaxListLimit)
	}
	messages := DefaultListMessages
	if q.Messages != nil {
		messages = *q.Messages
	}
	if messages < 0 || messages > MaxLatest {
		return f, 0, 0, FieldError("messages", "must be between 0 and %d", MaxLatest)
	}
	if limit*messages > MaxListPageMessages {
		return f, 0, 0, FieldError("messages", "must be at most %d with limit %d: limit × messages is at most %d", MaxListPageMessages/limit, limit, MaxListPageMessages)
	}
	// Every time is valid: before the first conversation it lists them all, in the future
	// (a client clock ahead of ours) nothing until the conversations catch up with it. Truncating
	// keeps "strictly later" exact: updated_at counts whole milliseconds, so it is later than
	// a time exactly when it is later than that time's millisecond.
	f.UpdatedSince = q.UpdatedSince.UTC().Truncate(time.Millisecond)
	if !caller.IsAdmin() {
		for _, filter := range []struct {
			field string
			set   bool
		}{{"status", q.Status != ""}, {"assignee", q.Assignee != ""}, {"customer_id", q.CustomerID != ""}, {"unread", q.Unread}} {
			if filter.set {
				return f, 0, 0, &Error{Code: Forbidden, Field: filter.field, Message: "only admins can filter the list by " + filter.field}
			}
		}
		f.CustomerID = caller.ID
		return f, limit, messages, nil
	}
	if q.Status != "" && !q.Status.Valid() {
		return f, 0, 0, FieldError("status", "must be open or resolved")
	}
	f.Status = q.Status
	switch q.Assignee {
	case "":
	case "me":
		f.Assignee = &caller.ID
	case "none":
		none := ""
		f.Assignee = &none
	default:
		if err := checkID("assignee", q.Assignee); err != nil {
			return f, 0, 0, err
		}
		a := q.Assignee
		f.Assignee = &a
	}
	if q.CustomerID != "" {
		if err := checkID("customer_id", q.CustomerID); err != nil {
			return f, 0, 0, err
		}
	}
	f.CustomerID = q.CustomerID
	f.TeamUnread = q.Unread
	return f, limit, messages, nil
}

// errBadCursor is the answer to a cursor this service did not make for this query.
var errBadCursor = FieldError("cursor", "is not a cursor of this list; start again without it")

// encodeCursor returns the opaque cursor for the position p in the list filtered by f.
func encodeCursor(p Position, f ListFilter) string {
	return cursor{pos: p.UpdatedAt.UnixMilli(), binding: filterHash(f), tail: p.ID}.encode()
}

// decodeCursor returns the position of a cursor made by encodeCursor for the same filter f.
func decodeCursor(s string, f ListFilter) (*Position, error) {
	c, ok := parseCursor(s)
	if !ok || !isObjectID(c.tail) {
		return nil, errBadCursor
	}
	if c.binding != filterHash(f) {
		return nil, FieldError("cursor", "belongs to a list with other filters; start again without it")
	}
	return &Position{UpdatedAt: time.UnixMilli(c.pos).UTC(), ID: c.tail}, nil
}

// filterHash fingerprints a filter so a cursor cannot be replayed against another list.
func filterHash(f ListFilter) uint32 {
	h := fnv.New32a()
	assignee := "\x00any"
	if f.Assignee != nil {
		assignee = *f.Assignee
	}
	unread := "0"
	if f.TeamUnread {
		unread = "1"
	}
	parts := []string{f.CustomerID, string(f.Status), assignee, unread}
	if !f.UpdatedSince.IsZero() {
		// Only when set, so the cursors of lists without it stay valid across this change.
		parts = append(parts, "since:"+strconv.FormatInt(f.UpdatedSince.UnixMilli(), 10))
	}
	for _, part := range parts {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return h.Sum32()
}

// isNotFound reports whether err says something does not exist.
func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }
