package telemetry_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
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

// grafanaPanel is the part of a Grafana panel this test reads; rows nest panels.
type grafanaPanel struct {
	Title      string          `json:"title"`
	Type       string          `json:"type"`
	Datasource json.RawMessage `json:"datasource"`
	Targets    []struct {
		Expr       string          `json:"expr"`
		Datasource json.RawMessage `json:"datasource"`
	} `json:"targets"`
	Panels []grafanaPanel `json:"panels"`
}

// grafanaDashboard is the part of a Grafana dashboard this test reads.
type grafanaDashboard struct {
	Title      string         `json:"title"`
	UID        string         `json:"uid"`
	Panels     []grafanaPanel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

func TestDashboardQueriesSelectExportedMetrics(t *testing.T) {
	raw, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d grafanaDashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s is not JSON: %v", dashboardPath, err)
	}
	if d.Title == "" || d.UID == "" {
		t.Errorf("dashboard title %q uid %q, want both", d.Title, d.UID)
	}
	families := exportedFamilies(t)

	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			var s string
			if json.Unmarshal(v.Query, &s) != nil {
				t.Errorf("variable %s: unreadable query %s", v.Name, v.Query)
				continue
			}
			q.Query = s
		}
		sm := labelValuesQuery.FindStringSubmatch(q.Query)
		if sm == nil {
			t.Errorf("variable %s query %q is not label_values(selector, label)", v.Name, q.Query)
			continue
		}
		if err := checkExpr(families, sm[1]); err != nil {
			t.Errorf("variable %s: %v", v.Name, err)
		}
	}
	if vars["datasource"] != "datasource" || vars["tenant"] != "query" {
		t.Errorf("variables %v, want datasource (datasource) and tenant (query)", vars)
	}

	var exprs int
	var walk func(panels []grafanaPanel)
	walk = func(panels []grafanaPanel) {
		for _, p := range panels {
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if !strings.Contains(string(p.Datasource), "${datasource}") {
				t.Errorf("panel %q datasource %s, want the ${datasource} variable", p.Title, p.Datasource)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no targets", p.Title)
			}
			for _, target := range p.Targets {
				exprs++
				if err := checkExpr(families, target.Expr); err != nil {
					t.Errorf("panel %q: %v", p.Title, err)
				}
			}
		}
	}
	walk(d.Panels)
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
		"SupportChatJWKSFailures", "SupportChatTenantFilesInvalid", "SupportChatMongoErrors"}
	var got []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			got = append(got, r.Alert)
			t.Run(r.Alert, func(t *testing.T) {
				if err := checkExpr(families, r.Expr); err != nil {
					t.Error(err)
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
