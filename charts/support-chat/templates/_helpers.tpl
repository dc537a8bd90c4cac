{{/*
Chart name, truncated to the 63 characters of a DNS label.
*/}}
{{- define "support-chat.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: release-chart, or the release name alone when it already contains the chart name.
*/}}
{{- define "support-chat.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "support-chat.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Standard labels of every resource.
*/}}
{{- define "support-chat.labels" -}}
helm.sh/chart: {{ include "support-chat.chart" . }}
{{ include "support-chat.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: support-chat
{{- end }}

{{/*
Selector labels: Deployment selector, Service selector, PDB, spread constraints. Never change them
after a release exists (a Deployment's selector is immutable).
*/}}
{{- define "support-chat.selectorLabels" -}}
app.kubernetes.io/name: {{ include "support-chat.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{- define "support-chat.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "support-chat.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference: repository:tag, or repository@digest (tag kept for readers) when a digest is set.
*/}}
{{- define "support-chat.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* Name of the Secret holding CHAT_MONGODB_URI and CHAT_REDIS_URL. */}}
{{- define "support-chat.secretName" -}}
{{- default (include "support-chat.fullname" .) .Values.existingSecret }}
{{- end }}

{{/* Name of the ConfigMap holding the tenant files. */}}
{{- define "support-chat.tenantsConfigMapName" -}}
{{- default (printf "%s-tenants" (include "support-chat.fullname" .)) .Values.existingTenantsConfigMap }}
{{- end }}

{{/* Where the tenants ConfigMap is mounted; equals CHAT_TENANTS_DIR of the image (Dockerfile). */}}
{{- define "support-chat.tenantsDir" -}}
/etc/chatd/tenants
{{- end }}

{{/* Replicas that run at the same time at least (for the PodDisruptionBudget). */}}
{{- define "support-chat.minReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.minReplicas }}{{ else }}{{ .Values.replicaCount }}{{ end }}
{{- end }}

{{/* Non-secret environment (the config ConfigMap's data), also the input of checksum/config. */}}
{{- define "support-chat.configData" -}}
CHAT_ADDR: ":8080"
CHAT_METRICS_ADDR: ":9090"
CHAT_TENANTS_DIR: {{ include "support-chat.tenantsDir" . | quote }}
CHAT_MONGODB_DATABASE: {{ .Values.mongodb.database | quote }}
CHAT_MONGODB_TIMEOUT: {{ .Values.mongodb.timeout | quote }}
CHAT_REDIS_MODE: {{ .Values.redis.mode | quote }}
CHAT_LOG_LEVEL: {{ .Values.config.logLevel | quote }}
CHAT_PRESENCE_TTL: {{ .Values.config.presenceTTL | quote }}
CHAT_IDEMPOTENCY_TTL: {{ .Values.config.idempotencyTTL | quote }}
CHAT_AUDIT_RETENTION: {{ .Values.config.auditRetention | quote }}
CHAT_OIDC_TIMEOUT: {{ .Values.config.oidcTimeout | quote }}
CHAT_ISSUER_ALLOWED_NETWORKS: {{ join "," .Values.config.issuerAllowedNetworks | quote }}
CHAT_WEBHOOK_ALLOWED_NETWORKS: {{ join "," .Values.webhooks.allowedNetworks | quote }}
CHAT_WEBHOOK_TIMEOUT: {{ .Values.webhooks.timeout | quote }}
CHAT_MAX_BODY_BYTES: {{ .Values.config.maxBodyBytes | int64 | toString | quote }}
CHAT_CACHE_LOCAL_BYTES: {{ .Values.config.cacheLocalBytes | int64 | toString | quote }}
CHAT_MAX_EVENT_STREAMS: {{ .Values.config.maxEventStreams | int64 | toString | quote }}
CHAT_SHUTDOWN_TIMEOUT: {{ .Values.config.shutdownTimeout | quote }}
CHAT_METRICS_TENANT_LABEL: {{ .Values.config.metricsTenantLabel | toString | quote }}
CHAT_LIMITS_REQUESTS_PER_MINUTE: {{ .Values.config.limits.requestsPerMinute | int64 | toString | quote }}
CHAT_LIMITS_WRITES_PER_MINUTE: {{ .Values.config.limits.writesPerMinute | int64 | toString | quote }}
CHAT_LIMITS_EVENT_STREAMS: {{ .Values.config.limits.eventStreams | int64 | toString | quote }}
CHAT_LIMITS_TENANT_REQUESTS_PER_SECOND: {{ .Values.config.limits.tenantRequestsPerSecond | int64 | toString | quote }}
CHAT_LIMITS_TENANT_EVENT_STREAMS: {{ .Values.config.limits.tenantEventStreams | int64 | toString | quote }}
OTEL_SERVICE_NAME: {{ .Values.otel.serviceName | default (include "support-chat.fullname" .) | quote }}
{{- if .Values.otel.endpoint }}
OTEL_SDK_DISABLED: "false"
OTEL_EXPORTER_OTLP_ENDPOINT: {{ .Values.otel.endpoint | quote }}
OTEL_EXPORTER_OTLP_PROTOCOL: {{ .Values.otel.protocol | quote }}
OTEL_TRACES_SAMPLER: {{ .Values.otel.sampler | quote }}
OTEL_TRACES_SAMPLER_ARG: {{ .Values.otel.samplerArg | quote }}
{{- else }}
OTEL_SDK_DISABLED: "true"
{{- end }}
{{- end }}

{{/* OTEL_RESOURCE_ATTRIBUTES: the values' attributes plus the pod's namespace and name. */}}
{{- define "support-chat.otelResourceAttributes" -}}
{{- $attrs := list }}
{{- range $k, $v := .Values.otel.resourceAttributes }}
{{- $attrs = append $attrs (printf "%s=%s" $k (toString $v)) }}
{{- end }}
{{- $attrs = append $attrs "k8s.namespace.name=$(CHAT_POD_NAMESPACE)" }}
{{- $attrs = append $attrs "k8s.pod.name=$(CHAT_POD_NAME)" }}
{{- join "," $attrs }}
{{- end }}

{{/* Secret reference (name and keys), the input of checksum/secret with existingSecret. */}}
{{- define "support-chat.secretData" -}}
{{- if .Values.existingSecret }}
existingSecret: {{ .Values.existingSecret }}
{{- else }}
{{ .Values.secretKeys.mongodbUri }}: {{ required "set mongodb.uri (or existingSecret with the MongoDB URI and Redis URL)" .Values.mongodb.uri | b64enc }}
{{ .Values.secretKeys.redisUrl }}: {{ required "set redis.url (or existingSecret with the MongoDB URI and Redis URL)" .Values.redis.url | b64enc }}
{{- end }}
mongodbUriKey: {{ .Values.secretKeys.mongodbUri }}
redisUrlKey: {{ .Values.secretKeys.redisUrl }}
{{- end }}

{{/* One NetworkPolicy egress rule: ports (TCP, plus UDP when $udp) to peers (any when empty). */}}
{{- define "support-chat.egressRule" -}}
{{- $rule := .rule }}
{{- if $rule.ports }}
- ports:
  {{- range $rule.ports }}
    - protocol: TCP
      port: {{ . }}
    {{- if $.udp }}
    - protocol: UDP
      port: {{ . }}
    {{- end }}
  {{- end }}
  {{- with $rule.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}
