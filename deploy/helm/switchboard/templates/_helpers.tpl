{{/*
What the chart knows of each binary: its gRPC service (health reports it by
name), the peers it dials (flag -> service) and the private key files it
signs with (flag -> file in its private key Secret).
*/}}
{{- define "switchboard.catalog" -}}
sessions:
  grpcService: switchboard.sessions.v1.SessionsService
  peers: {bot_address: bot, routing_address: routing}
  privateKeys: {service_signing_key: sessions.pem}
routing:
  grpcService: switchboard.routing.v1.RoutingService
  peers: {presence_address: presence, sessions_address: sessions}
  privateKeys: {service_signing_key: routing.pem}
bot:
  grpcService: switchboard.bot.v1.BotService
  peers: {}
  privateKeys: {}
presence:
  grpcService: switchboard.presence.v1.PresenceService
  peers: {}
  privateKeys: {}
identity:
  grpcService: switchboard.identity.v1.IdentityService
  peers: {}
  privateKeys: {verification_signing_key: verification.pem, identity_key_file: identity.key}
feedback:
  grpcService: switchboard.feedback.v1.FeedbackService
  peers: {sessions_address: sessions, routing_address: routing}
  privateKeys: {service_signing_key: feedback.pem}
{{- end }}

{{- define "switchboard.serviceNames" -}}
sessions routing bot presence identity feedback
{{- end }}

