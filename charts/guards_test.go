package charts

import (
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestRenderGuards: values that render valid objects but would break the release in the cluster
// fail the render with a message naming the value and what to do; their neighbours that work
// render.
func TestRenderGuards(t *testing.T) {
	for _, tt := range []struct {
		name        string
		kubeVersion string
		set         []string
		want        string // in the error; "" means the render must succeed
	}{
		{"a PDB with maxUnavailable 0", "", []string{"replicaCount=3", "podDisruptionBudget.maxUnavailable=0"},
			"podDisruptionBudget.maxUnavailable 0 blocks every eviction"},
		{"a PDB with maxUnavailable 0%", "", []string{"replicaCount=3", "podDisruptionBudget.maxUnavailable=0%"},
			"podDisruptionBudget.maxUnavailable 0% blocks every eviction"},
		{"a PDB with minAvailable equal to the replicas", "", []string{"replicaCount=3", "podDisruptionBudget.minAvailable=3"},
			"podDisruptionBudget.minAvailable 3 keeps all 3 pods (replicaCount) and blocks every eviction"},
		{"a PDB with minAvailable above the replicas", "", []string{"replicaCount=2", "podDisruptionBudget.minAvailable=5"},
			"podDisruptionBudget.minAvailable 5 keeps all 2 pods"},
		{"a PDB with minAvailable 100%", "", []string{"replicaCount=3", "podDisruptionBudget.minAvailable=100%"},
			"podDisruptionBudget.minAvailable 100% keeps all 3 pods"},
		{"a PDB whose percentage rounds up to every replica", "", []string{"replicaCount=3", "podDisruptionBudget.minAvailable=90%"},
			"podDisruptionBudget.minAvailable 90% keeps all 3 pods"},
		{"a PDB with minAvailable at the HPA's minimum", "", []string{"autoscaling.enabled=true", "autoscaling.minReplicas=2", "podDisruptionBudget.minAvailable=2"},
			"keeps all 2 pods (autoscaling.minReplicas)"},
		{"a PDB that leaves one pod to evict", "", []string{"replicaCount=3", "podDisruptionBudget.minAvailable=66%"}, ""},
		{"a PDB with minAvailable below the replicas", "", []string{"replicaCount=3", "podDisruptionBudget.minAvailable=2"}, ""},
		{"one replica renders no PDB to check", "", []string{"replicaCount=1", "podDisruptionBudget.maxUnavailable=0"}, ""},

		{"a grace period equal to the shutdown timeout", "", []string{"terminationGracePeriodSeconds=20"},
			"terminationGracePeriodSeconds 20 must exceed preStopSleepSeconds 0 + config.shutdownTimeout 20s"},
		{"a grace period that leaves no time after the preStop sleep", "", []string{"terminationGracePeriodSeconds=25", "preStopSleepSeconds=5"},
			"Raise terminationGracePeriodSeconds to at least 26"},
		{"a grace period shorter than a shutdown timeout in minutes", "", []string{"terminationGracePeriodSeconds=45", "config.shutdownTimeout=1m"},
			"config.shutdownTimeout 1m (60s)"},
		{"a grace period shorter than 1m30s", "", []string{"terminationGracePeriodSeconds=90", "config.shutdownTimeout=1m30s"},
			"at least 91"},
		{"a grace period one second longer", "", []string{"terminationGracePeriodSeconds=26", "preStopSleepSeconds=5"}, ""},
		{"a shutdown timeout in milliseconds", "", []string{"terminationGracePeriodSeconds=2", "config.shutdownTimeout=1500ms"}, ""},

		{"a preStop sleep on Kubernetes 1.29", "1.29.4", []string{"preStopSleepSeconds=5"},
			"preStopSleepSeconds 5 needs Kubernetes 1.30 or later"},
		{"no preStop sleep on Kubernetes 1.29", "1.29.4", nil, ""},
		{"a preStop sleep on Kubernetes 1.30", "1.30.0", []string{"preStopSleepSeconds=5"}, ""},

		{"Redis ports without redis.url's", "", []string{"networkPolicy.enabled=true", "redis.url=rediss://:pw@redis:6380/0", "networkPolicy.egress.redis.ports={6379}"},
			"networkPolicy.egress.redis.ports [6379] does not allow port 6380 of redis.url"},
		{"Redis ports without a cluster seed node's", "", []string{"networkPolicy.enabled=true", "redis.mode=cluster", "redis.url=redis://:pw@n1:7000?addr=n2:7001", "networkPolicy.egress.redis.ports={7000}"},
			"does not allow port 7001 of redis.url"},
		{"MongoDB ports without a replica set member's", "", []string{"networkPolicy.enabled=true", `mongodb.uri=mongodb://u:pw@m0:27017\,m1:27018/?replicaSet=rs0`, "networkPolicy.egress.mongodb.ports={27017}"},
			"networkPolicy.egress.mongodb.ports [27017] does not allow port 27018 of mongodb.uri"},
		{"a ServiceMonitor that the NetworkPolicy keeps off /metrics", "", []string{"networkPolicy.enabled=true", "serviceMonitor.enabled=true"},
			"networkPolicy.ingress.metricsFrom is empty"},
		{"a ServiceMonitor with Prometheus let through", "", []string{"networkPolicy.enabled=true", "serviceMonitor.enabled=true",
			"networkPolicy.ingress.metricsFrom[0].namespaceSelector.matchLabels.kubernetes\\.io/metadata\\.name=monitoring"}, ""},
		{"the API and the metrics on one Service port", "", []string{"service.port=9090"},
			"service.port and service.metricsPort are both 9090"},

		{"MongoDB ports that include the URL's and more", "", []string{"networkPolicy.enabled=true", `mongodb.uri=mongodb://u:pw@m0:27017\,m1:27018/?replicaSet=rs0`, "networkPolicy.egress.mongodb.ports={27017,27018,27019}"}, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kv := tt.kubeVersion
			if kv == "" {
				kv = kubeVersion
			}
			args := []string{"template", releaseName, chartDir, "--namespace", namespace, "--kube-version", kv,
				"-f", filepath.Join(chartDir, "ci", "defaults.yaml")}
			for _, s := range tt.set {
				args = append(args, "--set", s)
			}
			out, err := runHelm(t, args...)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("render failed, want it to succeed: %v", err)
			case tt.want == "":
				if _, err := decodeManifests(out); err != nil {
					t.Error(err)
				}
			case err == nil:
				t.Fatalf("render succeeded, want it to fail with %q", tt.want)
			case !strings.Contains(err.Error(), tt.want):
				t.Errorf("render failed with\n%v\nwant a message containing %q", err, tt.want)
			}
		})
	}
}

