package tenant

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// Limits of a tenant file's free-text fields, in characters.
const (
	maxNameLen       = 200
	maxAwayPromptLen = 1000
)

var (
	// idPattern is what a tenant id looks like; it is also the file's base name.
	idPattern = regexp.MustCompile(`^[a-z0-9-]{2,63}$`)
	// hostLabel is one label of a DNS host name.
	hostLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	// syntaxLine finds the line in a YAML syntax error.
	syntaxLine = regexp.MustCompile(`^yaml: line ([0-9]+): (.*)$`)
)

// FileError is one problem of a tenant file, at a line (1-based; 0 when it concerns the whole
// file, such as a file that cannot be read).
type FileError struct {
	File string
	Line int
	Msg  string
}

// Error returns "<file>:<line>: <msg>", or "<file>: <msg>" when the error has no line.
func (e *FileError) Error() string {
	if e.Line <= 0 {
		return e.File + ": " + e.Msg
	}
	return e.File + ":" + strconv.Itoa(e.Line) + ": " + e.Msg
}

// readProblem describes why a file could not be read, without repeating its path.
func readProblem(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return "read: " + pe.Err.Error()
	}
	return "read: " + err.Error()
}

// Parse parses the tenant file named file (its base name without .yaml or .yml must be the
// tenant id) with contents data. Unknown fields are errors. The error joins a *FileError for
// every problem of the file. The tenant's Source is file.
func Parse(file string, data []byte) (*Tenant, error) {
	t, _, err := parse(file, data)
	return t, err
}

// fileLines holds where a tenant file sets its id and each host, for the errors of checks
// across files (an id or host claimed twice).
type fileLines struct {
	id    int
	hosts map[string]int
	// issuer is the line of oidc.issuer, where a tenant that cannot be told apart from another
	// of the same issuer is reported.
	issuer int
}

// parse is Parse that also returns the lines of the id and hosts.
func parse(file string, data []byte) (*Tenant, fileLines, error) {
	p := &parser{file: file}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := 1, strings.TrimPrefix(err.Error(), "yaml: ")
		if m := syntaxLine.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
			if zeroBasedLine(msg) {
				line++
			}
		}
		return nil, fileLines{}, &FileError{File: file, Line: line, Msg: "invalid YAML: " + msg}
	}
	if len(doc.Content) == 0 {
		return nil, fileLines{}, &FileError{File: file, Line: 1, Msg: "file is empty"}
	}
	if line, ok := secondDocument(data); ok {
		// yaml.Unmarshal reads the first document only: a second would be silently ignored.
		return nil, fileLines{}, &FileError{File: file, Line: line, Msg: "a tenant file holds one YAML document; this is a second"}
	}
	t := &Tenant{Source: file}
	lines := fileLines{hosts: map[string]int{}}
	p.mapping("", 1, doc.Content[0], []field{
		{"id", func(_, v *yaml.Node) { t.ID, lines.id = p.id(v), v.Line }},
		{"name", func(_, v *yaml.Node) { t.Name = p.text("name", v, true, maxNameLen) }},
		{"hosts", func(_, v *yaml.Node) { t.Hosts = p.hosts(v, lines.hosts) }},
		{"oidc", func(k, v *yaml.Node) { lines.issuer = p.oidc(k.Line, v, &t.OIDC) }},
		{"chat", func(k, v *yaml.Node) { p.chat(k.Line, v, &t.Chat) }},
		{"web", func(k, v *yaml.Node) { p.web(k.Line, v, &t.Web) }},
		{"limits", func(k, v *yaml.Node) { p.limits(k.Line, v, &t.Limits) }},
	})
	if len(p.errs) > 0 {
		return nil, fileLines{}, errors.Join(p.errs...)
	}
	return t, lines, nil
}

// secondDocument reports the line where data, a valid first YAML document, holds another.
func secondDocument(data []byte) (int, bool) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var first, second yaml.Node
	if dec.Decode(&first) != nil || dec.Decode(&second) != nil {
		return 0, false
	}
	return second.Line, true
}

