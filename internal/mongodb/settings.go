package mongodb

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/supportchat/supportchat/internal/chat"
	"github.com/supportchat/supportchat/internal/tenant"
)

// settingsDoc is a tenant's chat.Overrides in the settings collection; its id is the tenant id.
// A nil pointer is stored as null and means "not overridden".
type settingsDoc struct {
	ID               string    `bson:"_id"`
	TenantID         string    `bson:"tenant_id"`
	AwayPrompt       *string   `bson:"away_prompt"`
	BusinessHoursSet bool      `bson:"business_hours_set"`
	BusinessHours    *hoursDoc `bson:"business_hours"` // null with business_hours_set: no hours
	UnassignOnAway   *bool     `bson:"unassign_on_away"`
	// Retention is absent from documents written before it existed: not overridden either.
	Retention *retentionDoc `bson:"retention"`
	UpdatedAt time.Time     `bson:"updated_at"`
	UpdatedBy string        `bson:"updated_by"`
}

// retentionDoc is a tenant.Retention.
type retentionDoc struct {
	// ResolvedAfterDays is 0 for "keep resolved conversations forever".
	ResolvedAfterDays int `bson:"resolved_after_days"`
}

// hoursDoc is a tenant.BusinessHours: a time zone name and the ranges of each weekday. The week
// is a document, not an array of arrays, which FerretDB cannot store.
type hoursDoc struct {
	Timezone string  `bson:"timezone"`
	Weekly   weekDoc `bson:"weekly"`
}

// weekDoc holds the opening ranges of each weekday.
type weekDoc struct {
	Sun []rangeDoc `bson:"sun"`
	Mon []rangeDoc `bson:"mon"`
	Tue []rangeDoc `bson:"tue"`
	Wed []rangeDoc `bson:"wed"`
	Thu []rangeDoc `bson:"thu"`
	Fri []rangeDoc `bson:"fri"`
	Sat []rangeDoc `bson:"sat"`
}

// days returns pointers to the days of w, indexed time.Sunday..time.Saturday.
func (w *weekDoc) days() [7]*[]rangeDoc {
	return [7]*[]rangeDoc{&w.Sun, &w.Mon, &w.Tue, &w.Wed, &w.Thu, &w.Fri, &w.Sat}
}

// rangeDoc is a tenant.Range in minutes after local midnight.
type rangeDoc struct {
	Start int `bson:"start"`
	End   int `bson:"end"`
}

// Overrides returns the tenant's settings overrides; the zero Overrides when it has none.
func (s *Store) Overrides(ctx context.Context, tenantID string) (chat.Overrides, error) {
	if err := s.breaker.allow("find settings"); err != nil {
		return chat.Overrides{}, err
	}
	var d settingsDoc
	err := s.settings.FindOne(ctx, bson.M{"_id": tenantID, "tenant_id": tenantID}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return chat.Overrides{}, nil
	}
	if err != nil {
		return chat.Overrides{}, s.wrap("find settings", err)
	}
	o := chat.Overrides{
		AwayPrompt:       d.AwayPrompt,
		BusinessHoursSet: d.BusinessHoursSet,
		UnassignOnAway:   d.UnassignOnAway,
		UpdatedAt:        d.UpdatedAt.UTC(),
		UpdatedBy:        d.UpdatedBy,
	}
	if d.Retention != nil {
		o.Retention = &tenant.Retention{ResolvedAfterDays: d.Retention.ResolvedAfterDays}
	}
	if d.BusinessHoursSet && d.BusinessHours != nil {
		if o.BusinessHours, err = d.BusinessHours.hours(); err != nil {
			return chat.Overrides{}, fmt.Errorf("mongodb settings: %w", err)
		}
	}
	return o, nil
}

// PutOverrides replaces the tenant's settings overrides with o.
func (s *Store) PutOverrides(ctx context.Context, tenantID string, o chat.Overrides) error {
	if err := s.breaker.allow("put settings"); err != nil {
		return err
	}
	d := settingsDoc{
		ID:               tenantID,
		TenantID:         tenantID,
		AwayPrompt:       o.AwayPrompt,
		BusinessHoursSet: o.BusinessHoursSet,
		UnassignOnAway:   o.UnassignOnAway,
		UpdatedAt:        o.UpdatedAt,
		UpdatedBy:        o.UpdatedBy,
	}
	if o.BusinessHoursSet && o.BusinessHours != nil {
		d.BusinessHours = toHoursDoc(o.BusinessHours)
	}
	if o.Retention != nil {
		d.Retention = &retentionDoc{ResolvedAfterDays: o.Retention.ResolvedAfterDays}
	}
	_, err := s.settings.ReplaceOne(ctx, bson.M{"_id": tenantID, "tenant_id": tenantID}, d, options.Replace().SetUpsert(true))
	return s.wrap("put settings", err)
}

// toHoursDoc returns the document of h; a nil Location is UTC.
func toHoursDoc(h *tenant.BusinessHours) *hoursDoc {
	d := &hoursDoc{Timezone: "UTC"}
	if h.Location != nil {
		d.Timezone = h.Location.String()
	}
	for day, ranges := range d.Weekly.days() {
		*ranges = make([]rangeDoc, len(h.Weekly[day]))
		for i, r := range h.Weekly[day] {
			(*ranges)[i] = rangeDoc{Start: r.Start, End: r.End}
		}
	}
	return d
}

// hours returns the tenant.BusinessHours of d. Returns an error when the time zone is unknown
// here.
func (d *hoursDoc) hours() (*tenant.BusinessHours, error) {
	loc, err := time.LoadLocation(d.Timezone)
	if err != nil {
		return nil, fmt.Errorf("stored business hours: unknown time zone: %w", err)
	}
	h := &tenant.BusinessHours{Location: loc}
	for day, ranges := range d.Weekly.days() {
		for _, r := range *ranges {
			h.Weekly[day] = append(h.Weekly[day], tenant.Range{Start: r.Start, End: r.End})
		}
	}
	return h, nil
}
