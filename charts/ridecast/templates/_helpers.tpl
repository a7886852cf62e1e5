{{/*
Names. With `helm install ridecast` every object is ridecast-<component> (ridecast-serve, ridecast-trino, ...).
*/}}
{{- define "ridecast.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ridecast.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ridecast
{{- end -}}

{{/* selector labels of one component: (dict "ctx" $ "component" "serve") */}}
{{- define "ridecast.selectorLabels" -}}
app.kubernetes.io/name: {{ .ctx.Chart.Name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ridecast.componentLabels" -}}
{{ include "ridecast.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ridecast.serviceAccountName" -}}{{ include "ridecast.fullname" . }}{{- end -}}

{{/* repository:tag, or repository@digest when a digest is given (the tag then only documents the version) */}}
{{- define "ridecast.image" -}}
{{- if .digest -}}
{{- printf "%s@%s" .repository .digest -}}
{{- else -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}
{{- end -}}

{{/* ======================= the one set of wiring values ======================= */}}

{{- define "ridecast.kafkaBootstrap" -}}
{{- if .Values.kafka.external.bootstrapServers -}}
{{- .Values.kafka.external.bootstrapServers -}}
{{- else -}}
{{- printf "%s-kafka-bootstrap:9092" (include "ridecast.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "ridecast.strimziEnabled" -}}{{- if not .Values.kafka.external.bootstrapServers -}}true{{- end -}}{{- end -}}

{{- define "ridecast.pgHost" -}}
{{- if .Values.postgresql.enabled -}}
{{- printf "%s-postgresql" (include "ridecast.fullname" .) -}}
{{- else -}}
{{- required "postgresql.host is required when postgresql.enabled is false" .Values.postgresql.host -}}
{{- end -}}
{{- end -}}

{{- define "ridecast.pgSecret" -}}
{{- default (printf "%s-postgresql" (include "ridecast.fullname" .)) .Values.postgresql.existingSecret -}}
{{- end -}}

{{/* SQLAlchemy URI of the Iceberg JDBC catalog; $(RIDECAST_PG_PASSWORD) is expanded by the kubelet from the Secret */}}
{{- define "ridecast.catalogUri" -}}
{{- include "ridecast.catalogUriWith" (dict "ctx" . "password" "$(RIDECAST_PG_PASSWORD)") -}}
{{- end -}}

{{/* the same URI with a given password: (dict "ctx" $ "password" pw) */}}
{{- define "ridecast.catalogUriWith" -}}
{{- $p := .ctx.Values.postgresql -}}
{{- printf "postgresql+psycopg2://%s:%s@%s:%d/%s?sslmode=%s" $p.username .password (include "ridecast.pgHost" .ctx) (int $p.port) $p.database $p.sslmode -}}
{{- end -}}

{{- define "ridecast.catalogJdbcUrl" -}}
{{- printf "jdbc:postgresql://%s:%d/%s?sslmode=%s" (include "ridecast.pgHost" .) (int .Values.postgresql.port) .Values.postgresql.database .Values.postgresql.sslmode -}}
{{- end -}}

{{- define "ridecast.mlflowBackendUri" -}}
{{- printf "postgresql://%s:$(RIDECAST_PG_PASSWORD)@%s:%d/%s?sslmode=%s" .Values.postgresql.username (include "ridecast.pgHost" .) (int .Values.postgresql.port) .Values.postgresql.mlflowDatabase .Values.postgresql.sslmode -}}
{{- end -}}

{{- define "ridecast.s3Endpoint" -}}
{{- if .Values.minio.enabled -}}
{{- printf "http://%s-minio:9000" (include "ridecast.fullname" .) -}}
{{- else -}}
{{- .Values.objectStorage.endpoint -}}
{{- end -}}
{{- end -}}

{{- define "ridecast.s3PathStyle" -}}
{{- if or .Values.minio.enabled .Values.objectStorage.pathStyleAccess -}}true{{- else -}}false{{- end -}}
{{- end -}}

{{- define "ridecast.s3Secret" -}}
{{- if .Values.objectStorage.existingSecret -}}
{{- .Values.objectStorage.existingSecret -}}
{{- else if .Values.minio.enabled -}}
{{- printf "%s-minio" (include "ridecast.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "ridecast.warehouse" -}}
{{- printf "s3://%s/%s" .Values.objectStorage.bucket .Values.catalog.warehousePrefix -}}
{{- end -}}

{{- define "ridecast.flinkStateDir" -}}
{{- printf "s3://%s/%s" .Values.objectStorage.bucket .Values.flink.statePrefix -}}
{{- end -}}

{{/* Iceberg FileIO properties (pyiceberg and Iceberg-Java read the same s3.* keys); credentials come from AWS_* env */}}
{{- define "ridecast.catalogProperties" -}}
{{- $p := dict "s3.region" .Values.objectStorage.region "client.region" .Values.objectStorage.region -}}
{{- with (include "ridecast.s3Endpoint" .) -}}
{{- $_ := set $p "s3.endpoint" . -}}
{{- end -}}
{{- if eq (include "ridecast.s3PathStyle" .) "true" -}}
{{- $_ := set $p "s3.path-style-access" "true" -}}
{{- end -}}
{{- toJson $p -}}
{{- end -}}

{{- define "ridecast.mlflowUri" -}}{{ printf "http://%s-mlflow:%d" (include "ridecast.fullname" .) (int .Values.mlflow.port) }}{{- end -}}
{{- define "ridecast.trinoUrl" -}}{{ printf "http://%s-trino:8080" (include "ridecast.fullname" .) }}{{- end -}}
{{- define "ridecast.serveUrl" -}}{{ printf "http://%s-serve:%d" (include "ridecast.fullname" .) (int .Values.serving.port) }}{{- end -}}
{{- define "ridecast.redisHost" -}}{{ printf "%s-redis" (include "ridecast.fullname" .) }}{{- end -}}
{{- define "ridecast.redisUrlWith" -}}{{ printf "redis://:%s@%s:6379/0" .password (include "ridecast.redisHost" .ctx) }}{{- end -}}
{{- define "ridecast.redisSecret" -}}{{ default (printf "%s-redis" (include "ridecast.fullname" .)) .Values.redis.existingSecret }}{{- end -}}
{{- define "ridecast.servingSecret" -}}{{ default (printf "%s-serving" (include "ridecast.fullname" .)) .Values.serving.existingSecret }}{{- end -}}
{{- define "ridecast.otlpEndpoint" -}}{{ printf "http://%s-otel-collector:4318/v1/traces" (include "ridecast.fullname" .) }}{{- end -}}

{{/*
The Secret-backed env every ridecast container gets, before the ConfigMap-independent URIs that embed them
(the kubelet expands $(VAR) only from variables defined earlier in the list).
*/}}
{{- define "ridecast.secretEnv" -}}
- name: RIDECAST_PG_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "ridecast.pgSecret" . }}
      key: {{ .Values.postgresql.passwordKey }}
{{- with (include "ridecast.s3Secret" .) }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.objectStorage.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.objectStorage.secretAccessKeyKey }}
{{- end }}
{{- end -}}

{{/* Full env of a ridecast (app image) container: ConfigMap via envFrom plus these */}}
{{- define "ridecast.appEnv" -}}
{{ include "ridecast.secretEnv" . }}
- name: RIDECAST_CATALOG__URI
  value: {{ include "ridecast.catalogUri" . | quote }}
{{- if .Values.redis.enabled }}
- name: RIDECAST_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "ridecast.redisSecret" . }}
      key: {{ .Values.redis.passwordKey }}
- name: RIDECAST_SERVING__REDIS_URL
  value: {{ include "ridecast.redisUrlWith" (dict "ctx" . "password" "$(RIDECAST_REDIS_PASSWORD)") | quote }}
{{- end }}
{{- if .Values.serving.requireApiKey }}
- name: RIDECAST_SERVING__API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "ridecast.servingSecret" . }}
      key: {{ .Values.serving.apiKeyKey }}
{{- end }}
{{- end -}}

{{- define "ridecast.envFrom" -}}
- configMapRef:
    name: {{ include "ridecast.fullname" . }}-config
{{- end -}}

{{/* ======================= hardening ======================= */}}

{{- define "ridecast.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid | default 1000 }}
runAsGroup: {{ .gid | default .uid | default 1000 }}
fsGroup: {{ .gid | default .uid | default 1000 }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "ridecast.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
A secret value (base64) kept across upgrades: (dict "ctx" $ "name" secretName "key" key "length" n).
The Secret's current value when it exists (lookup), else a random one, generated once per render and memoised
in the render's values (every template asking for it, e.g. the credential Secret and ridecast-env, gets the same).
*/}}
{{- define "ridecast.keptSecret" -}}
{{- $memo := .ctx.Values.__generatedSecrets | default dict -}}
{{- $_ := set .ctx.Values "__generatedSecrets" $memo -}}
{{- $id := printf "%s/%s" .name .key -}}
{{- if not (hasKey $memo $id) -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace .name -}}
{{- if and $existing (hasKey ($existing.data | default dict) .key) -}}
{{- $_ := set $memo $id (index $existing.data .key) -}}
{{- else -}}
{{- $_ := set $memo $id (randAlphaNum (int (default 32 .length)) | b64enc) -}}
{{- end -}}
{{- end -}}
{{- index $memo $id -}}
{{- end -}}

{{/*
The plain value of a credential, whichever Secret holds it: (dict "ctx" $ "secret" name "key" key "generated" bool
"length" n). Generated: the memoised value above. Existing: read at install time (lookup); empty when it cannot be
read (`helm template` without a cluster).
*/}}
{{- define "ridecast.secretValue" -}}
{{- if .generated -}}
{{- include "ridecast.keptSecret" (dict "ctx" .ctx "name" .secret "key" .key "length" .length) | b64dec -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace .secret -}}
{{- if and $existing (hasKey ($existing.data | default dict) .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* a NetworkPolicy pod selector for one component; Kafka's pods are Strimzi's, selected by their cluster label */}}
{{- define "ridecast.netpolSelector" -}}
{{- if eq .component "kafka" -}}
matchLabels:
  strimzi.io/cluster: {{ include "ridecast.fullname" .ctx }}
{{- else if eq .component "train" -}}
{{- /* the RayJob pods `ridecast train --on-cluster` creates carry the chart's name and component, not the release */}}
matchLabels:
  app.kubernetes.io/name: {{ .ctx.Chart.Name }}
  app.kubernetes.io/component: train
{{- else -}}
matchLabels:
  app.kubernetes.io/instance: {{ .ctx.Release.Name }}
  app.kubernetes.io/component: {{ .component }}
{{- end -}}
{{- end -}}
