{{/*
Consistency checks that values.schema.json cannot express. Each failure names the values to fix.
Rendered (as nothing) at the top of pushguard's ConfigMap, so every install, template and lint
runs them.
*/}}
{{- define "pushguard.validate" -}}
{{- $errors := list }}
{{- $v := .Values }}
{{- $p := $v.pushguard }}

{{- /* Tokens and static identities */}}
{{- if and $v.tokens.existingSecret $v.tokens.values }}
{{- $errors = append $errors "tokens.values and tokens.existingSecret are both set: keep tokens either in the chart's Secret (tokens.values) or in your own (tokens.existingSecret)" }}
{{- end }}
{{- $names := list }}
{{- $secretKeys := list }}
{{- range $i, $identity := $v.identities.static }}
{{- if has $identity.name $names }}
{{- $errors = append $errors (printf "identities.static[%d]: duplicate identity name %q" $i $identity.name) }}
{{- end }}
{{- $names = append $names $identity.name }}
{{- if and (get $identity "sha256") (or (get $identity "secretKey") (get $identity "secretFormat")) }}
{{- $errors = append $errors (printf "identities.static[%d] (%s): sha256 is inline, so secretKey and secretFormat must not be set" $i $identity.name) }}
{{- end }}
{{- $key := include "pushguard.identitySecretKey" $identity }}
{{- if $key }}
{{- $secretKeys = append $secretKeys $key }}
{{- if not (regexMatch "^[-._a-zA-Z0-9]+$" $key) }}
{{- $errors = append $errors (printf "identities.static[%d] (%s): %q is not a valid Secret key; set identities.static[%d].secretKey (letters, digits, - _ .)" $i $identity.name $key $i) }}
{{- end }}
{{- if not (or $v.tokens.existingSecret (hasKey $v.tokens.values $key) (and $v.tokens.generate (ne (get $identity "secretFormat") "sha256"))) }}
{{- $errors = append $errors (printf "identities.static[%d] (%s): no token for Secret key %q; set tokens.values.%s, tokens.existingSecret, or tokens.generate=true" $i $identity.name $key $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- range $key, $_ := $v.tokens.values }}
{{- if not (has $key $secretKeys) }}
{{- $errors = append $errors (printf "tokens.values.%s is not the Secret key of any identities.static entry" $key) }}
{{- end }}
{{- end }}
{{- /* At install and upgrade (lookup answers only then): a key missing from the Secret is an identity that cannot log in. */}}
{{- if $v.tokens.existingSecret }}
{{- $secret := lookup "v1" "Secret" (include "pushguard.namespace" .) $v.tokens.existingSecret }}
{{- if $secret }}
{{- $data := get $secret "data" | default dict }}
{{- range (include "pushguard.secretIdentities" . | fromJson).list }}
{{- if not (hasKey $data .key) }}
{{- $errors = append $errors (printf "tokens.existingSecret: Secret %s has no key %q, the %s of identity %s: add it to the Secret, or point identities.static[].secretKey at a key it has" $v.tokens.existingSecret .key (ternary "SHA-256 hash" "token" (eq .format "sha256")) .name) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{- /* Teams (pushguard refuses to start on these too; failing here saves a crash loop) */}}
{{- if and (empty $v.teams) (empty $v.anonymous.actions) }}
{{- $errors = append $errors "teams is empty and anonymous.actions grants nothing: define at least one team (pushguard has no open mode)" }}
{{- end }}
{{- $issuers := list }}
{{- range $kind := list "oidc" "kubernetes" }}
{{- range $i, $issuer := index $v.identities $kind }}
{{- if has $issuer.name $issuers }}
{{- $errors = append $errors (printf "identities.%s[%d]: duplicate issuer name %q (oidc and kubernetes issuers share one namespace of names)" $kind $i $issuer.name) }}
{{- end }}
{{- $issuers = append $issuers $issuer.name }}
{{- end }}
{{- end }}
{{- range $i, $team := $v.teams }}
{{- range $team.members }}
{{- if kindIs "string" . }}
{{- if not (has . $names) }}
{{- $errors = append $errors (printf "teams[%d] (%s): member %q is not in identities.static" $i $team.name .) }}
{{- end }}
{{- else if not (has .issuer $issuers) }}
{{- $errors = append $errors (printf "teams[%d] (%s): member selector names issuer %q, which is not in identities.oidc or identities.kubernetes" $i $team.name .issuer) }}
{{- end }}
{{- end }}
{{- if and (or (has "push" $team.actions) (has "delete" $team.actions)) (empty (get $team "jobs")) }}
{{- $errors = append $errors (printf "teams[%d] (%s): push and delete need at least one pattern in teams[%d].jobs" $i $team.name $i) }}
{{- end }}
{{- if get $team "ttl" }}
{{- if not (has "push" $team.actions) }}
{{- $errors = append $errors (printf "teams[%d] (%s): teams[%d].ttl applies to groups the team pushes, and it may not push" $i $team.name $i) }}
{{- else if not $v.janitor.enabled }}
{{- $errors = append $errors (printf "teams[%d] (%s): teams[%d].ttl has no effect unless janitor.enabled is true" $i $team.name $i) }}
{{- end }}
{{- end }}
{{- end }}

{{- /* Stale-group expiry */}}
{{- if $v.janitor.enabled }}
{{- $ttls := list }}
{{- range $v.teams }}{{ with get . "ttl" }}{{ $ttls = append $ttls . }}{{ end }}{{ end }}
{{- if and (not $v.janitor.defaultTtl) (empty $ttls) }}
{{- $errors = append $errors "janitor.enabled is true but nothing could ever expire: set janitor.defaultTtl or a ttl on a team (teams[].ttl)" }}
{{- end }}
{{- end }}

{{- /* Rate limits */}}
{{- if and $v.rateLimit.enabled $v.rateLimit.rules (eq $v.rateLimit.store "memory") (include "pushguard.severalReplicas" .) }}
{{- $errors = append $errors "rateLimit.rules with rateLimit.store memory and several pushguard replicas (pushguard.replicaCount or pushguard.autoscaling): every replica would enforce each limit on its own, multiplying it by the replica count; set rateLimit.store redis and rateLimit.redis.url" }}
{{- end }}
{{- if and $v.rateLimit.enabled (eq $v.rateLimit.store "redis") (not $v.rateLimit.redis.url) }}
{{- $errors = append $errors "rateLimit.store is redis but rateLimit.redis.url is empty" }}
{{- end }}
{{- if $v.rateLimit.enabled }}
{{- $teamNames := list }}
{{- range $v.teams }}{{ $teamNames = append $teamNames .name }}{{ end }}
{{- range $i, $rule := $v.rateLimit.rules }}
{{- if and (get $rule "team") (not (has (get $rule "team") $teamNames)) }}
{{- $errors = append $errors (printf "rateLimit.rules[%d]: team %q is not in teams" $i (get $rule "team")) }}
{{- end }}
{{- end }}
{{- end }}

{{- /* Placeholders: names and addresses reserved for documentation, as the profiles and docs use them. */}}
{{- $urls := list }}
{{- range $kind := list "oidc" "kubernetes" }}
{{- range $i, $issuer := index $v.identities $kind }}
{{- range $key := list "issuer" "jwksUri" "apiServer" }}
{{- with get $issuer $key }}{{ $urls = append $urls (list (printf "identities.%s[%d].%s" $kind $i $key) .) }}{{ end }}
{{- end }}
{{- end }}
{{- end }}
{{- if and $v.rateLimit.enabled (eq $v.rateLimit.store "redis") $v.rateLimit.redis.url }}{{ $urls = append $urls (list "rateLimit.redis.url" $v.rateLimit.redis.url) }}{{ end }}
{{- if include "pushguard.usesCoordinationRedis" . }}{{ $urls = append $urls (list "coordination.redis.url" $v.coordination.redis.url) }}{{ end }}
{{- if $v.ingress.enabled }}
{{- range $i, $host := $v.ingress.hosts }}{{ $urls = append $urls (list (printf "ingress.hosts[%d]" $i) $host) }}{{ end }}
{{- end }}
{{- range $name, $route := $v.route }}
{{- if $route.enabled }}
{{- range $i, $host := (get $route "hostnames" | default list) }}{{ $urls = append $urls (list (printf "route.%s.hostnames[%d]" $name $i) $host) }}{{ end }}
{{- end }}
{{- end }}
{{- range $urls }}
{{- /* The host of a URL (scheme://[user@]host[:port]/...), or a bare host name as it is. */}}
{{- $host := regexReplaceAll "^([a-zA-Z][-+.a-zA-Z0-9]*://)?([^/@]*@)?(\\[[^]]*\\]|[^/:?#]*).*$" (index . 1 | toString) "${3}" | lower }}
{{- if regexMatch "(^|\\.)(example\\.(com|net|org)|example|invalid)\\.?$" $host }}
{{- $errors = append $errors (printf "%s (%s) is a placeholder: %s is reserved for documentation (RFC 2606); set yours" (index . 0) (index . 1) $host) }}
{{- end }}
{{- end }}
{{- $np := $v.networkPolicy }}
{{- $peers := list }}
{{- range $i, $peer := $np.dns.to }}{{ $peers = append $peers (list (printf "networkPolicy.dns.to[%d]" $i) $peer) }}{{ end }}
{{- range $i, $peer := $np.pushguard.extraFrom }}{{ $peers = append $peers (list (printf "networkPolicy.pushguard.extraFrom[%d]" $i) $peer) }}{{ end }}
{{- range $list := list "kubernetesApi" "identityProviders" "redis" "extra" }}
{{- range $i, $rule := index $np.pushguard.egress $list }}
{{- range $j, $peer := (get $rule "to" | default list) }}{{ $peers = append $peers (list (printf "networkPolicy.pushguard.egress.%s[%d].to[%d]" $list $i $j) $peer) }}{{ end }}
{{- end }}
{{- end }}
{{- range $peers }}
{{- $cidr := get (get (index . 1) "ipBlock" | default dict) "cidr" | default "" | lower }}
{{- if or (regexMatch "^(192\\.0\\.2|198\\.51\\.100|203\\.0\\.113)\\.[0-9]+/(2[4-9]|3[0-2])$" $cidr) (regexMatch "^2001:0*db8:.*/(3[2-9]|[4-9][0-9]|1[01][0-9]|12[0-8])$" $cidr) }}
{{- $errors = append $errors (printf "%s.ipBlock.cidr (%s) is a placeholder: a documentation range (RFC 5737, RFC 3849) that no real peer has; set the real addresses%s" (index . 0) $cidr (ternary " (the API server's: kubectl get endpointslices -n default -l kubernetes.io/service-name=kubernetes)" "" (contains "kubernetesApi" (index . 0)))) }}
{{- end }}
{{- end }}

{{- /* pushguard workload */}}
{{- if eq (int $p.ports.api) (int $p.ports.metrics) }}
{{- $errors = append $errors "pushguard.ports.api and pushguard.ports.metrics must differ: probes and ServiceMonitors use the metrics port only" }}
{{- end }}
{{- $service := $p.service }}
{{- if and (eq $service.type "ClusterIP") (or $service.nodePorts.api $service.nodePorts.metrics) }}
{{- $errors = append $errors "pushguard.service.nodePorts are set but pushguard.service.type is ClusterIP: set the type to NodePort or LoadBalancer" }}
{{- end }}
{{- if and $service.loadBalancerSourceRanges (ne $service.type "LoadBalancer") }}
{{- $errors = append $errors (printf "pushguard.service.loadBalancerSourceRanges restrict a LoadBalancer, and pushguard.service.type is %s" $service.type) }}
{{- end }}
{{- if and $service.externalTrafficPolicy (not (has $service.type (list "NodePort" "LoadBalancer"))) }}
{{- $errors = append $errors (printf "pushguard.service.externalTrafficPolicy applies to NodePort and LoadBalancer Services, and pushguard.service.type is %s" $service.type) }}
{{- end }}
{{- range $name, $route := $v.route }}
{{- if and $route.enabled (empty (get $route "parentRefs")) }}
{{- $errors = append $errors (printf "route.%s.parentRefs is empty: the HTTPRoute would attach to no Gateway" $name) }}
{{- end }}
{{- end }}
{{- if gt (int $p.config.overload.maxConcurrent) (int $p.config.upstream.connections) }}
{{- $errors = append $errors (printf "pushguard.config.overload.maxConcurrent (%d) must not exceed pushguard.config.upstream.connections (%d)" (int $p.config.overload.maxConcurrent) (int $p.config.upstream.connections)) }}
{{- end }}
{{- $drain := add (int $p.preStopDelaySeconds) (div (add (int $p.config.server.shutdownGraceMs) 999) 1000) }}
{{- if and $p.terminationGracePeriodSeconds (le (int $p.terminationGracePeriodSeconds) $drain) }}
{{- $errors = append $errors (printf "pushguard.terminationGracePeriodSeconds (%d) must exceed pushguard.preStopDelaySeconds + pushguard.config.server.shutdownGraceMs (%d s), or in-flight pushes are killed" (int $p.terminationGracePeriodSeconds) $drain) }}
{{- end }}
{{- $pdb := $p.podDisruptionBudget }}
{{- if $pdb.enabled }}
{{- if and (ne (toString $pdb.minAvailable) "") (ne (toString $pdb.maxUnavailable) "") }}
{{- $errors = append $errors "pushguard.podDisruptionBudget: set minAvailable or maxUnavailable, not both" }}
{{- else if and (eq (toString $pdb.minAvailable) "") (eq (toString $pdb.maxUnavailable) "") }}
{{- $errors = append $errors "pushguard.podDisruptionBudget: set minAvailable or maxUnavailable" }}
{{- end }}
{{- $replicas := ternary $p.autoscaling.minReplicas $p.replicaCount $p.autoscaling.enabled | int }}
{{- if and (ne (toString $pdb.minAvailable) "") (not (kindIs "string" $pdb.minAvailable)) (ge (int $pdb.minAvailable) $replicas) }}
{{- $errors = append $errors (printf "pushguard.podDisruptionBudget.minAvailable (%d) must be below the replica count (%d: pushguard.replicaCount or pushguard.autoscaling.minReplicas), or no node can ever be drained" (int $pdb.minAvailable) $replicas) }}
{{- end }}
{{- if and (ne (toString $pdb.maxUnavailable) "") (not (kindIs "string" $pdb.maxUnavailable)) (lt (int $pdb.maxUnavailable) 1) }}
{{- $errors = append $errors "pushguard.podDisruptionBudget.maxUnavailable must be at least 1, or no node can ever be drained" }}
{{- end }}
{{- end }}
{{- if $p.autoscaling.enabled }}
{{- if gt (int $p.autoscaling.minReplicas) (int $p.autoscaling.maxReplicas) }}
{{- $errors = append $errors (printf "pushguard.autoscaling.minReplicas (%d) is above pushguard.autoscaling.maxReplicas (%d)" (int $p.autoscaling.minReplicas) (int $p.autoscaling.maxReplicas)) }}
{{- end }}
{{- if not (or $p.autoscaling.targetCPUUtilizationPercentage $p.autoscaling.targetMemoryUtilizationPercentage) }}
{{- $errors = append $errors "pushguard.autoscaling needs targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage" }}
{{- end }}
{{- end }}

{{- /* pushgateway */}}
{{- $g := $v.pushgateway }}
{{- if include "pushguard.pushgateway.replicated" . }}
{{- if and (include "pushguard.severalReplicas" .) (not $v.coordination.redis.url) }}
{{- $errors = append $errors (printf "pushgateway.replicaCount is %d with several pushguard replicas (pushguard.replicaCount or pushguard.autoscaling): set coordination.redis.url, so every pushguard replica learns which pushgateway replicas missed a write" (int $g.replicaCount)) }}
{{- end }}
{{- if include "pushguard.scrapesThroughPushguard" . }}
{{- $scraper := $v.serviceMonitor.scrapeIdentity }}
{{- if not $scraper }}
{{- if not (has "read" $v.anonymous.actions) }}
{{- $errors = append $errors "serviceMonitor.scrapeIdentity is empty: with pushgateway.replicaCount above 1 Prometheus scrapes through pushguard, so name a static identity (reading a raw token from the Secret) in a team with the read action, or grant anonymous.actions [read]" }}
{{- end }}
{{- else }}
{{- $identity := dict }}
{{- range $v.identities.static }}{{ if eq .name $scraper }}{{ $identity = . }}{{ end }}{{ end }}
{{- if empty $identity }}
{{- $errors = append $errors (printf "serviceMonitor.scrapeIdentity (%q) is not in identities.static" $scraper) }}
{{- else if or (get $identity "sha256") (eq (get $identity "secretFormat") "sha256") }}
{{- $errors = append $errors (printf "serviceMonitor.scrapeIdentity (%q) must read a raw token from the Secret (not a sha256): Prometheus sends that token" $scraper) }}
{{- end }}
{{- $reads := false }}
{{- range $v.teams }}{{ if and (has $scraper .members) (has "read" .actions) }}{{ $reads = true }}{{ end }}{{ end }}
{{- if not $reads }}
{{- $errors = append $errors (printf "serviceMonitor.scrapeIdentity (%q) is in no team with the read action: add a team such as {name: scrapers, members: [%s], actions: [read]}" $scraper $scraper) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- if and $g.persistence.enabled $g.persistence.existingClaim (include "pushguard.pushgateway.replicated" .) }}
{{- $errors = append $errors (printf "pushgateway.persistence.existingClaim is one volume, and pushgateway.replicaCount is %d: every replica needs its own (leave existingClaim empty for a claim per replica)" (int $g.replicaCount)) }}
{{- end }}
{{- if and $g.forceDisableConsistencyCheck (not $g.disableConsistencyCheck) }}
{{- $errors = append $errors "pushgateway.forceDisableConsistencyCheck is true but pushgateway.disableConsistencyCheck is false: there is nothing to force" }}
{{- end }}
{{- if and (include "pushguard.scrapesThroughPushguard" .) $v.serviceMonitor.scrapeIdentity $v.serviceMonitor.namespace (ne $v.serviceMonitor.namespace (include "pushguard.namespace" .)) }}
{{- $errors = append $errors (printf "serviceMonitor.namespace (%s): the ScrapeConfig reads the token of serviceMonitor.scrapeIdentity from a Secret in its own namespace, and the token Secret is in %s; leave serviceMonitor.namespace empty" $v.serviceMonitor.namespace (include "pushguard.namespace" .)) }}
{{- end }}
{{- if $g.persistence.enabled }}
{{- $file := $g.persistence.file }}
{{- if or (not (isAbs $file)) (eq (dir $file) "/") (hasSuffix "/" $file) }}
{{- $errors = append $errors (printf "pushgateway.persistence.file (%q) must be an absolute file path inside a directory other than /, e.g. /data/pushgateway.db: its directory is the volume's mount path" $file) }}
{{- end }}
{{- end }}
{{- $managedFlagHints := dict
  "--web.enable-lifecycle" " and never enabled (anyone reaching the pushgateway could stop it)"
  "--push.enable-utf8-names" "; set pushguard.config.validation.utf8Names instead, so pushguard and the pushgateway accept the same names"
}}
{{- range $g.extraArgs }}
{{- $flag := regexReplaceAll "=.*$" (toString .) "" }}
{{- if has $flag (list "--web.enable-lifecycle" "--web.listen-address" "--persistence.file" "--persistence.interval" "--web.enable-admin-api" "--push.disable-consistency-check" "--push.enable-utf8-names" "--log.level" "--log.format") }}
{{- $errors = append $errors (printf "pushgateway.extraArgs: %s is managed by the chart%s" $flag (get $managedFlagHints $flag | default "; use the pushgateway.* value instead")) }}
{{- end }}
{{- end }}

{{- /* NetworkPolicies */}}
{{- if $np.enabled }}
{{- if and (empty $np.prometheus.namespaceSelector) (empty $np.prometheus.podSelector) }}
{{- $errors = append $errors (printf "networkPolicy.prometheus: namespaceSelector and podSelector are both empty, which would admit every pod of namespace %s (an empty namespaceSelector selects the release namespace) to %s; select your Prometheus pods" (include "pushguard.namespace" .) (ternary "pushguard's read path (pushgateway.replicaCount is above 1)" "the pushgateway" (eq (include "pushguard.pushgateway.replicated" .) "true"))) }}
{{- end }}
{{- if and (empty $np.pushguard.allowedNamespaces) (empty $np.pushguard.extraFrom) (not $np.pushguard.clientLabel.enabled) }}
{{- $errors = append $errors "networkPolicy.pushguard admits no client: set allowedNamespaces, extraFrom or clientLabel.enabled" }}
{{- end }}
{{- if empty $np.dns.to }}
{{- $errors = append $errors "networkPolicy.dns.to is empty: pushguard could not resolve the pushgateway's Service name" }}
{{- end }}
{{- if and (include "pushguard.usesServiceAccountToken" .) (empty $np.pushguard.egress.kubernetesApi) }}
{{- $errors = append $errors "an in-cluster identities.kubernetes issuer needs networkPolicy.pushguard.egress.kubernetesApi (egress rules reaching the API server) while networkPolicy.enabled is true" }}
{{- end }}
{{- if and (include "pushguard.usesIdentityProviders" .) (empty $np.pushguard.egress.identityProviders) }}
{{- $errors = append $errors "identities.oidc (or a kubernetes issuer with its own jwksUri or apiServer) needs networkPolicy.pushguard.egress.identityProviders (egress rules reaching discovery and JWKS) while networkPolicy.enabled is true" }}
{{- end }}
{{- if and $v.rateLimit.enabled (eq $v.rateLimit.store "redis") (empty $np.pushguard.egress.redis) }}
{{- $errors = append $errors "rateLimit.store redis needs networkPolicy.pushguard.egress.redis (egress rules reaching Redis) while networkPolicy.enabled is true" }}
{{- end }}
{{- if and (include "pushguard.usesCoordinationRedis" .) (empty $np.pushguard.egress.redis) }}
{{- $errors = append $errors "coordination.redis.url needs networkPolicy.pushguard.egress.redis (egress rules reaching Redis) while networkPolicy.enabled is true" }}
{{- end }}
{{- end }}

{{- /* helm test */}}
{{- if $v.tests.enabled }}
{{- $testIdentity := dict }}
{{- range $v.identities.static }}{{ if eq .name $v.tests.identity }}{{ $testIdentity = . }}{{ end }}{{ end }}
{{- if empty $testIdentity }}
{{- $errors = append $errors (printf "tests.identity (%q) is not in identities.static" $v.tests.identity) }}
{{- else if or (get $testIdentity "sha256") (eq (get $testIdentity "secretFormat") "sha256") }}
{{- $errors = append $errors (printf "tests.identity (%q) must read a raw token from the Secret (not a sha256), so the test pod can push with it" $v.tests.identity) }}
{{- else }}
{{- $allowed := false }}
{{- range $v.teams }}
{{- if and (has $v.tests.identity .members) (has "push" .actions) }}
{{- range (get . "jobs" | default list) }}
{{- $pattern := printf "^%s$" (regexQuoteMeta . | replace "\\*" ".*" | replace "\\?" ".") }}
{{- if regexMatch $pattern $v.tests.job }}{{ $allowed = true }}{{ end }}
{{- end }}
{{- end }}
{{- end }}
{{- if not $allowed }}
{{- $errors = append $errors (printf "tests.job (%q) is not pushable by tests.identity (%q): no team with push lists it in jobs" $v.tests.job $v.tests.identity) }}
{{- end }}
{{- end }}
{{- end }}

{{- if $errors }}
{{- fail (printf "\n\nInvalid values for the pushguard chart:\n  - %s\n" (join "\n  - " $errors)) }}
{{- end }}
{{- end }}
