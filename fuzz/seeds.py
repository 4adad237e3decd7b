#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets (fuzz/corpus/<target>/), so that they can be
reviewed as source and regenerated after a format change: python3 fuzz/seeds.py

Seeds are small, valid or nearly valid inputs that reach each parser's main paths; the
fuzzer mutates from there. File names say what each seed is. Existing files of the same name
are overwritten; others (inputs a long run found and someone chose to keep) are left alone."""
import json
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- annotation: the getambassador.io/config text; a NUL splits two Services' annotations ----

M = "apiVersion: ambassador/v1\nkind: Mapping\n"
ANNOTATIONS = {
    "minimal": M + "name: m1\nprefix: /a/\nservice: svc:80\n",
    "all_fields": M + "name: full\nprefix: /full/\nservice: http://Upstream.NS:8080\n"
    "rewrite: /v1/\nhost_rewrite: internal.example\nmethod: post\nprecedence: 10\n"
    "timeout_ms: 2500\nhost: example.com\nheaders:\n  X-Canary: \"1\"\n  x-debug: true\n"
    "prefix_exact: false\ncase_sensitive: false\n",
    "two_docs": M + "name: a\nprefix: /a/\nservice: a\n---\n" + M
    + "name: b\nprefix: /b/\nservice: b:81\nrewrite: \"\"\n",
    "syntax_error_then_good": M + "name: bad\nprefix: [/x\n---\n" + M
    + "name: good\nprefix: /g/\nservice: g\n",
    "typo_field": M + "name: t\nprefx: /t/\nservice: t\n",
    "missing_fields": M + "name: x\n",
    "other_kinds": "apiVersion: ambassador/v1\nkind: AuthService\nname: auth\nauth_service: a:3000\n"
    "---\napiVersion: ambassador/v1\nkind: Mapp\nname: k\n",
    "ambassador_id": M + "name: i\nprefix: /i/\nservice: i\nambassador_id: [other, default]\n---\n"
    + M + "name: j\nprefix: /j/\nservice: j\nambassador_id: other\n",
    "anchors": "base: &b\n  service: s:80\n" + M + "name: an\nprefix: &p /p/\nservice: *p\n",
    "flow": "{apiVersion: ambassador/v0, kind: Mapping, name: f, prefix: /f/, service: f, "
    "headers: {x-a: b}}\n",
    "quoted": M + "name: \"q\\u00e9\"\nprefix: '/q/'\nservice: \"q\\x41:80\"\nhost: \"\\0\"\n",
    "block_scalars": M + "name: |\n  blk\nprefix: >-\n  /blk/\nservice: blk\n",
    "duplicate_keys": M + "name: d\nprefix: /d/\nprefix: /e/\nservice: d\n",
    "types": M + "name: 5\nprefix: /n/\nservice: n\nprecedence: high\ntimeout_ms: -1\n"
    "prefix_exact: maybe\nheaders: [a, b]\n",
    "services": M + "name: s1\nprefix: /s1/\nservice: \"[::1]:8080\"\n---\n" + M
    + "name: s2\nprefix: /s2/\nservice: https://tls.example\n---\n" + M
    + "name: s3\nprefix: /s3/\nservice: ftp://x\n---\n" + M
    + "name: s4\nprefix: /s4/\nservice: x:99999\n---\n" + M
    + "name: s5\nprefix: /s5/\nservice: x/path\n",
    "empty_docs": "---\n---\n\n...\n---\n~\n",
    "crlf": (M + "name: crlf\nprefix: /c/\nservice: c\n").replace("\n", "\r\n"),
    "invalid_utf8": (M + "name: u\nprefix: /").encode() + b"\xff/\nservice: u\n",
    "deep": "a: " + "[" * 70 + "]" * 70 + "\n",
    "regex": M + "name: rx\nprefix: \"/rx/[0-9]+\"\nprefix_regex: true\nservice: rx\n"
    "regex_headers:\n  x-user: \"[a-z]+\"\nhost: \".*\\\\.example\\\\.com\"\nhost_regex: true\n"
    "method: \"GET|HEAD\"\nmethod_regex: true\n",
    "query": M + "name: qp\nprefix: /qp/\nservice: qp\nquery_parameters:\n  debug: \"1\"\n"
    "regex_query_parameters:\n  id: \"[0-9]+\"\n",
    "redirect": M + "name: rd\nprefix: /old/\nservice: new.example\nhost_redirect: true\n"
    "path_redirect: /new/\nredirect_response_code: 302\n",
    "module": "apiVersion: ambassador/v1\nkind: Module\nname: ambassador\nconfig:\n"
    "  use_remote_address: false\n  xff_num_trusted_hops: 1\n  merge_slashes: true\n",
    "two_services": M + "name: dup\nprefix: /dup/\nservice: a\n\0" + M
    + "name: dup\nprefix: /dup2/\nservice: a\n---\n" + M + "name: other\nprefix: /o/\nservice: a\n",
}

# ---- snapshot: a cut byte, then control frames (4-byte big-endian length + JSON) ----


def frame(obj):
    body = obj if isinstance(obj, bytes) else json.dumps(obj, separators=(",", ":")).encode()
    return struct.pack(">I", len(body)) + body


def route(mapping, prefix, cluster="up:80", **kw):
    r = {"namespace": "default", "service": "svc", "mapping": mapping, "prefix": prefix,
         "cluster": cluster}
    r.update(kw)
    return r


CLUSTERS = [{"name": "up:80", "scheme": "http", "host": "up", "port": 80},
            {"name": "up:8080", "scheme": "http", "host": "up", "port": 8080}]


def snap(routes, clusters=CLUSTERS, errors=(), **kw):
    s = {"type": "snapshot", "protocol": 1, "version": 42, "routes": routes,
         "clusters": clusters, "errors": list(errors)}
    s.update(kw)
    return s


SNAPSHOTS = {
    "one_route": [snap([route("m", "/")])],
    "many_routes": [snap([
        route("exact", "/exact", prefix_exact=True),
        route("canary", "/api/", headers=[{"name": "x-canary", "value": "1"}, {"name": "x-dbg"}],
              rewrite="/canary/"),
        route("api", "/api/", host="Example.COM", rewrite="/v1/"),
        route("port", "/api/", host="example.com:8080", cluster="up:8080"),
        route("post", "/form", method="POST", host_rewrite="forms.internal"),
        route("case", "/CaSe/", case_sensitive=False, rewrite="/"),
        route("v6", "/", host="[::1]"),
        route("root", "/", method="GET", timeout_ms=0, precedence=-3)])],
    "regex_routes": [snap([
        route("rx", "/rx/[0-9]+", prefix_regex=True, rewrite="/n/"),
        route("hrx", "/h/", host=".*\\.example\\.com", host_regex=True),
        route("mrx", "/m/", method="GET|HEAD", method_regex=True),
        route("hdr", "/hdr/", headers=[{"name": "x-user", "value": "[a-z]+", "regex": True}]),
        route("rr", "/rr/", regex_rewrite={"pattern": "/rr/(.*)", "substitution": "/\\1"}),
        route("bad", "(", prefix_regex=True)])],
    "query": [snap([route("q", "/q/", query_parameters=[{"name": "a b", "value": "1"}, {"name": "p"}])])],
    "redirect": [snap([route("r", "/old/", host_redirect="new.example", prefix_redirect="/new/",
                             redirect_response_code=302)])],
    "errors_only": [snap([], clusters=[], errors=[
        {"namespace": "d", "service": "s", "mapping": "m", "field": "prefix", "line": 4,
         "message": "missing required field \"prefix\""}])],
    "unknown_key": [snap([route("m", "/", bogus=1)])],
    "unknown_cluster": [snap([route("m", "/", cluster="nope:1")])],
    "two_frames": [snap([route("a", "/a/")]), snap([route("b", "/b/")])],
    "hello": [{"type": "hello", "protocol": 1, "version": 0, "pid": 1}],
    "trailing_bytes": [b'{"type":"snapshot"} x'],
    "oversize_header": [b"\xff\xff\xff\xff{}"],
}

# ---- watch_split: cap selector, number of chunk sizes, sizes, then the watch stream ----


def event(typ, ns="default", name="svc", rv="100", annotation=None, **extra):
    md = {"namespace": ns, "name": name, "uid": "uid-" + name, "resourceVersion": rv}
    if annotation is not None:
        md["annotations"] = {"getambassador.io/config": annotation}
    obj = {"kind": "Service", "apiVersion": "v1", "metadata": md}
    obj.update(extra)
    return json.dumps({"type": typ, "object": obj}, separators=(",", ":"))


WATCHES = {
    "added_modified_deleted": (0, [3, 17, 1], "\n".join([
        event("ADDED", annotation=ANNOTATIONS["minimal"]),
        event("MODIFIED", rv="101", annotation=ANNOTATIONS["two_docs"]),
        event("DELETED", rv="102")]) + "\n"),
    "bookmark": (1, [], json.dumps({"type": "BOOKMARK", "object": {
        "kind": "Service", "metadata": {"resourceVersion": "555"}}}) + "\r\n"),
    "error_410": (2, [5], json.dumps({"type": "ERROR", "object": {
        "kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}}) + "\n"),
    "error_other": (3, [0, 9], json.dumps({"type": "ERROR", "object": {
        "code": 500, "reason": "InternalError"}}) + "\n"),
    "bad_lines": (1, [2], "not json\n{\"type\":\"ADDED\"}\n{\"type\":\"WHAT\",\"object\":{}}\n"),
    "unnamed": (0, [], event("ADDED", ns="", name="") + "\n"),
    "long_line": (1, [64], event("ADDED", annotation="x" * 100) + "\n"),
    "partial_tail": (2, [7, 7], event("ADDED") + "\n" + event("MODIFIED")[:30]),
    "empty_lines": (0, [1], "\n\r\n\n" + event("ADDED") + "\n\n"),
}

# ---- kubeconfig: file 1, NUL, file 2, NUL, context name ----

KC = """apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: dev
  cluster:
    server: https://127.0.0.1:6443/
    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==
    tls-server-name: kube.local
