package charts

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"
)

// The image contract, shared by the Dockerfile and the chart.
const (
	binaryPath = "/usr/local/bin/chatd"
	imageUID   = 65532
	tenantsDir = "/etc/chatd/tenants"
)

func TestLintStrict(t *testing.T) {
	for _, name := range ciValuesFiles(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if out, err := runHelm(t, "lint", "--strict", chartDir, "--kube-version", kubeVersion,
				"-f", filepath.Join(chartDir, "ci", name+".yaml")); err != nil {
				t.Errorf("helm lint --strict with ci/%s.yaml fails:\n%s\n%v", name, out, err)
			}
		})
	}
}

func TestCIValuesFilesExist(t *testing.T) {
	names := ciValuesFiles(t)
	for _, want := range []string{"defaults", "ha", "existing-secret"} {
		if !slices.Contains(names, want) {
			t.Errorf("ci/%s.yaml is missing; have %v", want, names)
		}
	}
}

func TestPodRunsRestricted(t *testing.T) {
	for _, name := range ciValuesFiles(t) {
		t.Run(name, func(t *testing.T) {
			m := renderCI(t, name)
			pod := m.deployment(t).Spec.Template.Spec
			psc := pod.SecurityContext
			if psc == nil {
				t.Fatal("pod securityContext is missing")
			}
			if psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
				t.Error("pod securityContext.runAsNonRoot is not true")
			}
			for field, got := range map[string]*int64{"runAsUser": psc.RunAsUser, "runAsGroup": psc.RunAsGroup, "fsGroup": psc.FSGroup} {
				if got == nil || *got != imageUID {
					t.Errorf("pod securityContext.%s = %v, want %d (the image's USER)", field, deref(got), imageUID)
				}
			}
			if psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("pod seccompProfile = %+v, want RuntimeDefault", psc.SeccompProfile)
			}
			if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
				t.Error("pod automountServiceAccountToken is not false")
			}
			for _, sa := range m.ServiceAccounts {
				if sa.AutomountServiceAccountToken == nil || *sa.AutomountServiceAccountToken {
					t.Errorf("ServiceAccount %s automountServiceAccountToken is not false", sa.Name)
				}
			}

			c := m.chatd(t)
			sc := c.SecurityContext
			if sc == nil {
				t.Fatal("chatd securityContext is missing")
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Error("chatd allowPrivilegeEscalation is not false")
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Error("chatd readOnlyRootFilesystem is not true")
			}
			if sc.Privileged != nil && *sc.Privileged {
				t.Error("chatd is privileged")
			}
			if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
				t.Errorf("chatd capabilities = %+v, want drop [ALL] and no add", sc.Capabilities)
			}

			tmpVolume := ""
			for _, vm := range c.VolumeMounts {
				if vm.MountPath == "/tmp" {
					tmpVolume = vm.Name
				}
			}
			if v := volume(pod.Volumes, tmpVolume); tmpVolume == "" || v == nil || v.EmptyDir == nil {
				t.Error("/tmp is not mounted from an emptyDir (needed with readOnlyRootFilesystem)")
			}
		})
	}
}

func TestProbesAndResources(t *testing.T) {
	for _, name := range ciValuesFiles(t) {
		t.Run(name, func(t *testing.T) {
			c := renderCI(t, name).chatd(t)
			for _, p := range []struct {
				kind  string
				probe *corev1.Probe
				path  string
			}{
				{"livenessProbe", c.LivenessProbe, "/healthz"},
				{"readinessProbe", c.ReadinessProbe, "/readyz"},
				{"startupProbe", c.StartupProbe, "/healthz"},
			} {
				if p.probe == nil || p.probe.HTTPGet == nil {
					t.Errorf("%s is missing or not an httpGet probe", p.kind)
					continue
				}
				if p.probe.HTTPGet.Path != p.path {
					t.Errorf("%s path = %q, want %q", p.kind, p.probe.HTTPGet.Path, p.path)
				}
				if port := p.probe.HTTPGet.Port.String(); port != "http" && port != "8080" {
					t.Errorf("%s port = %s, want the http (8080) port", p.kind, port)
				}
			}
			for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
				if q, ok := c.Resources.Requests[r]; !ok || q.IsZero() {
					t.Errorf("resources.requests.%s is not set", r)
				}
			}
			if q, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok || q.IsZero() {
				t.Error("resources.limits.memory is not set")
			}
			// Ephemeral storage: requested for scheduling, limited so a runaway /tmp or log
			// evicts this pod rather than filling the node; the limit leaves room for /tmp.
			req, limit := c.Resources.Requests[corev1.ResourceEphemeralStorage], c.Resources.Limits[corev1.ResourceEphemeralStorage]
			if req.IsZero() || limit.IsZero() || limit.Cmp(req) < 0 {
				t.Errorf("ephemeral-storage request %s limit %s, want both, the limit at least the request", req.String(), limit.String())
			}
			pod := renderCI(t, name).deployment(t).Spec.Template.Spec
			for _, v := range pod.Volumes {
				if v.EmptyDir != nil && (v.EmptyDir.SizeLimit == nil || v.EmptyDir.SizeLimit.Cmp(limit) >= 0) {
					t.Errorf("emptyDir %s sizeLimit %v, want one below the ephemeral-storage limit %s", v.Name, v.EmptyDir.SizeLimit, limit.String())
				}
			}
		})
	}
}

func TestShutdownFitsGracePeriod(t *testing.T) {
	for _, name := range ciValuesFiles(t) {
		t.Run(name, func(t *testing.T) {
			m := renderCI(t, name)
			pod := m.deployment(t).Spec.Template.Spec
			cfg := m.configMap("-config")
			if cfg == nil {
				t.Fatal("no config ConfigMap")
			}
			shutdown, err := time.ParseDuration(cfg.Data["CHAT_SHUTDOWN_TIMEOUT"])
			if err != nil {
				t.Fatalf("CHAT_SHUTDOWN_TIMEOUT: %v", err)
			}
			var preStop time.Duration
			if l := m.chatd(t).Lifecycle; l != nil && l.PreStop != nil {
				if l.PreStop.Sleep == nil {
					t.Error("preStop is not the native sleep action (the distroless image has no shell)")
				} else {
					preStop = time.Duration(l.PreStop.Sleep.Seconds) * time.Second
				}
			}
			grace := time.Duration(deref(pod.TerminationGracePeriodSeconds)) * time.Second
			if grace <= preStop+shutdown {
				t.Errorf("terminationGracePeriodSeconds %v <= preStop %v + CHAT_SHUTDOWN_TIMEOUT %v: SIGKILL would cut in-flight requests", grace, preStop, shutdown)
			}
		})
	}
}

