{{/*
pushguard's config file (the schema is src/config/schema.ts). Listen addresses, the upstream URL
and secret paths are derived from the release so they can never disagree with the pods and
Services; everything else comes from pushguard.config, identities, teams, anonymous, rateLimit.
rateLimit is rendered only when enabled; without it pushguard applies its defaults.
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
  "upstream" (merge (dict "url" (include "pushguard.upstreamUrl" .)) $p.config.upstream)
  "identities" $identities
  "teams" .Values.teams
  "anonymous" .Values.anonymous
  "body" $p.config.body
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
{{- toYaml $config }}
{{- end }}
