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
The RBAC rules the operator needs in a namespace it manages (the same list
serves the ClusterRole in cluster-wide mode and each per-namespace Role), and
the cluster-scoped ones. Both come from files/operator-rules.yaml, generated
from traderbot_operator.rbac.RULES (the operator's one list of the calls its
code makes, also the table of docs/operator.md): a unit test fails when the
file is stale, and a cluster test runs the operator with these rules.
*/}}
{{- define "traderbot-operator.rules" -}}
{{- .Files.Get "files/operator-rules.yaml" | fromYaml | toJson -}}
{{- end -}}

{{- define "traderbot-operator.namespacedRules" -}}
{{- $kept := list -}}
{{- range (include "traderbot-operator.rules" . | fromJson).namespaced -}}
{{- if or $.Values.rbac.serviceMonitors (not (has "monitoring.coreos.com" .apiGroups)) -}}
{{- $kept = append $kept . -}}
{{- end -}}
{{- end -}}
{{- toYaml $kept -}}
{{- end -}}

{{- define "traderbot-operator.clusterRules" -}}
{{- toYaml (include "traderbot-operator.rules" . | fromJson).cluster -}}
{{- end -}}
