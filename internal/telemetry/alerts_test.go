package telemetry_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// alertTestsPath holds the promtool unit tests of alertsPath.
var alertTestsPath = filepath.Join("..", "..", "deploy", "prometheus", "alerts_test.yaml")

// promtoolPath finds promtool: $PROMTOOL (the Makefile exports its pinned copy), then
// .tools/promtool-*/promtool (make tools), then PATH.
func promtoolPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("PROMTOOL"); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if paths, _ := filepath.Glob(filepath.Join("..", "..", ".tools", "promtool-*", "promtool")); len(paths) > 0 {
		return paths[len(paths)-1]
	}
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	t.Fatal("promtool not found ($PROMTOOL, .tools/promtool-*/promtool or PATH): run `make tools` to install the pinned promtool")
	return ""
}

// alertUnitTests is the part of a promtool unit test file this test reads.
type alertUnitTests struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name          string `yaml:"name"`
		AlertRuleTest []struct {
			Alertname string           `yaml:"alertname"`
			ExpAlerts []map[string]any `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// TestAlertUnitTests runs `promtool check rules` on alerts.yaml and `promtool test rules` on
// alerts_test.yaml, and requires every alert to have a case where it fires and one where it must
// stay quiet.
func TestAlertUnitTests(t *testing.T) {
	promtool := promtoolPath(t)
	for _, args := range [][]string{{"check", "rules", alertsPath}, {"test", "rules", alertTestsPath}} {
		out, err := exec.Command(promtool, args...).CombinedOutput() //nolint:gosec // the pinned promtool on the repository's files
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	var rules ruleFile
	if err := yaml.Unmarshal(mustReadFile(t, alertsPath), &rules); err != nil {
		t.Fatal(err)
	}
	var tests alertUnitTests
	if err := yaml.Unmarshal(mustReadFile(t, alertTestsPath), &tests); err != nil {
		t.Fatalf("%s: %v", alertTestsPath, err)
	}
	if !slices.Equal(tests.RuleFiles, []string{filepath.Base(alertsPath)}) {
		t.Errorf("%s rule_files = %v, want [%s]", alertTestsPath, tests.RuleFiles, filepath.Base(alertsPath))
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				quiet[a.Alertname] = true
			}
		}
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if !fires[r.Alert] {
				t.Errorf("alert %s has no promtool test in which it fires", r.Alert)
			}
			if !quiet[r.Alert] {
				t.Errorf("alert %s has no promtool test in which it stays quiet", r.Alert)
			}
		}
	}
}

func mustReadFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
