package httpapi_test

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"
)

func TestSettingsRetention(t *testing.T) {
	// acme-outdoor's file keeps resolved conversations 30 days; demo-shop's keeps them forever.
	s := newStack(t, stackOptions{tenantYAML: map[string]string{outdoor: "  retention: {resolved_after_days: 30}\n"}})
	admin := s.admin(outdoor, "admin-1")
	type settings struct {
		Retention struct {
			ResolvedAfterDays *int `json:"resolved_after_days"`
		} `json:"retention"`
		Overridden []string `json:"overridden"`
	}
	// check checks the settings r answers and the days the sweeper is given for tn.
	check := func(what string, r response, tn string, wantDays int, wantOverridden bool) {
		t.Helper()
		if r.Status != http.StatusOK {
			t.Fatalf("%s = %d %s", what, r.Status, r.Body)
		}
		var got settings
		r.JSON(t, &got)
		days := 0
		if got.Retention.ResolvedAfterDays != nil {
			days = *got.Retention.ResolvedAfterDays
			if days == 0 {
				t.Errorf("%s: retention of 0 days shown; forever is null", what)
			}
		}
		if days != wantDays || slices.Contains(got.Overridden, "retention") != wantOverridden {
			t.Errorf("%s: retention %d days, overridden %v; want %d days, overridden %t", what, days, got.Overridden, wantDays, wantOverridden)
		}
		tnt, err := s.tenants.Get(tn)
		if err != nil {
			t.Fatal(err)
		}
		if sweep, err := s.svc.Retention(context.Background(), tnt); err != nil || sweep != wantDays {
			t.Errorf("%s: Service.Retention = %d, %v; want %d", what, sweep, err, wantDays)
		}
	}
	put := func(body any) response { return admin.do("PUT", "/api/v1/admin/settings", body) }
	check("the file's retention", admin.do("GET", "/api/v1/admin/settings", nil), outdoor, 30, false)
	check("a file without retention", s.admin(shop, "admin-1").do("GET", "/api/v1/admin/settings", nil), shop, 0, false)

	check("PUT of 90 days", put(map[string]any{"retention": map[string]any{"resolved_after_days": 90}}), outdoor, 90, true)
	check("GET after PUT of 90 days", admin.do("GET", "/api/v1/admin/settings", nil), outdoor, 90, true)
	var doc struct {
		Retention struct {
			ResolvedAfterDays int `bson:"resolved_after_days"`
		} `bson:"retention"`
	}
	if err := s.raw.Collection("settings").FindOne(context.Background(), bson.M{"_id": outdoor}).Decode(&doc); err != nil || doc.Retention.ResolvedAfterDays != 90 {
		t.Errorf("stored settings = %+v, %v; want retention.resolved_after_days 90", doc, err)
	}
	check("PUT of forever", put(map[string]any{"retention": map[string]any{"resolved_after_days": nil}}), outdoor, 0, true)
	check("GET after PUT of forever", admin.do("GET", "/api/v1/admin/settings", nil), outdoor, 0, true)
	check("PUT of the limits", put(map[string]any{"retention": map[string]any{"resolved_after_days": 3650}}), outdoor, 3650, true)
	check("PUT of one day", put(map[string]any{"retention": map[string]any{"resolved_after_days": 1}}), outdoor, 1, true)
	// Left out, or null, it is the file's again.
	check("PUT without retention", put(map[string]any{"unassign_on_away": false}), outdoor, 30, false)
	check("GET after PUT without retention", admin.do("GET", "/api/v1/admin/settings", nil), outdoor, 30, false)
	put(map[string]any{"retention": map[string]any{"resolved_after_days": 7}})
	check("PUT of a null retention", put(map[string]any{"retention": nil}), outdoor, 30, false)

	put(map[string]any{"retention": map[string]any{"resolved_after_days": 7}})
	for _, tt := range []struct {
		name  string
		body  string
		field string
	}{
		{"zero days", `{"retention": {"resolved_after_days": 0}}`, "retention.resolved_after_days"},
		{"negative days", `{"retention": {"resolved_after_days": -30}}`, "retention.resolved_after_days"},
		{"over ten years", `{"retention": {"resolved_after_days": 3651}}`, "retention.resolved_after_days"},
		{"a fraction", `{"retention": {"resolved_after_days": 30.5}}`, "retention.resolved_after_days"},
		{"a string", `{"retention": {"resolved_after_days": "30"}}`, "retention.resolved_after_days"},
		{"a boolean", `{"retention": {"resolved_after_days": true}}`, "retention.resolved_after_days"},
		{"days left out", `{"retention": {}}`, "retention.resolved_after_days"},
		{"an unknown field", `{"retention": {"resolved_after_days": 30, "open_after_days": 30}}`, "retention.open_after_days"},
		{"a number", `{"retention": 30}`, "retention"},
		{"a top-level field", `{"resolved_after_days": 30}`, "resolved_after_days"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := put(tt.body).Problem(t, 400)
			if p.Field() != tt.field {
				t.Errorf("field = %q, want %q (%+v)", p.Field(), tt.field, p)
			}
		})
	}
	check("GET after refused PUTs", admin.do("GET", "/api/v1/admin/settings", nil), outdoor, 7, true)
}
