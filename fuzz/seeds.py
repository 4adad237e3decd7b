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

def head(line, *headers, host="a", version="HTTP/1.1"):
    """A request head: the request line, Host (none when host is None), headers, blank line."""
    host_line = [] if host is None else ["Host: " + host]
    return "\r\n".join([line + " " + version] + host_line + list(headers)) + "\r\n\r\n"


def http(line, *headers, body="", flags=0, chunk=0, **kw):
    return (flags, chunk, head(line, *headers, **kw) + body)


REQUESTS = {
    "get": http("GET /api/x?y=1", "User-Agent: t", host="example.com"),
    "post_cl": http("POST /form", "Content-Length: 5", body="hello", chunk=7),
    "chunked": http("POST /form/x", "Transfer-Encoding: chunked", flags=1, chunk=3,
                    body="5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\n"),
    "pipelined": http("GET /exact", body=head("GET /CASE/y", "Connection: close", host="b"),
                      flags=1),
    "http10": http("GET /", host=None, version="HTTP/1.0", chunk=1),
    "absolute_form": http("GET http://Example.com:8080/api/v?q", host="other"),
    "canary": http("GET /api/a", "X-Canary: 1", "x-debug:", "X-Forwarded-For: 10.0.0.1",
                   "Connection: keep-alive, X-Drop", "X-Drop: 1", host="x"),
    "options_star": http("OPTIONS *"),
    "connect": http("CONNECT a:443", host="a:443"),
    "obs_fold": http("GET /", "X: a", " b"),
    "te_and_cl": http("POST /form", "Content-Length: 3", "Transfer-Encoding: chunked",
                      body="0\r\n\r\n"),
    "two_hosts": http("GET /", "Host: b"),
    "space_before_colon": http("GET /", "Transfer-Encoding : chunked"),
    "upgrade": http("GET /", "Connection: Upgrade", "Upgrade: websocket", body=head("GET /")),
    "http2": (0, 0, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    "te_gzip": http("POST /form", "Transfer-Encoding: gzip, chunked"),
    "empty_host": http("HEAD /", "Host:", host=None),
    "no_route": http("DELETE /nothing"),
    "long_target": http("GET /" + "a" * 9000, chunk=200),
    "expect": http("POST /form", "Expect: 100-continue", "Content-Length: 2", body="ok"),
    "redirect": http("GET /old/page?x=1"),
    "regex_rewrite": http("GET /rx/12/rest"),
    "query_regex": http("GET /q?a=1&id=42"),
    "dot_segments": http("GET /a/./b/../../exact", body=head("GET /%2e%2e/x")),
    "escapes": http("GET /%61pi/%2Fx%7e", host="example.com"),
    # Table 1 (bit 1): one trusted hop, merged slashes, a deny list.
    "module_trusted_hop": http("GET //api///y", "X-Forwarded-For: 203.0.113.9, 10.1.2.3",
                               "X-Forwarded-Proto: https", host="example.com", flags=2),
    "module_denied_peer": http("GET /", flags=6),
    "module_xff_garbage": http("GET /api/x", "X-Forwarded-For: not-an-ip", "Cookie: c=1",
                               "X-Debug: 1", host="example.com", flags=2, chunk=5),
}


# ---- request_target: flags (bit 0 merge_slashes, bit 1 OPTIONS), then the request target ----

TARGETS = {
    "dot_segments": (0, "/a/./b/../../c/."),
    "escaped_dots": (0, "/public/%2e%2e/admin/x?y=%2F.."),
    "unreserved_escapes": (0, "/%61dmin/%7Euser/%41%c3%A9%20"),
    "empty_segments": (0, "/a//b//../c//"),
    "merge_slashes": (1, "//a///b/.//c/"),
    "above_root": (0, "/a/../../x"),
    "escaped_slash": (0, "/a%2Fb%5c%00"),
    "backslash": (0, "/a\\b"),
    "malformed_escape": (0, "/a%zz%4"),
    "path_parameter": (0, "/public/..;/admin"),
    "absolute_form": (0, "http://Example.COM:8080/p/../q?z"),
    "absolute_no_path": (0, "HTTPS://h?q"),
    "ipv6_authority": (0, "http://[::1]:80/x"),
    "userinfo": (0, "http://u:p@h/"),
    "asterisk": (2, "*"),
    "asterisk_not_options": (0, "*"),
    "fragment": (0, "/x#frag"),
    "control_character": (0, "/a\tb"),
    "bad_scheme": (0, "ftp://h/x"),
}

# ---- kube_list: up to three LIST pages separated by NUL bytes ----


def svc(ns="default", name="svc", rv="100", annotation=None, uid=True):
    md = {"namespace": ns, "name": name, "resourceVersion": rv}
    if uid:
        md["uid"] = "uid-" + name
    if annotation is not None:
        md["annotations"] = {"getambassador.io/config": annotation}
    return {"kind": "Service", "apiVersion": "v1", "metadata": md}


def page(items, rv="200", cont=None, **extra):
    md = {"resourceVersion": rv}
    if cont is not None:
        md["continue"] = cont
    body = {"kind": "ServiceList", "apiVersion": "v1", "metadata": md, "items": items}
    body.update(extra)
    return json.dumps(body)


LISTS = {
    "one_page": page([svc(annotation=ANNOTATIONS["minimal"]), svc(ns="other", name="b")]),
    "two_pages": page([svc(name="a")], cont="tok") + "\0" + page([svc(name="b", uid=False)]),
    "unnamed_items": page([svc(name=""), {"metadata": {"name": "x"}}, 5, None, svc(name="ok")]),
    "empty_items": page([]),
    "null_items": page(None),
    "items_not_a_list": page({"a": svc()}),
    "no_resource_version": page([svc()], rv=""),
    "not_an_object": "[1,2,3]",
    "truncated": page([svc()])[:40],
    "nul_in_strings": page([svc(name="a\u0000b", annotation="x\u0000y")]),
    "status": json.dumps({"kind": "Status", "apiVersion": "v1", "code": 410,
                          "reason": "Expired", "metadata": {}}),
    "deep": "{\"items\":[],\"metadata\":{\"resourceVersion\":\"1\"},\"x\":"
    + "[" * 70 + "]" * 70 + "}",
}

# ---- source_dir: a manifest file ----

SERVICE_YAML = """apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: team
  annotations:
    getambassador.io/config: |
      ---
      apiVersion: ambassador/v1
      kind: Mapping
      name: web_mapping
      prefix: /web/
      service: web:80
spec:
  ports: [{port: 80}]
"""

MANIFESTS = {
    "service": SERVICE_YAML,
    "documents": SERVICE_YAML + "---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n"
    "---\n# only a comment\n---\napiVersion: v1\nkind: Service\nmetadata: {name: plain}\n",
    "list": "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n"
    "  metadata: {name: a, annotations: {getambassador.io/config: 'x: 1'}}\n"
    "- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: c}\n- 7\n",
    "service_list": "kind: ServiceList\napiVersion: v1\nitems:\n- metadata: {name: a}\n"
    "- kind: Service\n  apiVersion: v2\n  metadata: {name: b}\n",
    "json": json.dumps(svc(ns="j", name="json", annotation=ANNOTATIONS["two_docs"]), indent=2),
    "json_list": json.dumps({"kind": "List", "apiVersion": "v1",
                             "items": [svc(name="x"), svc(name="y", uid=False)]}),
    "json_non_ascii": json.dumps(svc(name="e", annotation="caf\u00e9 \U0001F600")),
    "annotation_not_a_string": "apiVersion: v1\nkind: Service\nmetadata:\n  name: m\n"
    "  annotations:\n    getambassador.io/config: {a: b}\n",
    "annotation_one_line": "apiVersion: v1\nkind: Service\nmetadata:\n  name: one\n"
    "  annotations: {getambassador.io/config: \"prefix: /x/\"}\n",
    "no_name": "apiVersion: v1\nkind: Service\nmetadata:\n  namespace: x\n",
    "syntax_error": SERVICE_YAML + "---\nkind: [Service\n",
    "anchors": "apiVersion: v1\nkind: Service\nmetadata:\n  name: &n anchored\n"
    "  uid: *n\n",
    "crlf": SERVICE_YAML.replace("\n", "\r\n"),
}

# ---- push_reply: flags (bit 0: a snapshot submitted; the rest: its version - 42), frames ----

HELLO = {"type": "hello", "protocol": 1, "version": 0, "pid": 1}
ACK = {"type": "ack", "version": 42, "routes": 0, "clusters": 0, "apply_us": 5}
NACK = {"type": "nack", "version": 42, "reason": "routes[0]: bad"}

REPLIES = {
    "hello_ack": (1, [HELLO, ACK]),
    "hello_nack": (1, [HELLO, NACK]),
    "hello_without_snapshot": (0, [HELLO, ACK]),
    "other_version": (5, [HELLO, dict(ACK, version=7)]),
    "second_ack_ignored": (1, [HELLO, ACK, ACK, NACK]),
    "protocol_mismatch": (1, [dict(HELLO, protocol=2)]),
    "ack_before_hello": (1, [ACK, HELLO]),
    "second_hello": (1, [HELLO, HELLO, ACK]),
    "unknown_type": (1, [HELLO, {"type": "what"}, ACK]),
    "not_json": (1, [HELLO, b"{\"type\":\"ack\"} trailing"]),
    "empty_frame": (1, [HELLO, b""]),
    "oversize": (1, [HELLO, ("raw", struct.pack(">I", (1 << 20) + 1) + b"{}")]),
}


def stream(frames):
    """Frames, except ("raw", bytes) which go as they are."""
    return b"".join(f[1] if isinstance(f, tuple) else frame(f) for f in frames)


SEEDS = [  # target, seeds, how one seed becomes the file's bytes
    ("annotation", ANNOTATIONS, lambda text: text),
    ("snapshot", SNAPSHOTS, lambda frames: (lambda data: bytes([len(data) // 2 % 256]) + data)(
        b"".join(frame(f) for f in frames))),
    ("watch_split", WATCHES, lambda s: bytes([s[0], len(s[1])] + s[1]) + s[2].encode()),
    ("kubeconfig", KUBECONFIGS, lambda text: text),
    ("exec_cred", EXEC_CREDS, lambda text: text),
    ("request_head", REQUESTS, lambda s: bytes([s[0], s[1]]) + s[2].encode()),
    ("request_target", TARGETS, lambda s: bytes([s[0]]) + s[1].encode()),
    ("kube_list", LISTS, lambda text: text),
    ("source_dir", MANIFESTS, lambda text: text),
    ("push_reply", REPLIES, lambda s: bytes([s[0]]) + stream(s[1])),
]


def main():
    for target, seeds, encode in SEEDS:
        for name, seed in seeds.items():
            write(target, name, encode(seed))


if __name__ == "__main__":
    main()
