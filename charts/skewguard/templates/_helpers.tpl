{{/* Release-scoped name; always contains "skewguard", which the alert rules match on job. */}}
{{- define "skewguard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "skewguard.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "skewguard.nodeSelectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: node-clock
{{- end -}}

{{- define "skewguard.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The node file as guards name it. */}}
{{- define "skewguard.nodePath" -}}
{{ trimSuffix "/" .Values.node.hostDir }}/{{ .Values.node.file }}
{{- end -}}

{{/* SKEWGUARD_SOURCES for a guard: the node file first, the network as fallback. */}}
{{- define "skewguard.guardSources" -}}
{{- if .Values.node.enabled -}}
node://{{ include "skewguard.nodePath" . }},{{ .Values.sources }}
{{- else -}}
{{ .Values.sources }}
{{- end -}}
{{- end -}}

{{/* Container security context; the user is left to the platform when it assigns one. */}}
{{- define "skewguard.containerSecurityContext" -}}
{{- $user := .root.Values.securityContext.runAsUser -}}
{{- if hasKey . "user" }}{{ $user = .user }}{{ end -}}
runAsNonRoot: {{ ne (int $user) 0 }}
{{- if or (not .root.Values.securityContext.platformAssignsUserIds) (eq (int $user) 0) }}
runAsUser: {{ $user }}
runAsGroup: {{ if eq (int $user) 0 }}0{{ else }}{{ .root.Values.securityContext.runAsGroup }}{{ end }}
{{- end }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "skewguard.commonEnv" -}}
- name: SKEWGUARD_PROFILE
  value: {{ .Values.profile | quote }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The node file's directory, read-only, for a guard container (a list item). */}}
{{- define "skewguard.nodeMount" -}}
- name: skewguard-node
  mountPath: {{ .Values.node.hostDir }}
  readOnly: true
{{- end -}}
