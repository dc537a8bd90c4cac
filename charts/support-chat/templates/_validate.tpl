{{/*
Render guards: values that would render valid objects but break the release in the cluster fail
the render with a message that says what to change. deployment.yaml includes this first.
*/}}
{{- define "support-chat.validate" -}}
{{- include "support-chat.validatePDB" . }}
{{- include "support-chat.validateShutdown" . }}
{{- include "support-chat.validateNetworkPolicy" . }}
{{- include "support-chat.validateService" . }}
{{- end }}

{{/* The Service's two ports must differ: one Service cannot expose a port number twice. */}}
{{- define "support-chat.validateService" -}}
{{- if eq (int .Values.service.port) (int .Values.service.metricsPort) }}
{{- fail (printf "service.port and service.metricsPort are both %d: the API and /metrics need a Service port each. Change one of them" (int .Values.service.port)) }}
{{- end }}
{{- end }}

{{/*
A PodDisruptionBudget that allows no eviction at the lowest replica count hangs every node drain
and cluster upgrade. Kubernetes rounds a PDB's percentages up.
*/}}
{{- define "support-chat.validatePDB" -}}
{{- $pdb := .Values.podDisruptionBudget }}
{{- $replicas := int (include "support-chat.minReplicas" .) }}
{{- $what := ternary "autoscaling.minReplicas" "replicaCount" .Values.autoscaling.enabled }}
{{- if and $pdb.enabled (gt $replicas 1) }}
{{- $min := toString $pdb.minAvailable }}
{{- if $min }}
{{- $minPods := 0 }}
{{- if hasSuffix "%" $min }}
{{- $minPods = int (ceil (divf (mulf (float64 (trimSuffix "%" $min)) $replicas) 100)) }}
{{- else }}
{{- $minPods = int $min }}
{{- end }}
{{- if ge $minPods $replicas }}
{{- fail (printf "podDisruptionBudget.minAvailable %s keeps all %d pods (%s) and blocks every eviction: node drains and cluster upgrades would hang. Set it below %d, or leave it empty and use maxUnavailable: 1" $min $replicas $what $replicas) }}
{{- end }}
{{- else if or (eq (toString $pdb.maxUnavailable) "0") (eq (toString $pdb.maxUnavailable) "0%") }}
{{- fail (printf "podDisruptionBudget.maxUnavailable %v blocks every eviction: node drains and cluster upgrades would hang. Use 1 (or more), or podDisruptionBudget.enabled: false" $pdb.maxUnavailable) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
After SIGTERM chatd sleeps preStopSleepSeconds (the preStop hook), then finishes in-flight requests
within config.shutdownTimeout; the kubelet kills it at terminationGracePeriodSeconds. The preStop
sleep action exists from Kubernetes 1.30 on.
*/}}
{{- define "support-chat.validateShutdown" -}}
{{- $grace := int .Values.terminationGracePeriodSeconds }}
{{- $preStop := int .Values.preStopSleepSeconds }}
{{- $shutdown := float64 (include "support-chat.durationSeconds" .Values.config.shutdownTimeout) }}
{{- if le (float64 $grace) (addf $preStop $shutdown) }}
{{- fail (printf "terminationGracePeriodSeconds %d must exceed preStopSleepSeconds %d + config.shutdownTimeout %s (%gs): the kubelet would kill chatd while it still finishes requests. Raise terminationGracePeriodSeconds to at least %d, or lower the others" $grace $preStop .Values.config.shutdownTimeout $shutdown (add1 (int (ceil (addf $preStop $shutdown))))) }}
{{- end }}
{{- if and (gt $preStop 0) (semverCompare "<1.30.0-0" .Capabilities.KubeVersion.Version) }}
{{- fail (printf "preStopSleepSeconds %d needs Kubernetes 1.30 or later (the preStop sleep action; the image has no shell for an exec hook), and the cluster is %s: set preStopSleepSeconds: 0" $preStop .Capabilities.KubeVersion.Version) }}
{{- end }}
{{- end }}

{{/* Seconds of a Go duration such as "20s", "1m30s" or "1.5s" (the schema's duration pattern). */}}
{{- define "support-chat.durationSeconds" -}}
{{- $units := dict "ns" 0.000000001 "us" 0.000001 "µs" 0.000001 "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 }}
{{- $total := 0.0 }}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?(ns|us|µs|ms|s|m|h)" (toString .) -1 }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" . }}
{{- $total = addf $total (mulf (float64 $number) (get $units (trimPrefix $number .))) }}
{{- end }}
{{- $total }}
{{- end }}

