package mongodb

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/supportchat/supportchat/internal/chat"
)

// The log: the entries collection. An entry's _id is its place in the log (entryKey), so the
// write path finds entries by _id alone; a unique index on its id within the conversation
// (eid) keeps every change stored once. Entries are inserted, never changed, except that the
// log clears their pending field once their events are published.

// Append stores entries in order, as they are: the log appends them Pending (seeded data that
// needs no publication need not be). It stops at the first entry whose (tenant,
// conversation, seq) or whose id within the conversation is taken and returns how many it
// stored before it, with an error matching chat.ErrConflict. The uniqueness of the entries'
// _id (tenant, conversation, seq) and of (tenant_id, conversation_id, eid) makes this the
// commit point of every write, on MongoDB and FerretDB alike. Pending marks go with the
// entries or, in the outbox, before them (see PendingMarks), so a committed entry is always
// marked until Published.
func (s *Store) Append(ctx context.Context, entries []chat.Entry) (int, error) {
	if len(entries) == 0 {
		return 0, nil
	}
	if err := s.breaker.allow("append entries"); err != nil {
		return 0, err
	}
	outbox, err := s.inOutbox(ctx)
	if err != nil {
		return 0, err
	}
	if outbox {
		if err := s.markInOutbox(ctx, entries); err != nil {
			return 0, err
		}
	}
	docs := make([]any, len(entries))
	for i, e := range entries {
		d := toEntryDoc(e)
		d.Pending = e.Pending && !outbox
		d.Hook = d.Pending // an entry the log commits is taken up by webhooks too
		docs[i] = d
	}
	_, err = s.entries.InsertMany(ctx, docs, options.InsertMany().SetOrdered(true))
	if err == nil {
		return len(entries), nil
	}
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || len(bwe.WriteErrors) == 0 {
		return 0, s.wrap("append entries", err)
	}
	// An ordered insert stops at its first failing document: those before it are stored.
	first := bwe.WriteErrors[0]
	if bwe.WriteConcernError == nil && isDuplicateKey(first.Code) {
		// The marks of the refused entries stay behind: the relay drops a mark whose place
		// holds another writer's entry, and one whose entry never came once it is stale.
		return first.Index, errEntryTaken
	}
	return first.Index, s.wrap("append entries", err)
}

// outboxDoc is the pending mark of a log entry in the outbox: its _id is the entry's place
// (entryKey) and its id, so each writer marks only its own entries. Marked is when it was
// stored, on the wall clock: a mark whose entry never came is stale after staleMark.
type outboxDoc struct {
	ID             string    `bson:"_id"`
	Key            string    `bson:"key"`
	EID            string    `bson:"eid"`
	TenantID       string    `bson:"tenant_id"`
	ConversationID string    `bson:"conversation_id"`
	At             time.Time `bson:"at"`
	Marked         time.Time `bson:"marked"`
	// Hook marks the entry for webhooks (Store.Hooked) rather than for the relay.
	Hook bool `bson:"hook,omitempty"`
}

// markID returns the _id of the pending mark of entry e.
func markID(e chat.Entry) string {
	return entryKey(e.TenantID, e.ConversationID, e.Seq) + "/" + e.ID
}

// hookMarkID returns the _id of the webhook mark of entry e in the outbox.
func hookMarkID(e chat.Entry) string { return "hook/" + markID(e) }

// markInOutbox stores the pending marks of entries in the outbox, and their webhook marks,
// before they are appended, with one insert. A mark there already is one an earlier attempt of
// the same write stored.
func (s *Store) markInOutbox(ctx context.Context, entries []chat.Entry) error {
	var docs []any
	for _, e := range entries {
		if e.Pending {
			m := outboxDoc{ID: markID(e), Key: entryKey(e.TenantID, e.ConversationID, e.Seq), EID: e.ID,
				TenantID: e.TenantID, ConversationID: e.ConversationID, At: e.At, Marked: time.Now()}
			h := m
			h.ID, h.Hook = hookMarkID(e), true
			docs = append(docs, m, h)
		}
	}
	if len(docs) == 0 {
		return nil
	}
	_, err := s.outbox.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if onlyDuplicateKeys(err) {
		return nil
	}
	return s.wrap("mark pending entries", err)
}

