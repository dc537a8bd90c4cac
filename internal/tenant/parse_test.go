package tenant_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/supportchat/supportchat/internal/tenant"
)

// shopFile is a valid tenant file; the error cases below edit it and name its line numbers.
const shopFile = `id: demo-shop
name: Demo Shop
hosts: [support.demo-shop.example, Chat.Demo-Shop.example]
oidc:
  issuer: https://id.demo-shop.example/realms/shop
  audience: support-chat
  admin_claim: realm_access.roles
  admin_values: [support_admin, lead]
  name_claim: name
chat:
  away_prompt: "We are away."
  business_hours:
    timezone: Europe/Berlin
    weekly:
      mon: ["09:00-18:00"]
      fri: ["13:00-17:00", "09:00-12:00"]
  unassign_on_away: true
web:
  allowed_origins: [https://www.demo-shop.example, "HTTP://localhost:5173"]
limits:
  requests_per_minute: 1200
  event_streams: 0
  tenant_event_streams: 300
`

// retentionAt is the last line of shopFile's chat section, after which the retention cases add
// theirs (line 18).
const retentionAt = "  unassign_on_away: true\n"

// ptr returns a pointer to v.
func ptr(v int) *int { return &v }

// compareLocations compares time zones by name.
var compareLocations = cmp.Comparer(func(a, b *time.Location) bool { return a.String() == b.String() })

func TestParseValidFile(t *testing.T) {
	got, err := tenant.Parse("tenants/demo-shop.yaml", []byte(shopFile))
	if err != nil {
		t.Fatalf("Parse(valid file) = %v", err)
	}
	want := &tenant.Tenant{
		ID:    "demo-shop",
		Name:  "Demo Shop",
		Hosts: []string{"support.demo-shop.example", "chat.demo-shop.example"},
		OIDC: tenant.OIDC{
			Issuer:      "https://id.demo-shop.example/realms/shop",
			Audience:    "support-chat",
			AdminClaim:  "realm_access.roles",
			AdminValues: []string{"support_admin", "lead"},
			NameClaim:   "name",
		},
		Chat: tenant.Chat{
			AwayPrompt:     "We are away.",
			BusinessHours:  &tenant.BusinessHours{Location: mustLocation(t, "Europe/Berlin")},
			UnassignOnAway: true,
		},
		Web:    tenant.Web{AllowedOrigins: []string{"https://www.demo-shop.example", "http://localhost:5173"}},
		Limits: tenant.Limits{RequestsPerMinute: ptr(1200), EventStreams: ptr(0), TenantEventStreams: ptr(300)},
		Source: "tenants/demo-shop.yaml",
	}
	want.Chat.BusinessHours.Weekly[time.Monday] = []tenant.Range{{Start: 9 * 60, End: 18 * 60}}
	want.Chat.BusinessHours.Weekly[time.Friday] = []tenant.Range{{Start: 9 * 60, End: 12 * 60}, {Start: 13 * 60, End: 17 * 60}}
	if diff := cmp.Diff(want, got, compareLocations); diff != "" {
		t.Errorf("Parse(valid file) mismatch (-want +got):\n%s", diff)
	}
}

func TestParseMinimalFile(t *testing.T) {
	const minimal = `id: tiny
name: Tiny
oidc: {issuer: "https://login.tiny.example", audience: chat, admin_claim: roles, admin_values: [admin]}
`
	got, err := tenant.Parse("tiny.yml", []byte(minimal))
	if err != nil {
		t.Fatalf("Parse(minimal file) = %v", err)
	}
	if got.Chat.AwayPrompt != "" || got.Chat.BusinessHours != nil || got.Chat.UnassignOnAway || got.Hosts != nil {
		t.Errorf("Parse(minimal file).Chat = %+v, hosts %v; want no prompt, no hours, no unassigning, no hosts", got.Chat, got.Hosts)
	}
}

