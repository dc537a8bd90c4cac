package charts

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const (
	chartDir    = "support-chat"
	releaseName = "rel"
	namespace   = "chat"
	// kubeVersion is passed to helm template: a helm built with `go install` defaults to v1.20,
	// below the chart's kubeVersion constraint.
	kubeVersion = "1.31.0"
)

// helmPath finds helm: $HELM, then the repository's .tools/bin (make tools), then PATH.
func helmPath(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("HELM"); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := filepath.Abs(filepath.Join("..", ".tools", "bin", "helm")); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("helm"); err == nil {
		return p
	}
	tb.Fatal("helm not found ($HELM, .tools/bin/helm or PATH): run `make tools` to install the pinned helm")
	return ""
}

// runHelm runs helm with args and returns its stdout, or an error carrying its stderr.
func runHelm(tb testing.TB, args ...string) (string, error) {
	tb.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(helmPath(tb), args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// ciValuesFiles lists charts/support-chat/ci/*.yaml by base name without extension.
func ciValuesFiles(tb testing.TB) []string {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join(chartDir, "ci", "*.yaml"))
	if err != nil || len(paths) == 0 {
		tb.Fatalf("no values files in %s/ci (err %v)", chartDir, err)
	}
	var names []string
	for _, p := range paths {
		names = append(names, strings.TrimSuffix(filepath.Base(p), ".yaml"))
	}
	return names
}

// manifests is one rendering of the chart: documents decoded strictly into typed objects.
type manifests struct {
	Raw             string
	Deployments     []appsv1.Deployment
	Services        []corev1.Service
	ServiceAccounts []corev1.ServiceAccount
	ConfigMaps      []corev1.ConfigMap
	Secrets         []corev1.Secret
	Pods            []corev1.Pod // helm test hooks
	HPAs            []autoscalingv2.HorizontalPodAutoscaler
	PDBs            []policyv1.PodDisruptionBudget
	NetworkPolicies []networkingv1.NetworkPolicy
	Ingresses       []networkingv1.Ingress
	ServiceMonitors []serviceMonitor
	PrometheusRules []prometheusRule
}

// serviceMonitor is the part of monitoring.coreos.com/v1 ServiceMonitor the chart renders.
type serviceMonitor struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		NamespaceSelector struct {
			MatchNames []string `json:"matchNames"`
		} `json:"namespaceSelector"`
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port              string           `json:"port"`
			Path              string           `json:"path"`
			Interval          string           `json:"interval"`
			ScrapeTimeout     string           `json:"scrapeTimeout"`
			Relabelings       []map[string]any `json:"relabelings,omitempty"`
			MetricRelabelings []map[string]any `json:"metricRelabelings,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// prometheusRule is monitoring.coreos.com/v1 PrometheusRule.
type prometheusRule struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            ruleFile          `json:"spec"`
}

// ruleFile is a Prometheus rules file (deploy/prometheus/alerts.yaml), also a PrometheusRule spec.
type ruleFile struct {
	Groups []struct {
		Name        string            `json:"name"`
		Interval    string            `json:"interval,omitempty"`
		Limit       int               `json:"limit,omitempty"`
		QueryOffset string            `json:"query_offset,omitempty"`
		Labels      map[string]string `json:"labels,omitempty"`
		Rules       []struct {
			Alert         string            `json:"alert,omitempty"`
			Record        string            `json:"record,omitempty"`
			Expr          string            `json:"expr"`
			For           string            `json:"for,omitempty"`
			KeepFiringFor string            `json:"keep_firing_for,omitempty"`
			Labels        map[string]string `json:"labels,omitempty"`
			Annotations   map[string]string `json:"annotations,omitempty"`
		} `json:"rules"`
	} `json:"groups"`
}

var (
	renderMu    sync.Mutex
	renderCache = map[string]*manifests{}
)

// renderCI renders the chart with ci/<name>.yaml once per test binary run.
func renderCI(tb testing.TB, name string) *manifests {
	tb.Helper()
	return renderCached(tb, name, "-f", filepath.Join(chartDir, "ci", name+".yaml"))
}

// renderCached renders the chart with helm template args, caching by key.
func renderCached(tb testing.TB, key string, args ...string) *manifests {
	tb.Helper()
	renderMu.Lock()
	defer renderMu.Unlock()
	if m, ok := renderCache[key]; ok {
		return m
	}
	out, err := runHelm(tb, append([]string{"template", releaseName, chartDir,
		"--namespace", namespace, "--kube-version", kubeVersion}, args...)...)
	if err != nil {
		tb.Fatal(err)
	}
	m, err := decodeManifests(out)
	if err != nil {
		tb.Fatalf("render %s: %v", key, err)
	}
	renderCache[key] = m
	return m
}

var docSeparator = regexp.MustCompile(`(?m)^---\s*$`)

// decodeManifests decodes every document strictly: an unknown or misspelled field is an error.
func decodeManifests(out string) (*manifests, error) {
	m := &manifests{Raw: out}
	var errs []error
	for _, doc := range docSeparator.Split(out, -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			errs = append(errs, fmt.Errorf("document is not YAML: %w\n%s", err, doc))
			continue
		}
		var target any
		wantAPI := map[string]string{
			"Deployment": "apps/v1", "Service": "v1", "ServiceAccount": "v1", "ConfigMap": "v1",
			"Secret": "v1", "Pod": "v1", "HorizontalPodAutoscaler": "autoscaling/v2",
			"PodDisruptionBudget": "policy/v1", "NetworkPolicy": "networking.k8s.io/v1",
			"Ingress": "networking.k8s.io/v1", "ServiceMonitor": "monitoring.coreos.com/v1",
			"PrometheusRule": "monitoring.coreos.com/v1",
		}[tm.Kind]
		if wantAPI == "" {
			errs = append(errs, fmt.Errorf("unexpected kind %q (add it to the test's decoder)", tm.Kind))
			continue
		}
		if tm.APIVersion != wantAPI {
			errs = append(errs, fmt.Errorf("%s apiVersion = %q, want %q", tm.Kind, tm.APIVersion, wantAPI))
		}
		decode := func(ptr any) { target = ptr }
		switch tm.Kind {
		case "Deployment":
			decode(&appsv1.Deployment{})
		case "Service":
			decode(&corev1.Service{})
		case "ServiceAccount":
			decode(&corev1.ServiceAccount{})
		case "ConfigMap":
			decode(&corev1.ConfigMap{})
		case "Secret":
			decode(&corev1.Secret{})
		case "Pod":
			decode(&corev1.Pod{})
		case "HorizontalPodAutoscaler":
			decode(&autoscalingv2.HorizontalPodAutoscaler{})
		case "PodDisruptionBudget":
			decode(&policyv1.PodDisruptionBudget{})
		case "NetworkPolicy":
			decode(&networkingv1.NetworkPolicy{})
		case "Ingress":
			decode(&networkingv1.Ingress{})
		case "ServiceMonitor":
			decode(&serviceMonitor{})
		case "PrometheusRule":
			decode(&prometheusRule{})
		}
		if err := yaml.UnmarshalStrict([]byte(doc), target); err != nil {
			errs = append(errs, fmt.Errorf("%s does not decode strictly: %w\n%s", tm.Kind, err, doc))
			continue
		}
		switch o := target.(type) {
		case *appsv1.Deployment:
			m.Deployments = append(m.Deployments, *o)
		case *corev1.Service:
			m.Services = append(m.Services, *o)
		case *corev1.ServiceAccount:
			m.ServiceAccounts = append(m.ServiceAccounts, *o)
		case *corev1.ConfigMap:
			m.ConfigMaps = append(m.ConfigMaps, *o)
		case *corev1.Secret:
			m.Secrets = append(m.Secrets, *o)
		case *corev1.Pod:
			m.Pods = append(m.Pods, *o)
		case *autoscalingv2.HorizontalPodAutoscaler:
			m.HPAs = append(m.HPAs, *o)
		case *policyv1.PodDisruptionBudget:
			m.PDBs = append(m.PDBs, *o)
		case *networkingv1.NetworkPolicy:
			m.NetworkPolicies = append(m.NetworkPolicies, *o)
		case *networkingv1.Ingress:
			m.Ingresses = append(m.Ingresses, *o)
		case *serviceMonitor:
			m.ServiceMonitors = append(m.ServiceMonitors, *o)
		case *prometheusRule:
			m.PrometheusRules = append(m.PrometheusRules, *o)
		}
	}
	return m, errors.Join(errs...)
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// deployment returns the one Deployment of a rendering.
func (m *manifests) deployment(tb testing.TB) *appsv1.Deployment {
	tb.Helper()
	if len(m.Deployments) != 1 {
		tb.Fatalf("rendered %d Deployments, want 1", len(m.Deployments))
	}
	return &m.Deployments[0]
}

// chatd returns the chatd container of the Deployment.
func (m *manifests) chatd(tb testing.TB) *corev1.Container {
	tb.Helper()
	d := m.deployment(tb)
	for i := range d.Spec.Template.Spec.Containers {
		if c := &d.Spec.Template.Spec.Containers[i]; c.Name == "chatd" {
			return c
		}
	}
	tb.Fatal("Deployment has no container named chatd")
	return nil
}

// configMap returns the ConfigMap whose name ends with suffix, or nil.
func (m *manifests) configMap(suffix string) *corev1.ConfigMap {
	for i := range m.ConfigMaps {
		if strings.HasSuffix(m.ConfigMaps[i].Name, suffix) {
			return &m.ConfigMaps[i]
		}
	}
	return nil
}

// ciValues reads ci/<name>.yaml into a generic map.
func ciValues(tb testing.TB, name string) map[string]any {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(chartDir, "ci", name+".yaml"))
	if err != nil {
		tb.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(b, &v); err != nil {
		tb.Fatalf("ci/%s.yaml: %v", name, err)
	}
	return v
}

// lookup walks a dotted path through nested maps; nil when absent.
func lookup(v map[string]any, path string) any {
	var cur any = v
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}
