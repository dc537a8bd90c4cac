package events_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/events"
	"github.com/supportchat/supportchat/internal/testenv"
)

type observer struct{ published, failed int }

func (o *observer) EventPublished(_ string, err error) {
	if err != nil {
		o.failed++
		return
	}
	o.published++
}

func TestPublishReachesOnlyTheTenantChannel(t *testing.T) {
	ctx := context.Background()
	r := testenv.StartRedis(t)
	opt, _ := redis.ParseURL(r.URL())
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	sub := rdb.Subscribe(ctx, events.Channel("shop"))
	defer sub.Close()
	if _, err := sub.Receive(ctx); err != nil {
		t.Fatal(err)
	}
	obs := &observer{}
	p := events.NewPublisher(rdb, slog.New(slog.NewTextHandler(io.Discard, nil)), obs)
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	p.Publish(ctx, chat.Event{Type: chat.EventMessageCreated, TenantID: "other", ConversationID: "c0", At: at})
	p.Publish(ctx, chat.Event{Type: chat.EventMessageCreated, TenantID: "shop", ConversationID: "c1", CustomerID: "ada", At: at,
		Message: &chat.Message{ID: "m1", Body: "secret body"}})

	msg, err := sub.ReceiveMessage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var env events.Envelope
	if err := json.Unmarshal([]byte(msg.Payload), &env); err != nil {
		t.Fatal(err)
	}
	if env.TenantID != "shop" || env.ConversationID != "c1" || env.MessageID != "m1" || env.CustomerID != "ada" {
		t.Errorf("envelope = %+v", env)
	}
	if json.Valid([]byte(msg.Payload)) && containsBody(msg.Payload) {
		t.Error("the event carries the message body; events name what changed, clients fetch it")
	}
	if obs.published != 2 {
		t.Errorf("observed %d publishes, want 2", obs.published)
	}

	// With Redis gone a publish is dropped and counted, never an error for the write.
	r.Stop(t)
	p.Publish(ctx, chat.Event{Type: chat.EventMessageCreated, TenantID: "shop", At: at})
	if obs.failed != 1 {
		t.Errorf("observed %d failures, want 1", obs.failed)
	}
}

func containsBody(payload string) bool {
	var m map[string]any
	_ = json.Unmarshal([]byte(payload), &m)
	for _, v := range m {
		if s, ok := v.(string); ok && s == "secret body" {
			return true
		}
	}
	return false
}
