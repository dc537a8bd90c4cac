package mongodb_test

import (
	"context"
	"testing"
	"time"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/testenv"
)

// TestTheLogsOfACustomer checks the reads export and erasure make, page by page, on every
// server: a customer's views and logs, a log in pages, a log's last entry; and the deletes.
func TestTheLogsOfACustomer(t *testing.T) {
	for _, srv := range testenv.MongoServers() {
		t.Run(srv.Name, func(t *testing.T) {
			db, _, _ := mustOpenOn(t, srv, 10*time.Second)
			s := db.Store()
			ctx := context.Background()
			for i := 1; i <= 3; i++ {
				mustAppend(t, s, logOf(shop, id(i), 4*i))
			}
			mustAppend(t, s, logOf(outdoor, id(9), 5))
			mustCreate(t, s, newConversation(shop, id(1), t0), newConversation(shop, id(3), t0))

			views, err := s.CustomerViews(ctx, shop, casey.ID, "", 1)
			if err != nil || len(views) != 1 || views[0].ID != id(1) {
				t.Fatalf("CustomerViews first page = %v, %v", ids(views), err)
			}
			if views, err = s.CustomerViews(ctx, shop, casey.ID, id(1), 10); err != nil || len(views) != 1 || views[0].ID != id(3) {
				t.Fatalf("CustomerViews after = %v, %v", ids(views), err)
			}
			logs, err := s.CustomerLogs(ctx, shop, casey.ID, "", 10)
			if err != nil || len(logs) != 3 || logs[0] != id(1) || logs[2] != id(3) {
				t.Fatalf("CustomerLogs = %v, %v", logs, err)
			}
			if logs, err = s.CustomerLogs(ctx, shop, casey.ID, id(1), 1); err != nil || len(logs) != 1 || logs[0] != id(2) {
				t.Fatalf("CustomerLogs after = %v, %v", logs, err)
			}
			page, err := s.EntriesPage(ctx, shop, id(3), 5, 4)
			if err != nil || len(page) != 4 || page[0].Seq != 6 || page[3].Seq != 9 {
				t.Fatalf("EntriesPage = %d entries, %v", len(page), err)
			}
			last, err := s.LastEntry(ctx, shop, id(3))
			if err != nil || last == nil || last.Seq != 12 {
				t.Fatalf("LastEntry = %+v, %v", last, err)
			}

			// The seal, then the deletes: the oldest first, the seal kept.
			c := newConversation(shop, id(3), t0)
			c.Seq = 12
			mustAppend(t, s, []chat.Entry{chat.Seal(c, t0)})
			if last, err = s.LastEntry(ctx, shop, id(3)); err != nil || last.Kind != chat.EntryErased || last.Seq != 13 {
				t.Fatalf("LastEntry after the seal = %+v, %v", last, err)
			}
			n, msgs, err := s.DeleteLog(ctx, shop, id(3), 13)
			if err != nil || n != 12 || msgs != 8 {
				t.Fatalf("DeleteLog = %d entries, %d messages, %v", n, msgs, err)
			}
			if left, err := s.EntriesAfter(ctx, shop, id(3), 0); err != nil || len(left) != 0 {
				t.Fatalf("after DeleteLog the log reads %d entries, %v", len(left), err)
			}
			if last, err = s.LastEntry(ctx, shop, id(3)); err != nil || last.Kind != chat.EntryErased {
				t.Fatalf("the seal is gone: %+v, %v", last, err)
			}
			if n, err := s.DeleteViews(ctx, shop, []string{id(3)}); err != nil || n != 1 {
				t.Fatalf("DeleteViews = %d, %v", n, err)
			}
			// Another tenant's log is untouched.
			if other, err := s.EntriesAfter(ctx, outdoor, id(9), 0); err != nil || len(other) != 5 {
				t.Fatalf("the other tenant's log reads %d entries, %v", len(other), err)
			}
		})
	}
}
