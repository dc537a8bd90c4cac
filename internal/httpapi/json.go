package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/tenant"
)

// timeFormat is RFC 3339 in UTC with milliseconds, as PRODUCT.md asks.
const timeFormat = "2006-01-02T15:04:05.000Z"

// Time is a timestamp in the API's format.
type Time time.Time

// MarshalJSON writes t as "2026-11-24T10:01:02.123Z".
func (t Time) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, len(timeFormat)+2)
	b = append(b, '"')
	b = time.Time(t).UTC().AppendFormat(b, timeFormat)
	return append(b, '"'), nil
}

// marshalJSON encodes v as json.Marshal does, but leaves '<', '>' and '&' as they are rather
// than as \u003c and the like: six times fewer bytes for text full of them. The API answers
// JSON, never HTML, and such bodies are sent with X-Content-Type-Options: nosniff.
func marshalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.Clone(bytes.TrimSuffix(b.Bytes(), []byte("\n"))), nil // exact size: it may be cached
}

func timePtr(t *time.Time) *Time {
	if t == nil {
		return nil
	}
	v := Time(*t)
	return &v
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// The response shapes of the API (api/openapi.yaml describes the same).
type (
	participantJSON struct {
		ID   string  `json:"id"`
		Role string  `json:"role"`
		Name *string `json:"name"`
	}
	messageJSON struct {
		ID             string          `json:"id"`
		ConversationID string          `json:"conversation_id"`
		Sender         participantJSON `json:"sender"`
		Body           string          `json:"body"`
		CreatedAt      Time            `json:"created_at"`
	}
	contextJSON struct {
		OrderID   *string `json:"order_id"`
		ProductID *string `json:"product_id"`
		PageURL   *string `json:"page_url"`
	}
	conversationJSON struct {
		ID           string            `json:"id"`
		Status       string            `json:"status"`
		Subject      string            `json:"subject"`
		Participants []participantJSON `json:"participants"`
		Context      *contextJSON      `json:"context"`
		Assignee     **string          `json:"assignee,omitempty"`
		Messages     []messageJSON     `json:"messages"`
		UnreadCount  int64             `json:"unread_count"`
		CreatedAt    Time              `json:"created_at"`
		UpdatedAt    Time              `json:"updated_at"`
	}
	supportJSON struct {
		Status               string  `json:"status"`
		Available            bool    `json:"available"`
		Reason               *string `json:"reason"`
		Prompt               *string `json:"prompt"`
		NextAvailableAt      *Time   `json:"next_available_at"`
		ExpectedReplySeconds *int64  `json:"expected_reply_seconds"`
	}
	historyJSON struct {
		Messages   []messageJSON `json:"messages"`
		NextCursor *string       `json:"next_cursor"`
	}
	readJSON struct {
		ConversationID string `json:"conversation_id"`
		UnreadCount    int64  `json:"unread_count"`
	}
	presenceJSON struct {
		Status    string      `json:"status"`
		ExpiresAt Time        `json:"expires_at"`
		Support   supportJSON `json:"support"`
	}
	businessHoursJSON struct {
		Timezone string              `json:"timezone"`
		Weekly   map[string][]string `json:"weekly"`
	}
	// retentionJSON is a retention setting; ResolvedAfterDays is null to keep resolved
	// conversations forever.
	retentionJSON struct {
		ResolvedAfterDays *int `json:"resolved_after_days"`
	}
	settingsJSON struct {
		AwayPrompt     string             `json:"away_prompt"`
		BusinessHours  *businessHoursJSON `json:"business_hours"`
		UnassignOnAway bool               `json:"unassign_on_away"`
		Retention      retentionJSON      `json:"retention"`
		Overridden     []string           `json:"overridden"`
		UpdatedAt      *Time              `json:"updated_at"`
		UpdatedBy      *string            `json:"updated_by"`
	}
)

func participantOf(p chat.Participant) participantJSON {
	return participantJSON{ID: p.ID, Role: string(p.Role), Name: nullable(p.Name)}
}

func messageOf(m chat.Message) messageJSON {
	return messageJSON{ID: m.ID, ConversationID: m.ConversationID, Sender: participantOf(m.Sender), Body: m.Body, CreatedAt: Time(m.CreatedAt)}
}

func messagesOf(ms []chat.Message) []messageJSON {
	out := make([]messageJSON, len(ms))
	for i, m := range ms {
		out[i] = messageOf(m)
	}
	return out
}

func conversationOf(v chat.Summary) conversationJSON {
	c := v.Conversation
	participants := c.Participants()
	out := conversationJSON{
		ID:           c.ID,
		Status:       string(c.Status),
		Subject:      c.Subject,
		Participants: make([]participantJSON, len(participants)),
		Messages:     messagesOf(v.Messages),
		UnreadCount:  v.UnreadCount,
		CreatedAt:    Time(c.CreatedAt),
		UpdatedAt:    Time(c.UpdatedAt),
	}
	for i, p := range participants {
		out.Participants[i] = participantOf(p)
	}
	if c.Context != nil {
		out.Context = &contextJSON{OrderID: nullable(c.Context.OrderID), ProductID: nullable(c.Context.ProductID), PageURL: nullable(c.Context.PageURL)}
	}
	if v.ShowAssignee {
		a := nullable(c.Assignee)
		out.Assignee = &a
	}
	return out
}

func supportOf(s chat.Support) supportJSON {
	return supportJSON{
		Status:               string(s.Status),
		Available:            s.Available,
		Reason:               nullable(s.Reason),
		Prompt:               nullable(s.Prompt),
		NextAvailableAt:      timePtr(s.NextAvailableAt),
		ExpectedReplySeconds: s.ExpectedReplySeconds,
	}
}

func businessHoursOf(h *tenant.BusinessHours) *businessHoursJSON {
	if h == nil {
		return nil
	}
	tz, weekly := h.Spec()
	return &businessHoursJSON{Timezone: tz, Weekly: weekly}
}

func retentionOf(r tenant.Retention) retentionJSON {
	if r.ResolvedAfterDays == 0 {
		return retentionJSON{}
	}
	days := r.ResolvedAfterDays
	return retentionJSON{ResolvedAfterDays: &days}
}

func settingsOf(v *chat.SettingsReport) settingsJSON {
	return settingsJSON{
		AwayPrompt:     v.AwayPrompt,
		BusinessHours:  businessHoursOf(v.BusinessHours),
		UnassignOnAway: v.UnassignOnAway,
		Retention:      retentionOf(v.Retention),
		Overridden:     v.Overridden,
		UpdatedAt:      timePtr(v.UpdatedAt),
		UpdatedBy:      nullable(v.UpdatedBy),
	}
}

// errBodyTooLarge is what readBody returns for a body over the limit.
var errBodyTooLarge = &chat.Error{Code: chat.TooLarge, Message: "request body is larger than this service accepts"}

// errUnsupportedMedia is what readBody returns for a body that is not JSON (415).
var errUnsupportedMedia = errors.New("unsupported media type")

// readBody reads the whole request body, which must be JSON (when a Content-Type is given),
// valid UTF-8, and at most limit bytes.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if ct := r.Header.Get("Content-Type"); ct != "" && !isJSON(ct) {
		return nil, errUnsupportedMedia
	}
	if r.ContentLength > limit {
		return nil, errBodyTooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, errBodyTooLarge
		}
		return nil, &chat.Error{Code: chat.Invalid, Message: "the request body could not be read", Err: err}
	}
	if !utf8.Valid(body) {
		return nil, &chat.Error{Code: chat.Invalid, Field: "body", Message: "must be valid UTF-8"}
	}
	return body, nil
}

