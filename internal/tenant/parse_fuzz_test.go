package tenant_test

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/supportchat/supportchat/internal/tenant"
)

// fuzzFile is the file name every fuzzed tenant file is parsed under.
const fuzzFile = "tenants/demo-shop.yaml"

// FuzzParse checks tenant file parsing on any bytes: no panic; a refusal is made only of
// *FileError values naming the file and a line of it; the same bytes always give the same
// answer; and an accepted file describes a tenant that, written back as a file, parses to the
// same tenant (what the parser accepts, it can read again).
func FuzzParse(f *testing.F) {
	for _, name := range []string{"demo-shop", "acme-outdoor", "nordic-books"} {
		if b, err := os.ReadFile("../../tenants/" + name + ".yaml"); err == nil {
			f.Add(strings.ReplaceAll(string(b), "id: "+name, "id: demo-shop"))
		}
	}
	f.Add(shopFile)
	f.Add(shopFile + "  required_claims: {org: demo-shop, tenancy.id: \"42\"}\n")
	f.Add("id: demo-shop\nname: x\noidc: {issuer: 'http://[::1]:8080', audience: a, admin_claim: a.b, admin_values: [r]}\n" +
		"chat: {business_hours: {timezone: UTC, weekly: {sat: ['22:00-02:00', '10:00-12:00'], sun: ['00:00-24:00']}}}\n")
	f.Add(strings.Replace(shopFile, retentionAt, retentionAt+"  retention: {resolved_after_days: 30}\n", 1))
	f.Add("")
	f.Add("id: [")
	f.Add("a: &x [*x]\n")
	f.Fuzz(func(t *testing.T, data string) {
		got, err := tenant.Parse(fuzzFile, []byte(data))
		again, errAgain := tenant.Parse(fuzzFile, []byte(data))
		if errString(err) != errString(errAgain) || cmp.Diff(got, again, compareZones) != "" {
			t.Fatalf("parsing the same bytes twice differs: %v / %v", err, errAgain)
		}
		if err != nil {
			if got != nil {
				t.Fatalf("Parse returned a tenant with the error %v", err)
			}
			lines := lineCount(data)
			for _, e := range leaves(err) {
				var fe *tenant.FileError
				if !errors.As(e, &fe) || errors.Unwrap(e) != nil {
					t.Fatalf("error %q (%T) is not a *tenant.FileError", e, e)
				}
				if fe.File != fuzzFile || fe.Msg == "" {
					t.Fatalf("error %+v does not name the file %s and say what is wrong", fe, fuzzFile)
				}
				if fe.Line < 1 || fe.Line > lines+1 {
					t.Fatalf("error %q is at line %d of a file of %d lines", fe, fe.Line, lines)
				}
			}
			return
		}
		if got == nil || got.ID != "demo-shop" || got.Source != fuzzFile {
			t.Fatalf("Parse accepted the file as %+v", got)
		}
		written := render(t, got)
		reparsed, err := tenant.Parse(fuzzFile, written)
		if err != nil {
			t.Fatalf("the accepted tenant, written back, is refused: %v\nfile:\n%s", err, written)
		}
		if diff := cmp.Diff(got, reparsed, compareZones); diff != "" {
			t.Fatalf("the accepted tenant, written back and parsed, differs (-first +again):\n%s\nfile:\n%s", diff, written)
		}
	})
}

// compareZones compares time zones by name.
var compareZones = cmp.Comparer(func(a, b *time.Location) bool { return a.String() == b.String() })

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// leaves returns the errors joined in err, recursively.
func leaves(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leaves(e)...)
		}
		return out
	}
	return []error{err}
}

// lineCount bounds the lines of data as YAML counts them: every \n, lone \r, NEL, LS and PS
// ends one.
func lineCount(data string) int {
	n := 1 + strings.Count(data, "\n") + strings.Count(data, "\r")
	for _, br := range []string{"\u0085", "\u2028", "\u2029"} {
		n += strings.Count(data, br)
	}
	return n
}

// render writes t as a tenant file: every string double-quoted, fields in the documented order.
func render(t *testing.T, tn *tenant.Tenant) []byte {
	t.Helper()
	root := mapping()
	put := func(m *yaml.Node, key string, v *yaml.Node) { m.Content = append(m.Content, str(key), v) }
	put(root, "id", str(tn.ID))
	put(root, "name", str(tn.Name))
	if len(tn.Hosts) > 0 {
		put(root, "hosts", strs(tn.Hosts))
	}
	oidc := mapping()
	put(oidc, "issuer", str(tn.OIDC.Issuer))
	put(oidc, "audience", str(tn.OIDC.Audience))
	put(oidc, "admin_claim", str(tn.OIDC.AdminClaim))
	put(oidc, "admin_values", strs(tn.OIDC.AdminValues))
	if tn.OIDC.NameClaim != "" {
		put(oidc, "name_claim", str(tn.OIDC.NameClaim))
	}
	if len(tn.OIDC.RequiredClaims) > 0 {
		rc := mapping()
		for _, c := range tn.OIDC.RequiredClaims {
			put(rc, c.Path, str(c.Value))
		}
		put(oidc, "required_claims", rc)
	}
	put(root, "oidc", oidc)
	chat := mapping()
	if tn.Chat.AwayPrompt != "" {
		put(chat, "away_prompt", str(tn.Chat.AwayPrompt))
	}
	if h := tn.Chat.BusinessHours; h != nil {
		tz, weekly := h.Spec()
		days := mapping()
		for _, day := range []string{"mon", "tue", "wed", "thu", "fri", "sat", "sun"} {
			if ranges, ok := weekly[day]; ok {
				put(days, day, strs(ranges))
			}
		}
		put(chat, "business_hours", mapping(str("timezone"), str(tz), str("weekly"), days))
	}
	put(chat, "unassign_on_away", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(tn.Chat.UnassignOnAway)})
	if days := tn.Chat.Retention.ResolvedAfterDays; days != 0 {
		put(chat, "retention", mapping(str("resolved_after_days"), &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(days)}))
	}
	put(root, "chat", chat)
	if len(tn.Web.AllowedOrigins) > 0 {
		put(root, "web", mapping(str("allowed_origins"), strs(tn.Web.AllowedOrigins)))
	}
	limits := mapping()
	for _, l := range []struct {
		key string
		v   *int
	}{
		{"requests_per_minute", tn.Limits.RequestsPerMinute},
		{"writes_per_minute", tn.Limits.WritesPerMinute},
		{"event_streams", tn.Limits.EventStreams},
		{"tenant_requests_per_second", tn.Limits.TenantRequestsPerSecond},
		{"tenant_event_streams", tn.Limits.TenantEventStreams},
	} {
		if l.v != nil {
			put(limits, l.key, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: strconv.Itoa(*l.v)})
		}
	}
	if len(limits.Content) > 0 {
		put(root, "limits", limits)
	}
	b, err := yaml.Marshal(root)
	if err != nil {
		t.Fatalf("writing the tenant %+v: %v", tn, err)
	}
	return b
}

func mapping(content ...*yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: content}
}

func str(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s, Style: yaml.DoubleQuotedStyle}
}

func strs(items []string) *yaml.Node {
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Style: yaml.FlowStyle}
	for _, s := range items {
		n.Content = append(n.Content, str(s))
	}
	return n
}
