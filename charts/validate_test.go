package charts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// crdsDir holds the Prometheus Operator CRDs kubectl-validate checks the chart's custom
// resources against (testdata/crds/README.md says where they come from).
var crdsDir = filepath.Join("testdata", "crds")

// minKubeVersion is the lowest Kubernetes the chart supports (Chart.yaml kubeVersion).
const minKubeVersion = "1.27.0"

// kubectlValidatePath finds kubectl-validate: $KUBECTL_VALIDATE (the Makefile exports its pinned
// copy), then .tools/kubectl-validate-*/kubectl-validate (make tools), then PATH.
func kubectlValidatePath(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv("KUBECTL_VALIDATE"); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if paths, _ := filepath.Glob(filepath.Join("..", ".tools", "kubectl-validate-*", "kubectl-validate")); len(paths) > 0 {
		return paths[len(paths)-1]
	}
	if p, err := exec.LookPath("kubectl-validate"); err == nil {
		return p
	}
	tb.Fatal("kubectl-validate not found ($KUBECTL_VALIDATE, .tools/kubectl-validate-*/kubectl-validate or PATH): run `make tools` to install the pinned one")
	return ""
}

// kubectlValidate validates the manifests in file against Kubernetes version's OpenAPI schemas
// built into kubectl-validate and the CRDs of crdsDir, offline: it is never given a cluster.
func kubectlValidate(tb testing.TB, file, version string) (string, error) {
	tb.Helper()
	cmd := exec.Command(kubectlValidatePath(tb), file, "--version", version, "--local-crds", crdsDir) //nolint:gosec // the pinned tool on the test's own files
	cmd.Env = append(os.Environ(), "KUBECONFIG="+filepath.Join(tb.TempDir(), "no-cluster"), "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestKubectlValidate validates every ci/*.yaml render with kubectl-validate: native objects
// against Kubernetes 1.30's schemas (the newest kubectl-validate v0.0.4 carries, so no network),
// and rendered for the chart's minimum Kubernetes against 1.27's (without the preStop sleep,
// which needs 1.30); ServiceMonitor and PrometheusRule against the vendored CRDs.
func TestKubectlValidate(t *testing.T) {
	for _, name := range ciValuesFiles(t) {
		t.Run(name+"/1.30", func(t *testing.T) {
			file := filepath.Join(t.TempDir(), name+".yaml")
			if err := os.WriteFile(file, []byte(renderCI(t, name).Raw), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := kubectlValidate(t, file, "1.30"); err != nil {
				t.Errorf("kubectl-validate --version 1.30 of ci/%s.yaml: %v\n%s", name, err, out)
			}
		})
		t.Run(name+"/"+minKubeVersion, func(t *testing.T) {
			out, err := runHelm(t, "template", releaseName, chartDir, "--namespace", namespace, "--kube-version", minKubeVersion,
				"-f", filepath.Join(chartDir, "ci", name+".yaml"), "--set", "preStopSleepSeconds=0")
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), name+".yaml")
			if err := os.WriteFile(file, []byte(out), 0o600); err != nil {
				t.Fatal(err)
			}
			if out, err := kubectlValidate(t, file, "1.27"); err != nil {
				t.Errorf("kubectl-validate --version 1.27 of ci/%s.yaml rendered for %s: %v\n%s", name, minKubeVersion, err, out)
			}
		})
	}

	// The validator is live: a misspelt ServiceMonitor field (checked by the vendored CRD) and a
	// preStop sleep on 1.27 are refused.
	ha := renderCI(t, "ha").Raw
	for _, tc := range []struct{ name, from, to, version, want string }{
		{"an unknown ServiceMonitor field", "\n      interval: 30s\n", "\n      intervall: 30s\n", "1.30", "intervall"},
		{"a preStop sleep on 1.27", "", "", "1.27", "preStop.sleep"},
	} {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			doc := ha
			if tc.from != "" {
				if !strings.Contains(doc, tc.from) {
					t.Fatalf("ci/ha.yaml render lacks %q", tc.from)
				}
				doc = strings.Replace(doc, tc.from, tc.to, 1)
			}
			file := filepath.Join(t.TempDir(), "bad.yaml")
			if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := kubectlValidate(t, file, tc.version)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Errorf("kubectl-validate --version %s accepted %s (err %v):\n%s", tc.version, tc.name, err, out)
			}
		})
	}
}

// TestPodSecurityRestricted runs the checks of the restricted Pod Security Standard, from the
// admission controller's own library (k8s.io/pod-security-admission), on every pod template the
// chart renders (the Deployment's and the helm test Pod) with every ci/*.yaml, at the newest
// policy version and at the chart's minimum Kubernetes.
func TestPodSecurityRestricted(t *testing.T) {
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	versions := []psaapi.Version{psaapi.LatestVersion(), psaapi.MajorMinorVersion(1, 27)}
	restricted := func(meta *metav1.ObjectMeta, spec *corev1.PodSpec, v psaapi.Version) policy.AggregateCheckResult {
		return policy.AggregateCheckResults(evaluator.EvaluatePod(psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: v}, meta, spec))
	}
	templates := 0
	for _, name := range ciValuesFiles(t) {
		m := renderCI(t, name)
		pods := map[string]*corev1.PodTemplateSpec{"Deployment " + m.deployment(t).Name: &m.deployment(t).Spec.Template}
		for i := range m.Pods {
			pods["Pod "+m.Pods[i].Name] = &corev1.PodTemplateSpec{ObjectMeta: m.Pods[i].ObjectMeta, Spec: m.Pods[i].Spec}
		}
		for what, pod := range pods {
			templates++
			for _, v := range versions {
				if res := restricted(&pod.ObjectMeta, &pod.Spec, v); !res.Allowed {
					t.Errorf("ci/%s.yaml: %s violates restricted:%s: %s", name, what, v, res.ForbiddenDetail())
				}
			}
		}
	}
	if templates < 2*len(ciValuesFiles(t)) {
		t.Errorf("checked %d pod templates, want the Deployment's and the test Pod of each ci file", templates)
	}

	// The check is live: the chart's pod with privilege escalation allowed is refused.
	pod := renderCI(t, "defaults").deployment(t).Spec.Template.DeepCopy()
	escalate := true
	pod.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = &escalate
	if res := restricted(&pod.ObjectMeta, &pod.Spec, psaapi.LatestVersion()); res.Allowed {
		t.Error("restricted allows a container with allowPrivilegeEscalation: true")
	}
}
