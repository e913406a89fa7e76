{{/*
pushguard's config file (the schema is src/config/schema.ts). Listen addresses, the upstream URLs
and secret paths are derived from the release so they can never disagree with the pods and
Services; everything else comes from pushguard.config, identities, teams, anonymous, rateLimit,
janitor and coordination. rateLimit and janitor are rendered only when enabled; without them
pushguard applies its defaults. validation is always rendered and never carries `enabled`, so a
chart install always validates pushes (teams[].validation passes through with the teams). store
is always rendered, with its index's `enabled` said explicitly (teams[].quotas pass through with
the teams).
*/}}
{{- define "pushguard.configYaml" -}}
{{- $p := .Values.pushguard }}
{{- $tokensDir := include "pushguard.tokensDir" . }}
{{- $static := list }}
{{- range .Values.identities.static }}
{{- $key := include "pushguard.identitySecretKey" . }}
{{- if $key }}
{{- $source := ternary "sha256File" "tokenFile" (eq (get . "secretFormat") "sha256") }}
{{- $static = append $static (dict "name" .name $source (printf "%s/%s" $tokensDir $key)) }}
{{- else }}
{{- $static = append $static (dict "name" .name "sha256" .sha256) }}
{{- end }}
{{- end }}
{{- $identities := dict
  "static" $static
  "oidc" .Values.identities.oidc
  "kubernetes" (include "pushguard.kubernetesIssuers" . | fromJson).list
}}
{{- $config := dict
  "listen" (dict "api" (printf "0.0.0.0:%d" (int $p.ports.api)) "metrics" (printf "0.0.0.0:%d" (int $p.ports.metrics)))
  "upstream" (include "pushguard.upstreamConfig" . | fromJson)
  "identities" $identities
  "teams" .Values.teams
  "anonymous" .Values.anonymous
  "body" $p.config.body
  "validation" $p.config.validation
  "store" (include "pushguard.storeConfig" . | fromJson)
  "server" $p.config.server
  "overload" $p.config.overload
  "log" $p.config.log
}}
{{- with .Values.rateLimit }}
{{- if .enabled }}
{{- $rateLimit := omit . "enabled" "redis" }}
{{- if eq .store "redis" }}
{{- $redis := omit .redis "passwordSecret" }}
{{- if .redis.passwordSecret.name }}
{{- $_ := set $redis "passwordFile" (printf "%s/password" (include "pushguard.redisPasswordDir" $)) }}
{{- end }}
{{- $_ := set $rateLimit "redis" $redis }}
{{- end }}
{{- $_ := set $config "rateLimit" $rateLimit }}
{{- end }}
{{- end }}
{{- with .Values.janitor }}
{{- if .enabled }}
{{- $janitor := dict "enabled" true "intervalMs" .intervalMs "dryRun" .dryRun }}
{{- with .defaultTtl }}{{ $_ := set $janitor "defaultTtl" . }}{{ end }}
{{- if $.Values.coordination.redis.url }}
{{- $redis := include "pushguard.coordinationRedisConfig" (dict "root" $ "suffix" "janitor:") | fromJson }}
{{- $_ := set $janitor "lease" (dict "store" "redis" "redis" $redis) }}
{{- end }}
{{- $_ := set $config "janitor" $janitor }}
{{- end }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/*
The store section, as JSON: pushguard.config.store, and with the index on and coordination.redis
set, the Redis through which pushguard replicas share the index's decisions (`store.index.redis`,
key prefix `<coordination prefix>store:`), wired like replication's and the janitor's.
*/}}
{{- define "pushguard.storeConfig" -}}
{{- $store := deepCopy .Values.pushguard.config.store }}
{{- if and $store.index.enabled .Values.coordination.redis.url }}
{{- $_ := set $store.index "redis" (include "pushguard.coordinationRedisConfig" (dict "root" . "suffix" "store:") | fromJson) }}
{{- end }}
{{- toJson $store }}
{{- end }}

{{/*
The upstream section, as JSON: the pushgateway Service's URL with one replica; with several, one
URL per pod plus replication settings, sharing replica state through coordination.redis when set.
*/}}
{{- define "pushguard.upstreamConfig" -}}
{{- $upstream := omit .Values.pushguard.config.upstream "replication" }}
{{- if include "pushguard.pushgateway.replicated" . }}
{{- $_ := set $upstream "urls" (include "pushguard.upstreamUrls" . | fromJson).list }}
{{- $replication := deepCopy .Values.pushguard.config.upstream.replication }}
{{- if .Values.coordination.redis.url }}
{{- $_ := set $replication "redis" (include "pushguard.coordinationRedisConfig" (dict "root" . "suffix" "replication:") | fromJson) }}
{{- end }}
{{- $_ := set $upstream "replication" $replication }}
{{- else }}
{{- $_ := set $upstream "url" (include "pushguard.upstreamUrl" .) }}
{{- end }}
{{- toJson $upstream }}
{{- end }}