// TestNetworkPolicyPortsFollowTheURLs: with empty MongoDB and Redis ports, the NetworkPolicy
// lets chatd reach every port its URLs name, and only those.
func TestNetworkPolicyPortsFollowTheURLs(t *testing.T) {
	for _, tt := range []struct {
		name                 string
		set                  []string
		wantMongo, wantRedis []int
	}{
		{"ports in the URLs", []string{"redis.url=rediss://:pw@redis.example:6380/0", `mongodb.uri=mongodb://u:pw@m0:27017\,m1:27018/?replicaSet=rs0`},
			[]int{27017, 27018}, []int{6380}},
		{"hosts without ports", []string{"redis.url=redis://redis", "mongodb.uri=mongodb://mongo/?replicaSet=rs0"},
			[]int{27017}, []int{6379}},
		{"a Redis Cluster's seed nodes", []string{"redis.mode=cluster", "redis.url=redis://:pw@n1:7000?addr=n2:7001&addr=n3:7000"},
			[]int{27017}, []int{7000, 7001}},
		{"IPv6 hosts", []string{"redis.url=redis://[fd00::1]:6390/0", "mongodb.uri=mongodb://[fd00::2]/"},
			[]int{27017}, []int{6390}},
		{"mongodb+srv, whose ports come from DNS", []string{"mongodb.uri=mongodb+srv://u:pw@cluster0.example/"},
			[]int{27017}, []int{6379}},
		{"existingSecret, whose URLs the chart cannot see", []string{"existingSecret=creds", "redis.url=redis://ignored:6390"},
			[]int{27017}, []int{6379}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{"-f", filepath.Join(chartDir, "ci", "defaults.yaml"), "--set", "networkPolicy.enabled=true"}
			for _, s := range tt.set {
				args = append(args, "--set", s)
			}
			m := renderCached(t, "np+"+strings.Join(tt.set, "+"), args...)
			if len(m.NetworkPolicies) != 1 {
				t.Fatalf("rendered %d NetworkPolicies, want 1", len(m.NetworkPolicies))
			}
			rules := m.NetworkPolicies[0].Spec.Egress
			// The chart's egress rules: DNS, MongoDB, Redis, OIDC (OTLP only with an endpoint).
			if len(rules) < 4 {
				t.Fatalf("egress rules %+v, want DNS, MongoDB, Redis and OIDC", rules)
			}
			for i, want := range map[int][]int{1: tt.wantMongo, 2: tt.wantRedis} {
				var got []int
				for _, p := range rules[i].Ports {
					got = append(got, p.Port.IntValue())
				}
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Errorf("egress rule %d ports %v, want %v", i, got, want)
				}
			}
		})
	}
}

