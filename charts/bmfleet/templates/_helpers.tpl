{{- define "bmfleet.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "bmfleet.serviceAccountName" -}}
{{- default (include "bmfleet.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "bmfleet.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "bmfleet.labels" -}}
{{ include "bmfleet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: bmfleet
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "bmfleet.image" -}}
{{- if .Values.image.digest -}}{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}{{- end -}}
{{- end -}}

{{- define "bmfleet.gatewayName" -}}
{{ include "bmfleet.fullname" . }}-gateway
{{- end -}}

{{- define "bmfleet.gatewayServiceAccountName" -}}
{{- default (include "bmfleet.gatewayName" .) .Values.gateway.serviceAccount.name -}}
{{- end -}}

{{- define "bmfleet.gatewayNamespace" -}}
{{- default .Release.Namespace .Values.gateway.namespace -}}
{{- end -}}