// zeroBasedLine reports whether the line yaml.v3 gives with a syntax error msg counts from 0:
// it does for the errors of its parser (as opposed to its scanner), which report the line
// where the unfinished construct began.
func zeroBasedLine(msg string) bool {
	switch msg {
	case "did not find expected <stream-start>", "did not find expected <document start>",
		"did not find expected ',' or ']'", "did not find expected ',' or '}'",
		"did not find expected '-' indicator", "did not find expected key",
		"did not find expected node content", "found duplicate %YAML directive",
		"found duplicate %TAG directive", "found incompatible YAML document", "found undefined tag handle":
		return true
	}
	return false
}

// parser collects the problems of one tenant file as it walks the YAML nodes.
type parser struct {
	file string
	errs []error
}

// field is a known key of a mapping and how to decode its value. Absent keys are decoded
// as null at the line of the mapping's own key, so each field reports "required" itself.
type field struct {
	key string
	// decode gets the key node (for an absent key, a null node at the mapping's key line)
	// and the value node.
	decode func(k, v *yaml.Node)
}

// errorf records a problem at line.
func (p *parser) errorf(line int, format string, args ...any) {
	p.errs = append(p.errs, &FileError{File: p.file, Line: line, Msg: fmt.Sprintf(format, args...)})
}

// mapping decodes the mapping n found at path (its key on line keyLine) with fields,
// reporting unknown and duplicate keys.
func (p *parser) mapping(path string, keyLine int, n *yaml.Node, fields []field) {
	n = resolve(n)
	switch {
	case isNull(n):
		n = &yaml.Node{Kind: yaml.MappingNode}
	case n.Kind != yaml.MappingNode:
		p.errorf(n.Line, "%s must be a mapping", orDocument(path))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name := join(path, k.Value)
		if seen[k.Value] {
			p.errorf(k.Line, "%s is set twice", name)
			continue
		}
		seen[k.Value] = true
		f, ok := findField(fields, k.Value)
		if !ok && name == "retention" {
			p.errorf(k.Line, "unknown field %q: retention is a chat setting, under chat: (chat.retention)", name)
			continue
		}
		if !ok {
			p.errorf(k.Line, "unknown field %q", name)
			continue
		}
		if v = resolve(v); isNull(v) {
			v = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: k.Line}
		}
		f.decode(k, v)
	}
	for _, f := range fields {
		if !seen[f.key] {
			missing := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: keyLine}
			f.decode(missing, missing)
		}
	}
}

// findField returns the field with key.
func findField(fields []field, key string) (field, bool) {
	for _, f := range fields {
		if f.key == key {
			return f, true
		}
	}
	return field{}, false
}

// resolve follows an alias to the node it names.
func resolve(n *yaml.Node) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

// isNull reports whether n is an empty value (absent, "~" or "null").
func isNull(n *yaml.Node) bool {
	return n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// join returns the dotted path of key inside path.
func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// orDocument names the document itself when path is empty.
func orDocument(path string) string {
	if path == "" {
		return "the file"
	}
	return path
}

// str returns the text of a scalar; null is "". It reports other nodes and returns false.
func (p *parser) str(path string, n *yaml.Node) (string, bool) {
	if isNull(n) {
		return "", true
	}
	if n.Kind != yaml.ScalarNode {
		p.errorf(n.Line, "%s must be a string", path)
		return "", false
	}
	return n.Value, true
}

// text decodes a string of at most maxLen characters, reporting it when required and empty.
func (p *parser) text(path string, n *yaml.Node, required bool, maxLen int) string {
	s, ok := p.str(path, n)
	switch {
	case !ok:
	case s == "" && required:
		p.errorf(n.Line, "%s is required", path)
	case utf8.RuneCountInString(s) > maxLen:
		p.errorf(n.Line, "%s is longer than %d characters", path, maxLen)
	}
	return s
}

// list decodes a sequence of strings (null is empty), calling item for each.
func (p *parser) list(path string, n *yaml.Node, item func(s string, line int)) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n.Line, "%s must be a list", path)
		return
	}
	for _, v := range n.Content {
		v = resolve(v)
		if s, ok := p.str(path, v); ok {
			item(s, v.Line)
		}
	}
}