// onlyDuplicateKeys reports whether err is that of an unordered insert whose every refused
// document was a duplicate key: the others are stored.
func onlyDuplicateKeys(err error) bool {
	var bwe mongo.BulkWriteException
	return errors.As(err, &bwe) && bwe.WriteConcernError == nil &&
		!slices.ContainsFunc(bwe.WriteErrors, func(we mongo.BulkWriteError) bool { return !isDuplicateKey(we.Code) })
}

// unmarkInOutbox deletes the pending marks of entries.
func (s *Store) unmarkInOutbox(ctx context.Context, entries []chat.Entry) error {
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = markID(e)
	}
	_, err := s.outbox.DeleteMany(ctx, bson.M{"_id": bson.M{"$in": ids}})
	return s.wrap("clear pending marks", err)
}

// Entry returns the entry of a conversation with id. Returns chat.ErrNotFound when there is
// none.
func (s *Store) Entry(ctx context.Context, tenantID, convID, id string) (*chat.Entry, error) {
	if err := s.breaker.allow("find entry"); err != nil {
		return nil, err
	}
	var d entryDoc
	err := s.entries.FindOne(ctx, bson.M{"tenant_id": tenantID, "conversation_id": convID, "eid": id}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, errEntryNotFound
	}
	if err != nil {
		return nil, s.wrap("find entry", err)
	}
	e := d.entry()
	return &e, nil
}

// probedEntries is how many entries EntriesAfter looks up one by one, by _id, before it asks
// for the rest with one range query. A writer rarely finds more than a couple of entries it has
// not seen; looking them up by _id keeps FerretDB on SQLite from decoding the whole log.
const probedEntries = 16

// EntriesAfter returns the entries of a conversation with seq above seq, in order. Entries are
// numbered without gaps, so the first seq not found ends them.
func (s *Store) EntriesAfter(ctx context.Context, tenantID, convID string, seq int64) ([]chat.Entry, error) {
	if err := s.breaker.allow("entries after"); err != nil {
		return nil, err
	}
	var entries []chat.Entry
	for next := seq + 1; next <= seq+probedEntries; next++ {
		var d entryDoc
		err := s.entries.FindOne(ctx, s.entryAt(ctx, tenantID, convID, next)).Decode(&d)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return entries, nil
		}
		if err != nil {
			return nil, s.wrap("entries after", err)
		}
		entries = append(entries, d.entry())
	}
	docs, err := findAll[entryDoc](ctx, s, "entries after", s.entries,
		bson.M{"tenant_id": tenantID, "conversation_id": convID, "seq": bson.M{"$gt": seq + probedEntries}},
		options.Find().SetSort(bson.D{{Key: "seq", Value: 1}}))
	if err != nil {
		return nil, err
	}
	for i := range docs {
		entries = append(entries, docs[i].entry())
	}
	return entries, nil
}

// entryAt returns the filter of entry seq of a conversation: by _id alone on FerretDB, which
// hands only that filter to its backend; by the fields of the unique index on MongoDB, which
// also carry the shard key of a sharded log (deploy/README.md).
func (s *Store) entryAt(ctx context.Context, tenantID, convID string, seq int64) bson.M {
	if s.server.isFerretDB(ctx) {
		return bson.M{"_id": entryKey(tenantID, convID, seq)}
	}
	return bson.M{"tenant_id": tenantID, "conversation_id": convID, "seq": seq}
}

// followedLookups bounds the concurrent look-ups of Followed on FerretDB.
const followedLookups = 4

// Followed reports, for each view, whether its conversation's log has an entry after the
// view's seq: on MongoDB with one query of the _ids those entries would have, on FerretDB
// (which would decode the whole log for that query) with a look-up of each.
func (s *Store) Followed(ctx context.Context, views []*chat.Conversation) ([]bool, error) {
	if err := s.breaker.allow("followed views"); err != nil {
		return nil, err
	}
	keys := make([]string, len(views))
	for i, v := range views {
		keys[i] = entryKey(v.TenantID, v.ID, v.Seq+1)
	}
	found := make([]bool, len(views))
	if !s.server.isFerretDB(ctx) {
		var tenants []string
		for _, v := range views {
			if !slices.Contains(tenants, v.TenantID) {
				tenants = append(tenants, v.TenantID)
			}
		}
		docs, err := findAll[idDoc](ctx, s, "followed views", s.entries,
			bson.M{"_id": bson.M{"$in": keys}, "tenant_id": bson.M{"$in": tenants}},
			options.Find().SetProjection(bson.M{"_id": 1}))
		if err != nil {
			return nil, err
		}
		for _, d := range docs {
			for i, k := range keys {
				found[i] = found[i] || k == d.ID
			}
		}
		return found, nil
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		slots    = make(chan struct{}, followedLookups)
	)
	for i, k := range keys {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			err := s.entries.FindOne(ctx, bson.M{"_id": k}, options.FindOne().SetProjection(bson.M{"_id": 1})).Err()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				found[i] = true
			case !errors.Is(err, mongo.ErrNoDocuments) && firstErr == nil:
				firstErr = s.wrap("followed views", err)
			}
		})
	}
	wg.Wait()
	return found, firstErr
}

