{{/*
Chart name, truncated to the 63 characters a label value allows.
*/}}
{{- define "habit-tracker.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name. A release named after the chart ("habit-tracker")
gives "habit-tracker", so the backend Service is "habit-tracker-backend".
*/}}
{{- define "habit-tracker.fullname" -}}
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
Component names (leave room for the "-backend"/"-frontend" suffix).
*/}}
{{- define "habit-tracker.backend.fullname" -}}
{{- printf "%s-backend" (include "habit-tracker.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{- define "habit-tracker.frontend.fullname" -}}
{{- printf "%s-frontend" (include "habit-tracker.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{- define "habit-tracker.configmapName" -}}
{{- printf "%s-config" (include "habit-tracker.fullname" . | trunc 56 | trimSuffix "-") }}
{{- end }}

{{- define "habit-tracker.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else }}
{{- printf "%s-secrets" (include "habit-tracker.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}
{{- end }}

{{- define "habit-tracker.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "habit-tracker.labels" -}}
helm.sh/chart: {{ include "habit-tracker.chart" . }}
{{ include "habit-tracker.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: habit-tracker
{{- end }}

{{/*
Selector labels (never change them: a Deployment's selector is immutable).
*/}}
{{- define "habit-tracker.selectorLabels" -}}
app.kubernetes.io/name: {{ include "habit-tracker.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
An image reference "repository:tag". Refuses an empty tag and "latest".
Usage: include "habit-tracker.image" .Values.backend.image
*/}}
{{- define "habit-tracker.image" -}}
{{- $tag := toString .tag }}
{{- if or (eq $tag "") (eq (lower $tag) "latest") }}
{{- fail (printf "image %s needs a concrete tag (got %q): never \"latest\"" .repository $tag) }}
{{- end }}
{{- printf "%s:%s" .repository $tag }}
{{- end }}

{{/*
URL the frontend uses for the backend API.
*/}}
{{- define "habit-tracker.apiBaseUrl" -}}
{{- if .Values.config.apiBaseUrl }}
{{- .Values.config.apiBaseUrl }}
{{- else }}
{{- printf "http://%s:%v" (include "habit-tracker.backend.fullname" .) .Values.backend.service.port }}
{{- end }}
{{- end }}
