{{/*
Chart name, truncated to the 63 characters a DNS label allows.
*/}}
{{- define "portone-facade.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: release-chart, unless the release name already contains the chart name.
*/}}
{{- define "portone-facade.fullname" -}}
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

{{/*
Name of the headless Service (the suffix must fit in 63 characters too).
*/}}
{{- define "portone-facade.headlessName" -}}
{{- printf "%s-headless" (include "portone-facade.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{- define "portone-facade.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: never change them on upgrade (Deployment selectors are immutable).
*/}}
{{- define "portone-facade.selectorLabels" -}}
app.kubernetes.io/name: {{ include "portone-facade.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "portone-facade.labels" -}}
helm.sh/chart: {{ include "portone-facade.chart" . }}
{{ include "portone-facade.selectorLabels" . }}
app.kubernetes.io/version: {{ (default .Chart.AppVersion .Values.image.tag) | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: portone-facade
{{- end }}

{{- define "portone-facade.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "portone-facade.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference: repository@digest when a digest is set, else repository:tag
(tag defaulting to the chart's appVersion).
*/}}
{{- define "portone-facade.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Credentials: which Secret the pods mount, and whether the chart creates it.
Fails rendering when no credentials are configured (unless sandbox mode is on)
or when both ways are configured at once.
*/}}
{{- define "portone-facade.createSecret" -}}
{{- if and (not .Values.portone.existingSecret.name) (or .Values.portone.impKey .Values.portone.impSecret) }}true{{ end }}
{{- end }}

{{- define "portone-facade.secretName" -}}
{{- if .Values.portone.existingSecret.name }}
{{- .Values.portone.existingSecret.name }}
{{- else }}
{{- include "portone-facade.fullname" . }}
{{- end }}
{{- end }}

{{- define "portone-facade.secretKeys" -}}
{{- if .Values.portone.existingSecret.name -}}
{{ .Values.portone.existingSecret.impKeyKey }} {{ .Values.portone.existingSecret.impSecretKey }}
{{- else -}}
imp_key imp_secret
{{- end }}
{{- end }}

{{- define "portone-facade.hasCredentials" -}}
{{- if or .Values.portone.existingSecret.name (and .Values.portone.impKey .Values.portone.impSecret) }}true{{ end }}
{{- end }}

{{- define "portone-facade.validate" -}}
{{- $p := .Values.portone }}
{{- if and $p.existingSecret.name (or $p.impKey $p.impSecret) }}
{{- fail "portone: set either portone.existingSecret.name or portone.impKey/portone.impSecret, not both" }}
{{- end }}
{{- if and (not $p.existingSecret.name) (or $p.impKey $p.impSecret) (not (and $p.impKey $p.impSecret)) }}
{{- fail "portone: portone.impKey and portone.impSecret must be set together" }}
{{- end }}
{{- if and (not (include "portone-facade.hasCredentials" .)) (not $p.sandbox) }}
{{- fail "portone: PortOne credentials are required: set portone.existingSecret.name (a Secret with keys imp_key and imp_secret) or portone.impKey and portone.impSecret (or portone.sandbox=true for the embedded emulator, never in production)" }}
{{- end }}
{{- range $name, $_ := .Values.extraEnv }}
{{- if has (upper $name) (list "PORTONE_IMP_KEY" "PORTONE_IMP_SECRET" "PORTONE_IMP_KEY_FILE" "PORTONE_IMP_SECRET_FILE") }}
{{- fail (printf "extraEnv: %s may not be set here; credentials come from portone.existingSecret or portone.impKey/impSecret" $name) }}
{{- end }}
{{- end }}
{{- $stopping := add .Values.config.shutdownGraceSeconds .Values.config.shutdownDelaySeconds .Values.lifecycle.preStopSleepSeconds }}
{{- if and (not (kindIs "invalid" .Values.terminationGracePeriodSeconds)) (le (int .Values.terminationGracePeriodSeconds) (int $stopping)) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed lifecycle.preStopSleepSeconds + config.shutdownDelaySeconds + config.shutdownGraceSeconds (%v)" .Values.terminationGracePeriodSeconds $stopping) }}
{{- end }}
{{- if and (or .Values.metrics.serviceMonitor.enabled .Values.metrics.prometheusRule.enabled) (not .Values.metrics.enabled) }}
{{- fail "metrics.serviceMonitor and metrics.prometheusRule need metrics.enabled" }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (kindIs "invalid" .Values.podDisruptionBudget.minAvailable) (kindIs "invalid" .Values.podDisruptionBudget.maxUnavailable) }}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling: minReplicas must not exceed maxReplicas" }}
{{- end }}
{{- end }}

{{- define "portone-facade.terminationGracePeriodSeconds" -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add .Values.lifecycle.preStopSleepSeconds .Values.config.shutdownDelaySeconds .Values.config.shutdownGraceSeconds .Values.terminationGraceMarginSeconds }}
{{- else }}
{{- .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/*
Non-secret configuration (DESIGN §4 names), as a dict: used for the ConfigMap
and for its checksum on the pod template. extraEnv may add variables but not
replace the chart's own.
*/}}
{{- define "portone-facade.configData" -}}
{{- $v := .Values }}
{{- $d := dict
  "LISTEN_ADDR" (printf "0.0.0.0:%d" (int $v.grpcPort))
  "PORTONE_API_URL" $v.portone.apiUrl
  "PORTONE_LINK_API_URL" $v.portone.linkApiUrl
  "UPSTREAM_TIMEOUT" $v.config.upstreamTimeout
  "SHUTDOWN_GRACE" (printf "%ds" (int $v.config.shutdownGraceSeconds))
  "SHUTDOWN_DELAY" (printf "%ds" (int $v.config.shutdownDelaySeconds))
  "RUST_LOG" $v.config.rustLog
  "LOG_FORMAT" $v.config.logFormat
}}
{{- if $v.metrics.enabled }}
{{- $_ := set $d "METRICS_LISTEN_ADDR" (printf "0.0.0.0:%d" (int $v.metrics.port)) }}
{{- end }}
{{- with $v.portone.userCode }}
{{- $_ := set $d "PORTONE_USER_CODE" . }}
{{- end }}
{{- if $v.portone.sandbox }}
{{- $_ := set $d "PORTONE_SANDBOX" "true" }}
{{- end }}
{{- if $v.otel.enabled }}
{{- with $v.otel.endpoint }}
{{- $_ := set $d "OTEL_EXPORTER_OTLP_ENDPOINT" . }}
{{- end }}
{{- $_ := set $d "OTEL_SERVICE_NAME" (default (include "portone-facade.name" .) $v.otel.serviceName) }}
{{- $attrs := list (printf "k8s.namespace.name=%s" .Release.Namespace) }}
{{- range $k, $a := $v.otel.resourceAttributes }}
{{- $attrs = append $attrs (printf "%s=%v" $k $a) }}
{{- end }}
{{- $_ := set $d "OTEL_RESOURCE_ATTRIBUTES" (join "," $attrs) }}
{{- with $v.otel.tracesSampler }}
{{- $_ := set $d "OTEL_TRACES_SAMPLER" . }}
{{- end }}
{{- with $v.otel.tracesSamplerArg }}
{{- $_ := set $d "OTEL_TRACES_SAMPLER_ARG" (toString .) }}
{{- end }}
{{- end }}
{{- range $k, $e := $v.extraEnv }}
{{- if hasKey $d $k }}
{{- fail (printf "extraEnv: %s is set by the chart; use the matching chart value instead" $k) }}
{{- end }}
{{- $_ := set $d $k (toString $e) }}
{{- end }}
{{- toYaml $d }}
{{- end }}

{{/*
Labels of the `helm test` pod. They must not match the Service selector
(name + instance), or the Service would route calls to the test pod.
*/}}
{{- define "portone-facade.testSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-test" (include "portone-facade.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: helm-test
{{- end }}
