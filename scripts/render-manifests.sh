#!/usr/bin/env bash
# Renders the Helm chart with its default values into manifests/legate.yaml,
# the plain install (`kubectl apply -f manifests/legate.yaml`), preceded by
# the Namespace it installs into.
#
#   scripts/render-manifests.sh           rewrite manifests/legate.yaml
#   scripts/render-manifests.sh --check   exit 1 with a diff if the file is
#                                         not what a fresh render gives
#
# Uses $HELM if set, else the helm that scripts/fetch-tools.sh provides (the
# output depends on helm's version, so use the pinned one).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$root/manifests/legate.yaml
release=legate
namespace=legate

die() {
	echo "render-manifests: error: $*" >&2
	exit 1
}

check=0
case "${1:-}" in
"") ;;
--check) check=1 ;;
*) die "usage: $0 [--check]" ;;
esac

if [ -z "${HELM:-}" ]; then
	bin=$("$root/scripts/fetch-tools.sh") || die "scripts/fetch-tools.sh failed"
	HELM=$bin/helm
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Keep helm away from the user's own configuration and caches.
export HELM_CACHE_HOME=$tmp/helm/cache HELM_CONFIG_HOME=$tmp/helm/config HELM_DATA_HOME=$tmp/helm/data

{
	cat <<EOF
# GENERATED FILE - do not edit. Rendered from the Helm chart helm/legate with
# its default values by scripts/render-manifests.sh, that is:
#
#   helm template $release helm/legate --namespace $namespace
#
# preceded by the Namespace. Change the chart, then run
# scripts/render-manifests.sh; test/helm/check.sh fails while this file is stale.
#
# Install: kubectl apply -f manifests/legate.yaml   (see docs/install.md)
---
apiVersion: v1
kind: Namespace
metadata:
  name: $namespace
  labels:
    app.kubernetes.io/name: legate
    app.kubernetes.io/part-of: legate
EOF
	(cd "$root" && "$HELM" template "$release" helm/legate --namespace "$namespace") ||
		die "helm template failed"
} >"$tmp/legate.yaml"

if [ "$check" = 1 ]; then
	[ -f "$out" ] || die "manifests/legate.yaml is missing: run scripts/render-manifests.sh"
	if ! diff -u "$out" "$tmp/legate.yaml" >"$tmp/diff"; then
		cat "$tmp/diff"
		echo "render-manifests: manifests/legate.yaml differs from a fresh render: run scripts/render-manifests.sh" >&2
		exit 1
	fi
	echo "render-manifests: manifests/legate.yaml is up to date" >&2
else
	mkdir -p "$(dirname "$out")"
	cp "$tmp/legate.yaml" "$out"
	echo "render-manifests: wrote manifests/legate.yaml" >&2
fi
