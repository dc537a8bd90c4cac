package telemetry_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"

	"github.com/supportchat/supportchat/internal/telemetry"
)

var (
	dashboardPath = filepath.Join("..", "..", "deploy", "grafana", "support-chat.json")
	alertsPath    = filepath.Join("..", "..", "deploy", "prometheus", "alerts.yaml")
)

// externalSeries are series Prometheus makes itself rather than chatd exports.
var externalSeries = []string{"up"}

// targetLabels are labels Prometheus adds to every scraped series, and the labels a histogram or
// summary series carries besides its family's.
var targetLabels = []string{"job", "instance", "namespace", "pod", "service", "container", "endpoint", "le", "quantile"}

// grafanaVariables replaces Grafana's variables with concrete values, longest names first.
var grafanaVariables = strings.NewReplacer(
	"$__rate_interval", "5m", "${__rate_interval}", "5m",
	"$__interval", "1m", "${__interval}", "1m",
	"$__range", "1h", "${__range}", "1h",
	"${datasource}", "prometheus", "$datasource", "prometheus",
	"${namespace}", "chat", "$namespace", "chat",
	"${tenant}", "demo-shop", "$tenant", "demo-shop",
	"${job}", "support-chat", "$job", "support-chat",
)

// labelValuesQuery matches a Grafana label_values(selector, label) variable query.
var labelValuesQuery = regexp.MustCompile(`^label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\)$`)

// exportedFamilies returns the families GET /metrics serves once every feature that reports a
// metric has been used (servedMetrics), by name.
func exportedFamilies(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	return served(t, true).families
}

// familyOf returns the family a selected series name belongs to: the name itself, or a
// histogram's or summary's family for its _bucket, _sum and _count series.
func familyOf(families map[string]*dto.MetricFamily, name string) *dto.MetricFamily {
	if mf := families[name]; mf != nil {
		return mf
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		mf := families[base]
		if mf == nil {
			continue
		}
		switch mf.GetType() {
		case dto.MetricType_HISTOGRAM:
			return mf
		case dto.MetricType_SUMMARY:
			if suffix != "_bucket" {
				return mf
			}
		}
	}
	return nil
}

// checkExpr parses expr (after replacing Grafana's variables) and checks that every series it
// selects is exported by chatd, or is an external series, and that it matches only on labels
// those series have.
func checkExpr(families map[string]*dto.MetricFamily, expr string) error {
	expr = grafanaVariables.Replace(expr)
	if strings.Contains(expr, "$") && !strings.Contains(expr, "{{") {
		return fmt.Errorf("unreplaced variable in %q", expr)
	}
	node, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		return fmt.Errorf("parse %q: %w", expr, err)
	}
	var errs []string
	selected := 0
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		selected++
		name := vs.Name
		if name == "" {
			for _, lm := range vs.LabelMatchers {
				if lm.Name == "__name__" {
					name = lm.Value
				}
			}
		}
		if slices.Contains(externalSeries, name) {
			return nil
		}
		mf := familyOf(families, name)
		if mf == nil {
			errs = append(errs, fmt.Sprintf("selects %q, which chatd does not export", name))
			return nil
		}
		labels := map[string]bool{}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = true
			}
		}
		for _, lm := range vs.LabelMatchers {
			if lm.Name != "__name__" && !labels[lm.Name] && !slices.Contains(targetLabels, lm.Name) {
				errs = append(errs, fmt.Sprintf("matches label %q, which %s does not have", lm.Name, mf.GetName()))
			}
		}
		return nil
	})
	if selected == 0 {
		errs = append(errs, "selects no series")
	}
	if len(errs) > 0 {
		return fmt.Errorf("%q: %s", expr, strings.Join(errs, "; "))
	}
	return nil
}

// grafanaTarget is one query of a panel: PromQL (expr) on the Prometheus data source, TraceQL
// (query) on the trace data source.
type grafanaTarget struct {
	Expr       string          `json:"expr"`
	Query      string          `json:"query"`
	QueryType  string          `json:"queryType"`
	Exemplar   bool            `json:"exemplar"`
	Datasource json.RawMessage `json:"datasource"`
}