{{/*
The ports a connection URL names, as a JSON list of integers: each host of the authority
(host:port, comma-separated for MongoDB) and, for Redis, each addr= seed node of the query;
.default for a host without a port. An empty list when the URL cannot tell (mongodb+srv:// takes
its ports from DNS).
*/}}
{{- define "support-chat.urlPorts" -}}
{{- $ports := list }}
{{- if and .url (not (hasPrefix "mongodb+srv://" .url)) }}
{{- $authority := regexReplaceAll "[/?#].*$" (regexReplaceAll "^[a-zA-Z][a-zA-Z0-9+.-]*://" .url "") "" }}
{{- $hosts := splitList "," (regexReplaceAll "^.*@" $authority "") }}
{{- range regexFindAll "[?&]addr=[^&#]*" .url -1 }}
{{- $hosts = append $hosts (regexReplaceAll "^[?&]addr=" . "") }}
{{- end }}
{{- range $hosts }}
{{- $port := regexFind ":[0-9]+$" . }}
{{- $ports = append $ports (ternary (int (trimPrefix ":" $port)) (int $.default) (ne $port "")) }}
{{- end }}
{{- end }}
{{- toJson (uniq $ports) }}
{{- end }}

{{/*
The egress rule of MongoDB or Redis, ports derived from the URL: .name (mongodb or redis), .rule
(networkPolicy.egress.<name>), .url ("" with existingSecret), .key (the URL's value name),
.default (its default port). Empty ports: the URL's ports, or .default when it cannot tell. Ports
listed in the values must include the URL's.
*/}}
{{- define "support-chat.egressPorts" -}}
{{- $fromURL := include "support-chat.urlPorts" (dict "url" .url "default" .default) | fromJsonArray }}
{{- $listed := list }}
{{- range .rule.ports }}
{{- $listed = append $listed (int .) }}
{{- end }}
{{- $ports := $listed }}
{{- if not $listed }}
{{- $ports = $fromURL | default (list (int .default)) }}
{{- end }}
{{- range $fromURL }}
{{- if not (has (int .) $listed) }}
{{- if $listed }}
{{- fail (printf "networkPolicy.egress.%s.ports %v does not allow port %d of %s: chatd could not reach it. Add %d, or leave the ports empty to take them from %s" $.name $listed (int .) $.key (int .) $.key) }}
{{- end }}
{{- end }}
{{- end }}
{{- toJson (dict "ports" $ports "to" .rule.to) }}
{{- end }}

{{/*
NetworkPolicy egress ports that disagree with the URLs fail here, before anything renders, and so
does a ServiceMonitor whose Prometheus the NetworkPolicy would keep off the metrics port.
*/}}
{{- define "support-chat.validateNetworkPolicy" -}}
{{- if .Values.networkPolicy.enabled }}
{{- $_ := include "support-chat.mongodbEgress" . }}
{{- $_ = include "support-chat.redisEgress" . }}
{{- if and .Values.serviceMonitor.enabled (empty .Values.networkPolicy.ingress.metricsFrom) }}
{{- fail "networkPolicy.ingress.metricsFrom is empty, so the NetworkPolicy lets nothing reach /metrics (port 9090) and the ServiceMonitor's scrapes would fail. List Prometheus' namespace or pods there, e.g. [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: monitoring}}}]" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The MongoDB egress rule (JSON) of the NetworkPolicy. */}}
{{- define "support-chat.mongodbEgress" -}}
{{- $url := ternary "" .Values.mongodb.uri (not (empty .Values.existingSecret)) }}
{{- include "support-chat.egressPorts" (dict "name" "mongodb" "rule" .Values.networkPolicy.egress.mongodb "url" $url "key" "mongodb.uri" "default" 27017) }}
{{- end }}

{{/* The Redis egress rule (JSON) of the NetworkPolicy. */}}
{{- define "support-chat.redisEgress" -}}
{{- $url := ternary "" .Values.redis.url (not (empty .Values.existingSecret)) }}
{{- include "support-chat.egressPorts" (dict "name" "redis" "rule" .Values.networkPolicy.egress.redis "url" $url "key" "redis.url" "default" 6379) }}
{{- end }}
