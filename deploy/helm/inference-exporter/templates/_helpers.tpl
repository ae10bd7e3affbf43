{{/* The chart's name: also the job label of the scrape, which the bundled alerts select. */}}
{{- define "inference-exporter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "inference-exporter.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "inference-exporter.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "inference-exporter.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "inference-exporter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "inference-exporter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "inference-exporter.labels" -}}
{{ include "inference-exporter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: inference-exporter
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* The web config as the chart writes it: web.config, with cert_file and key_file
from web.tlsSecret's mount unless set. Empty when there is nothing to write. */}}
{{- define "inference-exporter.webConfig" -}}
{{- $cfg := deepCopy (.Values.web.config | default dict) }}
{{- if .Values.web.tlsSecret }}
{{- $tls := dict "cert_file" "/etc/inference-exporter/tls/tls.crt" "key_file" "/etc/inference-exporter/tls/tls.key" }}
{{- $_ := set $cfg "tls_server_config" (mergeOverwrite $tls (get $cfg "tls_server_config" | default dict)) }}
{{- end }}
{{- if $cfg }}{{ toYaml $cfg }}{{ end }}
{{- end }}

{{/* The Secret holding the web config, or nothing when there is no web config. */}}
{{- define "inference-exporter.webSecret" -}}
{{- if .Values.web.existingSecret }}{{ .Values.web.existingSecret }}
{{- else if include "inference-exporter.webConfig" . }}{{ include "inference-exporter.fullname" . }}-web-config
{{- end }}
{{- end }}

{{/* "true" when the exporter serves HTTPS, as far as the chart can tell. */}}
{{- define "inference-exporter.tls" -}}
{{- $cfg := include "inference-exporter.webConfig" . | fromYaml }}
{{- if get $cfg "tls_server_config" }}true{{ end }}
{{- end }}

{{/* tcp or http: the kind of the kubelet probes (values.yaml, probes.mode). */}}
{{- define "inference-exporter.probeKind" -}}
{{- $mode := .Values.probes.mode }}
{{- if ne $mode "auto" }}{{ $mode }}
{{- else if .Values.web.existingSecret }}tcp
{{- else }}
{{- $cfg := include "inference-exporter.webConfig" . | fromYaml }}
{{- $tls := get $cfg "tls_server_config" | default dict }}
{{- if or (get $cfg "basic_auth_users") (has (get $tls "client_auth_type") (list "RequireAnyClientCert" "RequireAndVerifyClientCert")) }}tcp
{{- else }}http
{{- end }}
{{- end }}
{{- end }}

{{- define "inference-exporter.probe" -}}
{{- if eq (include "inference-exporter.probeKind" .root) "tcp" }}
tcpSocket:
  port: metrics
{{- else }}
httpGet:
  path: {{ .path }}
  port: metrics
  scheme: {{ ternary "HTTPS" "HTTP" (eq (include "inference-exporter.tls" .root) "true") }}
{{- end }}
{{- end }}

{{/* The pod template of the Deployment (one replica) or the StatefulSet (shards). */}}
{{- define "inference-exporter.podTemplate" -}}
{{- $sharded := gt (int .Values.replicas) 1 }}
{{- $webSecret := include "inference-exporter.webSecret" . }}
metadata:
  labels:
    {{- include "inference-exporter.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include (print $.Template.BasePath "/configmap.yaml") . | sha256sum }}
    {{- if and $webSecret (not .Values.web.existingSecret) }}
    checksum/web-config: {{ include (print $.Template.BasePath "/web-config.yaml") . | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  automountServiceAccountToken: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    - name: inference-exporter
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - --config.file=/etc/inference-exporter/config/config.yaml
        - --web.listen-address=:{{ .Values.web.port }}
        {{- if $webSecret }}
        - --web.config.file=/etc/inference-exporter/web/web-config.yml
        {{- end }}
        {{- if $sharded }}
        - --shard.from-pod-name
        - --total-shards={{ .Values.replicas }}
        {{- end }}
        {{- with .Values.extraArgs }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- if or $sharded .Values.extraEnv }}
      env:
        {{- if $sharded }}
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      ports:
        - name: metrics
          containerPort: {{ .Values.web.port }}
          protocol: TCP
      livenessProbe:
        {{- include "inference-exporter.probe" (dict "root" . "path" "/-/healthy") | trim | nindent 8 }}
        {{- toYaml .Values.probes.liveness | nindent 8 }}
      readinessProbe:
        {{- include "inference-exporter.probe" (dict "root" . "path" "/-/ready") | trim | nindent 8 }}
        {{- toYaml .Values.probes.readiness | nindent 8 }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /etc/inference-exporter/config
          readOnly: true
        {{- if .Values.apiKeysSecret }}
        - name: keys
          mountPath: /etc/inference-exporter/keys
          readOnly: true
        {{- end }}
        {{- if $webSecret }}
        - name: web-config
          mountPath: /etc/inference-exporter/web
          readOnly: true
        {{- end }}
        {{- if .Values.web.tlsSecret }}
        - name: tls
          mountPath: /etc/inference-exporter/tls
          readOnly: true
        {{- end }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ .Values.existingConfigMap | default (printf "%s-config" (include "inference-exporter.fullname" .)) }}
    {{- if .Values.apiKeysSecret }}
    - name: keys
      secret:
        secretName: {{ .Values.apiKeysSecret }}
        defaultMode: 0440
    {{- end }}
    {{- if $webSecret }}
    - name: web-config
      secret:
        secretName: {{ $webSecret }}
        defaultMode: 0440
    {{- end }}
    {{- if .Values.web.tlsSecret }}
    - name: tls
      secret:
        secretName: {{ .Values.web.tlsSecret }}
        defaultMode: 0440
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
