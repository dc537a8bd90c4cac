package chat

import (
	"context"
	"time"

	"github.com/supportchat/supportchat/internal/tenant"
)

// Limits of the admin workflow.
const (
	MaxAwayPromptChars = 1000
	// unassignBatch is how many conversations one pass of unassigning handles.
	unassignBatch = 100
	// lapseBatch is how many lapsed admins one sweep handles.
	lapseBatch = 100
)

// Patch changes the admin workflow state of a conversation. Nil fields stay as they are;
// AssigneeSet with an empty Assignee unassigns.
type Patch struct {
	Status      *Status
	AssigneeSet bool
	Assignee    string
}

// PresenceState is an admin's presence after setting it, with the support state it leads to.
type PresenceState struct {
	Status    AdminStatus
	ExpiresAt time.Time
	Support   Support
}

// RequireAdmin returns the tenant and caller of ctx for an admin-only call: NotFound without a
// tenant, Unauthenticated without a caller, Forbidden for a customer.
func RequireAdmin(ctx context.Context) (*tenant.Tenant, Caller, error) {
	t, caller, err := scope(ctx)
	if err != nil {
		return nil, Caller{}, err
	}
	if !caller.IsAdmin() {
		return nil, Caller{}, Errorf(Forbidden, "only admins can do this")
	}
	return t, caller, nil
}

// Update applies p to conversation id. An assignee is "me" (the caller) or the id of an admin
// of the tenant the service has seen (see NoteAdmin). Admins only: customers get Forbidden;
// NotFound for an unknown id, Invalid for a bad patch.
func (s *Service) Update(ctx context.Context, id string, p Patch) (*Summary, error) {
	t, caller, err := RequireAdmin(ctx)
	if err != nil {
		return nil, err
	}
	if p.Status == nil && !p.AssigneeSet {
		return nil, FieldError("status", "is required when assignee is not given")
	}
	if p.Status != nil && !p.Status.Valid() {
		return nil, FieldError("status", "must be open or resolved")
	}
	if p.AssigneeSet && p.Assignee != "" {
		if p.Assignee, err = s.assignee(ctx, t, caller, p.Assignee); err != nil {
			return nil, err
		}
	}
	c, err := s.recordUpdate(ctx, t, caller, id, func(c *Conversation) bool {
		changed := false
		if p.Status != nil && c.Status != *p.Status {
			c.Status, changed = *p.Status, true
		}
		if p.AssigneeSet && c.Assignee != p.Assignee {
			c.Assignee, changed = p.Assignee, true
		}
		return changed
	})
	if err != nil {
		return nil, err
	}
	v := summaryOf(c, caller, DefaultListMessages)
	return &v, nil
}

// assignee resolves the assignee of a patch: "me" is the caller; anyone else must be an admin
// of the tenant the service has seen. Returns Invalid otherwise.
func (s *Service) assignee(ctx context.Context, t *tenant.Tenant, caller Caller, a string) (string, error) {
	if a == "me" {
		return caller.ID, nil
	}
	if err := checkID("assignee", a); err != nil {
		return "", err
	}
	if a == caller.ID {
		return a, nil
	}
	known, err := s.admins.KnownAdmin(ctx, t.ID, a, s.clock().Add(-adminAssignableFor))
	if err != nil {
		return "", err
	}
	if !known {
		return "", FieldError("assignee", "is not an admin of this tenant; an admin can be assigned once they have used the service, and until 30 days after they last did")
	}
	return a, nil
}

// recordUpdate applies mutate to conversation id as one update entry, touching UpdatedAt when
// mutate reports that it changed the conversation, and returns the conversation after it.
func (s *Service) recordUpdate(ctx context.Context, t *tenant.Tenant, caller Caller, id string, mutate func(*Conversation) bool) (*Conversation, error) {
	_, res, err := s.writeTo(ctx, t, caller, id, func(*Conversation) ([]Change, error) {
		return []Change{updateChange(s.newID(), caller.participant(), mutate)}, nil
	})
	if err != nil {
		return nil, err
	}
	return res.Conversation, nil
}

// NoteAdmin records the calling admin of ctx as an admin of the request's tenant, so others can
// assign conversations to them. Each replica records an admin at most once per
// adminNoteInterval; a failure is logged, never returned. It does nothing for customers.
func (s *Service) NoteAdmin(ctx context.Context) {
	t, caller, err := scope(ctx)
	if err != nil || !caller.IsAdmin() {
		return
	}
	if !s.notedAdmins.first(t.ID+"\x00"+caller.ID, s.now()) {
		return
	}
	if err := s.admins.RecordAdmin(ctx, t.ID, caller.participant(), s.clock()); err != nil {
		s.notedAdmins.forget(t.ID + "\x00" + caller.ID)
		s.logger.WarnContext(ctx, "admin not recorded", "tenant", t.ID, "error", err)
	}
}

