{{/* Names: helm's usual conventions (nameOverride, fullnameOverride, 63 characters). */}}
{{- define "vibebox.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vibebox.fullname" -}}
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

{{- define "vibebox.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of a component: (dict "root" $ "component" "web"). */}}
{{- define "vibebox.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vibebox.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{- define "vibebox.labels" -}}
helm.sh/chart: {{ include "vibebox.chart" .root }}
{{ include "vibebox.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
{{- end }}

{{/* The ServiceAccount. Not made and not named: the namespace's "default", unless the kubernetes
runtime would bind its RBAC (nodes/proxy included) to it, which fails the render. */}}
{{- define "vibebox.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "vibebox.fullname" .) .Values.serviceAccount.name }}
{{- else if .Values.serviceAccount.name }}
{{- .Values.serviceAccount.name }}
{{- else if .Values.runtime.kubernetes.enabled }}
{{- fail "serviceAccount.name: with serviceAccount.create false and runtime.kubernetes.enabled, name the ServiceAccount to bind the runtime's RBAC to (nodes/proxy included); the namespace's default one would give it to every pod that uses it" }}
{{- else }}
{{- "default" }}
{{- end }}
{{- end }}

{{- define "vibebox.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{- define "vibebox.secretName" -}}
{{- required "existingSecret: name the Secret holding VIBEBOX_SECRET_KEY, VIBEBOX_ENCRYPTION_KEY, DATABASE_URL, REDIS_URL... (docs/kubernetes.md, Deploy)" .Values.existingSecret }}
{{- end }}

{{/* Whether a component's pods call the Kubernetes API (the kubernetes runtime: web, worker, builds, setup). */}}
{{- define "vibebox.drivesSandboxes" -}}
{{- if and .root.Values.runtime.kubernetes.enabled (has .component (list "web" "worker" "builds" "setup")) }}true{{ else }}false{{ end }}
{{- end }}

{{/*
The pod template every workload shares: (dict "root" $ "component" "web" "command" "..." "grace" 35
"container" "<extra container fields as YAML>" "spec" "<extra pod spec fields as YAML>"
"settings" "<the ConfigMap's suffix: settings, or setup-settings for the setup hook>").
Non-root, read-only root, no capabilities, RuntimeDefault seccomp; /tmp and the metrics directory
as emptyDirs; the shared data volume; the Docker client certificate read-only (optional with the
kubernetes runtime, which talks to no Docker host).
*/}}
{{- define "vibebox.podTemplate" -}}
{{- $root := .root -}}
metadata:
  labels:
    {{- include "vibebox.selectorLabels" . | nindent 4 }}
    {{- with $root.Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/settings: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    {{- with $root.Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "vibebox.serviceAccountName" $root }}
  automountServiceAccountToken: {{ include "vibebox.drivesSandboxes" . }}
  enableServiceLinks: false
  terminationGracePeriodSeconds: {{ .grace | default 30 }}
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    runAsNonRoot: true
    runAsUser: 10001
    runAsGroup: 10001
    fsGroup: 10001
    fsGroupChangePolicy: OnRootMismatch
    seccompProfile:
      type: RuntimeDefault
  containers:
    - name: {{ .component }}
      image: {{ include "vibebox.image" $root }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      command:
        - sh
        - -c
        - {{ .command | quote }}
      workingDir: /opt/vibebox
      envFrom:
        - configMapRef:
            name: {{ include "vibebox.fullname" $root }}-{{ .settings | default "settings" }}
        - secretRef:
            name: {{ include "vibebox.secretName" $root }}
      resources:
        {{- required (printf "%s.resources: requests and limits" .component) .resources | toYaml | nindent 8 }}
      {{- with .container }}
      {{- . | nindent 6 }}
      {{- end }}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        runAsNonRoot: true
        capabilities:
          drop:
            - ALL
        seccompProfile:
          type: RuntimeDefault
      volumeMounts:
        - name: data
          mountPath: /var/lib/vibebox
        - name: metrics
          mountPath: /var/lib/vibebox-metrics
        - name: tmp
          mountPath: /tmp
        - name: docker-tls
          mountPath: /etc/vibebox/docker
          readOnly: true
  volumes:
    - name: data
      persistentVolumeClaim:
        claimName: {{ $root.Values.persistence.existingClaim | default (printf "%s-data" (include "vibebox.fullname" $root)) }}
    - name: metrics
      emptyDir:
        sizeLimit: 256Mi
    - name: tmp
      emptyDir:
        sizeLimit: 1Gi
    - name: docker-tls
      secret:
        secretName: {{ $root.Values.dockerTLS.existingSecret }}
        defaultMode: 288
        {{- if $root.Values.runtime.kubernetes.enabled }}
        optional: true
        {{- end }}
  {{- with .spec }}
  {{- . | nindent 2 }}
  {{- end }}
  {{- with $root.Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if .spread }}
  topologySpreadConstraints:
    - maxSkew: 1
      topologyKey: kubernetes.io/hostname
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "vibebox.selectorLabels" . | nindent 10 }}
  {{- end }}
{{- end }}

{{/* The settings' data (every setting that is not secret), for the release's ConfigMap and the
setup hook's copy of it: "KEY: \"value\"" lines. */}}
{{- define "vibebox.settingsData" -}}
{{- $fullname := include "vibebox.fullname" . }}
{{- $public := required "publicHost: the API and dashboard host" .Values.publicHost }}
{{- $settings := dict
    "VIBEBOX_PRODUCTION" "1"
    "VIBEBOX_INSTANCE" "prod"
    "VIBEBOX_DATA_DIR" "/var/lib/vibebox"
    "PROMETHEUS_MULTIPROC_DIR" "/var/lib/vibebox-metrics"
    "VIBEBOX_LOG_FORMAT" "json"
    "PYTHONDONTWRITEBYTECODE" "1"
    "HOME" "/tmp"
    "VIBEBOX_PUBLIC_URL" (printf "https://%s" $public)
    "VIBEBOX_ALLOWED_HOSTS" (printf "%s,localhost,%s-web" $public $fullname)
    "VIBEBOX_CSRF_TRUSTED_ORIGINS" (printf "https://%s" $public)
    "VIBEBOX_PREVIEW_DOMAIN" (required "previewDomain: the previews' domain" .Values.previewDomain)
    "VIBEBOX_PREVIEW_URL_SCHEME" "https"
    "FORWARDED_ALLOW_IPS" "*"
    "VIBEBOX_WEB_WORKERS" "2"
    "DOCKER_TLS_VERIFY" "1"
    "DOCKER_CERT_PATH" "/etc/vibebox/docker"
    "VIBEBOX_GATEWAY_HOST" "0.0.0.0"
    "VIBEBOX_EGRESS_PROXY_HOST" "0.0.0.0"
    "VIBEBOX_MCP_API_URL" (printf "http://%s-web%s" $fullname (ternary "" (printf ":%d" (int .Values.web.service.port)) (eq (int .Values.web.service.port) 80))) }}
{{- if .Values.runtime.kubernetes.enabled }}
{{- $_ := set $settings "VIBEBOX_RUNTIME_DRIVER" "kubernetes" }}
{{- $_ := set $settings "VIBEBOX_KUBERNETES_NAMESPACE" .Values.runtime.kubernetes.namespace }}
{{- $_ := set $settings "VIBEBOX_KUBERNETES_CONTROL_NAMESPACE" .Release.Namespace }}
{{- $_ := set $settings "VIBEBOX_KUBERNETES_SANDBOXD_IMAGE" (required "runtime.kubernetes.sandboxdImage" .Values.runtime.kubernetes.sandboxdImage) }}
{{- $_ := set $settings "VIBEBOX_IMAGE_PREFIX" (required "runtime.kubernetes.imagePrefix" .Values.runtime.kubernetes.imagePrefix) }}
{{- end }}
{{- range $key, $value := .Values.settings | default dict }}
{{- if not (kindIs "string" $value) }}
{{- $quoted := $value }}
{{- if and (kindIs "float64" $value) (eq (float64 (int64 $value)) $value) }}
{{- $quoted = int64 $value }}
{{- end }}
{{- fail (printf "settings.%s is %v, not a string: quote it (%s: \"%v\"); helm reads an unquoted number as a float (5368709120 becomes 5.36870912e+09) and true as a boolean (on the command line: --set-string)" $key $value $key $quoted) }}
{{- end }}
{{- end }}
{{- range $key, $value := merge (deepCopy (.Values.settings | default dict)) $settings }}
{{- if regexMatch "(?i)SECRET|PASSWORD|TOKEN|_KEY$|CREDENTIAL|^(DATABASE|REDIS)_URL$" $key }}
{{- fail (printf "settings.%s looks secret: put it in the Secret existingSecret names, not in values" $key) }}
{{- end }}
{{ $key }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/*
The setup Job's hook annotations, and its settings' copy's (lower weight: made first). A hook of
post-install (after the release's objects: the ServiceAccount, the data claim, the RBAC exist) and
pre-upgrade (before the Deployments roll: migrations first). A hook is not one of the release's
objects: helm deletes the previous one just before making the next (before-hook-creation), so the
finished Job stays for its logs until the next release; `helm uninstall` leaves the last ones.
*/}}
{{- define "vibebox.setupHook" -}}
helm.sh/hook: post-install,pre-upgrade
helm.sh/hook-weight: {{ .weight | quote }}
helm.sh/hook-delete-policy: before-hook-creation
{{- end }}