// id decodes the tenant id, which must also be the file's base name.
func (p *parser) id(n *yaml.Node) string {
	id, ok := p.str("id", n)
	want := fileID(p.file)
	switch {
	case !ok:
	case id == "":
		p.errorf(n.Line, "id is required")
	case !idPattern.MatchString(id):
		p.errorf(n.Line, "id %q must be 2 to 63 of a-z, 0-9 and -", id)
	case id != want:
		p.errorf(n.Line, "id %q must equal the file name %q", id, want)
	}
	return id
}

// fileID returns the tenant id a file name implies: its base name without .yaml or .yml.
func fileID(file string) string {
	base := filepath.Base(file)
	switch ext := filepath.Ext(base); ext {
	case ".yaml", ".yml":
		return strings.TrimSuffix(base, ext)
	}
	return base
}

// hosts decodes the host names, lowercased, recording the line of each in lines.
func (p *parser) hosts(n *yaml.Node, lines map[string]int) []string {
	var hosts []string
	p.list("hosts", n, func(s string, line int) {
		h := strings.ToLower(s)
		if err := checkHost(h); err != nil {
			p.errorf(line, "hosts: %q %v", s, err)
			return
		}
		if first, dup := lines[h]; dup {
			p.errorf(line, "hosts: %q is listed twice (first on line %d)", s, first)
			return
		}
		lines[h] = line
		hosts = append(hosts, h)
	})
	return hosts
}

// checkHost reports why h (lowercase) is not a DNS host name without a port.
func checkHost(h string) error {
	switch {
	case h == "":
		return errors.New("is empty")
	case strings.Contains(h, ":"):
		return errors.New("must not have a port")
	case len(h) > 253:
		return errors.New("is longer than 253 characters")
	}
	for _, label := range strings.Split(h, ".") {
		if !hostLabel.MatchString(label) {
			return errors.New("is not a DNS host name")
		}
	}
	return nil
}

// oidc decodes the oidc section and returns the line of its issuer.
func (p *parser) oidc(keyLine int, n *yaml.Node, o *OIDC) (issuerLine int) {
	if isNull(n) {
		p.errorf(n.Line, "oidc is required")
		return n.Line
	}
	p.mapping("oidc", keyLine, n, []field{
		{"issuer", func(_, v *yaml.Node) {
			issuerLine = v.Line
			if s, ok := p.str("oidc.issuer", v); ok {
				if err := checkIssuer(s); err != nil {
					p.errorf(v.Line, "oidc.issuer %v", err)
				}
				o.Issuer = s
			}
		}},
		{"audience", func(_, v *yaml.Node) { o.Audience = p.text("oidc.audience", v, true, 1000) }},
		{"admin_claim", func(_, v *yaml.Node) {
			if s, ok := p.str("oidc.admin_claim", v); ok {
				if err := checkClaim(s); err != nil {
					p.errorf(v.Line, "oidc.admin_claim %v", err)
				}
				o.AdminClaim = s
			}
		}},
		{"admin_values", func(_, v *yaml.Node) {
			p.list("oidc.admin_values", v, func(s string, line int) {
				if s == "" {
					p.errorf(line, "oidc.admin_values must not contain an empty value")
				}
				o.AdminValues = append(o.AdminValues, s)
			})
			if len(o.AdminValues) == 0 && (isNull(v) || v.Kind == yaml.SequenceNode) {
				p.errorf(v.Line, "oidc.admin_values needs at least one role name")
			}
		}},
		{"name_claim", func(_, v *yaml.Node) { o.NameClaim = p.text("oidc.name_claim", v, false, 1000) }},
		{"required_claims", func(_, v *yaml.Node) { o.RequiredClaims = p.requiredClaims(v) }},
	})
	return issuerLine
}