func TestParseRetention(t *testing.T) {
	for _, tt := range []struct {
		chat string
		want int
	}{
		{"", 0},
		{"  retention:\n", 0},
		{"  retention: {}\n", 0},
		{"  retention: {resolved_after_days: null}\n", 0},
		{"  retention: {resolved_after_days: 1}\n", 1},
		{"  retention:\n    resolved_after_days: 90\n", 90},
		{"  retention: {resolved_after_days: 3650}\n", 3650},
	} {
		got, err := tenant.Parse("demo-shop.yaml", []byte(strings.Replace(shopFile, retentionAt, retentionAt+tt.chat, 1)))
		if err != nil {
			t.Errorf("Parse(%q) = %v", tt.chat, err)
			continue
		}
		if got.Chat.Retention.ResolvedAfterDays != tt.want {
			t.Errorf("Parse(%q).Chat.Retention = %+v, want %d days", tt.chat, got.Chat.Retention, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		file string // default demo-shop.yaml
		old  string // replaced by new in shopFile
		new  string
		// want is the exact start of one of the errors, "file:line: ..."; empty for a valid file.
		want string
	}{
		{name: "an unknown field is refused", old: "  name_claim: name\n", new: "  name_claim: name\n  colour: blue\n",
			want: `demo-shop.yaml:10: unknown field "oidc.colour"`},
		{name: "an unknown top-level field is refused", old: "name: Demo Shop\n", new: "name: Demo Shop\ntheme: dark\n",
			want: `demo-shop.yaml:3: unknown field "theme"`},
		{name: "a field set twice is refused", old: "name: Demo Shop\n", new: "name: Demo Shop\nname: Shop\n",
			want: `demo-shop.yaml:3: name is set twice`},
		{name: "an id with capitals is refused", file: "Demo_Shop.yaml", old: "id: demo-shop", new: "id: Demo_Shop",
			want: `Demo_Shop.yaml:1: id "Demo_Shop" must be 2 to 63 of a-z, 0-9 and -`},
		{name: "a one-letter id is refused", file: "d.yaml", old: "id: demo-shop", new: "id: d",
			want: `d.yaml:1: id "d" must be 2`},
		{name: "an id different from the file name is refused", file: "other-shop.yaml",
			want: `other-shop.yaml:1: id "demo-shop" must equal the file name "other-shop"`},
		{name: "a missing id is refused", old: "id: demo-shop\n", new: "",
			want: `demo-shop.yaml:1: id is required`},
		{name: "a missing name is refused", old: "name: Demo Shop", new: "name:",
			want: `demo-shop.yaml:2: name is required`},
		{name: "a name over 200 characters is refused", old: "name: Demo Shop", new: "name: " + strings.Repeat("x", 201),
			want: `demo-shop.yaml:2: name is longer than 200 characters`},
		{name: "a host with a port is refused", old: "Chat.Demo-Shop.example", new: "chat.demo-shop.example:8443",
			want: `demo-shop.yaml:3: hosts: "chat.demo-shop.example:8443" must not have a port`},
		{name: "a host that is not a DNS name is refused", old: "Chat.Demo-Shop.example", new: "chat_shop.example",
			want: `demo-shop.yaml:3: hosts: "chat_shop.example" is not a DNS host name`},
		{name: "a host listed twice is refused", old: "Chat.Demo-Shop.example", new: "Support.demo-shop.example",
			want: `demo-shop.yaml:3: hosts: "Support.demo-shop.example" is listed twice`},
		{name: "an http issuer on a public host is refused", old: "https://id.demo-shop.example", new: "http://id.demo-shop.example",
			want: `demo-shop.yaml:5: oidc.issuer "http://id.demo-shop.example/realms/shop" must use https`},
		{name: "an http issuer on 127.0.0.1 is accepted", old: "https://id.demo-shop.example", new: "http://127.0.0.1:8080"},
		{name: "an http issuer on ::1 is accepted", old: "https://id.demo-shop.example", new: "http://[::1]:8080"},
		{name: "an http issuer on localhost is accepted", old: "https://id.demo-shop.example", new: "http://localhost:8080"},
		{name: "an issuer with a query is refused", old: "realms/shop", new: "realms/shop?x=1",
			want: `demo-shop.yaml:5: oidc.issuer "https://id.demo-shop.example/realms/shop?x=1" must not have a query or fragment`},
		{name: "an issuer with user info is refused", old: "https://id.", new: "https://me@id.",
			want: `demo-shop.yaml:5: oidc.issuer "https://me@id.demo-shop.example/realms/shop" must not contain user info`},
		{name: "a relative issuer is refused", old: "https://id.demo-shop.example/realms/shop", new: "/realms/shop",
			want: `demo-shop.yaml:5: oidc.issuer "/realms/shop" is not an absolute URL`},
		{name: "a missing audience is refused", old: "  audience: support-chat\n", new: "",
			want: `demo-shop.yaml:4: oidc.audience is required`},
		{name: "an empty audience is refused", old: "audience: support-chat", new: `audience: ""`,
			want: `demo-shop.yaml:6: oidc.audience is required`},
		{name: "an admin claim with an empty segment is refused", old: "realm_access.roles", new: "realm_access..roles",
			want: `demo-shop.yaml:7: oidc.admin_claim "realm_access..roles" must be a claim name or dotted path`},
		{name: "no admin values is refused", old: "[support_admin, lead]", new: "[]",
			want: `demo-shop.yaml:8: oidc.admin_values needs at least one role name`},
		{name: "an empty admin value is refused", old: "[support_admin, lead]", new: `[support_admin, ""]`,
			want: `demo-shop.yaml:8: oidc.admin_values must not contain an empty value`},
		{name: "a missing oidc section is refused", old: "oidc:\n  issuer: https://id.demo-shop.example/realms/shop\n  audience: support-chat\n  admin_claim: realm_access.roles\n  admin_values: [support_admin, lead]\n  name_claim: name\n", new: "",
			want: `demo-shop.yaml:1: oidc is required`},
		{name: "an away prompt over 1000 characters is refused", old: `"We are away."`, new: strings.Repeat("z", 1001),
			want: `demo-shop.yaml:11: chat.away_prompt is longer than 1000 characters`},
		{name: "an unknown time zone is refused", old: "Europe/Berlin", new: "Mars/Olympus",
			want: `demo-shop.yaml:13: chat.business_hours.timezone: unknown time zone "Mars/Olympus"`},
		{name: "business hours without a time zone are refused", old: "    timezone: Europe/Berlin\n", new: "",
			want: `demo-shop.yaml:12: chat.business_hours.timezone: required`},
		{name: "a range without leading zeros is refused", old: `"09:00-18:00"`, new: `"9:00-18:00"`,
			want: `demo-shop.yaml:15: chat.business_hours.weekly.mon: "9:00-18:00" is not HH:MM-HH:MM`},
		{name: "a range past 24:00 is refused", old: `"09:00-18:00"`, new: `"09:00-24:30"`,
			want: `demo-shop.yaml:15: chat.business_hours.weekly.mon: "09:00-24:30" has a time outside 00:00-24:00`},
		{name: "a range ending where it starts is refused", old: `"09:00-18:00"`, new: `"09:00-09:00"`,
			want: `demo-shop.yaml:15: chat.business_hours.weekly.mon: "09:00-09:00" starts and ends at the same time`},
		{name: "an unknown day is refused", old: "      fri:", new: "      fry:",
			want: `demo-shop.yaml:16: chat.business_hours.weekly: unknown day "fry"`},
		{name: "overlapping ranges of one day are refused, at the later range",
			old: `      fri: ["13:00-17:00", "09:00-12:00"]`, new: "      fri:\n        - 09:00-13:00\n        - 12:00-17:00",
			want: `demo-shop.yaml:18: chat.business_hours.weekly.fri: "12:00-17:00" overlaps "09:00-13:00"`},
		{name: "an overnight range overlapping a late range is refused", old: `"09:00-18:00"`, new: `"22:00-02:00", "23:00-23:30"`,
			want: `demo-shop.yaml:15: chat.business_hours.weekly.mon: "23:00-23:30" overlaps "22:00-02:00"`},
		{name: "unassign_on_away must be a boolean", old: "unassign_on_away: true", new: "unassign_on_away: yes",
			want: `demo-shop.yaml:17: chat.unassign_on_away must be true or false`},
		{name: "an unclosed list is refused at the line it starts", old: "  audience: support-chat", new: "  audience: [support-chat",
			want: `demo-shop.yaml:6: invalid YAML: did not find expected ',' or ']'`},
		{name: "a bad escape in a string is refused at its line", old: "audience: support-chat", new: `audience: "support\qchat"`,
			want: `demo-shop.yaml:6: invalid YAML: found unknown escape character`},
		{name: "a list item inside a mapping is refused at the line the mapping starts", old: "  audience: support-chat", new: "  - audience",
			want: `demo-shop.yaml:5: invalid YAML: did not find expected key`},
		{name: "a wildcard origin is refused", old: "https://www.demo-shop.example,", new: `"*",`,
			want: `demo-shop.yaml:19: web.allowed_origins: "*" must name an origin`},
		{name: "an origin with a path is refused", old: "https://www.demo-shop.example,", new: "https://www.demo-shop.example/shop,",
			want: `demo-shop.yaml:19: web.allowed_origins: "https://www.demo-shop.example/shop" must be only scheme://host[:port]`},
		{name: "an http origin on a public host is refused", old: "https://www.demo-shop.example,", new: "http://www.demo-shop.example,",
			want: `demo-shop.yaml:19: web.allowed_origins: "http://www.demo-shop.example" must use https`},
		{name: "an origin listed twice is refused", old: "https://www.demo-shop.example,", new: "https://www.demo-shop.example, https://WWW.demo-shop.example,",
			want: `demo-shop.yaml:19: web.allowed_origins: "https://WWW.demo-shop.example" is listed twice`},
		{name: "a negative limit is refused", old: "requests_per_minute: 1200", new: "requests_per_minute: -1",
			want: `demo-shop.yaml:21: limits.requests_per_minute must be a whole number from 0 (off) to 10000000`},
		{name: "a fractional limit is refused", old: "event_streams: 0", new: "event_streams: 2.5",
			want: `demo-shop.yaml:22: limits.event_streams must be a whole number`},
		{name: "an unknown limit is refused", old: "event_streams: 0", new: "streams: 3",
			want: `demo-shop.yaml:22: unknown field "limits.streams"`},
		{name: "required claims with a nested path are accepted", old: "  name_claim: name\n", new: "  name_claim: name\n  required_claims: {org: demo-shop, tenancy.id: \"42\"}\n"},
		{name: "a required claim with an empty value is refused", old: "  name_claim: name\n", new: "  name_claim: name\n  required_claims:\n    org: \"\"\n",
			want: `demo-shop.yaml:11: oidc.required_claims.org must be a non-empty string`},
		{name: "a required claim holding a list is refused", old: "  name_claim: name\n", new: "  name_claim: name\n  required_claims:\n    org: [a, b]\n",
			want: `demo-shop.yaml:11: oidc.required_claims.org must be a non-empty string`},
		{name: "required claims that are not a mapping are refused", old: "  name_claim: name\n", new: "  name_claim: name\n  required_claims: [org]\n",
			want: `demo-shop.yaml:10: oidc.required_claims must be a mapping`},
		{name: "a required claim path with an empty segment is refused", old: "  name_claim: name\n", new: "  name_claim: name\n  required_claims:\n    org..id: x\n",
			want: `demo-shop.yaml:11: oidc.required_claims: claim "org..id" must be a claim name or dotted path`},
		{name: "a retention of one day is accepted", old: retentionAt, new: retentionAt + "  retention: {resolved_after_days: 1}\n"},
		{name: "a retention of ten years is accepted", old: retentionAt, new: retentionAt + "  retention:\n    resolved_after_days: 3650\n"},
		{name: "a retention without days is accepted", old: retentionAt, new: retentionAt + "  retention: {}\n"},
		{name: "a retention of 0 days is refused", old: retentionAt, new: retentionAt + "  retention: {resolved_after_days: 0}\n",
			want: `demo-shop.yaml:18: chat.retention.resolved_after_days must be a whole number of days from 1 to 3650`},
		{name: "a negative retention is refused", old: retentionAt, new: retentionAt + "  retention:\n    resolved_after_days: -30\n",
			want: `demo-shop.yaml:19: chat.retention.resolved_after_days must be a whole number of days from 1 to 3650`},
		{name: "a retention over ten years is refused", old: retentionAt, new: retentionAt + "  retention: {resolved_after_days: 3651}\n",
			want: `demo-shop.yaml:18: chat.retention.resolved_after_days must be a whole number of days from 1 to 3650`},
		{name: "a fractional retention is refused", old: retentionAt, new: retentionAt + "  retention: {resolved_after_days: 30.5}\n",
			want: `demo-shop.yaml:18: chat.retention.resolved_after_days must be a whole number of days`},
		{name: "a retention given as a string is refused", old: retentionAt, new: retentionAt + "  retention: {resolved_after_days: \"30\"}\n",
			want: `demo-shop.yaml:18: chat.retention.resolved_after_days must be a whole number of days`},
		{name: "a retention given as a list is refused", old: retentionAt, new: retentionAt + "  retention: {resolved_after_days: [30]}\n",
			want: `demo-shop.yaml:18: chat.retention.resolved_after_days must be a whole number of days`},
		{name: "a retention given as a number is refused", old: retentionAt, new: retentionAt + "  retention: 30\n",
			want: `demo-shop.yaml:18: chat.retention must be a mapping`},
		{name: "an unknown retention field is refused", old: retentionAt, new: retentionAt + "  retention: {open_after_days: 30}\n",
			want: `demo-shop.yaml:18: unknown field "chat.retention.open_after_days"`},
		{name: "a retention outside the chat section is refused", old: "limits:\n", new: "retention: {resolved_after_days: 30}\nlimits:\n",
			want: `demo-shop.yaml:20: unknown field "retention": retention is a chat setting, under chat: (chat.retention)`},
		{name: "a second YAML document is refused", old: "  unassign_on_away: true\n", new: "  unassign_on_away: true\n---\nid: other\n",
			want: `demo-shop.yaml:18: a tenant file holds one YAML document`},
		{name: "a document end marker alone is accepted", old: "  unassign_on_away: true\n", new: "  unassign_on_away: true\n...\n"},
		{name: "an empty file is refused", old: shopFile, new: "",
			want: `demo-shop.yaml:1: file is empty`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := tt.file
			if file == "" {
				file = "demo-shop.yaml"
			}
			data := shopFile
			if tt.old != "" {
				if !strings.Contains(data, tt.old) {
					t.Fatalf("test file has no %q", tt.old)
				}
				data = strings.Replace(data, tt.old, tt.new, 1)
			}
			got, err := tenant.Parse(file, []byte(data))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Parse = %v, want no error", err)
				}
				return
			}
			if got != nil || err == nil {
				t.Fatalf("Parse = %v, %v; want nil and an error %q", got, err, tt.want)
			}
			errs := flattenErrors(err)
			for _, e := range errs {
				var fe *tenant.FileError
				if !errors.As(e, &fe) {
					t.Errorf("error %q (%T) is not a *FileError", e, e)
				}
				if strings.HasPrefix(e.Error(), tt.want) {
					return
				}
			}
			t.Errorf("Parse errors = %q, want one starting with %q", errs, tt.want)
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	data := strings.NewReplacer("id: demo-shop", "id: Demo", "audience: support-chat", "audience:", `"09:00-18:00"`, `"9-18"`).Replace(shopFile)
	_, err := tenant.Parse("demo-shop.yaml", []byte(data))
	var got []string
	for _, e := range flattenErrors(err) {
		got = append(got, e.Error())
	}
	want := []string{
		`demo-shop.yaml:1: id "Demo" must be 2 to 63 of a-z, 0-9 and -`,
		`demo-shop.yaml:6: oidc.audience is required`,
		`demo-shop.yaml:15: chat.business_hours.weekly.mon: "9-18" is not HH:MM-HH:MM`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Parse errors mismatch (-want +got):\n%s", diff)
	}
}

// TestValidateDirReadsFiles checks what reading a tenant file gives: the tenant, with the file
// as its Source, or for a file that cannot be read (a dangling symlink) a *FileError that says
// so.
func TestValidateDirReadsFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "demo-shop.yaml")
	if err := os.WriteFile(path, []byte(shopFile), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "gone.yaml")
	if err := os.Symlink(filepath.Join(dir, "nowhere.yaml"), missing); err != nil {
		t.Fatal(err)
	}
	got, errs := tenant.ValidateDir(dir)
	if len(got) != 1 || got[0].ID != "demo-shop" || got[0].Source != path {
		t.Errorf("ValidateDir(%s) tenants = %+v; want demo-shop from %s", dir, got, path)
	}
	var fe *tenant.FileError
	if len(errs) != 1 || !errors.As(errs[0], &fe) || fe.File != missing || !strings.HasPrefix(errs[0].Error(), missing+": read: ") {
		t.Errorf("ValidateDir(%s) errors = %v, want one *FileError %q", dir, errs, missing+": read: ...")
	}
}

// flattenErrors returns the errors joined in err.
func flattenErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err == nil {
		return nil
	}
	return []error{err}
}

// mustLocation loads a time zone.
func mustLocation(tb testing.TB, name string) *time.Location {
	tb.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		tb.Fatal(err)
	}
	return loc
}
