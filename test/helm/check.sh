#!/usr/bin/env bash
# shellcheck disable=SC2317  # notes_ok and dockerfile_facts are called through run()
# Checks Legate's packaging: the Helm chart, the plain manifests, the docs'
# values table and the Dockerfile. Needs no cluster and no network once
# scripts/fetch-tools.sh has run (this script runs it; it caches in .tools/).
#
#   test/helm/check.sh
#
# For the default values and for each test/helm/values-*.yaml:
#   - helm lint --strict, helm template;
#   - schema validation of every rendered object against the Kubernetes API
#     schemas, unknown fields included (test/helm/validator/validate.mjs);
#   - assertions on the objects (test/helm/check_rendered.py): least-privilege
#     RBAC, Role/RoleBinding and --namespace for a single namespace, only the
#     binaries' own flags, security contexts, probes, the shared socket volume.
# Then: values.schema.json rejects bad values, the chart's kubeVersion holds,
# the checks themselves catch planted mistakes, manifests/legate.yaml is a
# fresh render and valid, docs/install.md lists every value, and the
# Dockerfile lints clean.
#
# Each failure prints `FAIL name: reason`; the last line is `N passed, M failed`
# (`, 1 skipped` when build/ holds no binaries to check the flags against).
# Exits 1 on any failure.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root" || exit 1
PY=/usr/bin/python3
chart=helm/legate

npass=0
nfail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ok() {
	npass=$((npass + 1))
	echo "ok   $1"
}
bad() {
	nfail=$((nfail + 1))
	echo "FAIL $1: $2"
}
finish() {
	if [ "${nskip:-0}" -gt 0 ]; then
		echo "$npass passed, $nfail failed, $nskip skipped"
	else
		echo "$npass passed, $nfail failed"
	fi
	[ "$nfail" = 0 ]
	exit
}
# last_line FILE: the last non-blank line of FILE, trimmed, for a reason.
last_line() { grep -v '^[[:space:]]*$' "$1" | tail -n 1 | sed 's/^[[:space:]]*//' | cut -c1-300; }

# run NAME CMD...: passes when CMD succeeds; else shows its output's tail.
run() {
	local name=$1
	shift
	if "$@" >"$tmp/out" 2>&1; then
		ok "$name"
	else
		tail -n 15 "$tmp/out" | sed 's/^/    | /'
		bad "$name" "$(last_line "$tmp/out")"
	fi
}

# run_fails NAME PATTERN CMD...: passes when CMD fails and its output
# contains PATTERN (a fixed string): a mistake must be caught, for its reason.
run_fails() {
	local name=$1 pattern=$2
	shift 2
	if "$@" >"$tmp/out" 2>&1; then
		bad "$name" "the command succeeded, it should have failed: $*"
	elif ! grep -qF -- "$pattern" "$tmp/out"; then
		tail -n 5 "$tmp/out" | sed 's/^/    | /'
		bad "$name" "failed, but not with \"$pattern\": $(last_line "$tmp/out")"
	else
		ok "$name"
	fi
}

# pycheck NAME ARGS...: runs check_rendered.py, counts each of its assertions.
pycheck() {
	local name=$1 n=0 line
	shift
	"$PY" test/helm/check_rendered.py "$@" >"$tmp/py" 2>&1
	local rc=$?
	while IFS= read -r line; do
		case $line in
		PASS\ *)
			npass=$((npass + 1))
			n=$((n + 1))
			;;
		FAIL\ *)
			nfail=$((nfail + 1))
			echo "FAIL $name: ${line#FAIL }"
			;;
		esac
	done <"$tmp/py"
	if grep -q '^FAIL ' "$tmp/py"; then
		echo "     ($name: $n other assertions passed)"
	elif [ "$rc" != 0 ]; then
		tail -n 10 "$tmp/py" | sed 's/^/    | /'
		bad "$name" "check_rendered.py exited $rc: $(last_line "$tmp/py")"
	else
		echo "ok   $name: $n assertions passed"
	fi
}

# --- tools --------------------------------------------------------------------
if ! bin=$(scripts/fetch-tools.sh 2>"$tmp/fetch"); then
	cat "$tmp/fetch"
	bad "tools" "scripts/fetch-tools.sh failed: $(last_line "$tmp/fetch")"
	finish