// grafanaPanel is the part of a Grafana panel this test reads; rows nest panels.
type grafanaPanel struct {
	ID          int             `json:"id"`
	Title       string          `json:"title"`
	Type        string          `json:"type"`
	Datasource  json.RawMessage `json:"datasource"`
	Targets     []grafanaTarget `json:"targets"`
	Panels      []grafanaPanel  `json:"panels"`
	FieldConfig struct {
		Defaults struct {
			Links []struct {
				Title string `json:"title"`
				URL   string `json:"url"`
			} `json:"links"`
		} `json:"defaults"`
	} `json:"fieldConfig"`
}

// grafanaVariable is one templating variable.
type grafanaVariable struct {
	Name     string          `json:"name"`
	Type     string          `json:"type"`
	Query    json.RawMessage `json:"query"`
	AllValue string          `json:"allValue"`
}

// grafanaDashboard is the part of a Grafana dashboard this test reads.
type grafanaDashboard struct {
	Title      string         `json:"title"`
	UID        string         `json:"uid"`
	Panels     []grafanaPanel `json:"panels"`
	Templating struct {
		List []grafanaVariable `json:"list"`
	} `json:"templating"`
}

// readDashboard reads deploy/grafana/support-chat.json.
func readDashboard(t *testing.T) (grafanaDashboard, []byte) {
	t.Helper()
	raw, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s is not JSON: %v", dashboardPath, err)
	}
	return d, raw
}

// panels returns every panel of d that is not a row, rows' nested panels included.
func (d grafanaDashboard) panels() []grafanaPanel {
	var out []grafanaPanel
	var walk func(ps []grafanaPanel)
	walk = func(ps []grafanaPanel) {
		for _, p := range ps {
			walk(p.Panels)
			if p.Type != "row" {
				out = append(out, p)
			}
		}
	}
	walk(d.Panels)
	return out
}

// variableQuery returns a query variable's query, a string or {"query": ...}.
func variableQuery(v grafanaVariable) (string, error) {
	var q struct {
		Query string `json:"query"`
	}
	if err := json.Unmarshal(v.Query, &q); err == nil {
		return q.Query, nil
	}
	var s string
	if err := json.Unmarshal(v.Query, &s); err != nil {
		return "", fmt.Errorf("variable %s: unreadable query %s", v.Name, v.Query)
	}
	return s, nil
}

// selectors returns the vector selectors of a PromQL expression (after replacing Grafana's
// variables).
func selectors(expr string) ([]*parser.VectorSelector, error) {
	node, err := parser.NewParser(parser.Options{}).ParseExpr(grafanaVariables.Replace(expr))
	if err != nil {
		return nil, err
	}
	var out []*parser.VectorSelector
	parser.Inspect(node, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			out = append(out, vs)
		}
		return nil
	})
	return out, nil
}

// matcher returns the matcher of label name in vs, or nil.
func matcher(vs *parser.VectorSelector, name string) *labels.Matcher {
	for _, lm := range vs.LabelMatchers {
		if lm.Name == name {
			return lm
		}
	}
	return nil
}

