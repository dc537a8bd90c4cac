package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/idempotency"
	"github.com/supportchat/supportchat/internal/tenant"
)

// handlers are the thin handlers of the API: bind, validate the shape, call the chat service,
// encode.
type handlers struct {
	chat    ChatService
	idem    Idempotency
	maxBody int64
	cache   ListCache
	// supportTTL bounds how long a support block is cached; now is the clock.
	supportTTL time.Duration
	now        func() time.Time
	// builds shares the building of values that are missing from the cache.
	builds builds
	// audit records settings changes; nil records nothing.
	audit AuditTrail
}

// list answers GET /chat/list.
func (h *handlers) list(c *gin.Context) {
	q, err := query(c, "limit", "cursor", "messages", "status", "assignee", "customer_id", "unread", "updated_since")
	if err != nil {
		abortWithError(c, err)
		return
	}
	var lq chat.ListQuery
	if lq.Limit, err = intParam(q, "limit"); err != nil {
		abortWithError(c, err)
		return
	}
	if lq.Messages, err = optionalInt(q, "messages"); err != nil {
		abortWithError(c, err)
		return
	}
	lq.Cursor = q.Get("cursor")
	lq.Status = chat.Status(q.Get("status"))
	lq.Assignee = q.Get("assignee")
	lq.CustomerID = q.Get("customer_id")
	switch q.Get("unread") {
	case "", "false":
	case "true":
		lq.Unread = true
	default:
		abortWithError(c, chat.FieldError("unread", "must be true or false"))
		return
	}
	if since, ok := q["updated_since"]; ok {
		// RFC3339Nano parses with or without fractional seconds; an empty value is refused.
		if lq.UpdatedSince, err = time.Parse(time.RFC3339Nano, since[0]); err != nil {
			abortWithError(c, chat.FieldError("updated_since", "must be an RFC 3339 date-time such as 2026-11-24T10:01:02.123Z"))
			return
		}
	}
	h.serveList(c, q, lq)
}

// startRequest is the body of POST /chat/start.
type startRequest struct {
	Subject string `json:"subject"`
	Message string `json:"message"`
	Context *struct {
		OrderID   string `json:"order_id"`
		ProductID string `json:"product_id"`
		PageURL   string `json:"page_url"`
	} `json:"context"`
}

// start answers POST /chat/start: 201 with the new conversation and its Location.
func (h *handlers) start(c *gin.Context) {
	var req startRequest
	body, ok := h.bind(c, &req)
	if !ok {
		return
	}
	in := chat.StartInput{Subject: req.Subject, Message: req.Message}
	if req.Context != nil {
		in.Context = &chat.ShopContext{OrderID: req.Context.OrderID, ProductID: req.Context.ProductID, PageURL: req.Context.PageURL}
	}
	h.idempotent(c, "POST /api/v1/chat/start", body, func(seed string) (*written, error) {
		in.Seed = seed
		v, err := h.chat.Start(c.Request.Context(), in)
		if err != nil {
			return nil, err
		}
		return &written{resp: conversationOf(*v), location: "/api/v1/chat/" + v.ID, conversation: v.ID}, nil
	})
}

// sendRequest is the body of POST /chat/{id}/messages.
type sendRequest struct {
	Body string `json:"body"`
}

// send answers POST /chat/{id}/messages: 201 with the new message.
func (h *handlers) send(c *gin.Context) {
	var req sendRequest
	body, ok := h.bind(c, &req)
	if !ok {
		return
	}
	id := c.Param("id")
	h.idempotent(c, "POST /api/v1/chat/{id}/messages "+id, body, func(seed string) (*written, error) {
		m, err := h.chat.Send(c.Request.Context(), id, chat.SendInput{Body: req.Body, Seed: seed})
		if err != nil {
			return nil, err
		}
		return &written{resp: messageOf(*m), conversation: id}, nil
	})
}

