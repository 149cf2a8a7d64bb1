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

{{- define "vibebox.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "vibebox.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
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
"container" "<extra container fields as YAML>" "spec" "<extra pod spec fields as YAML>").
Non-root, read-only root, no capabilities, RuntimeDefault seccomp; /tmp and the metrics directory
as emptyDirs; the shared data volume; the Docker client certificate read-only.
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
            name: {{ include "vibebox.fullname" $root }}-settings
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