// TestDashboardVariables: $datasource and $traces pick the Prometheus and trace data sources;
// $namespace, $job and $tenant are built from series chatd exports whatever its configuration:
// checked against a service with CHAT_METRICS_TENANT_LABEL=false, whose tenant families do not
// exist, and never from a tenant-only family.
func TestDashboardVariables(t *testing.T) {
	d, _ := readDashboard(t)
	always := served(t, false).families
	want := map[string]string{"datasource": "datasource", "traces": "datasource", "namespace": "query", "job": "query", "tenant": "query"}
	got := map[string]string{}
	for _, v := range d.Templating.List {
		got[v.Name] = v.Type
		q, err := variableQuery(v)
		if err != nil {
			t.Error(err)
			continue
		}
		switch v.Type {
		case "datasource":
			wantPlugin := map[string][]string{"datasource": {"prometheus"}, "traces": {"tempo", "jaeger"}}[v.Name]
			if !slices.Contains(wantPlugin, q) {
				t.Errorf("variable %s picks %q data sources, want one of %v", v.Name, q, wantPlugin)
			}
		case "query":
			sm := labelValuesQuery.FindStringSubmatch(q)
			if sm == nil {
				t.Errorf("variable %s query %q is not label_values(selector, label)", v.Name, q)
				continue
			}
			if err := checkExpr(always, sm[1]); err != nil {
				t.Errorf("variable %s: %v (with CHAT_METRICS_TENANT_LABEL=false)", v.Name, err)
			}
			vss, err := selectors(sm[1])
			if err != nil || len(vss) != 1 {
				t.Errorf("variable %s selector %q: %v", v.Name, sm[1], err)
				continue
			}
			if slices.Contains(tenantFamilies, vss[0].Name) {
				t.Errorf("variable %s reads %s, which CHAT_METRICS_TENANT_LABEL=false switches off", v.Name, vss[0].Name)
			}
			label := q[strings.LastIndex(q, ",")+1 : len(q)-1]
			label = strings.TrimSpace(label)
			if label != v.Name {
				t.Errorf("variable %s takes the values of label %q, want %q", v.Name, label, v.Name)
			}
			if v.Name == "tenant" && metricWith(always, vss[0].Name, map[string]string{"tenant": limitedTenant}) == nil {
				t.Errorf("variable tenant reads %s, which has no series of the loaded tenant %s", vss[0].Name, limitedTenant)
			}
			// Variables that may have no value (no namespace label outside Kubernetes) must
			// still match every series when "All" is chosen.
			if v.AllValue != ".*" && v.AllValue != ".+" {
				t.Errorf("variable %s allValue %q, want .* or .+", v.Name, v.AllValue)
			}
			if v.Name == "namespace" && v.AllValue != ".*" {
				t.Errorf("variable namespace allValue %q, want .* (series scraped outside Kubernetes have no namespace)", v.AllValue)
			}
		}
	}
	if !maps.Equal(got, want) {
		t.Errorf("variables %v, want %v", got, want)
	}
}

func TestDashboardQueriesSelectExportedMetrics(t *testing.T) {
	d, raw := readDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Errorf("dashboard title %q uid %q, want both", d.Title, d.UID)
	}
	families := exportedFamilies(t)
	var exprs int
	for _, p := range d.panels() {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no targets", p.Title)
		}
		for _, target := range p.Targets {
			if target.Expr == "" {
				continue // a trace query: TestDashboardLeadsFromSlowTenantToTraces
			}
			exprs++
			if !strings.Contains(string(p.Datasource), "${datasource}") || !strings.Contains(string(target.Datasource), "${datasource}") {
				t.Errorf("panel %q datasource %s, target %s, want the ${datasource} variable", p.Title, p.Datasource, target.Datasource)
			}
			if err := checkExpr(families, target.Expr); err != nil {
				t.Errorf("panel %q: %v", p.Title, err)
			}
			vss, err := selectors(target.Expr)
			if err != nil {
				continue // reported by checkExpr
			}
			// The variables apply to every query.
			for _, vs := range vss {
				for name, want := range map[string]string{"namespace": "chat", "job": "support-chat"} {
					if lm := matcher(vs, name); lm == nil || lm.Type != labels.MatchRegexp || lm.Value != want {
						t.Errorf("panel %q selects %s without %s=~\"$%s\"", p.Title, vs.Name, name, name)
					}
				}
				// Latency panels of requests show exemplars, the way to their traces.
				if (vs.Name == "chat_http_request_duration_seconds_bucket" || vs.Name == "chat_tenant_http_request_duration_seconds_bucket") && !target.Exemplar {
					t.Errorf("panel %q shows %s without exemplars", p.Title, vs.Name)
				}
			}
		}
	}
	if exprs == 0 {
		t.Error("dashboard has no queries")
	}
	// Every service family shows somewhere on the dashboard.
	for _, name := range serviceFamilies {
		if !strings.Contains(string(raw), name) {
			t.Errorf("dashboard shows nothing of %s", name)
		}
	}
}