// requiredClaims decodes oidc.required_claims: a mapping of claim paths to the string value
// each must hold, kept in file order.
func (p *parser) requiredClaims(n *yaml.Node) []RequiredClaim {
	const path = "oidc.required_claims"
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n.Line, "%s must be a mapping of claim path to value", path)
		return nil
	}
	var claims []RequiredClaim
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		if err := checkClaim(k.Value); err != nil {
			p.errorf(k.Line, "%s: claim %v", path, err)
			continue
		}
		if seen[k.Value] {
			p.errorf(k.Line, "%s.%s is set twice", path, k.Value)
			continue
		}
		seen[k.Value] = true
		if v.Kind != yaml.ScalarNode || isNull(v) || v.Value == "" {
			p.errorf(v.Line, "%s.%s must be a non-empty string", path, k.Value)
			continue
		}
		if utf8.RuneCountInString(v.Value) > 1000 {
			p.errorf(v.Line, "%s.%s is longer than 1000 characters", path, k.Value)
			continue
		}
		claims = append(claims, RequiredClaim{Path: k.Value, Value: v.Value})
	}
	return claims
}

// web decodes the web section.
func (p *parser) web(keyLine int, n *yaml.Node, w *Web) {
	p.mapping("web", keyLine, n, []field{
		{"allowed_origins", func(_, v *yaml.Node) {
			seen := map[string]bool{}
			p.list("web.allowed_origins", v, func(s string, line int) {
				origin, err := checkOrigin(s)
				switch {
				case err != nil:
					p.errorf(line, "web.allowed_origins: %q %v", s, err)
				case seen[origin]:
					p.errorf(line, "web.allowed_origins: %q is listed twice", s)
				default:
					seen[origin] = true
					w.AllowedOrigins = append(w.AllowedOrigins, origin)
				}
			})
		}},
	})
}

// checkOrigin returns the browser origin s names, lowercased, or why it is not one:
// scheme://host[:port] with https (http only on a loopback host), nothing after the host.
func checkOrigin(s string) (string, error) {
	u, err := url.Parse(s)
	switch {
	case s == "*":
		return "", errors.New("must name an origin: a wildcard would let every site use the API")
	case err != nil || u.Host == "" || u.Opaque != "":
		return "", errors.New("is not an origin (scheme://host[:port])")
	case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "#"):
		return "", errors.New("must be only scheme://host[:port], with no path, query or user info")
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		return "", errors.New("must use https (http only on 127.0.0.1, ::1 or localhost)")
	case u.Scheme != "https" && u.Scheme != "http":
		return "", errors.New("must use https")
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

// maxLimit bounds a tenant file's limits, so a typo cannot make a limit meaningless.
const maxLimit = 10_000_000

// limits decodes the limits section.
func (p *parser) limits(keyLine int, n *yaml.Node, l *Limits) {
	limit := func(name string, dst **int) field {
		return field{name, func(_, v *yaml.Node) {
			if isNull(v) {
				return
			}
			var x int
			if v.Kind != yaml.ScalarNode || v.Tag != "!!int" || v.Decode(&x) != nil || x < 0 || x > maxLimit {
				p.errorf(v.Line, "limits.%s must be a whole number from 0 (off) to %d", name, maxLimit)
				return
			}
			*dst = &x
		}}
	}
	p.mapping("limits", keyLine, n, []field{
		limit("requests_per_minute", &l.RequestsPerMinute),
		limit("writes_per_minute", &l.WritesPerMinute),
		limit("event_streams", &l.EventStreams),
		limit("tenant_requests_per_second", &l.TenantRequestsPerSecond),
		limit("tenant_event_streams", &l.TenantEventStreams),
	})
}

// checkIssuer reports why s is not an acceptable issuer URL: absolute, https (http only on a
// loopback host), without user info, query or fragment.
func checkIssuer(s string) error {
	if s == "" {
		return errors.New("is required")
	}
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		return fmt.Errorf("%q is not an absolute URL", s)
	case u.User != nil:
		return fmt.Errorf("%q must not contain user info", s)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "#"):
		return fmt.Errorf("%q must not have a query or fragment", s)
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	case u.Scheme == "http":
		return fmt.Errorf("%q must use https (http only on 127.0.0.1, ::1 or localhost)", s)
	}
	return fmt.Errorf("%q must use https", s)
}

// isLoopback reports whether host names this machine.
func isLoopback(host string) bool {
	switch strings.ToLower(host) {
	case "127.0.0.1", "::1", "localhost":
		return true
	}
	return false
}

