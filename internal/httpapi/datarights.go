package httpapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/supportchat/supportchat/internal/audit"
	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/datarights"
)

// AuditTrail records data rights work and lists it (*audit.Trail).
type AuditTrail interface {
	Record(ctx context.Context, e audit.Entry) error
	// List returns a page of the tenant's entries, newest first, and the next page's cursor
	// ("" at the end); a bad limit or cursor is Invalid naming it.
	List(ctx context.Context, tenantID, cursor string, limit int) ([]audit.Entry, string, error)
}

var _ AuditTrail = (*audit.Trail)(nil)

// Exporter exports a customer's data (*datarights.Exporter): it checks that the caller of ctx
// is an admin before it begins the sink, and records the export.
type Exporter interface {
	Export(ctx context.Context, customerID string, sink datarights.ExportSink) (datarights.ExportCounts, error)
}

var _ Exporter = (*datarights.Exporter)(nil)

// dataRightsHandlers are the handlers of the customers' data rights and the audit trail.
type dataRightsHandlers struct {
	trail    AuditTrail
	exporter Exporter
}

// The JSON shapes of the audit trail and of exports (api/openapi.yaml describes the same).
type (
	auditActorJSON struct {
		ID   string `json:"id"`
		Role string `json:"role"`
	}
	auditEntryJSON struct {
		ID      string           `json:"id"`
		At      Time             `json:"at"`
		Actor   auditActorJSON   `json:"actor"`
		Action  string           `json:"action"`
		Subject string           `json:"subject,omitempty"`
		Target  string           `json:"target,omitempty"`
		Counts  map[string]int64 `json:"counts,omitempty"`
		Fields  []string         `json:"fields,omitempty"`
	}
	auditPageJSON struct {
		Entries    []auditEntryJSON `json:"entries"`
		NextCursor *string          `json:"next_cursor"`
	}
	exportCustomerJSON struct {
		ID   string  `json:"id"`
		Name *string `json:"name"`
	}
	// exportHeadJSON opens a conversation of an export, its history follows.
	exportHeadJSON struct {
		ID        string             `json:"id"`
		Subject   string             `json:"subject"`
		Customer  exportCustomerJSON `json:"customer"`
		Context   *contextJSON       `json:"context"`
		CreatedAt Time               `json:"created_at"`
	}
	exportReadMarksJSON struct {
		CustomerReadSeq int64 `json:"customer_read_seq"`
		TeamReadSeq     int64 `json:"team_read_seq"`
	}
	// exportStateJSON closes a conversation of an export after its history.
	exportStateJSON struct {
		Status       string              `json:"status"`
		Assignee     *string             `json:"assignee"`
		UpdatedAt    Time                `json:"updated_at"`
		FirstReplyAt *Time               `json:"first_reply_at,omitempty"`
		ReadMarks    exportReadMarksJSON `json:"read_marks"`
	}
	exportMessageJSON struct {
		ID        string `json:"id"`
		Body      string `json:"body"`
		CreatedAt Time   `json:"created_at"`
	}
	exportEntryJSON struct {
		Seq     int64              `json:"seq"`
		Kind    string             `json:"kind"`
		At      Time               `json:"at"`
		By      participantJSON    `json:"by"`
		Message *exportMessageJSON `json:"message,omitempty"`
		// ReadSeq is on read entries, Status and Assignee on updates.
		ReadSeq  *int64   `json:"read_seq,omitempty"`
		Status   string   `json:"status,omitempty"`
		Assignee **string `json:"assignee,omitempty"`
	}
)

func auditEntryOf(e *audit.Entry) auditEntryJSON {
	return auditEntryJSON{
		ID: e.ID, At: Time(e.At), Actor: auditActorJSON{ID: e.Actor.ID, Role: e.Actor.Role}, Action: string(e.Action),
		Subject: e.Subject, Target: e.Target, Counts: e.Counts, Fields: e.Fields,
	}
}

// audit answers GET /admin/audit: a page of the tenant's audit trail, newest first.
func (d *dataRightsHandlers) audit(c *gin.Context) {
	t, _, err := chat.RequireAdmin(c.Request.Context())
	if err != nil {
		abortWithError(c, err)
		return
	}
	q, err := query(c, "limit", "cursor")
	if err != nil {
		abortWithError(c, err)
		return
	}
	limit, err := intParam(q, "limit")
	if err != nil {
		abortWithError(c, err)
		return
	}
	es, next, err := d.trail.List(c.Request.Context(), t.ID, q.Get("cursor"), limit)
	if err != nil {
		abortWithError(c, err)
		return
	}
	out := auditPageJSON{Entries: make([]auditEntryJSON, len(es)), NextCursor: nullable(next)}
	for i := range es {
		out.Entries[i] = auditEntryOf(&es[i])
	}
	c.JSON(http.StatusOK, out)
}

// recordSettings records a settings change made with the request body body in the audit
// trail: the names of the top-level fields it set, never their values. The change is made,
// so a failure to record it is logged, not answered.
func recordSettings(c *gin.Context, trail AuditTrail, body []byte) {
	if trail == nil {
		return
	}
	t, caller, err := chat.RequireAdmin(c.Request.Context())
	if err != nil {
		return
	}
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(body, &fields) // decoded strictly before: an object of known fields
	names := make([]string, 0, len(fields))
	for name := range fields {
		names = append(names, name)
	}
	slices.Sort(names)
	err = trail.Record(c.Request.Context(), audit.Entry{
		TenantID: t.ID, Actor: audit.Actor{ID: caller.ID, Role: string(caller.Role)},
		Action: audit.SettingsChanged, Fields: names,
	})
	if err != nil {
		loggerFrom(c).ErrorContext(c.Request.Context(), "settings change not recorded in the audit trail", "error", err)
	}
}