// Messages returns up to limit messages of the conversation with seq below before (0: from the
// newest), newest first.
func (s *Store) Messages(ctx context.Context, tenantID, convID string, before int64, limit int) ([]chat.Message, error) {
	if limit <= 0 {
		return nil, nil
	}
	if err := s.breaker.allow("list messages"); err != nil {
		return nil, err
	}
	filter := bson.M{"tenant_id": tenantID, "conversation_id": convID, "kind": string(chat.EntryMessage)}
	if before > 0 {
		filter["seq"] = bson.M{"$lt": before}
	}
	docs, err := findAll[entryDoc](ctx, s, "list messages", s.entries, filter,
		options.Find().SetSort(bson.D{{Key: "seq", Value: -1}}).SetLimit(int64(limit)).
			SetProjection(bson.M{"conversation_id": 1, "message": 1}))
	if err != nil {
		return nil, err
	}
	msgs := make([]chat.Message, 0, len(docs))
	for _, d := range docs {
		if d.Message != nil {
			msgs = append(msgs, d.Message.message(d.ConversationID))
		}
	}
	return msgs, nil
}

// staleMark is how old a pending mark in the outbox whose entry never came must be before
// Pending deletes it, on the wall clock: far beyond a write's time (30 s), so its writer is
// surely gone and its insert can land no more.
const staleMark = 2 * time.Minute

