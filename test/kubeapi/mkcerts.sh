#!/bin/sh
# mkcerts.sh OUTDIR — test PKI for the test API server, with the openssl CLI.
#
# Writes into OUTDIR:
#   ca.crt ca.key          a self-signed CA (CA:TRUE, keyCertSign)
#   server.crt server.key  serverAuth, SAN IP:127.0.0.1, IP:::1, DNS:localhost
#   client.crt client.key  clientAuth, CN=legate-test, O=system:masters
#
# Keys are EC P-256 (fast); MKCERTS_KEY=rsa makes 2048-bit RSA keys instead.
# Certificates are valid for MKCERTS_DAYS days (default 3650).
set -eu

if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
out=$1
days=${MKCERTS_DAYS:-3650}
mkdir -p "$out"
cd "$out"

newkey() {
    if [ "${MKCERTS_KEY:-ec}" = rsa ]; then
        openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null
    else
        openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
    fi
    chmod 600 "$1"
}

newkey ca.key
openssl req -x509 -new -key ca.key -sha256 -days "$days" -subj "/CN=legate-test-ca" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" \
    -out ca.crt

# sign NAME SUBJECT EXTENSIONS
sign() {
    newkey "$1.key"
    openssl req -new -key "$1.key" -subj "$2" -out "$1.csr"
    printf '%s\n' "$3" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
        -sha256 -days "$days" -extfile "$1.ext" -out "$1.crt" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}

sign server "/CN=kube-apiserver" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost
authorityKeyIdentifier=keyid"

sign client "/O=system:masters/CN=legate-test" "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth
authorityKeyIdentifier=keyid"

rm -f ca.srl