func TestRollsOnConfigAndSecretButNotOnTenants(t *testing.T) {
	base := renderCI(t, "defaults")
	ann := base.deployment(t).Spec.Template.Annotations
	var checksums []string
	for k := range ann {
		if strings.HasPrefix(k, "checksum/") {
			checksums = append(checksums, k)
		}
	}
	slices.Sort(checksums)
	if want := []string{"checksum/config", "checksum/secret"}; !slices.Equal(checksums, want) {
		t.Errorf("pod template checksum annotations = %v, want %v (never the tenants ConfigMap: tenant files are hot-reloaded)", checksums, want)
	}
	for _, name := range ciValuesFiles(t) {
		a := renderCI(t, name).deployment(t).Spec.Template.Annotations
		if a["checksum/config"] == "" || a["checksum/secret"] == "" {
			t.Errorf("ci/%s: checksum/config or checksum/secret annotation missing: %v", name, a)
		}
	}

	tenantFile := filepath.Join(t.TempDir(), "other-shop.yaml")
	if err := os.WriteFile(tenantFile, []byte("id: other-shop\nname: Other Shop\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withTenant := renderCached(t, "defaults+tenant", "-f", filepath.Join(chartDir, "ci", "defaults.yaml"),
		"--set-file", `tenants.other-shop\.yaml=`+tenantFile)
	if got := withTenant.configMap("-tenants"); got == nil || got.Data["other-shop.yaml"] == "" {
		t.Fatalf("--set-file tenants.other-shop\\.yaml did not reach the tenants ConfigMap: %+v", got)
	}
	if !reflect.DeepEqual(base.deployment(t).Spec.Template, withTenant.deployment(t).Spec.Template) {
		t.Error("adding a tenant file changed the pod template: tenant changes must not roll the pods")
	}

	withConfig := renderCached(t, "defaults+loglevel", "-f", filepath.Join(chartDir, "ci", "defaults.yaml"),
		"--set", "config.logLevel=debug", "--set", "redis.url=redis://other:6379/0")
	got := withConfig.deployment(t).Spec.Template.Annotations
	if got["checksum/config"] == ann["checksum/config"] {
		t.Error("changing config.logLevel kept checksum/config: config changes must roll the pods")
	}
	if got["checksum/secret"] == ann["checksum/secret"] {
		t.Error("changing redis.url kept checksum/secret: secret changes must roll the pods")
	}
}

func TestTenantsMountedAsWatchableFolder(t *testing.T) {
	for _, name := range ciValuesFiles(t) {
		t.Run(name, func(t *testing.T) {
			m := renderCI(t, name)
			pod := m.deployment(t).Spec.Template.Spec
			c := m.chatd(t)
			var mount *corev1.VolumeMount
			for i := range c.VolumeMounts {
				if c.VolumeMounts[i].MountPath == tenantsDir {
					mount = &c.VolumeMounts[i]
				}
			}
			if mount == nil {
				t.Fatalf("nothing mounted at %s", tenantsDir)
			}
			if mount.SubPath != "" {
				t.Error("tenants mounted with subPath: ConfigMap updates would never reach the pod")
			}
			v := volume(pod.Volumes, mount.Name)
			if v == nil || v.ConfigMap == nil {
				t.Fatalf("tenants volume %q is not a ConfigMap volume", mount.Name)
			}
			if env := envValue(m, "CHAT_TENANTS_DIR"); env != tenantsDir {
				t.Errorf("CHAT_TENANTS_DIR = %q, want the mount path %q", env, tenantsDir)
			}
			wantCM := v.ConfigMap.Name
			if existing, _ := lookup(ciValues(t, name), "existingTenantsConfigMap").(string); existing != "" {
				if wantCM != existing {
					t.Errorf("tenants volume uses ConfigMap %q, want existingTenantsConfigMap %q", wantCM, existing)
				}
				if m.configMap("-tenants") != nil {
					t.Error("a tenants ConfigMap is rendered although existingTenantsConfigMap is set")
				}
				return
			}
			cm := m.configMap("-tenants")
			if cm == nil || cm.Name != wantCM {
				t.Fatalf("the tenants volume's ConfigMap %q is not rendered", wantCM)
			}
			if len(cm.Data) == 0 {
				t.Error("tenants ConfigMap is empty: /readyz answers 503 without tenants")
			}
			for file, content := range cm.Data {
				var tenant struct {
					ID string `json:"id"`
				}
				if err := yaml.Unmarshal([]byte(content), &tenant); err != nil || tenant.ID+".yaml" != file {
					t.Errorf("tenant file %s: id %q (err %v), want the file name without .yaml", file, tenant.ID, err)
				}
			}
		})
	}
}

func TestSelectorsMatch(t *testing.T) {
	for _, name := range ciValuesFiles(t) {
		t.Run(name, func(t *testing.T) {
			m := renderCI(t, name)
			d := m.deployment(t)
			sel := d.Spec.Selector.MatchLabels
			if len(sel) == 0 || len(d.Spec.Selector.MatchExpressions) > 0 {
				t.Fatalf("Deployment selector = %+v, want matchLabels only", d.Spec.Selector)
			}
			if !isSubset(sel, d.Spec.Template.Labels) {
				t.Errorf("pod labels %v do not carry the Deployment selector %v", d.Spec.Template.Labels, sel)
			}
			if len(m.Services) != 1 {
				t.Fatalf("rendered %d Services, want 1", len(m.Services))
			}
			svc := m.Services[0]
			if !maps.Equal(svc.Spec.Selector, sel) {
				t.Errorf("Service selector = %v, want the Deployment selector %v", svc.Spec.Selector, sel)
			}
			// The API and /metrics each have a port: the Ingress routes http, Prometheus scrapes metrics.
			var svcPorts []string
			for _, p := range svc.Spec.Ports {
				svcPorts = append(svcPorts, p.Name+"→"+p.TargetPort.String())
			}
			if want := []string{"http→http", "metrics→metrics"}; !slices.Equal(svcPorts, want) {
				t.Errorf("Service ports = %v, want %v (each targeting the container's port of its name)", svcPorts, want)
			}
			var containerPorts []string
			for _, p := range m.chatd(t).Ports {
				containerPorts = append(containerPorts, fmt.Sprintf("%s %d", p.Name, p.ContainerPort))
			}
			if want := []string{"http 8080", "metrics 9090"}; !slices.Equal(containerPorts, want) {
				t.Errorf("chatd ports = %v, want %v (CHAT_ADDR :8080, CHAT_METRICS_ADDR :9090)", containerPorts, want)
			}
			for name, want := range map[string]string{"CHAT_ADDR": ":8080", "CHAT_METRICS_ADDR": ":9090"} {
				if addr := envValue(m, name); addr != want {
					t.Errorf("%s = %q, want %q", name, addr, want)
				}
			}
			for _, pdb := range m.PDBs {
				if !maps.Equal(pdb.Spec.Selector.MatchLabels, sel) {
					t.Errorf("PDB selector = %v, want %v", pdb.Spec.Selector.MatchLabels, sel)
				}
			}
			for _, np := range m.NetworkPolicies {
				if !maps.Equal(np.Spec.PodSelector.MatchLabels, sel) {
					t.Errorf("NetworkPolicy podSelector = %v, want %v", np.Spec.PodSelector.MatchLabels, sel)
				}
			}
			for _, tsc := range d.Spec.Template.Spec.TopologySpreadConstraints {
				if tsc.LabelSelector == nil || !maps.Equal(tsc.LabelSelector.MatchLabels, sel) {
					t.Errorf("topologySpreadConstraint %s labelSelector = %+v, want %v", tsc.TopologyKey, tsc.LabelSelector, sel)
				}
			}
			for _, sm := range m.ServiceMonitors {
				if !isSubset(sm.Spec.Selector.MatchLabels, svc.Labels) {
					t.Errorf("ServiceMonitor selector %v does not select the Service (labels %v)", sm.Spec.Selector.MatchLabels, svc.Labels)
				}
				if len(sm.Spec.Endpoints) != 1 || sm.Spec.Endpoints[0].Port != "metrics" || sm.Spec.Endpoints[0].Path != "/metrics" {
					t.Errorf("ServiceMonitor endpoints = %+v, want port metrics path /metrics", sm.Spec.Endpoints)
				}
			}
			for _, ing := range m.Ingresses {
				for _, rule := range ing.Spec.Rules {
					for _, p := range rule.HTTP.Paths {
						if p.Backend.Service == nil || p.Backend.Service.Name != svc.Name || p.Backend.Service.Port.Name != "http" {
							t.Errorf("Ingress path %s backend = %+v, want Service %s port http", p.Path, p.Backend, svc.Name)
						}
					}
				}
			}
			for _, pod := range m.Pods {
				if isSubset(sel, pod.Labels) {
					t.Errorf("helm test Pod %s carries the selector labels: the Service would route to it", pod.Name)
				}
			}
		})
	}
}

func TestStandardLabels(t *testing.T) {
	m := renderCI(t, "ha")
	check := func(kind, name string, labels map[string]string) {
		for _, k := range []string{"app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/version",
			"app.kubernetes.io/managed-by", "helm.sh/chart"} {
			if labels[k] == "" {
				t.Errorf("%s %s has no %s label", kind, name, k)
			}
		}
	}
	check("Deployment", m.deployment(t).Name, m.deployment(t).Labels)
	for _, o := range m.Services {
		check("Service", o.Name, o.Labels)
	}
	for _, o := range m.ConfigMaps {
		check("ConfigMap", o.Name, o.Labels)
	}
	for _, o := range m.Secrets {
		check("Secret", o.Name, o.Labels)
	}
	for _, o := range m.HPAs {
		check("HorizontalPodAutoscaler", o.Name, o.Labels)
	}
	for _, o := range m.PDBs {
		check("PodDisruptionBudget", o.Name, o.Labels)
	}
	for _, o := range m.ServiceMonitors {
		check("ServiceMonitor", o.Metadata.Name, o.Metadata.Labels)
	}
	for _, o := range m.PrometheusRules {
		check("PrometheusRule", o.Metadata.Name, o.Metadata.Labels)
	}
}

func TestOptionalResources(t *testing.T) {
	tests := []struct {
		values string
		want   map[string]int
	}{
		{"defaults", map[string]int{"PodDisruptionBudget": 0, "HorizontalPodAutoscaler": 0, "NetworkPolicy": 0, "Ingress": 0,
			"ServiceMonitor": 0, "PrometheusRule": 0, "Secret": 1, "ServiceAccount": 1, "dashboard ConfigMap": 0, "helm test Pod": 1}},
		{"ha", map[string]int{"PodDisruptionBudget": 1, "HorizontalPodAutoscaler": 1, "NetworkPolicy": 1, "Ingress": 1,
			"ServiceMonitor": 1, "PrometheusRule": 1, "Secret": 1, "ServiceAccount": 1, "dashboard ConfigMap": 1, "helm test Pod": 1}},
		{"existing-secret", map[string]int{"PodDisruptionBudget": 0, "HorizontalPodAutoscaler": 0, "Secret": 0, "ServiceAccount": 0}},
	}
	for _, tt := range tests {
		t.Run(tt.values, func(t *testing.T) {
			m := renderCI(t, tt.values)
			dashboards := 0
			for _, cm := range m.ConfigMaps {
				if strings.HasSuffix(cm.Name, "-dashboard") {
					dashboards++
				}
			}
			got := map[string]int{
				"PodDisruptionBudget": len(m.PDBs), "HorizontalPodAutoscaler": len(m.HPAs),
				"NetworkPolicy": len(m.NetworkPolicies), "Ingress": len(m.Ingresses),
				"ServiceMonitor": len(m.ServiceMonitors), "PrometheusRule": len(m.PrometheusRules),
				"Secret": len(m.Secrets), "ServiceAccount": len(m.ServiceAccounts),
				"dashboard ConfigMap": dashboards, "helm test Pod": len(m.Pods),
			}
			for kind, want := range tt.want {
				if got[kind] != want {
					t.Errorf("ci/%s.yaml renders %d %s, want %d", tt.values, got[kind], kind, want)
				}
			}
			d := m.deployment(t)
			if len(m.HPAs) > 0 {
				if d.Spec.Replicas != nil {
					t.Errorf("Deployment sets replicas %d although an HPA owns the scale", *d.Spec.Replicas)
				}
				if ref := m.HPAs[0].Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != d.Name {
					t.Errorf("HPA scaleTargetRef = %+v, want Deployment %s", ref, d.Name)
				}
			} else if d.Spec.Replicas == nil {
				t.Error("Deployment has no replicas although autoscaling is off")
			}
		})
	}
}

func TestNetworkPolicyAllowsWhatChatdNeeds(t *testing.T) {
	m := renderCI(t, "ha")
	if len(m.NetworkPolicies) != 1 {
		t.Fatalf("ci/ha.yaml renders %d NetworkPolicies, want 1", len(m.NetworkPolicies))
	}
	np := m.NetworkPolicies[0]
	egress := map[string]bool{}
	for _, rule := range np.Spec.Egress {
		for _, p := range rule.Ports {
			egress[fmt.Sprintf("%s/%s", *p.Protocol, p.Port.String())] = true
		}
	}
	// ci/ha.yaml's Redis listens on 6380 (redis.url): the port comes from the URL.
	for _, want := range []string{"UDP/53", "TCP/53", "TCP/27017", "TCP/6380", "TCP/443", "TCP/4317", "TCP/4318", "TCP/8200"} {
		if !egress[want] {
			t.Errorf("NetworkPolicy egress does not allow %s (have %v)", want, slices.Sorted(maps.Keys(egress)))
		}
	}
	// The API's port admits its peers (the ingress controller); the metrics port only
	// networkPolicy.ingress.metricsFrom (Prometheus), never the API's peers.
	from := map[int][]networkingv1.NetworkPolicyPeer{}
	for _, rule := range np.Spec.Ingress {
		for _, p := range rule.Ports {
			from[p.Port.IntValue()] = append(from[p.Port.IntValue()], rule.From...)
		}
	}
	if len(from[8080]) == 0 {
		t.Error("NetworkPolicy ingress does not allow port 8080 from ci/ha.yaml's networkPolicy.ingress.from")
	}
	var wantMetrics []networkingv1.NetworkPolicyPeer
	raw, err := json.Marshal(lookup(ciValues(t, "ha"), "networkPolicy.ingress.metricsFrom"))
	if err != nil || json.Unmarshal(raw, &wantMetrics) != nil {
		t.Fatalf("ci/ha.yaml networkPolicy.ingress.metricsFrom %s is not a list of peers (%v)", raw, err)
	}
	if len(wantMetrics) == 0 || !reflect.DeepEqual(from[9090], wantMetrics) {
		t.Errorf("NetworkPolicy ingress to port 9090 (/metrics) from %+v, want exactly networkPolicy.ingress.metricsFrom %+v", from[9090], wantMetrics)
	}
}

// TestNetworkPolicyKeepsMetricsClosedByDefault: without networkPolicy.ingress.metricsFrom the
// NetworkPolicy has no rule for port 9090, so nothing reaches /metrics, while the API's port
// stays open to every source (networkPolicy.ingress.from is empty).
func TestNetworkPolicyKeepsMetricsClosedByDefault(t *testing.T) {
	m := renderCached(t, "np-defaults", "-f", filepath.Join(chartDir, "ci", "defaults.yaml"), "--set", "networkPolicy.enabled=true")
	if len(m.NetworkPolicies) != 1 {
		t.Fatalf("rendered %d NetworkPolicies, want 1", len(m.NetworkPolicies))
	}
	var ports []int
	for _, rule := range m.NetworkPolicies[0].Spec.Ingress {
		for _, p := range rule.Ports {
			ports = append(ports, p.Port.IntValue())
		}
		if len(rule.From) != 0 {
			t.Errorf("ingress rule %+v names peers, want every source on the API's port", rule)
		}
	}
	if !slices.Equal(ports, []int{8080}) {
		t.Errorf("NetworkPolicy ingress ports %v, want [8080] only", ports)
	}
}

func TestSecretsStayInSecrets(t *testing.T) {
	for _, name := range ciValuesFiles(t) {
		t.Run(name, func(t *testing.T) {
			v := ciValues(t, name)
			m := renderCI(t, name)
			var secretValues []string
			for _, path := range []string{"mongodb.uri", "redis.url"} {
				if s, _ := lookup(v, path).(string); s != "" {
					secretValues = append(secretValues, s)
					if u := regexp.MustCompile(`://[^:/@]*:([^@]+)@`).FindStringSubmatch(s); u != nil {
						secretValues = append(secretValues, u[1]) // the password alone
					}
				}
			}
			if len(secretValues) == 0 && lookup(v, "existingSecret") == nil {
				t.Fatalf("ci/%s.yaml sets neither connection strings nor existingSecret", name)
			}
			for _, cm := range m.ConfigMaps {
				for k, data := range cm.Data {
					for _, s := range secretValues {
						if strings.Contains(data, s) {
							t.Errorf("ConfigMap %s key %s contains the secret value %q", cm.Name, k, s)
						}
					}
				}
			}
			for _, e := range m.chatd(t).Env {
				for _, s := range secretValues {
					if strings.Contains(e.Value, s) {
						t.Errorf("env %s carries the secret value %q in plain text", e.Name, s)
					}
				}
			}

			env := map[string]*corev1.EnvVar{}
			for i, e := range m.chatd(t).Env {
				env[e.Name] = &m.chatd(t).Env[i]
			}
			existing, _ := lookup(v, "existingSecret").(string)
			wantSecret := existing
			if existing != "" {
				if len(m.Secrets) != 0 {
					t.Errorf("existingSecret is set but the chart renders %d Secrets", len(m.Secrets))
				}
				for _, s := range secretValues {
					if strings.Contains(m.Raw, s) {
						t.Errorf("existingSecret is set but %q (mongodb.uri/redis.url) still appears in the output", s)
					}
				}
			} else {
				if len(m.Secrets) != 1 {
					t.Fatalf("rendered %d Secrets, want 1", len(m.Secrets))
				}
				wantSecret = m.Secrets[0].Name
			}
			keys := map[string]string{"CHAT_MONGODB_URI": "mongodb-uri", "CHAT_REDIS_URL": "redis-url"}
			if k, _ := lookup(v, "secretKeys.mongodbUri").(string); k != "" {
				keys["CHAT_MONGODB_URI"] = k
			}
			if k, _ := lookup(v, "secretKeys.redisUrl").(string); k != "" {
				keys["CHAT_REDIS_URL"] = k
			}
			for envName, key := range keys {
				e := env[envName]
				if e == nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					t.Errorf("%s is not read from a secretKeyRef: %+v", envName, e)
					continue
				}
				if ref := e.ValueFrom.SecretKeyRef; ref.Name != wantSecret || ref.Key != key {
					t.Errorf("%s reads Secret %s key %s, want %s key %s", envName, ref.Name, ref.Key, wantSecret, key)
				}
				if existing == "" {
					if _, ok := m.Secrets[0].Data[key]; !ok {
						t.Errorf("chart Secret has no key %s for %s", key, envName)
					}
				}
			}
		})
	}
}

