{{- define "bgplb.name" -}}bgplb{{- end -}}

{{- define "bgplb.labels" -}}
app.kubernetes.io/name: bgplb
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "bgplb.selector" -}}
app.kubernetes.io/name: bgplb
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "bgplb.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "bgplb.agentImage" -}}
{{ .Values.agentImage.repository }}:{{ .Values.agentImage.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "bgplb.webhookService" -}}{{ .Release.Name }}-webhook{{- end -}}

{{/* Restricted-profile container security: no privilege, nothing writable. */}}
{{- define "bgplb.restricted" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
