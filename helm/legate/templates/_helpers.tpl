{{/*
Chart name, truncated to 63 characters (the DNS label limit).
*/}}
{{- define "legate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects: the release name if it already contains
the chart name, else RELEASE-CHART; truncated to 63 characters.
*/}}
{{- define "legate.fullname" -}}
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
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "legate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every object.
*/}}
{{- define "legate.labels" -}}
helm.sh/chart: {{ include "legate.chart" . }}
{{ include "legate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: ingress-controller
app.kubernetes.io/part-of: legate
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Selector labels: stable across upgrades, so never add a version here.
*/}}
{{- define "legate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "legate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Name of the ServiceAccount the pod runs as.
*/}}
{{- define "legate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "legate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Namespace the controller watches when scope.singleNamespace is true.
*/}}
{{- define "legate.watchNamespace" -}}
{{- default .Release.Namespace .Values.scope.namespace }}
{{- end }}

{{/*
Image reference: repository:tag, the tag defaulting to the appVersion.
*/}}
{{- define "legate.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) }}
{{- end }}

{{/*
Path of the control socket, inside the shared emptyDir.
*/}}
{{- define "legate.controlSocket" -}}
/var/run/legate/control.sock
{{- end }}