fi
HELM=$bin/helm
VALIDATOR=$root/.tools/validator
export HELM HELM_CACHE_HOME=$tmp/helm/cache HELM_CONFIG_HOME=$tmp/helm/config HELM_DATA_HOME=$tmp/helm/data
if ! "$PY" -c 'import yaml' 2>/dev/null; then
	bad "tools" "$PY has no yaml module: apt-get install python3-yaml"
	finish
fi
cp test/helm/validator/validate.mjs "$VALIDATOR/validate.mjs"
ok "tools: $("$HELM" version --short), node $(node --version), kubernetes-models $(node -p 'require("'"$VALIDATOR"'/node_modules/kubernetes-models/package.json").version')"

# validate NAME FILE...: schema validation of every object in the files.
validate() {
	local name=$1
	shift
	if ! "$PY" test/helm/check_rendered.py tojson "$tmp/objects.json" "$@" >"$tmp/out" 2>&1; then
		bad "$name" "cannot read the YAML: $(last_line "$tmp/out")"
		return
	fi
	run "$name" node "$VALIDATOR/validate.mjs" "$tmp/objects.json"
}

# notes_ok: NOTES.txt renders (a client-side dry-run install, no cluster) and
# says how to add a route, where the admin port is and how to see errors.
notes_ok() {
	KUBECONFIG=/nonexistent "$HELM" install legate "$chart" --namespace legate --dry-run=client "${args[@]}" >"$tmp/notes" 2>&1 ||
		{ last_line "$tmp/notes"; return 1; }
	local want
	for want in "getambassador.io/config" "kind: Mapping" "8877" "-c controller" "kubectl describe svc"; do
		sed -n '/^NOTES:/,$p' "$tmp/notes" | grep -qF -- "$want" || { echo "NOTES.txt lacks \"$want\""; return 1; }
	done
}

# --- each values set ------------------------------------------------------------
sets=(default)
labels=()
for f in test/helm/values-*.yaml; do
	[ -e "$f" ] && sets+=("$f")
done
for set in "${sets[@]}"; do
	if [ "$set" = default ]; then
		args=()
		label=default
	else
		args=(-f "$set")
		label=$(basename "$set" .yaml)
	fi
	labels+=("$label")
	out=$tmp/render-$label.yaml
	run "helm lint --strict ($label)" "$HELM" lint --strict "$chart" "${args[@]}"
	if ! "$HELM" template legate "$chart" --namespace legate "${args[@]}" >"$out" 2>"$tmp/err"; then
		bad "helm template ($label)" "$(last_line "$tmp/err")"
		continue
	fi
	ok "helm template ($label)"
	run "NOTES.txt: Mapping example, admin port, errors ($label)" notes_ok
	validate "schema ($label)" "$out"
	if [ "$set" = default ]; then
		pycheck "assertions ($label)" render "$out" "$chart"
	else
		pycheck "assertions ($label)" render "$out" "$chart" "$set"
	fi
done

# --- the real binaries, when built ---------------------------------------------------
# `make` builds them into build/ (LEGATE_BUILD overrides); check.sh needs no
# build, so without them this is skipped.
build=${LEGATE_BUILD:-$root/build}
nskip=0
if [ -x "$build/legate-proxy" ] && [ -x "$build/legate-controller" ]; then
	for label in "${labels[@]}"; do
		[ -s "$tmp/render-$label.yaml" ] && pycheck "binary flags ($label)" binflags "$tmp/render-$label.yaml" "$build"
	done
else
	nskip=$((nskip + 1))
	echo "skip binary flags: no $build/legate-proxy and legate-controller (run make first)"
fi

# --- values.schema.json and kubeVersion ----------------------------------------
tpl=("$HELM" template legate "$chart" --namespace legate)
run_fails "values schema rejects logLevel=loud" "/logLevel" "${tpl[@]}" --set logLevel=loud
run_fails "values schema rejects logFormat=xml" "/logFormat" "${tpl[@]}" --set logFormat=xml
run_fails "values schema rejects workers=0" "/workers" "${tpl[@]}" --set workers=0
run_fails "values schema rejects service.type=Ingress" "/service/type" "${tpl[@]}" --set service.type=Ingress
run_fails "values schema rejects an unknown value (replicas)" "'replicas' not allowed" "${tpl[@]}" --set replicas=2
run_fails "autoscaling without any target metric fails" "autoscaling.enabled needs" "${tpl[@]}" --set autoscaling.enabled=true \
	--set-string autoscaling.targetCPUUtilizationPercentage= --set-string autoscaling.targetMemoryUtilizationPercentage=