// SetPresence records the calling admin as online or away until the presence TTL passes
// without another call. Going away unassigns the admin's open conversations when the tenant
// has unassign_on_away. Returns Forbidden for customers, Invalid for another status and
// Unavailable when presence cannot be stored.
func (s *Service) SetPresence(ctx context.Context, status AdminStatus) (*PresenceState, error) {
	t, caller, err := RequireAdmin(ctx)
	if err != nil {
		return nil, err
	}
	if status != AdminOnline && status != AdminAway {
		return nil, FieldError("status", "must be online or away")
	}
	expires, err := s.presence.SetAdminStatus(ctx, t.ID, caller.ID, status, s.presenceTTL)
	if err != nil {
		return nil, &Error{Code: Unavailable, Message: "presence is unavailable right now", Err: err}
	}
	sup, err := s.announceSupport(ctx, t, false)
	if err != nil {
		return nil, err
	}
	if sup.Status == SupportOnline {
		if err := s.presence.MarkSupportOnline(ctx, t.ID, s.clock()); err != nil {
			s.logger.WarnContext(ctx, "recording support online", "tenant", t.ID, "error", err)
		}
	}
	if status == AdminAway {
		s.unassignIfSet(ctx, t, caller.ID)
	}
	return &PresenceState{Status: status, ExpiresAt: expires.UTC(), Support: sup}, nil
}

// SweepPresence handles admins whose online status lapsed without a heartbeat: their
// conversations are unassigned where the tenant wants that (the support clock tells their
// tenants' customers, see SweepSupport). Each lapse is handled by one replica. It returns how
// many lapses it handled.
func (s *Service) SweepPresence(ctx context.Context) (int, error) {
	lapses, err := s.presence.ClaimLapsed(ctx, s.clock(), lapseBatch)
	if err != nil {
		return 0, err
	}
	for _, l := range lapses {
		t, err := s.tenants.Get(l.TenantID)
		if err != nil {
			continue // the tenant was removed meanwhile
		}
		s.unassignIfSet(tenant.NewContext(ctx, t), t, l.AdminID)
	}
	return len(lapses), nil
}

// unassignIfSet unassigns the open conversations of adminID when the tenant has
// unassign_on_away. Failures are logged: the admin's presence is already stored.
func (s *Service) unassignIfSet(ctx context.Context, t *tenant.Tenant, adminID string) {
	settings, _, err := s.effectiveSettings(ctx, t)
	if err != nil {
		s.logger.WarnContext(ctx, "reading settings to unassign", "tenant", t.ID, "error", err)
		return
	}
	if !settings.UnassignOnAway {
		return
	}
	if err := s.unassign(ctx, t, adminID); err != nil {
		s.logger.WarnContext(ctx, "unassigning an away admin's conversations", "tenant", t.ID, "error", err)
	}
}

// unassign clears adminID as assignee of each of its open conversations.
func (s *Service) unassign(ctx context.Context, t *tenant.Tenant, adminID string) error {
	system := Caller{ID: string(RoleSystem), Role: RoleAdmin} // sees every conversation
	for {
		convs, err := s.store.AssignedOpen(ctx, t.ID, adminID, unassignBatch)
		if err != nil {
			return err
		}
		for _, c := range convs {
			_, err := s.recordUpdate(ctx, t, system, c.ID, func(c *Conversation) bool {
				if c.Assignee != adminID || c.Status != StatusOpen {
					return false
				}
				c.Assignee = ""
				return true
			})
			if err != nil {
				return err
			}
		}
		if len(convs) < unassignBatch {
			return nil
		}
	}
}

// Settings returns the tenant's effective chat settings. Admins only.
func (s *Service) Settings(ctx context.Context) (*SettingsReport, error) {
	t, _, err := RequireAdmin(ctx)
	if err != nil {
		return nil, err
	}
	o, err := s.settings.Overrides(ctx, t.ID)
	if err != nil {
		return nil, err
	}
	return settingsReport(t, o), nil
}

// PutSettings replaces the tenant's overrides with o; a field left nil falls back to the tenant
// file. Admins only; Invalid for a bad away prompt or retention.
func (s *Service) PutSettings(ctx context.Context, o Overrides) (*SettingsReport, error) {
	t, caller, err := RequireAdmin(ctx)
	if err != nil {
		return nil, err
	}
	if o.AwayPrompt != nil {
		p, err := cleanText("away_prompt", *o.AwayPrompt, MaxAwayPromptChars)
		if err != nil {
			return nil, err
		}
		o.AwayPrompt = &p
	}
	if o.Retention != nil {
		if err := checkRetention(*o.Retention); err != nil {
			return nil, err
		}
	}
	o.UpdatedAt = s.clock()
	o.UpdatedBy = caller.ID
	if err := s.settings.PutOverrides(ctx, t.ID, o); err != nil {
		return nil, err
	}
	s.overrides.put(t.ID, o) // this replica reads its own write
	// Settings the block does not show (unassign_on_away) change nothing customers see; the
	// cached block is replaced all the same.
	s.supportChanged(ctx, t.ID)
	if _, err := s.announceSupport(ctx, t, false); err != nil {
		s.logger.WarnContext(ctx, "support block after a settings change", "tenant", t.ID, "error", err)
	}
	return settingsReport(t, o), nil
}
