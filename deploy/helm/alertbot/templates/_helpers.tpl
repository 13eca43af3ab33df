{{/* The release's full name: "alertbot" when the release is called that, else "<release>-alertbot". */}}
{{- define "alertbot.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "alertbot.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "alertbot.labels" -}}
{{ include "alertbot.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "alertbot.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "alertbot.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "alertbot.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Where the Secret's keys are mounted, and the config file. */}}
{{- define "alertbot.secretDir" -}}/etc/alertbot/secrets{{- end -}}
{{- define "alertbot.configDir" -}}/etc/alertbot/config{{- end -}}
{{- define "alertbot.dataDir" -}}/var/lib/alertbot/data{{- end -}}

{{/* PostgreSQL when the Secret holds a database URL; else SQLite on a volume. */}}
{{- define "alertbot.postgres" -}}
{{- if .Values.secrets.keys.databaseUrl -}}true{{- end -}}
{{- end -}}

{{/*
alertbot.yaml: the user's config, with what the chart owns set over it: where to listen, the store,
and a *_file key for each secret the Secret has (a key set to null is left unconfigured).
*/}}
{{- define "alertbot.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $keys := .Values.secrets.keys -}}
{{- $dir := include "alertbot.secretDir" . -}}
{{- $_ := set $cfg "server" (merge (dict "host" "0.0.0.0" "port" (int .Values.service.port)) (default (dict) $cfg.server)) -}}
{{- if $keys.databaseUrl -}}
{{- $_ := set $cfg "storage" (merge (dict "url_file" (printf "%s/%s" $dir $keys.databaseUrl)) (default (dict) $cfg.storage)) -}}
{{- else -}}
{{- $_ := set $cfg "storage" (merge (dict "url" (printf "sqlite:///%s/alertbot.db" (include "alertbot.dataDir" .))) (default (dict) $cfg.storage)) -}}
{{- end -}}
{{- $files := list
      (list "webhook" "token_file" $keys.webhookToken)
      (list "api" "token_file" $keys.apiToken)
      (list "pagerduty" "routing_key_file" $keys.pagerdutyRoutingKey)
      (list "slack" "bot_token_file" $keys.slackBotToken)
      (list "slack" "signing_secret_file" $keys.slackSigningSecret)
      (list "slack" "app_token_file" $keys.slackAppToken)
      (list "pagerduty" "webhook_secret_file" $keys.pagerdutyWebhookSecret) -}}
{{- range $files -}}
{{- $section := index . 0 -}}{{- $key := index . 1 -}}{{- $secretKey := index . 2 -}}
{{- if $secretKey -}}
{{- $_ := set $cfg $section (merge (dict $key (printf "%s/%s" $dir $secretKey)) (default (dict) (index $cfg $section))) -}}
{{- end -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}
