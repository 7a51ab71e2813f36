{{/* Name of the chart, overridable. */}}
{{- define "traderbot-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name of the release's objects: the release name when it already holds the chart name. */}}
{{- define "traderbot-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the operator pod; never add anything that changes between releases. */}}
{{- define "traderbot-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "traderbot-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "traderbot-operator.labels" -}}
{{ include "traderbot-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: traderbot
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "traderbot-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "traderbot-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* repository:tag, or repository@digest when a digest pins the image. */}}
{{- define "traderbot-operator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
The RBAC rules the operator needs in a namespace it manages. The same list
serves the ClusterRole (cluster-wide mode) and each per-namespace Role.
NB: derived from the code, not wished for: the TraderBot (kopf keeps its
progress in annotations: patch), its status subresource (patch), every kind in
CHILD_KINDS of handlers/traderbot.py (kopf watches them; kube.py reads, applies
and deletes them), core Events (kube.py creates them; kopf's own posting is
off) and ServiceMonitors (applied only when their CRD exists). A unit test
compares this list with the code, a cluster test runs the operator with it.
*/}}
{{- define "traderbot-operator.namespacedRules" -}}
- apiGroups: [traderbot.dev]
  resources: [traderbots]
  verbs: [get, list, watch, patch]
- apiGroups: [traderbot.dev]
  resources: [traderbots/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [secrets, services, persistentvolumeclaims]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [apps]
  resources: [deployments, statefulsets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [batch]
  resources: [cronjobs]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- if .Values.rbac.serviceMonitors }}
- apiGroups: [monitoring.coreos.com]
  resources: [servicemonitors]
  verbs: [get, create, patch, delete]
{{- end }}
{{- end -}}