// TestNetworkPolicyReachesTheCIURLs: every ci/*.yaml with a NetworkPolicy lets chatd reach the
// ports its own redis.url and mongodb.uri name (parsed here with net/url, not by the chart).
func TestNetworkPolicyReachesTheCIURLs(t *testing.T) {
	for _, name := range ciValuesFiles(t) {
		v := ciValues(t, name)
		if enabled, _ := lookup(v, "networkPolicy.enabled").(bool); !enabled {
			continue
		}
		t.Run(name, func(t *testing.T) {
			allowed := map[int]bool{}
			for _, rule := range renderCI(t, name).NetworkPolicies[0].Spec.Egress {
				for _, p := range rule.Ports {
					allowed[p.Port.IntValue()] = true
				}
			}
			for key, def := range map[string]int{"redis.url": 6379, "mongodb.uri": 27017} {
				raw, _ := lookup(v, key).(string)
				if raw == "" || lookup(v, "existingSecret") != nil || strings.HasPrefix(raw, "mongodb+srv://") {
					continue
				}
				for _, port := range urlPorts(t, raw, def) {
					if !allowed[port] {
						t.Errorf("%s %q names port %d, which the NetworkPolicy does not allow (allowed %v)", key, raw, port, allowed)
					}
				}
			}
		})
	}
}

// urlPorts returns the ports of a MongoDB or Redis URL's hosts (and addr= seed nodes), def for a
// host without one.
func urlPorts(t *testing.T, raw string, def int) []int {
	t.Helper()
	_, rest, _ := strings.Cut(raw, "://")
	authority, _, _ := strings.Cut(rest, "/")
	authority, _, _ = strings.Cut(authority, "?")
	if i := strings.LastIndex(authority, "@"); i >= 0 {
		authority = authority[i+1:]
	}
	hosts := strings.Split(authority, ",")
	if _, query, ok := strings.Cut(raw, "?"); ok {
		q, err := url.ParseQuery(query)
		if err != nil {
			t.Fatalf("%q: %v", raw, err)
		}
		hosts = append(hosts, q["addr"]...)
	}
	var ports []int
	for _, h := range hosts {
		port := def
		if i := strings.LastIndex(h, ":"); i >= 0 && !strings.HasSuffix(h, "]") {
			p, err := strconv.Atoi(h[i+1:])
			if err != nil {
				t.Fatalf("%q: host %q: %v", raw, h, err)
			}
			port = p
		}
		ports = append(ports, port)
	}
	return ports
}
