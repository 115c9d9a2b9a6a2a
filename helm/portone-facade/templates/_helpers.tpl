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
{{- /* Set behind the chart's back, these would turn TLS on without the health
listener, the probes' port and the mounts that go with it. */}}
{{- if has (upper $name) (list "TLS_CERT_FILE" "TLS_KEY_FILE" "TLS_CLIENT_CA_FILE" "AUTHZ_POLICY_FILE" "HEALTH_LISTEN_ADDR") }}
{{- fail (printf "extraEnv: %s may not be set here; use tls.*, authz.callers and health.port" $name) }}
{{- end }}
{{- end }}
{{- include "portone-facade.validateTls" . }}
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

{{/*
TLS, mutual TLS and authorization (DESIGN §8): the combinations the facade
would refuse at start, refused here with the value to change instead.
*/}}
{{- define "portone-facade.validateTls" -}}
{{- $tls := .Values.tls }}
{{- if .Values.authz.callers }}
{{- if not (and $tls.enabled $tls.clientAuth.enabled) }}
{{- fail "authz.callers needs tls.enabled and tls.clientAuth.enabled: without client certificates there are no caller identities to authorize (the facade refuses AUTHZ_POLICY_FILE without TLS_CLIENT_CA_FILE)" }}
{{- end }}
{{- $seen := dict }}
{{- range .Values.authz.callers }}
{{- if hasKey $seen .identity }}
{{- fail (printf "authz.callers: identity %q is listed twice; merge its allow lists" .identity) }}
{{- end }}
{{- $_ := set $seen .identity true }}
{{- end }}
{{- end }}
{{- if not $tls.enabled }}
{{- if or $tls.existingSecret $tls.certManager.enabled $tls.clientAuth.enabled }}
{{- fail "tls.existingSecret, tls.certManager.enabled and tls.clientAuth.enabled need tls.enabled" }}
{{- end }}
{{- else }}
{{- if and $tls.existingSecret $tls.certManager.enabled }}
{{- fail "tls: set either tls.existingSecret or tls.certManager.enabled, not both" }}
{{- end }}
{{- if not (or $tls.existingSecret $tls.certManager.enabled) }}
{{- fail "tls.enabled needs a certificate: set tls.existingSecret (a kubernetes.io/tls Secret) or tls.certManager.enabled with tls.certManager.issuerRef" }}
{{- end }}
{{- if eq (int .Values.health.port) (int .Values.grpcPort) }}
{{- fail (printf "health.port (%v) must differ from grpcPort: the health listener is a second, plaintext port" .Values.health.port) }}
{{- end }}
{{- if and .Values.metrics.enabled (eq (int .Values.health.port) (int .Values.metrics.port)) }}
{{- fail (printf "health.port (%v) must differ from metrics.port" .Values.health.port) }}
{{- end }}
{{- end }}
{{- if and $tls.enabled $tls.certManager.enabled }}
{{- $cm := $tls.certManager }}
{{- if not $cm.issuerRef.name }}
{{- fail "tls.certManager.issuerRef.name is required: the cert-manager Issuer or ClusterIssuer that signs the server certificate" }}
{{- end }}
{{- /* The cert-manager webhook's own rules (internal/apis/certmanager/validation),
so that a bad value fails `helm template` rather than half-way through an install. */}}
{{- $alg := $cm.privateKey.algorithm }}
{{- $size := int $cm.privateKey.size }}
{{- if and (eq $alg "ECDSA") (not (has $size (list 256 384 521))) }}
{{- fail (printf "tls.certManager.privateKey.size %d is not an ECDSA size: use 256, 384 or 521" $size) }}
{{- end }}
{{- if and (eq $alg "RSA") (or (lt $size 2048) (gt $size 8192)) }}
{{- fail (printf "tls.certManager.privateKey.size %d is not an RSA size: use 2048 to 8192" $size) }}
{{- end }}
{{- $duration := include "portone-facade.durationSeconds" $cm.duration | float64 }}
{{- $renewBefore := include "portone-facade.durationSeconds" $cm.renewBefore | float64 }}
{{- if lt $duration 3600.0 }}
{{- fail (printf "tls.certManager.duration %s is shorter than cert-manager's minimum of 1h" $cm.duration) }}
{{- end }}
{{- if lt $renewBefore 300.0 }}
{{- fail (printf "tls.certManager.renewBefore %s is shorter than cert-manager's minimum of 5m" $cm.renewBefore) }}
{{- end }}
{{- if ge $renewBefore $duration }}
{{- fail (printf "tls.certManager.renewBefore %s must be shorter than tls.certManager.duration %s" $cm.renewBefore $cm.duration) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Seconds in a Go duration made of h, m and s parts (`2160h`, `1h30m`), which
values.schema.json guarantees.
*/}}
{{- define "portone-facade.durationSeconds" -}}
{{- $total := 0.0 }}
{{- range regexFindAll "[0-9]+(\\.[0-9]+)?[hms]" . -1 }}
{{- $unit := regexFind "[hms]$" . }}
{{- $total = addf $total (mulf (trimSuffix $unit . | float64) (get (dict "h" 3600 "m" 60 "s" 1) $unit)) }}
{{- end }}
{{- $total }}
{{- end }}

{{/*
The Secret holding the server certificate: the operator's, or the one the
chart's cert-manager Certificate writes.
*/}}
{{- define "portone-facade.tlsSecretName" -}}
{{- if .Values.tls.existingSecret }}
{{- .Values.tls.existingSecret }}
{{- else }}
{{- printf "%s-tls" (include "portone-facade.fullname" . | trunc 59 | trimSuffix "-") }}
{{- end }}
{{- end }}

{{/*
Whether the AUTHZ_POLICY_FILE ConfigMap is rendered and mounted.
*/}}
{{- define "portone-facade.authzEnabled" -}}
{{- if and .Values.tls.enabled .Values.tls.clientAuth.enabled .Values.authz.callers }}true{{ end }}
{{- end }}

{{- define "portone-facade.authzConfigMapName" -}}
{{- printf "%s-authz" (include "portone-facade.fullname" . | trunc 57 | trimSuffix "-") }}
{{- end }}

{{/*
Port of the gRPC probes and of the `helm test` check: the plaintext health
listener when the gRPC port speaks TLS (kubelet's gRPC probes cannot), else
the gRPC port.
*/}}
{{- define "portone-facade.probePort" -}}
{{- if .Values.tls.enabled }}{{ .Values.health.port }}{{ else }}{{ .Values.grpcPort }}{{ end }}
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
{{- if $v.tls.enabled }}
{{- /* Files of the volumes that deployment.yaml mounts. */}}
{{- $_ := set $d "TLS_CERT_FILE" "/var/run/secrets/tls/tls.crt" }}
{{- $_ := set $d "TLS_KEY_FILE" "/var/run/secrets/tls/tls.key" }}
{{- $_ := set $d "HEALTH_LISTEN_ADDR" (printf "0.0.0.0:%d" (int $v.health.port)) }}
{{- if $v.tls.clientAuth.enabled }}
{{- $_ := set $d "TLS_CLIENT_CA_FILE" (ternary "/var/run/secrets/tls-client-ca/ca.crt" "/var/run/secrets/tls/ca.crt" (not (empty $v.tls.clientAuth.caSecret.name))) }}
{{- end }}
{{- if include "portone-facade.authzEnabled" . }}
{{- $_ := set $d "AUTHZ_POLICY_FILE" "/etc/portone-facade/authz/policy.json" }}
{{- end }}
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
