# Operational commands for a pushguard Helm release (pushguard + its pushgateway).
#
#   make -f make/ops/pushgateway.mk <target> RELEASE=pushguard NAMESPACE=monitoring [VAR=...]
#
# Writes go through pushguard, from this machine, over a short-lived `kubectl port-forward`, with a
# token read from the release's Secret (IDENTITY names its key). Reads of what the pushgateway holds
# and of its health go to a pushgateway pod over a port-forward, which needs no token (only the
# rights to port-forward, which are already more than reading). Nothing is executed inside the
# pushgateway image, which has no shell tools worth relying on.

RELEASE ?= pushguard
NAMESPACE ?= monitoring
KUBECTL ?= kubectl
CURL ?= curl
# Object name prefix, as the chart computes it (set it when you used fullnameOverride): dots become
# dashes, and past 40 characters it is its first 33 and 6 of its SHA-256.
NAME := $(if $(findstring pushguard,$(RELEASE)),$(RELEASE),$(RELEASE)-pushguard)
ifeq ($(origin FULLNAME),undefined)
FULLNAME := $(shell n=$$(printf %s '$(NAME)' | tr . -); if [ $${#n} -gt 40 ]; then printf '%s-%s' "$$(printf %s "$$n" | cut -c1-33 | sed 's/-$$//')" "$$(printf %s "$$n" | sha256sum | cut -c1-6)"; else printf %s "$$n" | sed 's/-$$//'; fi)
endif
PUSHGATEWAY ?= $(FULLNAME)-pushgateway
# Secret with the static tokens; empty reads its name from the Deployment's `tokens` volume, so it
# is right with tokens.existingSecret too.
SECRET ?=
# Secret key (identity) whose raw token authenticates delete-group and explain.
IDENTITY ?=
# pushgateway-metrics: the replica (pod ordinal) to read.
REPLICA ?= 0
API_PORT ?= 9091
METRICS_PORT ?= 9092
LOCAL_PORT ?= 19091
LOCAL_METRICS_PORT ?= 19092
LOCAL_PUSHGATEWAY_PORT ?= 19093
TAIL ?= 200
# How to run the pushguard CLI: inside a running pushguard pod by default; `PUSHGUARD="node dist/main.js"` runs a local build.
PUSHGUARD ?= $(KUBECTL) -n $(NAMESPACE) exec -i deploy/$(FULLNAME) -c pushguard -- node /app/dist/main.js
# pushguard-explain: the request to explain.
METHOD ?= PUT
REQUEST_PATH ?= /metrics/job/$(JOB)

K := $(KUBECTL) -n $(NAMESPACE)
BASE_URL := http://127.0.0.1:$(LOCAL_PORT)

# Sets $$TOKEN to IDENTITY's token from SECRET, or from the Secret the Deployment mounts as its
# `tokens` volume. Under `set -e`, each kubectl call is a command of its own (no pipe hides its exit
# status), so a Secret that cannot be read stops the recipe, and so does an empty token, or a key
# that holds a SHA-256 hash (pushguard's config reads it as `sha256File`), which is no credential.
# Dots in the key are escaped for jsonpath (`{.data.ci\.example\.com}`).
define read-token
SECRET='$(SECRET)'; \
if [ -z "$$SECRET" ]; then \
  SECRET=$$($(K) get deployment $(FULLNAME) -o jsonpath='{.spec.template.spec.volumes[?(@.name=="tokens")].secret.secretName}'); \
  [ -n "$$SECRET" ] || { echo "deployment $(FULLNAME) mounts no tokens Secret: set SECRET=<name>" >&2; exit 1; }; \
fi; \
CONFIG=$$($(K) get configmap $(FULLNAME) -o jsonpath='{.data.config\.yaml}'); \
if printf '%s\n' "$$CONFIG" | sed 's/^[ -]*//' | grep -qxF 'sha256File: /etc/pushguard/secrets/$(IDENTITY)'; then \
  echo "secret $$SECRET holds the SHA-256 hash of $(IDENTITY)'s token, not the token: use an identity whose key holds a raw token" >&2; exit 1; \
fi; \
DATA=$$($(K) get secret "$$SECRET" -o jsonpath='{.data.$(subst .,\.,$(IDENTITY))}'); \
TOKEN=$$(printf %s "$$DATA" | base64 -d); \
[ -n "$$TOKEN" ] || { echo "secret $$SECRET has no key $(IDENTITY)" >&2; exit 1; }
endef

# Runs $(1) while a port-forward to pushguard's Service is up, with $$TOKEN holding IDENTITY's
# token (empty without IDENTITY). The token reaches curl on stdin (`-H @-`), never its arguments.
define with-pushguard
set -eu; \
TOKEN=""; \
if [ -n "$(IDENTITY)" ]; then \
  $(read-token); \
fi; \
$(K) port-forward svc/$(FULLNAME) $(LOCAL_PORT):$(API_PORT) $(LOCAL_METRICS_PORT):$(METRICS_PORT) >/dev/null & PF=$$!; \
trap 'kill $$PF 2>/dev/null || true' EXIT; \
for i in $$(seq 1 50); do $(CURL) -s -o /dev/null http://127.0.0.1:$(LOCAL_METRICS_PORT)/healthz && break; sleep 0.2; done; \
auth() { [ -z "$$TOKEN" ] || printf 'Authorization: Bearer %s\n' "$$TOKEN"; }; \
$(1)
endef

# Runs $(1) while a port-forward to pushgateway pod $(2) is up on LOCAL_PUSHGATEWAY_PORT.
define with-pushgateway-pod
set -eu; \
$(K) port-forward pod/$(2) $(LOCAL_PUSHGATEWAY_PORT):9091 >/dev/null & PF=$$!; \
trap 'kill $$PF 2>/dev/null || true' EXIT; \
for i in $$(seq 1 50); do $(CURL) -s -o /dev/null http://127.0.0.1:$(LOCAL_PUSHGATEWAY_PORT)/-/healthy && break; sleep 0.2; done; \
$(1)
endef

PUSHGATEWAY_URL := http://127.0.0.1:$(LOCAL_PUSHGATEWAY_PORT)

.PHONY: pushgateway-port-forward pushgateway-metrics pushgateway-delete-group pushgateway-health \
	pushgateway-logs pushguard-logs pushgateway-restart pushguard-restart pushguard-hash-token pushguard-explain

## Forward pushguard's API to localhost:$(LOCAL_PORT) and its metrics port to localhost:$(LOCAL_METRICS_PORT) (Ctrl-C stops).
pushgateway-port-forward:
	@echo "push to http://127.0.0.1:$(LOCAL_PORT)/metrics/job/<job>; pushguard metrics at http://127.0.0.1:$(LOCAL_METRICS_PORT)/metrics"
	$(K) port-forward svc/$(FULLNAME) $(LOCAL_PORT):$(API_PORT) $(LOCAL_METRICS_PORT):$(METRICS_PORT)

## Print every metric pushgateway replica REPLICA (default 0) holds, read from its pod: no identity needs the read action.
pushgateway-metrics:
	@$(call with-pushgateway-pod,$(CURL) -fsS $(PUSHGATEWAY_URL)/metrics,$(PUSHGATEWAY)-$(REPLICA))

## Delete a group through pushguard: JOB=<job> [LABELS=instance/worker01] IDENTITY=<Secret key allowed to delete it>.
pushgateway-delete-group:
	$(if $(JOB),,$(error JOB is required, e.g. JOB=batch_job [LABELS=instance/worker01]))
	$(if $(IDENTITY),,$(error IDENTITY is required: the key in the token Secret of an identity whose team may delete $(JOB)))
	@$(call with-pushguard,auth | $(CURL) -fsS -X DELETE -H @- -w '%{http_code}\n' -o /dev/null $(BASE_URL)/metrics/job/$(JOB)$(if $(LABELS),/$(LABELS)))

## Show pod status, every pushgateway replica's own /-/healthy and /-/ready, and pushguard's /healthz and /readyz (ready: the pushgateway answers).
pushgateway-health:
	$(K) get pods -l app.kubernetes.io/instance=$(RELEASE) -o wide
	@set -eu; \
	for pod in $$($(K) get pods -l app.kubernetes.io/instance=$(RELEASE),app.kubernetes.io/component=pushgateway -o jsonpath='{.items[*].metadata.name}'); do \
	  ( $(call with-pushgateway-pod,printf '%s /-/healthy: ' "$$pod"; $(CURL) -sS $(PUSHGATEWAY_URL)/-/healthy; echo; printf '%s /-/ready: ' "$$pod"; $(CURL) -sS $(PUSHGATEWAY_URL)/-/ready; echo,$$pod) ); \
	done
	@$(call with-pushguard,printf 'pushguard healthz: '; $(CURL) -sS http://127.0.0.1:$(LOCAL_METRICS_PORT)/healthz; echo; printf 'pushguard readyz: '; $(CURL) -sS http://127.0.0.1:$(LOCAL_METRICS_PORT)/readyz; echo)

## Show the logs of every pushgateway replica (TAIL lines each).
pushgateway-logs:
	$(K) logs -l app.kubernetes.io/instance=$(RELEASE),app.kubernetes.io/component=pushgateway -c pushgateway --prefix --tail=$(TAIL)

## Show the logs of every pushguard replica (TAIL lines each), including the audit lines.
pushguard-logs:
	$(K) logs -l app.kubernetes.io/instance=$(RELEASE),app.kubernetes.io/component=pushguard -c pushguard --prefix --tail=$(TAIL)

## Restart the pushgateway (groups survive only with persistence enabled) and wait for it.
pushgateway-restart:
	$(K) rollout restart statefulset/$(PUSHGATEWAY)
	$(K) rollout status statefulset/$(PUSHGATEWAY) --timeout=5m

## Restart pushguard (after changing tokens.existingSecret) and wait for it.
pushguard-restart:
	$(K) rollout restart deployment/$(FULLNAME)
	$(K) rollout status deployment/$(FULLNAME) --timeout=5m

## Hash a token for identities.static[].sha256: `printf %s "$$TOKEN" | make -f make/ops/pushgateway.mk pushguard-hash-token`.
pushguard-hash-token:
	@$(PUSHGUARD) hash-token

## Explain pushguard's decision for IDENTITY's token on METHOD REQUEST_PATH (default PUT /metrics/job/$$JOB), with the release's config; exit 2 means denied.
pushguard-explain:
	$(if $(IDENTITY),,$(error IDENTITY is required: the key in the token Secret whose token to explain))
	$(if $(filter /metrics/job/,$(REQUEST_PATH)),$(error set JOB=<job> or REQUEST_PATH=/metrics/job/...))
	@set -eu; \
	$(read-token); \
	printf %s "$$TOKEN" | $(PUSHGUARD) explain --config /etc/pushguard/config/config.yaml --method $(METHOD) --path $(REQUEST_PATH)
