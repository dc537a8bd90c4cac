package datarights

import (
	"context"

	"github.com/supportchat/supportchat/internal/chat"
)

// customerPage is how many of a customer's conversations one look-up returns.
const customerPage = 100

// Customers finds a customer's conversations (*mongodb.Store), for export and erasure.
type Customers interface {
	// CustomerViews returns up to limit views of the customer's conversations, by id, after
	// the id after ("" from the first).
	CustomerViews(ctx context.Context, tenantID, customerID, after string, limit int) ([]*chat.Conversation, error)
	// CustomerLogs returns the ids of up to limit conversations with log entries of the
	// customer, by id, after the id after: a conversation whose first write died before it made
	// the view, or what a write that raced an erasure left.
	CustomerLogs(ctx context.Context, tenantID, customerID, after string, limit int) ([]string, error)
}

// conversationsOf returns the walk of the conversations of a customer of the tenant.
func conversationsOf(ctx context.Context, c Customers, tenantID, customerID string) *customerConversations {
	return &customerConversations{
		views: idPager[*chat.Conversation]{id: func(v *chat.Conversation) string { return v.ID },
			fetch: func(after string) ([]*chat.Conversation, error) {
				return c.CustomerViews(ctx, tenantID, customerID, after, customerPage)
			}},
		logs: idPager[string]{id: func(id string) string { return id },
			fetch: func(after string) ([]string, error) {
				return c.CustomerLogs(ctx, tenantID, customerID, after, customerPage)
			}},
	}
}

// customerConversations walks a customer's conversations by id: those with a view and those
// with log entries but no view (yet), each once.
type customerConversations struct {
	views idPager[*chat.Conversation]
	logs  idPager[string]
}

// next returns the next conversation's id and its view (nil without one); ok is false at
// the end.
func (m *customerConversations) next() (id string, view *chat.Conversation, ok bool, err error) {
	v, vok, err := m.views.peek()
	if err != nil {
		return "", nil, false, err
	}
	l, lok, err := m.logs.peek()
	if err != nil {
		return "", nil, false, err
	}
	switch {
	case !vok && !lok:
		return "", nil, false, nil
	case vok && (!lok || v.ID <= l):
		m.views.pop()
		if lok && v.ID == l {
			m.logs.pop()
		}
		return v.ID, v, true, nil
	default:
		m.logs.pop()
		return l, nil, true, nil
	}
}

// idPager reads a list ordered by id page by page.
type idPager[T any] struct {
	fetch func(after string) ([]T, error)
	id    func(T) string
	buf   []T
	after string
	done  bool
}

// peek returns the next item, fetching a page when none is buffered; ok is false at the end.
func (p *idPager[T]) peek() (item T, ok bool, err error) {
	if len(p.buf) == 0 && !p.done {
		page, err := p.fetch(p.after)
		if err != nil {
			return item, false, err
		}
		if len(page) < customerPage {
			p.done = true
		}
		if len(page) > 0 {
			p.after = p.id(page[len(page)-1])
		}
		p.buf = page
	}
	if len(p.buf) == 0 {
		return item, false, nil
	}
	return p.buf[0], true, nil
}

// pop drops the item peek returned.
func (p *idPager[T]) pop() { p.buf = p.buf[1:] }
