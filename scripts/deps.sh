#!/usr/bin/env bash
# Installs the Debian packages Legate builds, tests and demos with. `--check` only reports
# whether anything is missing (exit 1 if so). Run as root (CI and the dev machines are).
set -euo pipefail

PKGS=(build-essential pkg-config clang-format libuv1-dev libjson-c-dev libyaml-dev
      libcurl4-openssl-dev libssl-dev libre2-dev check node-llhttp python3 python3-pytest python3-yaml
      curl nginx-light haproxy wrk openssl clang-14 libclang-rt-14-dev chromium prometheus)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ "${1:-}" = "--check" ]; then
    if [ ${#missing[@]} -gt 0 ]; then
        echo "missing packages: ${missing[*]}"
        exit 1
    fi
    exit 0
fi

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
echo "deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "deps: not root; run: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