// idempotent runs a creating request under its Idempotency-Key header, if it has one: a retry
// with the same key and body gets the stored first answer (marked Idempotent-Replayed), and a
// racing twin runs with the same seed, so it finds what the first stored.
func (h *handlers) idempotent(c *gin.Context, route string, body []byte, run func(seed string) (*written, error)) {
	ctx := c.Request.Context()
	key, hasKey := c.Request.Header["Idempotency-Key"]
	if !hasKey || h.idem == nil {
		w, err := run("")
		if err != nil {
			abortWithError(c, err)
			return
		}
		created(c, w.resp, w.location)
		return
	}
	t, caller, ok := requestScope(c)
	if !ok {
		return
	}
	if len(key) != 1 {
		abortWithError(c, idempotency.ErrBadKey)
		return
	}
	a, err := h.idem.Begin(ctx, idempotency.Request{TenantID: t.ID, CallerID: caller.ID, Route: route, Key: key[0], Body: body})
	if err != nil {
		abortWithError(c, err)
		return
	}
	if r := a.Replay; r != nil {
		replay(c, r)
		return
	}
	w, err := run(a.Seed)
	if err != nil {
		kind, _, _ := problemFor(err)
		if _, ferr := h.idem.Finish(ctx, a, idempotency.Response{Status: kind.status}); ferr != nil {
			loggerFrom(c).WarnContext(ctx, "idempotency key not released", "error", ferr)
		}
		abortWithError(c, err)
		return
	}
	b, err := json.Marshal(w.resp)
	if err != nil {
		abortWithError(c, err)
		return
	}
	location := w.location
	stored, err := h.idem.Finish(ctx, a, idempotency.Response{Status: http.StatusCreated, Body: b, Location: location, Conversation: w.conversation})
	if err != nil {
		// The write is committed, but its answer is not the key's yet: a twin may store
		// another. Not acknowledged; a retry with the key finds the write and answers.
		abortWithError(c, &chat.Error{Code: chat.Unavailable, Message: "the request's answer could not be stored; retry it with the same Idempotency-Key", Err: err})
		return
	}
	if !bytes.Equal(stored.Body, b) || stored.Location != location || stored.Status != http.StatusCreated {
		replay(c, stored) // a racing twin answered first: every answer of the key is its
		return
	}
	if location != "" {
		c.Header("Location", location)
	}
	c.Data(http.StatusCreated, "application/json; charset=utf-8", b)
}

// written is what a creating request wrote: its answer, the answer's Location ("" for none) and
// the conversation it wrote to.
type written struct {
	resp         any
	location     string
	conversation string
}

// replay answers with the stored response of an idempotent request.
func replay(c *gin.Context, r *idempotency.Response) {
	c.Header("Idempotent-Replayed", "true")
	if r.Location != "" {
		c.Header("Location", r.Location)
	}
	c.Data(r.Status, "application/json; charset=utf-8", r.Body)
}

// created answers 201 with resp and, when given, its Location.
func created(c *gin.Context, resp any, location string) {
	if location != "" {
		c.Header("Location", location)
	}
	c.JSON(http.StatusCreated, resp)
}

// conversation answers GET /chat/{id}.
func (h *handlers) conversation(c *gin.Context) {
	q, err := query(c, "messages")
	if err != nil {
		abortWithError(c, err)
		return
	}
	n, err := optionalInt(q, "messages")
	if err != nil {
		abortWithError(c, err)
		return
	}
	v, err := h.chat.Conversation(c.Request.Context(), c.Param("id"), n)
	if err != nil {
		abortWithError(c, err)
		return
	}
	c.JSON(http.StatusOK, conversationOf(*v))
}

// history answers GET /chat/{id}/messages.
func (h *handlers) history(c *gin.Context) {
	q, err := query(c, "limit", "before")
	if err != nil {
		abortWithError(c, err)
		return
	}
	limit, err := intParam(q, "limit")
	if err != nil {
		abortWithError(c, err)
		return
	}
	page, err := h.chat.History(c.Request.Context(), c.Param("id"), chat.HistoryQuery{Limit: limit, Before: q.Get("before")})
	if err != nil {
		abortWithError(c, err)
		return
	}
	c.JSON(http.StatusOK, historyJSON{Messages: messagesOf(page.Messages), NextCursor: nullable(page.NextCursor)})
}

// readRequest is the optional body of POST /chat/{id}/read.
type readRequest struct {
	MessageID string `json:"message_id"`
}