func isJSON(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.TrimSpace(strings.ToLower(mt))
	return mt == "application/json" || strings.HasSuffix(mt, "+json")
}

// decodeStrict decodes one JSON object from body into v, refusing unknown fields, and names the
// offending field in its error.
func decodeStrict(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return &chat.Error{Code: chat.Invalid, Field: "body", Message: "must be a JSON object"}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	// Only JSON whitespace may follow the object (dec.More misses a stray ']' or '}').
	if len(bytes.TrimLeft(body[dec.InputOffset():], " \t\r\n")) > 0 {
		return &chat.Error{Code: chat.Invalid, Field: "body", Message: "must hold exactly one JSON object"}
	}
	return nil
}

// jsonError turns a decoding error into an Invalid error naming the field.
func jsonError(err error) error {
	var typeErr *json.UnmarshalTypeError
	var syntaxErr *json.SyntaxError
	switch {
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			field = "body"
		}
		return &chat.Error{Code: chat.Invalid, Field: field, Message: fmt.Sprintf("must be of type %s", jsonType(typeErr.Type.Kind().String()))}
	case errors.As(err, &syntaxErr), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return &chat.Error{Code: chat.Invalid, Field: "body", Message: "is not valid JSON"}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &chat.Error{Code: chat.Invalid, Field: field, Message: "is not a known field"}
	}
	return &chat.Error{Code: chat.Invalid, Field: "body", Message: "is not valid JSON"}
}

// jsonType names a Go kind the way a JSON user would.
func jsonType(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "struct", "map":
		return "object"
	case "slice", "array":
		return "array"
	case "bool":
		return "boolean"
	case "ptr", "interface":
		return "a JSON value of the documented type"
	}
	return "number"
}
