{{/* The chart name, or nameOverride. */}}
{{- define "pushguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release-wide object name prefix: at most 40 characters, so that the longest names built on it
fit what Kubernetes accepts (`<fullname>-pushgateway-headless`, a Service, 63; `<fullname>-pushgateway`,
a StatefulSet, 52, as its pods carry a `controller-revision-hash` label of its name plus 11). A
longer name is cut to 33 characters and given 6 of its SHA-256, so two long release names sharing
a namespace never share objects. Dots (Helm allows them in release names) become dashes.
make/ops/pushgateway.mk derives the same names.
*/}}
{{- define "pushguard.fullname" -}}
{{- $name := .Values.fullnameOverride }}
{{- if not $name }}
{{- $chart := default .Chart.Name .Values.nameOverride }}
{{- $name = ternary .Release.Name (printf "%s-%s" .Release.Name $chart) (contains $chart .Release.Name) }}
{{- end }}
{{- /* Helm accepts dots in release names; Service names (DNS labels) do not. */}}
{{- $name = replace "." "-" $name }}
{{- if gt (len $name) 40 }}
{{- printf "%s-%s" ($name | trunc 33 | trimSuffix "-") (sha256sum $name | trunc 6) }}
{{- else }}
{{- $name | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* The namespace of every namespaced object: namespaceOverride, or the release's. */}}
{{- define "pushguard.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride }}
{{- end }}

{{/* Name of the pushgateway's StatefulSet, Service and ServiceAccount. */}}
{{- define "pushguard.pushgateway.fullname" -}}
{{- printf "%s-pushgateway" (include "pushguard.fullname" .) }}
{{- end }}

{{/* `chart-version` for the helm.sh/chart label. */}}
{{- define "pushguard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The `app.kubernetes.io/version` of a component (dict "root" $ "component" ...): the pushgateway's
is its image tag, everything else's pushguard's, so neither changes when only the other does.
*/}}
{{- define "pushguard.version" -}}
{{- $v := .root.Values }}
{{- $tag := ternary $v.pushgateway.image.tag ($v.pushguard.image.tag | default .root.Chart.AppVersion) (eq .component "pushgateway") }}
{{- $tag | toString | trunc 63 | trimSuffix "-" | trimSuffix "." | trimSuffix "_" }}
{{- end }}

{{/* Labels on every object that belongs to no component (the PrometheusRule, the dashboard). */}}
{{- define "pushguard.labels" -}}
helm.sh/chart: {{ include "pushguard.chart" . }}
app.kubernetes.io/name: {{ include "pushguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ include "pushguard.version" (dict "root" . "component" "pushguard") | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pushguard
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of one component (dict "root" $ "component" "pushguard|pushgateway"); they never change. */}}
{{- define "pushguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pushguard.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Labels of one component's pod template (dict "root" $ "component" ...): no `helm.sh/chart`, and
the component's own version, so a chart upgrade, or one of pushguard alone, restarts no
pushgateway pod (without persistence that would delete every pushed group).
*/}}
{{- define "pushguard.podLabels" -}}
{{ include "pushguard.selectorLabels" . }}
{{- with include "pushguard.version" . }}
app.kubernetes.io/version: {{ . | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: pushguard
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels of one component's objects (dict "root" $ "component" ...). */}}
{{- define "pushguard.componentLabels" -}}
helm.sh/chart: {{ include "pushguard.chart" .root }}
{{ include "pushguard.podLabels" . }}
{{- end }}

{{/* The label a pod carries to be admitted to pushguard's API by the NetworkPolicy. */}}
{{- define "pushguard.clientLabel" -}}
{{- printf "%s-client" (include "pushguard.fullname" .) }}
{{- end }}

{{/*
`registry/repository:tag@digest` from an image block (dict "root" $ "image" ... "defaultTag" ...);
global.imageRegistry, when set, replaces every image's registry (a mirror).
*/}}
{{- define "pushguard.image" -}}
{{- $ref := .image.repository }}
{{- $registry := (.root.Values.global).imageRegistry | default .image.registry }}
{{- if $registry }}{{ $ref = printf "%s/%s" $registry $ref }}{{ end }}
{{- $tag := .image.tag | default .defaultTag | toString }}
{{- if $tag }}{{ $ref = printf "%s:%s" $ref $tag }}{{ end }}
{{- if .image.digest }}{{ $ref = printf "%s@%s" $ref .image.digest }}{{ end }}
{{- $ref }}
{{- end }}

{{/*
A pod's `imagePullSecrets`: global.imagePullSecrets, then imagePullSecrets, each a name or a
LocalObjectReference (`{name: ...}`), without duplicates; nothing when there are none.
*/}}
{{- define "pushguard.imagePullSecrets" -}}
{{- $names := list }}
{{- range concat ((.Values.global).imagePullSecrets | default list) (.Values.imagePullSecrets | default list) }}
{{- if kindIs "string" . }}{{ $names = append $names . }}{{ else }}{{ $names = append $names (get . "name") }}{{ end }}
{{- end }}
{{- with $names | compact | uniq }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of pushguard's ServiceAccount. */}}
{{- define "pushguard.serviceAccountName" -}}
{{- if .Values.pushguard.serviceAccount.create }}
{{- default (include "pushguard.fullname" .) .Values.pushguard.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.pushguard.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Name of the Secret holding static tokens: tokens.existingSecret or the chart's own. */}}
{{- define "pushguard.tokensSecretName" -}}
{{- default (printf "%s-tokens" (include "pushguard.fullname" .)) .Values.tokens.existingSecret }}
{{- end }}

{{/* Where pushguard's pods mount its config (directories, not subPath, so updates reach the files). */}}
{{- define "pushguard.configDir" -}}/etc/pushguard/config{{- end }}
{{/* Where pushguard's pods mount the token Secret, one file per key. */}}
{{- define "pushguard.tokensDir" -}}/etc/pushguard/secrets{{- end }}

{{/* The Secret key of a static identity that has no inline sha256 ("" when it has one). */}}
{{- define "pushguard.identitySecretKey" -}}
{{- if not (get . "sha256") }}
{{- get . "secretKey" | default (get . "name") }}
{{- end }}
{{- end }}

{{/* Static identities whose token or hash comes from the Secret, as JSON {"list": [{name, key, format}]}. */}}
{{- define "pushguard.secretIdentities" -}}
{{- $list := list }}
{{- range .Values.identities.static }}
{{- $key := include "pushguard.identitySecretKey" . }}
{{- if $key }}
{{- $list = append $list (dict "name" .name "key" $key "format" (get . "secretFormat" | default "token")) }}
{{- end }}
{{- end }}
{{- dict "list" $list | toJson }}
{{- end }}

{{/*
Data of the chart-created token Secret (base64 values) as JSON: tokens.values, plus, with
tokens.generate, a random token for every other secret-backed identity. A token generated by an
earlier release revision is kept (lookup), so upgrades do not rotate credentials. Computed once per
render and kept on the root context: the Secret and the pods' `checksum/tokens` must see the same
random tokens, or the first upgrade after an install rolls every pod.
*/}}
{{- define "pushguard.tokensSecretData" -}}
{{- if not (hasKey . "__pushguardTokensSecretData") }}
{{- $data := dict }}
{{- $existing := (lookup "v1" "Secret" (include "pushguard.namespace" .) (include "pushguard.tokensSecretName" .)).data | default dict }}
{{- range $key, $value := .Values.tokens.values }}
{{- $_ := set $data $key ($value | toString | b64enc) }}
{{- end }}
{{- if .Values.tokens.generate }}
{{- range (include "pushguard.secretIdentities" . | fromJson).list }}
{{- if and (not (hasKey $data .key)) (eq .format "token") }}
{{- $_ := set $data .key (get $existing .key | default (randAlphaNum 40 | b64enc)) }}
{{- end }}
{{- end }}
{{- end }}
{{- $_ := set . "__pushguardTokensSecretData" (toJson $data) }}
{{- end }}
{{- get . "__pushguardTokensSecretData" }}
{{- end }}

{{/* Where the kubelet mounts pushguard's own ServiceAccount token and the cluster CA. */}}
{{- define "pushguard.serviceAccountDir" -}}/var/run/secrets/kubernetes.io/serviceaccount{{- end }}

{{/*
identities.kubernetes as rendered, as JSON {"list": [...]}: an issuer that names neither jwksUri
nor apiServer is verified in cluster, through the API server with the pod's own token and CA.
*/}}
{{- define "pushguard.kubernetesIssuers" -}}
{{- $dir := include "pushguard.serviceAccountDir" . }}
{{- $list := list }}
{{- range .Values.identities.kubernetes }}
{{- $issuer := deepCopy . }}
{{- if not (or (get $issuer "jwksUri") (get $issuer "apiServer")) }}
{{- $issuer = merge $issuer (dict "apiServer" "https://kubernetes.default.svc" "caFile" (printf "%s/ca.crt" $dir) "tokenFile" (printf "%s/token" $dir)) }}
{{- end }}
{{- $list = append $list $issuer }}
{{- end }}
{{- dict "list" $list | toJson }}
{{- end }}

{{/* "true" when some kubernetes issuer reads pushguard's own ServiceAccount token (mount it, bind issuer discovery), else "". */}}
{{- define "pushguard.usesServiceAccountToken" -}}
{{- $token := printf "%s/token" (include "pushguard.serviceAccountDir" .) }}
{{- range (include "pushguard.kubernetesIssuers" . | fromJson).list }}{{ if eq (get . "tokenFile") $token }}true{{ end }}{{ end }}
{{- end }}

{{/* "true" when some issuer is reached outside the API server (OIDC, or kubernetes via jwksUri/apiServer of its own), else "". */}}
{{- define "pushguard.usesIdentityProviders" -}}
{{- $token := printf "%s/token" (include "pushguard.serviceAccountDir" .) }}
{{- if .Values.identities.oidc }}true{{ end }}
{{- range (include "pushguard.kubernetesIssuers" . | fromJson).list }}{{ if ne (get . "tokenFile") $token }}true{{ end }}{{ end }}
{{- end }}

{{/* Where the Redis password Secret is mounted. */}}
{{- define "pushguard.redisPasswordDir" -}}/etc/pushguard/redis{{- end }}

{{/* Does some team (or anonymous) hold `action`? (dict "root" $ "action" "wipe") → "true" or "". */}}
{{- define "pushguard.granted" -}}
{{- $action := .action }}
{{- range .root.Values.teams }}{{ if has $action .actions }}true{{ end }}{{ end }}
{{- end }}

{{/* The pushgateway's --persistence.file path, or "" without persistence. */}}
{{- define "pushguard.pushgateway.persistenceFile" -}}
{{- if .Values.pushgateway.persistence.enabled }}{{ .Values.pushgateway.persistence.file }}{{ end }}
{{- end }}

{{/*
networkPolicy.prometheus.namespaceSelector, or the release namespace when it is empty: `{}` would
admit every namespace, and any of them could label a pod like Prometheus and read (or, with one
pushgateway replica, write) what only Prometheus may.
*/}}
{{- define "pushguard.prometheusNamespaceSelector" -}}
{{- $selector := .Values.networkPolicy.prometheus.namespaceSelector }}
{{- if empty $selector }}
{{- toYaml (dict "matchLabels" (dict "kubernetes.io/metadata.name" (include "pushguard.namespace" .))) }}
{{- else }}
{{- toYaml $selector }}
{{- end }}
{{- end }}

{{/* In-cluster URL of the pushgateway Service: pushguard's upstream with one pushgateway replica. */}}
{{- define "pushguard.upstreamUrl" -}}
{{- printf "http://%s.%s.svc:9091" (include "pushguard.pushgateway.fullname" .) (include "pushguard.namespace" .) }}
{{- end }}

{{/* "true" when the pushgateway runs several replicas that pushguard keeps identical, else "". */}}
{{- define "pushguard.pushgateway.replicated" -}}
{{- if gt (int .Values.pushgateway.replicaCount) 1 }}true{{ end }}
{{- end }}

{{/* Name of the pushgateway's headless Service, the StatefulSet's serviceName: one DNS name per pod. */}}
{{- define "pushguard.pushgateway.headlessName" -}}
{{- printf "%s-headless" (include "pushguard.pushgateway.fullname" .) }}
{{- end }}

{{/* One upstream URL per pushgateway pod (`<pod>.<headless Service>.<namespace>.svc`), as JSON {"list": [...]}. */}}
{{- define "pushguard.upstreamUrls" -}}
{{- $statefulSet := include "pushguard.pushgateway.fullname" . }}
{{- $headless := include "pushguard.pushgateway.headlessName" . }}
{{- $list := list }}
{{- range $i := until (int .Values.pushgateway.replicaCount) }}
{{- $list = append $list (printf "http://%s-%d.%s.%s.svc:9091" $statefulSet $i $headless (include "pushguard.namespace" $)) }}
{{- end }}
{{- dict "list" $list | toJson }}
{{- end }}

{{/* "true" when more than one pushguard pod may run (pushguard.replicaCount above 1, or autoscaling), else "". */}}
{{- define "pushguard.severalReplicas" -}}
{{- if or .Values.pushguard.autoscaling.enabled (gt (int .Values.pushguard.replicaCount) 1) }}true{{ end }}
{{- end }}

{{/* "true" when coordination.redis is set and used (replica state, the janitor's lease, or the store index's shared decisions), else "". */}}
{{- define "pushguard.usesCoordinationRedis" -}}
{{- if and .Values.coordination.redis.url (or (include "pushguard.pushgateway.replicated" .) .Values.janitor.enabled .Values.pushguard.config.store.index.enabled) }}true{{ end }}
{{- end }}

{{/*
Why the pushgateway must keep its own consistency check, or "" when pushguard's store index makes
it redundant: the index must be on, and only one pushguard replica may write. Several replicas share
new names' types through coordination.redis, but nothing yet orders two writes to one group sent
through two replicas (see docs/validation.md), so they keep the check.
*/}}
{{- define "pushguard.consistencyCheckNeededBecause" -}}
{{- if not .Values.pushguard.config.store.index.enabled }}pushguard.config.store.index.enabled is false
{{- else if include "pushguard.severalReplicas" . }}several pushguard replicas (pushguard.replicaCount or pushguard.autoscaling), whose shared decisions do not yet order writes to one group sent through two of them
{{- end }}
{{- end }}

{{/* "true" when the pushgateway runs with --push.disable-consistency-check, else "". */}}
{{- define "pushguard.pushgateway.consistencyCheckDisabled" -}}
{{- $g := .Values.pushgateway }}
{{- if and $g.disableConsistencyCheck (or $g.forceDisableConsistencyCheck (not (include "pushguard.consistencyCheckNeededBecause" .))) }}true{{ end }}
{{- end }}

{{/* "true" when pushguard talks to any Redis (shared rate limits or coordination), so it needs egress to it, else "". */}}
{{- define "pushguard.usesRedis" -}}
{{- if or (and .Values.rateLimit.enabled (eq .Values.rateLimit.store "redis")) (include "pushguard.usesCoordinationRedis" .) }}true{{ end }}
{{- end }}

{{/* Where the coordination Redis password Secret is mounted. */}}
{{- define "pushguard.coordinationRedisPasswordDir" -}}/etc/pushguard/coordination-redis{{- end }}

{{/*
coordination.redis as pushguard's config takes it, for one user (dict "root" $ "suffix" "janitor:"),
as JSON. The default key prefix names the release, so releases sharing a Redis never share a lease.
*/}}
{{- define "pushguard.coordinationRedisConfig" -}}
{{- $root := .root }}
{{- $redis := $root.Values.coordination.redis }}
{{- $prefix := $redis.keyPrefix | default (printf "pushguard:%s:%s:" (include "pushguard.namespace" $root) (include "pushguard.fullname" $root) | trunc 116) }}
{{- $config := dict "url" $redis.url "keyPrefix" (printf "%s%s" $prefix .suffix) }}
{{- if $redis.passwordSecret.name }}
{{- $_ := set $config "passwordFile" (printf "%s/password" (include "pushguard.coordinationRedisPasswordDir" $root)) }}
{{- end }}
{{- toJson $config }}
{{- end }}

{{/* "true" when Prometheus reads the pushed groups through pushguard (a ScrapeConfig), else "". */}}
{{- define "pushguard.scrapesThroughPushguard" -}}
{{- if and .Values.serviceMonitor.enabled (include "pushguard.pushgateway.replicated" .) }}true{{ end }}
{{- end }}

{{/* In-cluster URL of pushguard's API Service. */}}
{{- define "pushguard.apiUrl" -}}
{{- printf "http://%s.%s.svc:%d" (include "pushguard.fullname" .) (include "pushguard.namespace" .) (int .Values.pushguard.service.ports.api) }}
{{- end }}

{{/* Seconds between SIGTERM and SIGKILL: preStop delay + drain + 5 s, unless set explicitly. */}}
{{- define "pushguard.terminationGracePeriodSeconds" -}}
{{- $p := .Values.pushguard }}
{{- $drain := add (int $p.preStopDelaySeconds) (div (add (int $p.config.server.shutdownGraceMs) 999) 1000) }}
{{- if $p.terminationGracePeriodSeconds }}{{ $p.terminationGracePeriodSeconds }}{{ else }}{{ add $drain 5 }}{{ end }}
{{- end }}

{{/* Topology spread constraints, each defaulting its labelSelector to the component's pods (dict "root" $ "component" ... "constraints" ...). */}}
{{- define "pushguard.topologySpreadConstraints" -}}
{{- $root := .root }}
{{- $component := .component }}
{{- range .constraints }}
{{- $constraint := deepCopy . }}
{{- if not (hasKey $constraint "labelSelector") }}
{{- $_ := set $constraint "labelSelector" (dict "matchLabels" (include "pushguard.selectorLabels" (dict "root" $root "component" $component) | fromYaml)) }}
{{- end }}
- {{ toYaml $constraint | nindent 2 | trim }}
{{- end }}
{{- end }}

{{/* Namespace of the ServiceMonitors and the ScrapeConfig: serviceMonitor.namespace, or the release's. */}}
{{- define "pushguard.serviceMonitorNamespace" -}}
{{- .Values.serviceMonitor.namespace | default (include "pushguard.namespace" .) }}
{{- end }}

{{/* The scrape settings every ServiceMonitor endpoint and the ScrapeConfig share: scheme, TLS, relabelings. */}}
{{- define "pushguard.scrapeSettings" -}}
{{- $m := .Values.serviceMonitor }}
{{- with $m.scheme }}
scheme: {{ . }}
{{- end }}
{{- with $m.tlsConfig }}
tlsConfig:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $m.relabelings }}
relabelings:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $m.metricRelabelings }}
metricRelabelings:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