// read answers POST /chat/{id}/read.
func (h *handlers) read(c *gin.Context) {
	body, ok := h.body(c)
	if !ok {
		return
	}
	var req readRequest
	if len(body) > 0 {
		if err := decodeStrict(body, &req); err != nil {
			abortWithError(c, err)
			return
		}
	}
	st, err := h.chat.MarkRead(c.Request.Context(), c.Param("id"), req.MessageID)
	if err != nil {
		abortWithError(c, err)
		return
	}
	c.JSON(http.StatusOK, readJSON{ConversationID: st.ConversationID, UnreadCount: st.UnreadCount})
}

// patchRequest is the body of PATCH /chat/{id}. Assignee is kept raw to tell null (unassign)
// from absent (leave as is).
type patchRequest struct {
	Status   *string         `json:"status"`
	Assignee json.RawMessage `json:"assignee"`
}

// update answers PATCH /chat/{id}.
func (h *handlers) update(c *gin.Context) {
	var req patchRequest
	_, ok := h.bind(c, &req)
	if !ok {
		return
	}
	var p chat.Patch
	if req.Status != nil {
		s := chat.Status(*req.Status)
		p.Status = &s
	}
	if req.Assignee != nil {
		p.AssigneeSet = true
		if string(req.Assignee) != "null" {
			if err := json.Unmarshal(req.Assignee, &p.Assignee); err != nil {
				abortWithError(c, chat.FieldError("assignee", "must be an admin id or null"))
				return
			}
		}
	}
	v, err := h.chat.Update(c.Request.Context(), c.Param("id"), p)
	if err != nil {
		abortWithError(c, err)
		return
	}
	c.JSON(http.StatusOK, conversationOf(*v))
}

// presenceRequest is the body of PUT /chat/presence.
type presenceRequest struct {
	Status string `json:"status"`
}

// presence answers PUT /chat/presence.
func (h *handlers) presence(c *gin.Context) {
	var req presenceRequest
	_, ok := h.bind(c, &req)
	if !ok {
		return
	}
	st, err := h.chat.SetPresence(c.Request.Context(), chat.AdminStatus(req.Status))
	if err != nil {
		abortWithError(c, err)
		return
	}
	c.JSON(http.StatusOK, presenceJSON{Status: string(st.Status), ExpiresAt: Time(st.ExpiresAt), Support: supportOf(st.Support)})
}

// settings answers GET /admin/settings.
func (h *handlers) settings(c *gin.Context) {
	v, err := h.chat.Settings(c.Request.Context())
	if err != nil {
		abortWithError(c, err)
		return
	}
	c.JSON(http.StatusOK, settingsOf(v))
}

// settingsRequest is the body of PUT /admin/settings. BusinessHours is raw to tell null (no
// business hours) from absent (the tenant file's hours). Retention null or absent is the tenant
// file's.
type settingsRequest struct {
	AwayPrompt     *string         `json:"away_prompt"`
	BusinessHours  json.RawMessage `json:"business_hours"`
	UnassignOnAway *bool           `json:"unassign_on_away"`
	Retention      json.RawMessage `json:"retention"`
}

// retentionRequest is the retention of PUT /admin/settings. ResolvedAfterDays is raw to tell
// null (keep resolved conversations forever) from absent (refused: a forgotten number would
// silently keep them forever).
type retentionRequest struct {
	ResolvedAfterDays json.RawMessage `json:"resolved_after_days"`
}

// retentionOverride returns the retention override raw (the retention of a PUT
// /admin/settings) asks for: nil (the tenant file's) when raw is absent or null,
// 1..tenant.MaxRetentionDays days, or 0 (forever) for a null resolved_after_days.
func retentionOverride(raw json.RawMessage) (*tenant.Retention, error) {
	if raw == nil || string(raw) == "null" {
		return nil, nil
	}
	var r retentionRequest
	if err := decodeStrict(raw, &r); err != nil {
		return nil, prefixField("retention", err, "must be an object with resolved_after_days")
	}
	switch {
	case r.ResolvedAfterDays == nil:
		return nil, chat.FieldError("retention.resolved_after_days", "is required; use null to keep resolved conversations forever")
	case string(r.ResolvedAfterDays) == "null":
		return &tenant.Retention{}, nil
	}
	var days int
	if err := json.Unmarshal(r.ResolvedAfterDays, &days); err != nil || days < 1 {
		return nil, chat.RetentionError()
	}
	return &tenant.Retention{ResolvedAfterDays: days}, nil
}