func TestImage(t *testing.T) {
	appVersion := chartField(t, "appVersion")
	if img := renderCI(t, "defaults").chatd(t).Image; !strings.HasSuffix(img, ":"+appVersion) {
		t.Errorf("default image = %q, want the tag to be the chart's appVersion %q", img, appVersion)
	}
	if img := renderCI(t, "ha").chatd(t).Image; !regexp.MustCompile(`@sha256:[a-f0-9]{64}$`).MatchString(img) {
		t.Errorf("image with image.digest = %q, want it pinned by @sha256", img)
	}
}

// TestDockerfileMatchesChart keeps the image and the chart agreeing on the binary, user and paths.
func TestDockerfileMatchesChart(t *testing.T) {
	stages, globalArgs := parseDockerfile(t, filepath.Join("..", "Dockerfile"))
	if len(stages) < 2 {
		t.Fatalf("Dockerfile has %d stages, want a multi-stage build", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]
	// Release builds pin the bases by digest through build arguments (deploy/README.md).
	for stage, arg := range map[*dockerStage]string{&build: "GO_IMAGE", &final: "RUNTIME_IMAGE"} {
		if stage.fromRaw != "${"+arg+"}" || globalArgs[arg] == "" {
			t.Errorf("FROM %s, global ARG %s=%q: want FROM ${%s} with a default, so a release passes a digest", stage.fromRaw, arg, globalArgs[arg], arg)
		}
	}
	if !strings.Contains(final.raw(), `org.opencontainers.image.base.name="${RUNTIME_IMAGE}"`) {
		t.Error(`final stage does not label its base: LABEL org.opencontainers.image.base.name="${RUNTIME_IMAGE}"`)
	}
	deployReadme := string(mustRead(t, filepath.Join("..", "deploy", "README.md")))
	for _, want := range []string{"--build-arg GO_IMAGE=", "--build-arg RUNTIME_IMAGE="} {
		if !strings.Contains(deployReadme, want) {
			t.Errorf("deploy/README.md does not show release builds passing %s<image>@sha256:...", want)
		}
	}
	if !strings.Contains(build.from, "golang:1.26") {
		t.Errorf("builder stage FROM %q, want a pinned golang:1.26 tag", build.from)
	}
	if !strings.HasPrefix(final.from, "gcr.io/distroless/static") || !strings.Contains(final.from, ":nonroot") {
		t.Errorf("final stage FROM %q, want gcr.io/distroless/static...:nonroot (no shell)", final.from)
	}
	if got := final.last("USER"); got != fmt.Sprintf("%d:%d", imageUID, imageUID) {
		t.Errorf("final USER = %q, want %d:%d (the chart's runAsUser/runAsGroup)", got, imageUID, imageUID)
	}
	var entrypoint, cmd []string
	if err := json.Unmarshal([]byte(final.last("ENTRYPOINT")), &entrypoint); err != nil || !slices.Equal(entrypoint, []string{binaryPath}) {
		t.Errorf("ENTRYPOINT = %s (err %v), want [%q] in exec form", final.last("ENTRYPOINT"), err, binaryPath)
	}
	if err := json.Unmarshal([]byte(final.last("CMD")), &cmd); err != nil || !slices.Equal(cmd, []string{"serve"}) {
		t.Errorf("CMD = %s (err %v), want [\"serve\"]", final.last("CMD"), err)
	}
	if final.last("HEALTHCHECK") != "" {
		t.Error("HEALTHCHECK in a shell-less image; Kubernetes probes check health")
	}
	if !slices.ContainsFunc(final.all("COPY"), func(s string) bool {
		return strings.HasPrefix(s, "--from=") && strings.HasSuffix(s, " "+binaryPath)
	}) {
		t.Errorf("final stage does not COPY the binary to %s: %v", binaryPath, final.all("COPY"))
	}
	if env := final.env()["CHAT_TENANTS_DIR"]; env != tenantsDir {
		t.Errorf("image CHAT_TENANTS_DIR = %q, want %q (the chart's mount path)", env, tenantsDir)
	}
	if got := final.last("EXPOSE"); got != "8080 9090" {
		t.Errorf("EXPOSE %q, want 8080 9090 (the API and the metrics)", got)
	}
	if !strings.Contains(build.raw(), "CGO_ENABLED=0") || !strings.Contains(build.raw(), "./cmd/chatd") {
		t.Error("builder does not build ./cmd/chatd with CGO_ENABLED=0 (static binary for distroless/static)")
	}

	c := renderCI(t, "defaults").chatd(t)
	if len(c.Command) != 0 {
		t.Errorf("chart overrides the ENTRYPOINT with command %v", c.Command)
	}
	if !slices.Equal(c.Args, cmd) {
		t.Errorf("chart args %v, want the image CMD %v", c.Args, cmd)
	}

	ignore, err := os.ReadFile(filepath.Join("..", ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{".git", ".tools", "charts", "deploy"} {
		if !slices.Contains(strings.Fields(string(ignore)), want) {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
	if slices.Contains(strings.Fields(string(ignore)), "tenants") {
		t.Error(".dockerignore excludes tenants, which the image copies")
	}
}

func TestRedisModeReachesChatd(t *testing.T) {
	for _, tt := range []struct{ name, values, set, want string }{
		{"one server by default", "defaults", "", "single"},
		{"a Redis Cluster", "defaults", "redis.mode=cluster", "cluster"},
		{"the Redis Cluster example of deploy/REDIS.md", "redis-cluster", "", "cluster"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"-f", filepath.Join(chartDir, "ci", tt.values+".yaml")}
			if tt.set != "" {
				args = append(args, "--set", tt.set)
			}
			m := renderCached(t, tt.values+"+"+tt.set, args...)
			if got := envValue(m, "CHAT_REDIS_MODE"); got != tt.want {
				t.Errorf("CHAT_REDIS_MODE = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLimitsReachChatd(t *testing.T) {
	for _, tt := range []struct {
		name, set string
		want      map[string]string
	}{
		{"the defaults of PRODUCT.md", "", map[string]string{
			"CHAT_LIMITS_REQUESTS_PER_MINUTE": "600", "CHAT_LIMITS_WRITES_PER_MINUTE": "60",
			"CHAT_LIMITS_EVENT_STREAMS": "5", "CHAT_LIMITS_TENANT_REQUESTS_PER_SECOND": "1000",
			"CHAT_LIMITS_TENANT_EVENT_STREAMS": "2000", "CHAT_MAX_EVENT_STREAMS": "5000",
		}},
		{"a limit turned off and one raised", "config.limits.writesPerMinute=0,config.limits.tenantRequestsPerSecond=5000", map[string]string{
			"CHAT_LIMITS_REQUESTS_PER_MINUTE": "600", "CHAT_LIMITS_WRITES_PER_MINUTE": "0",
			"CHAT_LIMITS_EVENT_STREAMS": "5", "CHAT_LIMITS_TENANT_REQUESTS_PER_SECOND": "5000",
		}},
		{"the stream caps of a tenant and a replica", "config.limits.tenantEventStreams=300,config.maxEventStreams=20000", map[string]string{
			"CHAT_LIMITS_TENANT_EVENT_STREAMS": "300", "CHAT_MAX_EVENT_STREAMS": "20000",
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"-f", filepath.Join(chartDir, "ci", "defaults.yaml")}
			if tt.set != "" {
				args = append(args, "--set", tt.set)
			}
			m := renderCached(t, "defaults+"+tt.set, args...)
			for name, want := range tt.want {
				if got := envValue(m, name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
		})
	}
}

func TestWebhooksReachChatd(t *testing.T) {
	for _, tt := range []struct {
		name, set string
		want      map[string]string
	}{
		{"public receivers only, 10 s an attempt, by default", "", map[string]string{
			"CHAT_WEBHOOK_ALLOWED_NETWORKS": "", "CHAT_WEBHOOK_TIMEOUT": "10s",
		}},
		{"receivers in the cluster, a shorter bound", "webhooks.allowedNetworks={10.0.0.0/8,fd00::/8},webhooks.timeout=3s", map[string]string{
			"CHAT_WEBHOOK_ALLOWED_NETWORKS": "10.0.0.0/8,fd00::/8", "CHAT_WEBHOOK_TIMEOUT": "3s",
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"-f", filepath.Join(chartDir, "ci", "defaults.yaml")}
			if tt.set != "" {
				args = append(args, "--set", tt.set)
			}
			m := renderCached(t, "defaults+"+tt.set, args...)
			for name, want := range tt.want {
				if got := envValue(m, name); got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
		})
	}
}

// TestNetworkPolicyReachesWebhookReceivers: the receivers are the tenants' own, anywhere on the
// internet, so https goes to any destination even when the issuers' egress is narrowed to one
// network; receivers inside webhooks.allowedNetworks are reached on their own ports (http
// included), and only there.
func TestNetworkPolicyReachesWebhookReceivers(t *testing.T) {
	m := renderCached(t, "np-webhooks", "-f", filepath.Join(chartDir, "ci", "defaults.yaml"), "--set", "networkPolicy.enabled=true",
		"--set", "networkPolicy.egress.oidc.to[0].ipBlock.cidr=203.0.113.0/24",
		"--set", "webhooks.allowedNetworks={10.30.0.0/16,fd00::/8}")
	if len(m.NetworkPolicies) != 1 {
		t.Fatalf("rendered %d NetworkPolicies, want 1", len(m.NetworkPolicies))
	}
	var anywhere443 bool
	private := map[string][]string{} // CIDR → ports
	for _, rule := range m.NetworkPolicies[0].Spec.Egress {
		var ports []string
		for _, p := range rule.Ports {
			ports = append(ports, fmt.Sprintf("%s/%s", *p.Protocol, p.Port.String()))
		}
		if len(rule.To) == 0 && slices.Contains(ports, "TCP/443") {
			anywhere443 = true
		}
		for _, peer := range rule.To {
			if peer.IPBlock != nil && peer.IPBlock.CIDR != "203.0.113.0/24" {
				private[peer.IPBlock.CIDR] = append(private[peer.IPBlock.CIDR], ports...)
			}
		}
	}
	if !anywhere443 {
		t.Error("NetworkPolicy egress does not allow TCP/443 to any destination: webhook receivers on the internet are unreachable")
	}
	want := map[string][]string{"10.30.0.0/16": {"TCP/80", "TCP/443"}, "fd00::/8": {"TCP/80", "TCP/443"}}
	if !reflect.DeepEqual(private, want) {
		t.Errorf("NetworkPolicy egress to private networks %v, want webhooks.allowedNetworks on the receivers' ports %v", private, want)
	}

	// Without allowed networks, no private network is opened.
	m = renderCached(t, "np-defaults", "-f", filepath.Join(chartDir, "ci", "defaults.yaml"), "--set", "networkPolicy.enabled=true")
	for _, rule := range m.NetworkPolicies[0].Spec.Egress {
		for _, peer := range rule.To {
			if peer.IPBlock != nil {
				t.Errorf("NetworkPolicy egress opens %s without webhooks.allowedNetworks", peer.IPBlock.CIDR)
			}
		}
	}
}

func TestSchemaRejectsMistakes(t *testing.T) {
	for _, tt := range []struct{ set, want string }{
		{"replicaCount=abc", "replicaCount"},
		{"unknownKey=1", "unknownKey"},
		{"image.tagg=x", "tagg"},
		{"redis.mode=sentinel", "mode"},
		{"config.limits.eventStreams=-1", "eventStreams"},
		{"webhooks.timeout=soon", "timeout"},
		{"webhooks.allowedNetworks={10.0.0.1}", "allowedNetworks"},
		{"networkPolicy.egress.webhooks.allowedNetworksPorts={0}", "allowedNetworksPorts"},
	} {
		t.Run(tt.set, func(t *testing.T) {
			t.Parallel()
			_, err := runHelm(t, "template", releaseName, chartDir, "--kube-version", kubeVersion,
				"-f", filepath.Join(chartDir, "ci", "defaults.yaml"), "--set", tt.set)
			if err == nil {
				t.Fatalf("helm template --set %s succeeded, want a schema error", tt.set)
			}
			if msg := err.Error(); !strings.Contains(msg, "schema") || !strings.Contains(msg, tt.want) {
				t.Errorf("helm template --set %s failed, but not with a schema error naming %s:\n%v", tt.set, tt.want, err)
			}
		})
	}
}

func TestHelmTestPod(t *testing.T) {
	m := renderCI(t, "defaults")
	if len(m.Pods) != 1 {
		t.Fatalf("rendered %d helm test Pods, want 1", len(m.Pods))
	}
	pod := m.Pods[0]
	if pod.Annotations["helm.sh/hook"] != "test" {
		t.Errorf("Pod %s hook = %q, want test", pod.Name, pod.Annotations["helm.sh/hook"])
	}
	if pod.Spec.SecurityContext == nil || pod.Spec.SecurityContext.RunAsNonRoot == nil || !*pod.Spec.SecurityContext.RunAsNonRoot ||
		pod.Spec.SecurityContext.RunAsUser == nil || pod.Spec.SecurityContext.SeccompProfile == nil {
		t.Errorf("test Pod securityContext = %+v, want non-root with a numeric user and seccomp", pod.Spec.SecurityContext)
	}
	for _, c := range pod.Spec.Containers {
		if strings.HasSuffix(c.Image, ":latest") || !strings.Contains(c.Image, ":") {
			t.Errorf("test image %q is not pinned", c.Image)
		}
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
			sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("test container securityContext = %+v, want restricted", sc)
		}
		if !strings.HasSuffix(strings.Join(append(c.Command, c.Args...), " "), "/readyz") {
			t.Errorf("test container runs %v %v, want a check of /readyz", c.Command, c.Args)
		}
	}
}

func TestObservabilityFiles(t *testing.T) {
	var rules ruleFile
	alerts := mustRead(t, filepath.Join(chartDir, "files", "alerts.yaml"))
	if err := yaml.UnmarshalStrict(alerts, &rules); err != nil {
		t.Fatalf("files/alerts.yaml is not a Prometheus rules file: %v", err)
	}
	m := renderCI(t, "ha")
	if len(m.PrometheusRules) != 1 {
		t.Fatalf("rendered %d PrometheusRules, want 1", len(m.PrometheusRules))
	}
	if !reflect.DeepEqual(m.PrometheusRules[0].Spec, rules) {
		t.Errorf("PrometheusRule spec differs from files/alerts.yaml:\n got %+v\nwant %+v", m.PrometheusRules[0].Spec, rules)
	}

	dashboard := mustRead(t, filepath.Join(chartDir, "files", "support-chat.json"))
	if !json.Valid(dashboard) {
		t.Fatal("files/support-chat.json is not valid JSON")
	}
	cm := m.configMap("-dashboard")
	if cm == nil {
		t.Fatal("no dashboard ConfigMap with grafanaDashboard.enabled")
	}
	if cm.Labels["grafana_dashboard"] != "1" || cm.Namespace != "monitoring" {
		t.Errorf("dashboard ConfigMap labels %v namespace %q, want grafana_dashboard=1 in monitoring", cm.Labels, cm.Namespace)
	}
	if got := cm.Data["support-chat.json"]; strings.TrimSpace(got) != strings.TrimSpace(string(dashboard)) {
		t.Error("dashboard ConfigMap content differs from files/support-chat.json")
	}

	// Every alert has a runbook section in deploy/README.md, and runbook_url points at it.
	readme, err := os.ReadFile(filepath.Join("..", "deploy", "README.md"))
	if err != nil {
		t.Fatalf("deploy/README.md (operations guide and runbooks): %v", err)
	}
	anchors := githubAnchors(readme)
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			want := "runbook-" + strings.ToLower(r.Alert)
			if !anchors[want] {
				t.Errorf("alert %s: deploy/README.md has no heading with anchor #%s", r.Alert, want)
			}
			if u := r.Annotations["runbook_url"]; u != "" {
				if _, frag, ok := strings.Cut(u, "#"); !ok || frag != want {
					t.Errorf("alert %s runbook_url %q, want it to end with #%s", r.Alert, u, want)
				}
			}
		}
	}
	for _, want := range []string{"runbook-supportchathigherrorratio", "runbook-supportchathighlatencyp99", "runbook-supportchatnotready",
		"runbook-supportchatjwksfailures", "runbook-supportchattenantfilesinvalid", "runbook-supportchatmongoerrors",
		"runbook-supportchatredisdegraded", "runbook-supportchateventpublishfailures", "runbook-supportchatssechurn",
		"runbook-supportchatwebhookqueuelate", "runbook-supportchatwebhookdeaddeliveries"} {
		if !anchors[want] {
			t.Errorf("deploy/README.md has no heading with anchor #%s", want)
		}
	}
}

// TestChartCopiesMatchDeploy fails when the chart's copies drift from deploy/ (Helm cannot read
// outside the chart). Fix: cp deploy/prometheus/alerts.yaml deploy/grafana/support-chat.json charts/support-chat/files/
func TestChartCopiesMatchDeploy(t *testing.T) {
	for _, c := range []struct{ original, copy string }{
		{filepath.Join("..", "deploy", "prometheus", "alerts.yaml"), filepath.Join(chartDir, "files", "alerts.yaml")},
		{filepath.Join("..", "deploy", "grafana", "support-chat.json"), filepath.Join(chartDir, "files", "support-chat.json")},
	} {
		t.Run(filepath.Base(c.copy), func(t *testing.T) {
			want, err := os.ReadFile(c.original)
			if os.IsNotExist(err) {
				t.Skipf("%s does not exist yet", c.original)
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := mustRead(t, c.copy); !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s; run: cp %s charts/support-chat/files/", c.copy, c.original, strings.TrimPrefix(c.original, "../"))
			}
		})
	}
	// Tenant copies shipped with tenantsFromFiles: true equal the repository's tenants/ files.
	copies, _ := filepath.Glob(filepath.Join(chartDir, "tenants", "*.yaml"))
	for _, p := range copies {
		original := filepath.Join("..", "tenants", filepath.Base(p))
		want, err := os.ReadFile(original)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(mustRead(t, p), want) {
			t.Errorf("%s differs from tenants/%s; run: cp tenants/*.yaml charts/support-chat/tenants/", p, filepath.Base(p))
		}
	}
}

// dockerStage is one FROM ... stage of a Dockerfile: its base (global ARG defaults filled in, and
// as written) and instructions.
type dockerStage struct {
	from    string
	fromRaw string
	instr   [][2]string // instruction (upper case), arguments
}

func (s dockerStage) all(instr string) []string {
	var out []string
	for _, in := range s.instr {
		if in[0] == instr {
			out = append(out, in[1])
		}
	}
	return out
}

func (s dockerStage) last(instr string) string {
	all := s.all(instr)
	if len(all) == 0 {
		return ""
	}
	return all[len(all)-1]
}

func (s dockerStage) raw() string {
	var b strings.Builder
	for _, in := range s.instr {
		b.WriteString(in[0] + " " + in[1] + "\n")
	}
	return b.String()
}

// env returns the stage's ENV settings (KEY=value form).
func (s dockerStage) env() map[string]string {
	env := map[string]string{}
	for _, args := range s.all("ENV") {
		for _, kv := range strings.Fields(args) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env[k] = strings.Trim(v, `"`)
			}
		}
	}
	return env
}

// parseDockerfile splits a Dockerfile into stages, joining continuation lines, and returns the
// global ARGs (before the first FROM) with their defaults, which replace ${NAME} in FROM lines.
func parseDockerfile(tb testing.TB, path string) ([]dockerStage, map[string]string) {
	tb.Helper()
	var stages []dockerStage
	globalArgs := map[string]string{}
	var logical string
	sc := bufio.NewScanner(bytes.NewReader(mustRead(tb, path)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			logical += strings.TrimSuffix(line, `\`) + " "
			continue
		}
		logical += line
		instr, args, _ := strings.Cut(logical, " ")
		instr, args = strings.ToUpper(instr), strings.TrimSpace(args)
		logical = ""
		if instr == "FROM" {
			fields := strings.Fields(args)
			fields = slices.DeleteFunc(fields, func(f string) bool { return strings.HasPrefix(f, "--platform") })
			from := fields[0]
			for name, def := range globalArgs {
				from = strings.ReplaceAll(from, "${"+name+"}", def)
			}
			stages = append(stages, dockerStage{from: from, fromRaw: fields[0]})
			continue
		}
		if len(stages) == 0 {
			if instr == "ARG" {
				name, def, _ := strings.Cut(args, "=")
				globalArgs[name] = def
			}
			continue
		}
		stages[len(stages)-1].instr = append(stages[len(stages)-1].instr, [2]string{instr, args})
	}
	return stages, globalArgs
}

var headingRE = regexp.MustCompile(`(?m)^#{1,6}\s+(.+?)\s*#*\s*$`)

// githubAnchors returns the anchors GitHub generates for a Markdown file's headings:
// lower case, punctuation other than '-' and '_' dropped, spaces turned into '-'.
func githubAnchors(md []byte) map[string]bool {
	anchors := map[string]bool{}
	inFence := false
	for _, line := range strings.Split(string(md), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
			continue
		}
		if inFence {
			continue
		}
		mm := headingRE.FindStringSubmatch(line)
		if mm == nil {
			continue
		}
		var b strings.Builder
		for _, r := range strings.ToLower(strings.ReplaceAll(mm[1], "`", "")) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || ('a' <= r && r <= 'z') || ('0' <= r && r <= '9') || r > 127:
				b.WriteRune(r)
			}
		}
		a := b.String()
		for i := 1; anchors[a]; i++ {
			a = fmt.Sprintf("%s-%d", b.String(), i)
		}
		anchors[a] = true
	}
	return anchors
}

func chartField(tb testing.TB, field string) string {
	tb.Helper()
	var chart map[string]any
	if err := yaml.Unmarshal(mustRead(tb, filepath.Join(chartDir, "Chart.yaml")), &chart); err != nil {
		tb.Fatal(err)
	}
	s, _ := chart[field].(string)
	return s
}

// envValue resolves a chatd environment variable from env or the envFrom ConfigMaps.
func envValue(m *manifests, name string) string {
	c := &m.Deployments[0].Spec.Template.Spec.Containers[0]
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef == nil {
			continue
		}
		for _, cm := range m.ConfigMaps {
			if cm.Name == from.ConfigMapRef.Name {
				if v, ok := cm.Data[name]; ok {
					return v
				}
			}
		}
	}
	return ""
}

func volume(vs []corev1.Volume, name string) *corev1.Volume {
	for i := range vs {
		if vs[i].Name == name {
			return &vs[i]
		}
	}
	return nil
}

func isSubset(sub, of map[string]string) bool {
	for k, v := range sub {
		if of[k] != v {
			return false
		}
	}
	return true
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

func mustRead(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