// checkClaim reports why s is not a claim name or dotted path of claim names.
func checkClaim(s string) error {
	if s == "" {
		return errors.New("is required")
	}
	for _, seg := range strings.Split(s, ".") {
		if strings.TrimSpace(seg) == "" {
			return fmt.Errorf("%q must be a claim name or dotted path (realm_access.roles)", s)
		}
	}
	return nil
}

// chat decodes the chat section.
func (p *parser) chat(keyLine int, n *yaml.Node, c *Chat) {
	p.mapping("chat", keyLine, n, []field{
		{"away_prompt", func(_, v *yaml.Node) { c.AwayPrompt = p.text("chat.away_prompt", v, false, maxAwayPromptLen) }},
		{"business_hours", func(k, v *yaml.Node) { c.BusinessHours = p.businessHours(k.Line, v) }},
		{"unassign_on_away", func(_, v *yaml.Node) {
			switch {
			case isNull(v):
			case v.Kind != yaml.ScalarNode || v.Tag != "!!bool" || v.Decode(&c.UnassignOnAway) != nil:
				p.errorf(v.Line, "chat.unassign_on_away must be true or false")
			}
		}},
		{"retention", func(k, v *yaml.Node) { p.retention(k.Line, v, &c.Retention) }},
	})
}

// retention decodes chat.retention; null, or a resolved_after_days left out, keeps resolved
// conversations forever.
func (p *parser) retention(keyLine int, n *yaml.Node, r *Retention) {
	const path = "chat.retention.resolved_after_days"
	p.mapping("chat.retention", keyLine, n, []field{
		{"resolved_after_days", func(_, v *yaml.Node) {
			if isNull(v) {
				return
			}
			var days int
			if v.Kind != yaml.ScalarNode || v.Tag != "!!int" || v.Decode(&days) != nil || days < 1 || days > MaxRetentionDays {
				p.errorf(v.Line, "%s must be a whole number of days from 1 to %d (leave it out to keep resolved conversations forever)", path, MaxRetentionDays)
				return
			}
			r.ResolvedAfterDays = days
		}},
	})
}

// businessHours decodes chat.business_hours; null means the team has no set hours.
func (p *parser) businessHours(keyLine int, n *yaml.Node) *BusinessHours {
	if isNull(n) {
		return nil
	}
	const path = "chat.business_hours"
	before := len(p.errs)
	h := &BusinessHours{}
	p.mapping(path, keyLine, n, []field{
		{"timezone", func(_, v *yaml.Node) {
			if s, ok := p.str(path+".timezone", v); ok {
				loc, err := loadLocation(s)
				if err != nil {
					p.errorf(v.Line, "%s.timezone: %v", path, err)
				}
				h.Location = loc
			}
		}},
		{"weekly", func(_, v *yaml.Node) { p.weekly(path+".weekly", v, &h.Weekly) }},
	})
	if len(p.errs) > before {
		return nil
	}
	return h
}

// weekly decodes a mapping of day keys (mon..sun) to lists of "HH:MM-HH:MM" ranges.
func (p *parser) weekly(path string, n *yaml.Node, week *[7][]Range) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n.Line, "%s must be a mapping of mon, tue, wed, thu, fri, sat, sun", path)
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], resolve(n.Content[i+1])
		day, err := parseWeekday(k.Value)
		switch {
		case err != nil:
			p.errorf(k.Line, "%s: %v", path, err)
			continue
		case seen[k.Value]:
			p.errorf(k.Line, "%s.%s is set twice", path, k.Value)
			continue
		}
		seen[k.Value] = true
		dayPath := path + "." + k.Value
		var ranges []Range
		var lines []int
		ok := true
		p.list(dayPath, v, func(s string, line int) {
			r, err := parseRange(s)
			if err != nil {
				p.errorf(line, "%s: %v", dayPath, err)
				ok = false
				return
			}
			ranges = append(ranges, r)
			lines = append(lines, line)
		})
		if !ok {
			continue
		}
		if i, err := checkOverlap(ranges); err != nil {
			p.errorf(lines[i], "%s: %v", dayPath, err)
			continue
		}
		week[day] = sortRanges(ranges)
	}
}