// Pending returns up to limit pending entries of any tenant, oldest first. On MongoDB the partial
// index pending_at holds only those, so this reads nothing else; on FerretDB the outbox holds
// their marks, and each marked entry is looked up.
func (s *Store) Pending(ctx context.Context, limit int) ([]chat.Entry, error) {
	if err := s.breaker.allow("pending entries"); err != nil {
		return nil, err
	}
	outbox, err := s.inOutbox(ctx)
	if err != nil {
		return nil, err
	}
	if outbox {
		return s.pendingInOutbox(ctx, limit)
	}
	docs, err := findAll[entryDoc](ctx, s, "pending entries", s.entries, bson.M{"pending": true},
		options.Find().SetSort(bson.D{{Key: "at", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, err
	}
	entries := make([]chat.Entry, len(docs))
	for i := range docs {
		entries[i] = docs[i].entry()
	}
	return entries, nil
}

// pendingInOutbox returns the entries of up to limit pending marks of the outbox, oldest first
// (see marked).
func (s *Store) pendingInOutbox(ctx context.Context, limit int) ([]chat.Entry, error) {
	entries, _, err := s.marked(ctx, false, limit)
	for i := range entries {
		entries[i].Pending = true
	}
	return entries, err
}

// marked returns the entries of up to limit marks of the outbox, the relay's (hook false) or
// the webhooks', oldest first, and the marks' ids. A mark whose place holds another writer's
// entry is dropped; one whose entry is not (yet) there is skipped, and dropped once stale.
func (s *Store) marked(ctx context.Context, hook bool, limit int) ([]chat.Entry, []string, error) {
	filter := bson.M{"hook": bson.M{"$ne": true}}
	if hook {
		filter = bson.M{"hook": true}
	}
	marks, err := findAll[outboxDoc](ctx, s, "pending marks", s.outbox, filter,
		options.Find().SetSort(bson.D{{Key: "at", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, nil, err
	}
	var entries []chat.Entry
	var ids, stale []string
	// waiting holds, per conversation, the lowest place whose entry is not there (yet): its
	// writer's ordered insert may store it and those after it between two look-ups here, and
	// webhooks must not take a later entry before an earlier one.
	waiting := map[string]int64{}
	for _, m := range marks {
		var d entryDoc
		err := s.entries.FindOne(ctx, bson.M{"_id": m.Key}).Decode(&d)
		switch {
		case errors.Is(err, mongo.ErrNoDocuments):
			if time.Since(m.Marked) > staleMark {
				stale = append(stale, m.ID)
			} else if seq, err := strconv.ParseInt(m.Key[strings.LastIndexByte(m.Key, ':')+1:], 10, 64); err == nil {
				conv := m.TenantID + "/" + m.ConversationID
				if w, ok := waiting[conv]; !ok || seq < w {
					waiting[conv] = seq
				}
			}
		case err != nil:
			return nil, nil, s.wrap("pending entries", err)
		case d.EID != m.EID || d.TenantID != m.TenantID:
			stale = append(stale, m.ID) // another writer's entry took the place
		default:
			entries = append(entries, d.entry())
			ids = append(ids, m.ID)
		}
	}
	if len(stale) > 0 {
		if _, err := s.outbox.DeleteMany(ctx, bson.M{"_id": bson.M{"$in": stale}}); err != nil {
			return nil, nil, s.wrap("delete stale pending marks", err)
		}
	}
	if hook && len(waiting) > 0 {
		var keep []chat.Entry
		var keepIDs []string
		for i, e := range entries {
			if w, ok := waiting[e.TenantID+"/"+e.ConversationID]; !ok || e.Seq < w {
				keep, keepIDs = append(keep, e), append(keepIDs, ids[i])
			}
		}
		entries, ids = keep, keepIDs
	}
	return entries, ids, nil
}

// Published clears the pending marks of entries: their outbox documents, or the pending field
// with one command of one statement per entry, each selecting it by _id alone (on a server
// whose updates are not atomic the entry is read and written back whole, which is harmless:
// entries do not change otherwise).
func (s *Store) Published(ctx context.Context, entries []chat.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	if err := s.breaker.allow("mark entries published"); err != nil {
		return err
	}
	outbox, err := s.inOutbox(ctx)
	if err != nil {
		return err
	}
	if outbox {
		return s.unmarkInOutbox(ctx, entries)
	}
	models := make([]mongo.WriteModel, len(entries))
	for i, e := range entries {
		models[i] = mongo.NewUpdateOneModel().
			SetFilter(bson.M{"_id": entryKey(e.TenantID, e.ConversationID, e.Seq)}).
			SetUpdate(bson.M{"$unset": bson.M{"pending": ""}})
	}
	_, err = s.entries.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
	return s.wrap("mark entries published", err)
}

// Hooked returns up to limit entries committed and not yet taken up by webhooks, oldest first,
// with their marks: the field hook of the entries on MongoDB (the partial index hook_at holds
// just those), their marks in the outbox on FerretDB. Every entry the log commits is marked, in
// the insert that commits it (or the one before), so no write pays a round trip for webhooks.
func (s *Store) Hooked(ctx context.Context, limit int) ([]chat.Entry, []string, error) {
	if err := s.breaker.allow("hooked entries"); err != nil {
		return nil, nil, err
	}
	outbox, err := s.inOutbox(ctx)
	if err != nil {
		return nil, nil, err
	}
	if outbox {
		return s.marked(ctx, true, limit)
	}
	docs, err := findAll[entryDoc](ctx, s, "hooked entries", s.entries, bson.M{"hook": true},
		options.Find().SetSort(bson.D{{Key: "at", Value: 1}}).SetLimit(int64(limit)))
	if err != nil {
		return nil, nil, err
	}
	entries := make([]chat.Entry, len(docs))
	marks := make([]string, len(docs))
	for i := range docs {
		entries[i], marks[i] = docs[i].entry(), docs[i].Key
	}
	return entries, marks, nil
}

// Unhook clears the webhook marks Hooked returned: their outbox documents, or the field hook
// of the entries with one command of one statement per entry, by _id.
func (s *Store) Unhook(ctx context.Context, marks []string) error {
	if len(marks) == 0 {
		return nil
	}
	if err := s.breaker.allow("unhook entries"); err != nil {
		return err
	}
	outbox, err := s.inOutbox(ctx)
	if err != nil {
		return err
	}
	if outbox {
		_, err := s.outbox.DeleteMany(ctx, bson.M{"_id": bson.M{"$in": marks}})
		return s.wrap("unhook entries", err)
	}
	models := make([]mongo.WriteModel, len(marks))
	for i, m := range marks {
		models[i] = mongo.NewUpdateOneModel().SetFilter(bson.M{"_id": m}).SetUpdate(bson.M{"$unset": bson.M{"hook": ""}})
	}
	_, err = s.entries.BulkWrite(ctx, models, options.BulkWrite().SetOrdered(false))
	return s.wrap("unhook entries", err)
}