// exportFlushBytes is how much of an export is buffered before it is sent on.
const exportFlushBytes = 32 << 10

// exportRoute is the route of exports, which read a customer's whole history and take longer
// than other requests: exportTimeout bounds them instead of the request timeout.
const (
	exportRoute   = "/api/v1/admin/customers/:customer_id/export"
	exportTimeout = 10 * time.Minute
)

// export answers GET /admin/customers/{customer_id}/export: one JSON document written as it
// is read. An error before the document begins is a problem answer; after, the connection is
// cut, so the client sees an unfinished document rather than a short one that parses.
func (d *dataRightsHandlers) export(c *gin.Context) {
	if _, err := query(c); err != nil {
		abortWithError(c, err)
		return
	}
	w := &exportWriter{c: c}
	_, err := d.exporter.Export(c.Request.Context(), c.Param("customer_id"), w)
	switch {
	case err == nil:
	case !w.began:
		abortWithError(c, err)
	case w.ended && errors.Is(err, datarights.ErrNotRecorded):
		loggerFrom(c).ErrorContext(c.Request.Context(), "export not recorded in the audit trail", "error", err)
	default:
		loggerFrom(c).ErrorContext(c.Request.Context(), "export cut short", "error", err)
		panic(http.ErrAbortHandler)
	}
}

// exportWriter writes an export as JSON to the response (a datarights.ExportSink). A
// conversation is written in three parts, its head, its history, and its state, so its
// object is split where the history goes: after the head's fields, before the state's.
type exportWriter struct {
	c     *gin.Context
	w     *bufio.Writer
	began bool
	ended bool
	// convs counts the conversations written, entries those of the current conversation.
	convs, entries int
}

// write writes the JSON of v, whose encoding is an object when trim is set, less its first
// byte (trim 1) or its last (trim -1).
func (x *exportWriter) write(v any, trim int) error {
	b, err := marshalJSON(v)
	if err != nil {
		return err
	}
	switch trim {
	case 1:
		b = b[1:]
	case -1:
		b = b[:len(b)-1]
	}
	_, err = x.w.Write(b)
	return err
}

func (x *exportWriter) raw(s string) error {
	_, err := x.w.WriteString(s)
	return err
}

// Begin answers 200 and opens the document.
func (x *exportWriter) Begin(customerID string, at time.Time) error {
	h := x.c.Writer.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	x.c.Status(http.StatusOK)
	x.w = bufio.NewWriterSize(x.c.Writer, exportFlushBytes)
	x.began = true
	head := struct {
		CustomerID string `json:"customer_id"`
		ExportedAt Time   `json:"exported_at"`
	}{customerID, Time(at)}
	if err := x.write(head, -1); err != nil {
		return err
	}
	return x.raw(`,"conversations":[`)
}

// Conversation opens a conversation with its head and its history.
func (x *exportWriter) Conversation(h chat.Header) error {
	if x.convs > 0 {
		if err := x.raw(","); err != nil {
			return err
		}
	}
	x.convs++
	x.entries = 0
	head := exportHeadJSON{
		ID: h.ID, Subject: h.Subject, CreatedAt: Time(h.CreatedAt),
		Customer: exportCustomerJSON{ID: h.Customer.ID, Name: nullable(h.Customer.Name)},
	}
	if h.Context != nil {
		head.Context = &contextJSON{OrderID: nullable(h.Context.OrderID), ProductID: nullable(h.Context.ProductID), PageURL: nullable(h.Context.PageURL)}
	}
	if err := x.write(head, -1); err != nil {
		return err
	}
	return x.raw(`,"history":[`)
}

// Entry adds an entry to the history.
func (x *exportWriter) Entry(e datarights.ExportedEntry) error {
	if x.entries > 0 {
		if err := x.raw(","); err != nil {
			return err
		}
	}
	x.entries++
	out := exportEntryJSON{Seq: e.Seq, Kind: string(e.Kind), At: Time(e.At), By: participantOf(e.By)}
	switch e.Kind {
	case chat.EntryMessage:
		if e.Message != nil {
			out.Message = &exportMessageJSON{ID: e.Message.ID, Body: e.Message.Body, CreatedAt: Time(e.Message.CreatedAt)}
		}
	case chat.EntryRead:
		seq := e.ReadSeq
		out.ReadSeq = &seq
	case chat.EntryUpdate:
		out.Status = string(e.State.Status)
		a := nullable(e.State.Assignee)
		out.Assignee = &a
	}
	if err := x.write(out, 0); err != nil {
		return err
	}
	if x.entries%256 == 0 {
		return x.flush()
	}
	return nil
}

// EndConversation closes the history and the conversation with its state.
func (x *exportWriter) EndConversation(st datarights.ExportedState) error {
	if err := x.raw("],"); err != nil {
		return err
	}
	out := exportStateJSON{
		Status: string(st.Status), Assignee: nullable(st.Assignee), UpdatedAt: Time(st.UpdatedAt),
		FirstReplyAt: timePtr(st.FirstReplyAt),
		ReadMarks:    exportReadMarksJSON{CustomerReadSeq: st.CustomerReadSeq, TeamReadSeq: st.TeamReadSeq},
	}
	if err := x.write(out, 1); err != nil {
		return err
	}
	return x.flush()
}

// End closes the document.
func (x *exportWriter) End() error {
	if err := x.raw("]}"); err != nil {
		return err
	}
	x.ended = true
	return x.flush()
}

// flush sends what is buffered to the client.
func (x *exportWriter) flush() error {
	if err := x.w.Flush(); err != nil {
		return err
	}
	x.c.Writer.Flush()
	return nil
}
