#!/usr/bin/python3
"""Write a kubeconfig (YAML) for one cluster, one user and one context.

  kubeconfig.py --server URL [--ca FILE] [--token T | --token-file F]
                [--client-cert F --client-key F] [--embed] [--relative]
                [--insecure] [--tls-server-name NAME] [--namespace NS]
                [--context NAME] -o OUT

--embed writes certificate-authority-data / client-certificate-data /
client-key-data (base64 PEM) instead of paths; --relative writes paths
relative to the kubeconfig's folder (kubectl resolves them that way).
Also importable: write_kubeconfig(path, server, ...).
"""

import argparse
import base64
import json
import os
import sys


def _q(value):
    """A YAML double-quoted scalar (JSON string syntax is valid YAML)."""
    return json.dumps(value)


def render(server, ca=None, token=None, token_file=None, client_cert=None, client_key=None,
           embed=False, relative_to=None, insecure=False, tls_server_name=None,
           namespace=None, context="test", cluster="test", user="test"):
    """Return the kubeconfig text."""
    def ref(path):
        if relative_to:
            return os.path.relpath(os.path.abspath(path), relative_to)
        return os.path.abspath(path)

    def data(path):
        with open(path, "rb") as f:
            return base64.b64encode(f.read()).decode()

    c = ["    server: %s" % _q(server)]
    if ca:
        c.append("    certificate-authority-data: %s" % _q(data(ca)) if embed
                 else "    certificate-authority: %s" % _q(ref(ca)))
    if insecure:
        c.append("    insecure-skip-tls-verify: true")
    if tls_server_name:
        c.append("    tls-server-name: %s" % _q(tls_server_name))
    u = []
    if token:
        u.append("    token: %s" % _q(token))
    if token_file:
        u.append("    tokenFile: %s" % _q(ref(token_file)))
    if client_cert:
        u.append("    client-certificate-data: %s" % _q(data(client_cert)) if embed
                 else "    client-certificate: %s" % _q(ref(client_cert)))
    if client_key:
        u.append("    client-key-data: %s" % _q(data(client_key)) if embed
                 else "    client-key: %s" % _q(ref(client_key)))
    ctx = ["    cluster: %s" % _q(cluster), "    user: %s" % _q(user)]
    if namespace:
        ctx.append("    namespace: %s" % _q(namespace))
    lines = ["apiVersion: v1", "kind: Config", "clusters:", "- name: %s" % _q(cluster),
             "  cluster:"] + c + [
        "users:", "- name: %s" % _q(user), "  user:" + ("" if u else " {}")] + u + [
        "contexts:", "- name: %s" % _q(context), "  context:"] + ctx + [
        "current-context: %s" % _q(context), "preferences: {}", ""]
    return "\n".join(lines)


def write_kubeconfig(path, server, relative=False, **kw):
    """Write the kubeconfig to path (mode 0600); returns path."""
    text = render(server, relative_to=os.path.dirname(os.path.abspath(path)) if relative else None,
                  **kw)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description="Write a kubeconfig for the test API server.")
    ap.add_argument("--server", required=True)
    ap.add_argument("--ca")
    ap.add_argument("--token")
    ap.add_argument("--token-file")
    ap.add_argument("--client-cert")
    ap.add_argument("--client-key")
    ap.add_argument("--embed", action="store_true", help="embed *-data instead of paths")
    ap.add_argument("--relative", action="store_true", help="paths relative to the output file")
    ap.add_argument("--insecure", action="store_true", help="insecure-skip-tls-verify: true")
    ap.add_argument("--tls-server-name")
    ap.add_argument("--namespace")
    ap.add_argument("--context", default="test")
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args(argv)
    if bool(a.client_cert) != bool(a.client_key):
        ap.error("--client-cert and --client-key go together")
    write_kubeconfig(a.output, a.server, relative=a.relative, ca=a.ca, token=a.token,
                     token_file=a.token_file, client_cert=a.client_cert,
                     client_key=a.client_key, embed=a.embed, insecure=a.insecure,
                     tls_server_name=a.tls_server_name, namespace=a.namespace,
                     context=a.context)
    return 0


if __name__ == "__main__":
    sys.exit(main())