// TestDashboardLeadsFromSlowTenantToTraces follows the operator's path: a panel of the
// slowest tenants links each tenant to a panel of that tenant's slowest routes, which shows
// exemplars (trace ids) of the per-tenant histogram; a traces panel on the $traces data source
// lists the tenant's slow server spans.
func TestDashboardLeadsFromSlowTenantToTraces(t *testing.T) {
	d, _ := readDashboard(t)
	byID := map[int]grafanaPanel{}
	for _, p := range d.panels() {
		byID[p.ID] = p
	}
	linkRE := regexp.MustCompile(`^/d/` + regexp.QuoteMeta(d.UID) + `/[a-z0-9-]+\?(.*)$`)
	var tenants, routes *grafanaPanel
	for _, p := range d.panels() {
		if len(p.Targets) != 1 || !strings.Contains(p.Targets[0].Expr, "chat_tenant_http_request_duration_seconds_bucket") ||
			!regexp.MustCompile(`by \(tenant, le\)`).MatchString(p.Targets[0].Expr) {
			continue
		}
		for _, l := range p.FieldConfig.Defaults.Links {
			m := linkRE.FindStringSubmatch(l.URL)
			if m == nil {
				continue
			}
			q := m[1]
			for _, want := range []string{"var-tenant=${__field.labels.tenant}", "${__url_time_range}", "${namespace:queryparam}", "${job:queryparam}"} {
				if !strings.Contains(q, want) {
					t.Errorf("panel %q link %q lacks %s", p.Title, l.URL, want)
				}
			}
			view := regexp.MustCompile(`viewPanel=(\d+)`).FindStringSubmatch(q)
			if view == nil {
				t.Errorf("panel %q link %q opens no panel (viewPanel)", p.Title, l.URL)
				continue
			}
			id, _ := strconv.Atoi(view[1])
			if target, ok := byID[id]; ok {
				tenants, routes = &p, &target
			} else {
				t.Errorf("panel %q links to panel %d, which does not exist", p.Title, id)
			}
		}
	}
	if tenants == nil || routes == nil {
		t.Fatal("no panel of the slowest tenants (chat_tenant_http_request_duration_seconds by tenant) links to the panel of a tenant's routes")
	}
	if len(routes.Targets) != 1 {
		t.Fatalf("panel %q has %d targets, want 1", routes.Title, len(routes.Targets))
	}
	rt := routes.Targets[0]
	vss, err := selectors(rt.Expr)
	if err != nil || len(vss) != 1 || vss[0].Name != "chat_tenant_http_request_duration_seconds_bucket" {
		t.Fatalf("panel %q selects %v (err %v), want chat_tenant_http_request_duration_seconds_bucket", routes.Title, vss, err)
	}
	if lm := matcher(vss[0], "tenant"); lm == nil || lm.Type != labels.MatchRegexp || lm.Value != "demo-shop" {
		t.Errorf("panel %q does not filter on tenant=~\"$tenant\": %s", routes.Title, rt.Expr)
	}
	if !strings.Contains(rt.Expr, "by (method, route, le)") || !rt.Exemplar {
		t.Errorf("panel %q: %s exemplar %v, want p99 by method and route with exemplars", routes.Title, rt.Expr, rt.Exemplar)
	}

	var traces bool
	for _, p := range d.panels() {
		for _, target := range p.Targets {
			if target.Expr != "" {
				continue
			}
			traces = true
			for what, ds := range map[string]json.RawMessage{"panel": p.Datasource, "target": target.Datasource} {
				if !strings.Contains(string(ds), "${traces}") {
					t.Errorf("panel %q %s datasource %s, want the ${traces} variable", p.Title, what, ds)
				}
			}
			for _, want := range []string{"span." + string(telemetry.TenantKey), "${tenant:regex}", "kind = server"} {
				if !strings.Contains(target.Query, want) {
					t.Errorf("panel %q trace query %q lacks %s", p.Title, target.Query, want)
				}
			}
			if target.QueryType != "traceql" {
				t.Errorf("panel %q trace query type %q, want traceql", p.Title, target.QueryType)
			}
		}
	}
	if !traces {
		t.Error("no panel queries the $traces data source")
	}
}