// putSettings answers PUT /admin/settings: the body replaces the tenant's overrides.
func (h *handlers) putSettings(c *gin.Context) {
	var req settingsRequest
	body, ok := h.bind(c, &req)
	if !ok {
		return
	}
	o := chat.Overrides{AwayPrompt: req.AwayPrompt, UnassignOnAway: req.UnassignOnAway}
	if req.BusinessHours != nil {
		o.BusinessHoursSet = true
		if string(req.BusinessHours) != "null" {
			var bh businessHoursJSON
			if err := decodeStrict(req.BusinessHours, &bh); err != nil {
				abortWithError(c, prefixField("business_hours", err, "must be an object with timezone and weekly"))
				return
			}
			if bh.Weekly == nil {
				// A forgotten weekly would silently close support all week.
				abortWithError(c, chat.FieldError("business_hours.weekly", "is required; use \"business_hours\": null for no business hours"))
				return
			}
			hours, err := tenant.ParseBusinessHours(bh.Timezone, bh.Weekly)
			if err != nil {
				abortWithError(c, chat.FieldError("business_hours", "is invalid: %s", err.Error()))
				return
			}
			o.BusinessHours = hours
		}
	}
	retention, err := retentionOverride(req.Retention)
	if err != nil {
		abortWithError(c, err)
		return
	}
	o.Retention = retention
	v, err := h.chat.PutSettings(c.Request.Context(), o)
	if err != nil {
		abortWithError(c, err)
		return
	}
	recordSettings(c, h.audit, body)
	c.JSON(http.StatusOK, settingsOf(v))
}

// prefixField names a nested field of a decoding error (business_hours.weekly); an error of
// the whole value says it must be shape.
func prefixField(parent string, err error, shape string) error {
	if ce, ok := errors.AsType[*chat.Error](err); ok && ce.Field != "" && ce.Field != "body" {
		return &chat.Error{Code: ce.Code, Field: parent + "." + ce.Field, Message: ce.Message}
	}
	return chat.FieldError(parent, "%s", shape)
}

// bind reads the request body and decodes it strictly into v, answering the problem itself
// when it cannot. It returns the raw body (idempotency fingerprints it).
func (h *handlers) bind(c *gin.Context, v any) ([]byte, bool) {
	body, ok := h.body(c)
	if !ok {
		return nil, false
	}
	if err := decodeStrict(body, v); err != nil {
		abortWithError(c, err)
		return nil, false
	}
	return body, true
}

// body reads the request body under the size limit, answering the problem itself when it cannot.
func (h *handlers) body(c *gin.Context) ([]byte, bool) {
	b, err := readBody(c.Request, h.maxBody)
	if err != nil {
		abortWithError(c, err)
		return nil, false
	}
	return b, true
}

// query returns the query parameters of the request, refusing any not in allowed and any given
// twice, so a typo never silently returns an unfiltered list.
func query(c *gin.Context, allowed ...string) (url.Values, error) {
	q := c.Request.URL.Query()
	for name, vals := range q {
		known := false
		for _, a := range allowed {
			if name == a {
				known = true
				break
			}
		}
		if !known {
			return nil, chat.FieldError(name, "is not a known query parameter")
		}
		if len(vals) > 1 {
			return nil, chat.FieldError(name, "must be given at most once")
		}
	}
	return q, nil
}

// intParam returns the integer query parameter name, 0 when it is absent.
func intParam(q url.Values, name string) (int, error) {
	n, err := optionalInt(q, name)
	if err != nil || n == nil {
		return 0, err
	}
	if *n == 0 {
		return 0, chat.FieldError(name, "must be a positive integer")
	}
	return *n, nil
}

// optionalInt returns the integer query parameter name, nil when it is absent.
func optionalInt(q url.Values, name string) (*int, error) {
	s, ok := q[name]
	if !ok {
		return nil, nil
	}
	n, err := strconv.Atoi(s[0])
	if err != nil || n < 0 {
		return nil, chat.FieldError(name, "must be a non-negative integer")
	}
	return &n, nil
}