{{- define "switchboard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end }}

{{/* The Kubernetes name of service `name`: (dict "root" $ "name" "sessions"). */}}
{{- define "switchboard.name" -}}
{{- printf "%s-%s" (include "switchboard.fullname" .root) .name -}}
{{- end }}

{{- define "switchboard.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{- define "switchboard.labels" -}}
{{ include "switchboard.selectorLabels" . }}
app.kubernetes.io/part-of: switchboard
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end }}

{{- define "switchboard.postgres" -}}
{{- if .Values.database.postgresqlUrl }}true{{ end -}}
{{- end }}

{{/* Services that serve from one process at a time on PostgreSQL: they
decide in memory loaded at start, so replicas beyond the first are hot
standbys. One leader decides; the others wait, passing the gRPC calls
they get to it (ready while it serves), and the first to take the
database's lock when the leader goes takes over (docs/scaling.md). A
space-separated list. */}}
{{- define "switchboard.leaderAndStandbys" -}}
presence sessions routing
{{- end }}

{{- define "switchboard.passwordSecret" -}}
{{- default (printf "%s-database" (include "switchboard.fullname" .)) .Values.database.passwordSecret.name -}}
{{- end }}

{{- define "switchboard.publicKeySecret" -}}
{{- default (printf "%s-keys-public" (include "switchboard.fullname" .)) .Values.keys.publicSecret -}}
{{- end }}

{{/* (dict "root" $ "name" "sessions") */}}
{{- define "switchboard.privateKeySecret" -}}
{{- default (printf "%s-keys" (include "switchboard.name" .)) (get .root.Values.keys.privateSecrets .name) -}}
{{- end }}

{{- define "switchboard.tlsSecret" -}}
{{- $service := get .root.Values.services .name -}}
{{- default (printf "%s-tls" (include "switchboard.name" .)) $service.tlsSecret -}}
{{- end }}

{{/* The DNS name peers dial and certificates name. */}}
{{- define "switchboard.dnsName" -}}
{{- printf "%s.%s.svc.%s" (include "switchboard.name" .) .root.Release.Namespace .root.Values.clusterDomain -}}
{{- end }}

{{- define "switchboard.dataDir" -}}/var/lib/switchboard{{- end }}
{{- define "switchboard.publicKeyDir" -}}/etc/switchboard/keys/public{{- end }}
{{- define "switchboard.privateKeyDir" -}}/etc/switchboard/keys/private{{- end }}
{{- define "switchboard.tlsDir" -}}/etc/switchboard/tls{{- end }}
{{- define "switchboard.kbDir" -}}/etc/switchboard/knowledge-base{{- end }}

{{/*
The flags the chart gives service `name`, as YAML: flag -> value. These come
from the chart's values; services.<name>.flags adds others, never these.
*/}}
{{- define "switchboard.chartFlags" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $service := get $v.services .name -}}
{{- $facts := get (include "switchboard.catalog" . | fromYaml) .name -}}
port: {{ $service.port | quote }}
metrics_port: {{ $service.metricsPort | quote }}
data_dir: {{ include "switchboard.dataDir" . | quote }}
drain_deadline: {{ printf "%ds" (int $v.drainDeadlineSeconds) | quote }}
access_keys: {{ printf "%s/access.jwks" (include "switchboard.publicKeyDir" .) | quote }}
service_keys: {{ printf "%s/services.jwks" (include "switchboard.publicKeyDir" .) | quote }}
verification_keys: {{ printf "%s/verification.jwks" (include "switchboard.publicKeyDir" .) | quote }}
{{- with $v.keys.accessIssuer }}
access_issuer: {{ . | quote }}
{{- end }}
{{- range $flag, $file := $facts.privateKeys }}
{{ $flag }}: {{ printf "%s/%s" (include "switchboard.privateKeyDir" $) $file | quote }}
{{- end }}
{{- range $flag, $peer := $facts.peers }}
{{- $peerService := get $v.services $peer }}
{{ $flag }}: {{ printf "dns:///%s:%d" (include "switchboard.dnsName" (dict "root" $root "name" $peer)) (int $peerService.port) | quote }}
{{- end }}
{{- if include "switchboard.postgres" $root }}
database: {{ $v.database.postgresqlUrl | quote }}
{{- end }}
{{- with $v.kafka.brokers }}
kafka_brokers: {{ . | quote }}
{{- if and $v.kafka.settings (not $v.kafka.settingsSecret.name) }}
kafka_settings: {{ $v.kafka.settings | quote }}
{{- end }}
{{- end }}
{{- with $v.kafka.topicPrefix }}
topic_prefix: {{ . | quote }}
{{- end }}
{{- if and (eq .name "identity") $v.kafka.brokers }}
code_delivery: "kafka"
code_delivery_brokers: {{ $v.kafka.brokers | quote }}
{{- if and $v.kafka.settings (not $v.kafka.settingsSecret.name) }}
code_delivery_kafka_settings: {{ $v.kafka.settings | quote }}
{{- end }}
{{- end }}
{{- if $v.tls.enabled }}
tls_cert_file: {{ printf "%s/tls.crt" (include "switchboard.tlsDir" .) | quote }}
tls_key_file: {{ printf "%s/tls.key" (include "switchboard.tlsDir" .) | quote }}
tls_client_ca_file: {{ printf "%s/ca.crt" (include "switchboard.tlsDir" .) | quote }}
tls_require_client_cert: {{ $v.tls.requireClientCert | ternary "true" "false" | quote }}
{{- if $facts.peers }}
peer_tls_ca_file: {{ printf "%s/ca.crt" (include "switchboard.tlsDir" .) | quote }}
peer_tls_cert_file: {{ printf "%s/tls.crt" (include "switchboard.tlsDir" .) | quote }}
peer_tls_key_file: {{ printf "%s/tls.key" (include "switchboard.tlsDir" .) | quote }}
{{- end }}
{{- end }}
{{- if and (eq .name "bot") $service.knowledgeBase }}
knowledge_base: {{ printf "%s/intents.kb" (include "switchboard.kbDir" .) | quote }}
{{- end }}
{{- end }}

{{/* Flags that come from Secrets (env entries of their own), space-separated. */}}
{{- define "switchboard.secretFlagNames" -}}
{{- $v := .root.Values -}}
{{- if and $v.kafka.brokers $v.kafka.settingsSecret.name -}}
kafka_settings{{ if eq .name "identity" }} code_delivery_kafka_settings{{ end }}
{{- end -}}
{{- end }}

{{/* SWITCHBOARD_<SERVICE>_<FLAG>: what libs/config reads for --flag of that binary. */}}
{{- define "switchboard.env" -}}
{{- printf "SWITCHBOARD_%s_%s" .name .flag | upper | replace "-" "_" -}}
{{- end }}

{{/*
Every flag of service `name`: the chart's, and services.<name>.flags, whose
names must be flags of the binary (files/flags/<name>.txt, which
deploy/helm/chart_test.sh keeps equal to the binary's --help).
*/}}
{{- define "switchboard.flags" -}}
{{- $chart := include "switchboard.chartFlags" . | fromYaml -}}
{{- $service := get .root.Values.services .name -}}
{{- $known := .root.Files.Get (printf "files/flags/%s.txt" .name) | splitList "\n" -}}
{{- $secret := include "switchboard.secretFlagNames" . | splitList " " -}}
{{- $all := deepCopy $chart -}}
{{- range $flag, $value := $service.flags }}
{{- if or (hasKey $chart $flag) (has $flag $secret) }}
{{- fail (printf "services.%s.flags.%s: the chart sets --%s from its own values (see values.yaml)" $.name $flag $flag) }}
{{- end }}
{{- if kindIs "map" $value }}
{{- fail (printf "services.%s.flags.%s: a flag takes one value" $.name $flag) }}
{{- end }}
{{- if not (has $flag $known) }}
{{- fail (printf "services.%s.flags.%s: %s_server has no flag --%s (files/flags/%s.txt)" $.name $flag $.name $flag $.name) }}
{{- end }}
{{- $_ := set $all $flag (toString $value) }}
{{- end }}
{{- toYaml $all }}
{{- end }}

{{/* Refuses values that would deploy something broken. */}}
{{- define "switchboard.validate" -}}
{{- $v := .Values -}}
{{- $postgres := include "switchboard.postgres" . -}}
{{- range $name := include "switchboard.serviceNames" . | splitList " " }}
{{- $service := get $v.services $name }}
{{- if not $service }}
{{- fail (printf "services.%s is missing" $name) }}
{{- end }}
{{- if and (gt (int $service.replicas) 1) (not $postgres) }}
{{- fail (printf "services.%s.replicas=%d: SQLite is embedded, one replica per service; set database.postgresqlUrl for more" $name (int $service.replicas)) }}
{{- end }}
{{- if eq (int $service.port) (int $service.metricsPort) }}
{{- fail (printf "services.%s: port and metricsPort must differ" $name) }}
{{- end }}
{{- end }}
{{- if and $postgres (not $v.kafka.brokers) }}
{{- fail "database.postgresqlUrl needs kafka.brokers: without Kafka each replica writes its events to a file in an emptyDir, lost with the pod" }}
{{- end }}
{{- if and $postgres (regexMatch "^postgres(ql)?://[^/@]*:[^/@]*@" $v.database.postgresqlUrl) }}
{{- fail "database.postgresqlUrl holds a password: give it in database.password or database.passwordSecret (it reaches libpq as PGPASSWORD)" }}
{{- end }}
{{- if and $postgres (not $v.database.passwordSecret.name) (not $v.database.password) }}
{{- fail "database.postgresqlUrl needs database.password or database.passwordSecret.name" }}
{{- end }}
{{- if and (not $v.keys.publicSecret) (not (and (hasKey $v.keys.files "access.jwks") (hasKey $v.keys.files "services.jwks") (hasKey $v.keys.files "verification.jwks"))) }}
{{- fail "keys: give keys.publicSecret, or keys.files access.jwks, services.jwks and verification.jwks (mint_token --generate_keys makes a key folder; README \"Kubernetes\")" }}
{{- end }}
{{- $catalog := include "switchboard.catalog" . | fromYaml }}
{{- range $name, $facts := $catalog }}
{{- if and $facts.privateKeys (not (get $v.keys.privateSecrets $name)) }}
{{- range $flag, $file := $facts.privateKeys }}
{{- if not (hasKey $v.keys.files $file) }}
{{- fail (printf "keys: %s needs %s: give keys.privateSecrets.%s, or keys.files.%s" $name $file $name $file) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- $needed := add (int $v.preStopSleepSeconds) (int $v.drainDeadlineSeconds) 5 }}
{{- if le (int $v.terminationGracePeriodSeconds) $needed }}
{{- fail (printf "terminationGracePeriodSeconds=%d must exceed preStopSleepSeconds + drainDeadlineSeconds + 5 s of relay flush = %d" (int $v.terminationGracePeriodSeconds) $needed) }}
{{- end }}
{{- end }}