contexts:
- name: dev
  context: {cluster: dev, user: dev, namespace: team}
users:
- name: dev
  user:
    token: abc.def
"""

KUBECONFIGS = {
    "token": KC,
    "cert_files": KC.replace("    token: abc.def\n", "    client-certificate: client.crt\n"
                             "    client-key: client.key\n"),
    "cert_data": KC.replace("    token: abc.def\n", "    client-certificate-data: QUJD\n"
                            "    client-key-data: REVG\n"),
    "token_file_ca_file": KC.replace("    token: abc.def\n", "    tokenFile: token\n").replace(
        "    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==\n",
        "    certificate-authority: ca.crt\n    insecure-skip-tls-verify: true\n"),
    "exec": KC.replace("    token: abc.def\n", """    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: ./bin/get-token
      args: [--cluster, dev]
      env:
      - {name: A, value: b}
      - {name: EMPTY}
      installHint: install it
"""),
    "merged": "current-context: dev\n\0" + KC.replace("current-context: dev\n", ""),
    "context_flag": KC + "\0\0dev",
    "missing_context": KC.replace("current-context: dev\n", "current-context: nope\n"),
    "unsupported": KC.replace("    token: abc.def\n", "    auth-provider: {name: gcp}\n"),
    "http_server": KC.replace("https://127.0.0.1:6443/", "http://localhost:8080///"),
    "not_a_map": "- a\n- b\n",
    "bad_base64": KC.replace("LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==", "!!!"),
    "empty": "",
}

# ---- exec_cred: an exec plugin's stdout ----


def cred(status, api="client.authentication.k8s.io/v1", kind="ExecCredential"):
    return json.dumps({"kind": kind, "apiVersion": api, "status": status})


EXEC_CREDS = {
    "token": cred({"token": "t0ken", "expirationTimestamp": "2030-01-02T03:04:05Z"}),
    "cert": cred({"clientCertificateData": "-----BEGIN CERTIFICATE-----\n",
                  "clientKeyData": "-----BEGIN PRIVATE KEY-----\n"}),
    "beta": cred({"token": "b"}, api="client.authentication.k8s.io/v1beta1"),
    "fraction_offset": cred({"token": "t", "expirationTimestamp": "2030-01-02T03:04:05.123+02:00"}),
    "no_status": json.dumps({"kind": "ExecCredential"}),
    "cert_without_key": cred({"clientCertificateData": "x"}),
    "wrong_kind": cred({"token": "t"}, kind="Other"),
    "time_line": "2026-01-01T10:00:00Z\n",
    "leap_second": "2016-12-31T23:59:60z\n",
}

# ---- request_head: flags, read size, then what the client sends ----

REQUESTS = {
    "get": (0, 0, "GET /api/x?y=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n"),
    "post_cl": (0, 7, "POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"),
    "chunked": (1, 3, "POST /form/x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                "5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\n"),
    "pipelined": (1, 0, "GET /exact HTTP/1.1\r\nHost: a\r\n\r\nGET /CASE/y HTTP/1.1\r\nHost: b\r\n"
                  "Connection: close\r\n\r\n"),
    "http10": (0, 1, "GET / HTTP/1.0\r\n\r\n"),
    "absolute_form": (0, 0, "GET http://Example.com:8080/api/v?q HTTP/1.1\r\nHost: other\r\n\r\n"),
    "canary": (0, 0, "GET /api/a HTTP/1.1\r\nHost: x\r\nX-Canary: 1\r\nx-debug:\r\n"
               "X-Forwarded-For: 10.0.0.1\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\n\r\n"),
    "options_star": (0, 0, "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"),
    "connect": (0, 0, "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"),
    "obs_fold": (0, 0, "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n"),
    "te_and_cl": (0, 0, "POST /form HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "two_hosts": (0, 0, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    "space_before_colon": (0, 0, "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n"),
    "upgrade": (0, 0, "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                "GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
    "http2": (0, 0, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    "te_gzip": (0, 0, "POST /form HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
    "empty_host": (0, 0, "HEAD / HTTP/1.1\r\nHost:\r\n\r\n"),
    "no_route": (0, 0, "DELETE /nothing HTTP/1.1\r\nHost: a\r\n\r\n"),
    "long_target": (0, 200, "GET /" + "a" * 9000 + " HTTP/1.1\r\nHost: a\r\n\r\n"),
    "expect": (0, 0, "POST /form HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
               "Content-Length: 2\r\n\r\nok"),
    "redirect": (0, 0, "GET /old/page?x=1 HTTP/1.1\r\nHost: a\r\n\r\n"),
    "regex_rewrite": (0, 0, "GET /rx/12/rest HTTP/1.1\r\nHost: a\r\n\r\n"),
    "query_regex": (0, 0, "GET /q?a=1&id=42 HTTP/1.1\r\nHost: a\r\n\r\n"),
    "dot_segments": (0, 0, "GET /a/./b/../../exact HTTP/1.1\r\nHost: a\r\n\r\n"
                     "GET /%2e%2e/x HTTP/1.1\r\nHost: a\r\n\r\n"),
    "escapes": (0, 0, "GET /%61pi/%2Fx%7e HTTP/1.1\r\nHost: example.com\r\n\r\n"),
    # Table 1 (bit 1): one trusted hop, merged slashes, a deny list.
    "module_trusted_hop": (2, 0, "GET //api///y HTTP/1.1\r\nHost: example.com\r\n"
                           "X-Forwarded-For: 203.0.113.9, 10.1.2.3\r\n"
                           "X-Forwarded-Proto: https\r\n\r\n"),
    "module_denied_peer": (6, 0, "GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
    "module_xff_garbage": (2, 5, "GET /api/x HTTP/1.1\r\nHost: example.com\r\n"
                           "X-Forwarded-For: not-an-ip\r\nCookie: c=1\r\nX-Debug: 1\r\n\r\n"),
}


def main():
    for name, text in ANNOTATIONS.items():
        write("annotation", name, text)
    for name, frames in SNAPSHOTS.items():
        data = b"".join(frame(f) for f in frames)
        write("snapshot", name, bytes([len(data) // 2 % 256]) + data)
    for name, (cap, sizes, stream) in WATCHES.items():
        write("watch_split", name, bytes([cap, len(sizes)] + sizes) + stream.encode())
    for name, text in KUBECONFIGS.items():
        write("kubeconfig", name, text)
    for name, text in EXEC_CREDS.items():
        write("exec_cred", name, text)
    for name, (flags, chunk, stream) in REQUESTS.items():
        write("request_head", name, bytes([flags, chunk]) + stream.encode())


if __name__ == "__main__":
    main()