run "renders for Kubernetes 1.22 (kubeVersion >=1.22)" "${tpl[@]}" --kube-version 1.22.0
run_fails "refuses Kubernetes 1.21 (kubeVersion >=1.22)" "requires kubeVersion" "${tpl[@]}" --kube-version 1.21.0

# --- the checks catch planted mistakes -------------------------------------------
def=$tmp/render-default.yaml
if [ -s "$def" ]; then
	sed 's/verbs: \["get", "list", "watch"\]/verbs: ["get", "list", "watch", "delete"]/' "$def" >"$tmp/m-verb.yaml"
	run_fails "RBAC check catches an extra verb" "FAIL ClusterRole is exactly least privilege" "$PY" test/helm/check_rendered.py render "$tmp/m-verb.yaml" "$chart"
	sed 's/resources: \["services"\]/resources: ["*"]/' "$def" >"$tmp/m-wild.yaml"
	run_fails "RBAC check catches a wildcard" "wildcard" "$PY" test/helm/check_rendered.py render "$tmp/m-wild.yaml" "$chart"
	sed '0,/- --log-format/s//- --log-fmt/' "$def" >"$tmp/m-flag.yaml"
	run_fails "args check catches an unknown flag" "unknown flag '--log-fmt'" "$PY" test/helm/check_rendered.py render "$tmp/m-flag.yaml" "$chart"
	sed '/readOnlyRootFilesystem: true/d' "$def" >"$tmp/m-sc.yaml"
	run_fails "securityContext check catches a writable root" "FAIL controller securityContext" "$PY" test/helm/check_rendered.py render "$tmp/m-sc.yaml" "$chart"
	sed 's/readinessProbe:/readinesProbe:/' "$def" >"$tmp/m-typo.yaml"
	"$PY" test/helm/check_rendered.py tojson "$tmp/m-typo.json" "$tmp/m-typo.yaml" >/dev/null 2>&1
	run_fails "schema validation catches an unknown field" "readinesProbe" node "$VALIDATOR/validate.mjs" "$tmp/m-typo.json"
	sed 's/containerPort: 8080/containerPort: "8080"/' "$def" >"$tmp/m-type.yaml"
	"$PY" test/helm/check_rendered.py tojson "$tmp/m-type.json" "$tmp/m-type.yaml" >/dev/null 2>&1
	run_fails "schema validation catches a wrong type" "containerPort must be integer" node "$VALIDATOR/validate.mjs" "$tmp/m-type.json"
fi

# --- plain manifests ---------------------------------------------------------------
run "manifests/legate.yaml is a fresh render (scripts/render-manifests.sh --check)" \
	scripts/render-manifests.sh --check
validate "schema (manifests/legate.yaml)" manifests/legate.yaml

# --- docs ---------------------------------------------------------------------------
pycheck "values documented" docs "$chart" docs/install.md

# --- Dockerfile ------------------------------------------------------------------------
run "Dockerfile lint (dockerfile-utils)" "$VALIDATOR/node_modules/.bin/dockerfile-utils" lint Dockerfile
dockerfile_facts() {
	grep -q '^FROM debian:12 AS build$' Dockerfile || { echo "no 'FROM debian:12 AS build' stage"; return 1; }
	[ "$(grep -c '^FROM ' Dockerfile)" = 2 ] || { echo "expected two stages"; return 1; }
	grep -q '^FROM debian:12-slim$' Dockerfile || { echo "runtime stage is not debian:12-slim"; return 1; }
	grep -q 'make install PREFIX=/usr/local DESTDIR=/out' Dockerfile || { echo "no make install into /out"; return 1; }
	[ "$(grep '^USER ' Dockerfile | tail -n 1)" = "USER 65532:65532" ] || { echo "last USER is not 65532"; return 1; }
	grep -q '^ENTRYPOINT \["' Dockerfile || { echo "ENTRYPOINT is not in exec form"; return 1; }
	local pkg
	for pkg in libuv1 libjson-c5 libyaml-0-2 libcurl4 libssl3 libre2-9 ca-certificates; do
		sed -n '/^FROM debian:12-slim/,$p' Dockerfile | grep -qw -- "$pkg" || { echo "runtime stage lacks $pkg"; return 1; }
	done
	for f in .git .tools/ build/; do
		grep -qx -- "$f" .dockerignore || { echo ".dockerignore lacks $f"; return 1; }
	done
}
run "Dockerfile: two Debian 12 stages, runtime libs, uid 65532, exec entrypoint" dockerfile_facts

finish