// ruleFile is a Prometheus rules file.
type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func TestAlertsSelectExportedMetricsAndLinkRunbooks(t *testing.T) {
	raw, err := os.ReadFile(alertsPath)
	if err != nil {
		t.Fatal(err)
	}
	var rules ruleFile
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&rules); err != nil {
		t.Fatalf("%s is not a rules file: %v", alertsPath, err)
	}
	families := exportedFamilies(t)
	want := []string{"SupportChatHighErrorRatio", "SupportChatHighLatencyP99", "SupportChatNotReady",
		"SupportChatJWKSFailures", "SupportChatTenantFilesInvalid", "SupportChatMongoErrors",
		"SupportChatRedisDegraded", "SupportChatEventPublishFailures", "SupportChatSSEChurn",
		"SupportChatWebhookQueueLate", "SupportChatWebhookDeadDeliveries"}
	var got []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			got = append(got, r.Alert)
			t.Run(r.Alert, func(t *testing.T) {
				if err := checkExpr(families, r.Expr); err != nil {
					t.Error(err)
				}
				// chatd is whatever exports its metrics: no alert depends on how the job is named.
				vss, _ := selectors(r.Expr)
				for _, vs := range vss {
					if lm := matcher(vs, "job"); lm != nil {
						t.Errorf("selects %s by job (%s): the job's name is the operator's choice", vs.Name, lm)
					}
				}
				if _, err := model.ParseDuration(r.For); err != nil {
					t.Errorf("for %q: %v", r.For, err)
				}
				if s := r.Labels["severity"]; s != "critical" && s != "warning" {
					t.Errorf("severity %q, want critical or warning", s)
				}
				if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
					t.Errorf("annotations %v, want summary and description", r.Annotations)
				}
				wantURL := "https://github.com/supportchat/supportchat/blob/main/deploy/README.md#runbook-" + strings.ToLower(r.Alert)
				if r.Annotations["runbook_url"] != wantURL {
					t.Errorf("runbook_url = %q, want %q", r.Annotations["runbook_url"], wantURL)
				}
			})
		}
	}
	for _, name := range want {
		if !slices.Contains(got, name) {
			t.Errorf("alerts.yaml has no alert %s (has %v)", name, got)
		}
	}
}

// TestCheckExprCatchesMistakes keeps the checks above honest.
func TestCheckExprCatchesMistakes(t *testing.T) {
	families := exportedFamilies(t)
	for _, expr := range []string{
		`rate(chat_http_request_total[5m])`,                                      // misspelt family
		`sum(rate(chat_cache_requests_total{outcome="hit"}[5m]))`,                // wrong label
		`chat_http_requests_total_bucket`,                                        // a counter has no buckets
		`sum(rate(chat_http_requests_total[5m])`,                                 // unbalanced
		`sum(rate(chat_http_requests_total{tenant="$other"}[$__rate_interval]))`, // unknown variable
	} {
		if checkExpr(families, expr) == nil {
			t.Errorf("checkExpr(%q) = nil, want an error", expr)
		}
	}
	for _, expr := range []string{
		`histogram_quantile(0.99, sum by (le) (rate(chat_http_request_duration_seconds_bucket{job=~"$job"}[$__rate_interval])))`,
		`up == 0`,
		`go_gc_duration_seconds_count`,
	} {
		if err := checkExpr(families, expr); err != nil {
			t.Errorf("checkExpr(%q) = %v, want nil", expr, err)
		}
	}
}
