"""Routing as users see it: the shipped examples, Ambassador's rewrite table, forwarded and
hop-by-hop headers, precedence, and the responses the proxy makes itself."""

import time

import pytest

import legate
from legate import echo_headers, mapping


def load_example(lg, filename, service, addr):
    """Writes manifests/examples/<filename> into the source dir with its `service:` pointed
    at addr (a local upstream) instead of the internet."""
    text = (legate.EXAMPLES / filename).read_text()
    old = "service: %s" % service
    assert text.count(old) == 1, "%s no longer has %r" % (filename, old)
    return lg.write_file(filename, text.replace(old, "service: %s" % addr))


# ---- the examples --------------------------------------------------------------------------


def test_examples_are_valid_service_manifests():
    yaml = pytest.importorskip("yaml")
    names = {}
    for f in ("httpbin.yaml", "tensorflow-serving.yaml", "demo.yaml"):
        svc = yaml.safe_load((legate.EXAMPLES / f).read_text())
        assert svc["apiVersion"] == "v1" and svc["kind"] == "Service", f
        assert svc["metadata"]["name"] and svc["spec"]["selector"], f
        assert all(isinstance(p["port"], int) for p in svc["spec"]["ports"]), f
        docs = [d for d in yaml.safe_load_all(svc["metadata"]["annotations"]["getambassador.io/config"]) if d]
        assert docs, f
        for d in docs:
            assert d["apiVersion"] == "ambassador/v1" and d["kind"] == "Mapping", f
            names[d["name"]] = d
    assert names["httpbin_mapping"]["prefix"] == "/httpbin/"
    assert names["httpbin_mapping"]["service"] == "httpbin.org:80"
    assert names["httpbin_mapping"]["host_rewrite"] == "httpbin.org"
    tf = names["tfserving-mapping-test-post"]
    assert (tf["prefix"], tf["rewrite"], tf["method"], tf["service"]) == (
        "/models/test/", "/model/test/:predict", "POST", "test.kubeflow:8000")
    assert names["demo_mapping"]["prefix"] == "/demo/"
    assert names["demo_mapping"]["service"] == "127.0.0.1:18090"


def test_examples_load_without_errors(lg):
    for f in ("httpbin.yaml", "tensorflow-serving.yaml", "demo.yaml"):
        lg.write_file(f, (legate.EXAMPLES / f).read_text())
    snap = lg.wait_route_set({"httpbin_mapping", "tfserving-mapping-test-post", "demo_mapping"})
    assert snap["errors"] == []
    hb = lg.route(snap, "httpbin_mapping")
    assert (hb["namespace"], hb["service"], hb["prefix"], hb["host_rewrite"]) == (
        "default", "httpbin", "/httpbin/", "httpbin.org")
    assert hb["rewrite"] == "/"
    tf = lg.route(snap, "tfserving-mapping-test-post")
    assert (tf["namespace"], tf["service"], tf["method"], tf["rewrite"]) == (
        "kubeflow", "test", "POST", "/model/test/:predict")
    assert "8000" in str(tf["upstream"]) and "test.kubeflow" in str(tf["upstream"])


def test_httpbin_example_routes(lg):
    up = lg.upstreams["a"]
    load_example(lg, "httpbin.yaml", "httpbin.org:80", up.addr)
    lg.wait_route_set({"httpbin_mapping"})
    r = lg.curl("/httpbin/get")
    assert r.status == 200, r
    echo = r.json()
    assert echo["server"] == "a"
    assert echo["path"] == "/get"
    assert echo_headers(echo)["host"] == ["httpbin.org"]


def test_tensorflow_example_routes_post_only(lg):
    up = lg.upstreams["a"]
    load_example(lg, "tensorflow-serving.yaml", "test.kubeflow:8000", up.addr)
    lg.wait_route_set({"tfserving-mapping-test-post"})
    payload = '{"instances": [[1.0, 2.0, 5.0]]}'
    r = lg.curl("/models/test/", "-X", "POST", "-H", "Content-Type: application/json",
                "--data-binary", payload)
    assert r.status == 200, r
    echo = r.json()
    assert echo["method"] == "POST"
    assert echo["path"] == "/model/test/:predict"
    assert echo["body_len"] == len(payload)

    g = lg.curl("/models/test/")
    assert g.status == 404, g
    assert [q["method"] for q in up.requests()] == ["POST"], "the GET must not reach the upstream"


# ---- Ambassador's rewrite table ------------------------------------------------------------

REWRITE_ROWS = [
    # prefix, rewrite (None: the default), request target, upstream target (None: 404)
    ("/foo/", None, "/foo/bar?x=1", "/bar?x=1"),
    ("/foo/", None, "/foo", None),
    ("/foo", "/", "/foo/bar", "//bar"),
    ("/foo", "/", "/foobar", "/bar"),
    ("/foo/", "", "/foo/bar", "/foo/bar"),
    ("/foo/", None, "/foo/", "/"),
]


@pytest.mark.parametrize("prefix,rewrite,target,upstream_target", REWRITE_ROWS,
                         ids=["%s|%s|%s" % (r[0], r[1], r[2]) for r in REWRITE_ROWS])
def test_rewrite_table(lg, prefix, rewrite, target, upstream_target):
    up = lg.upstreams["a"]
    fields = {} if rewrite is None else {"rewrite": rewrite}
    lg.write_service("foo", "default", mapping("foo_mapping", prefix, up.addr, **fields))
    lg.wait_route_set({"foo_mapping"})
    r = lg.curl(target)
    if upstream_target is None:
        assert r.status == 404, r
        assert up.requests() == []
    else:
        assert r.status == 200, r
        assert r.json()["path"] == upstream_target
        assert up.paths() == [upstream_target]


# ---- headers -------------------------------------------------------------------------------


def test_forwarded_headers_added(lg):
    up = lg.upstreams["a"]
    lg.write_service("fwd", "default", mapping("fwd", "/fwd/", up.addr))
    lg.wait_route_set({"fwd"})
    r = lg.curl("/fwd/x")
    assert r.status == 200, r
    h = echo_headers(r.json())
    assert "x-forwarded-for" in h, h
    assert "127.0.0.1" in ",".join(h["x-forwarded-for"])
    assert h.get("x-forwarded-proto") == ["http"]


def test_hop_by_hop_headers_not_forwarded(lg):
    up = lg.upstreams["a"]
    lg.write_service("hop", "default", mapping("hop", "/hop/", up.addr))
    lg.wait_route_set({"hop"})
    r = lg.curl("/hop/x",
                "-H", "Connection: keep-alive, X-Private-Hop",
                "-H", "X-Private-Hop: secret",
                "-H", "Keep-Alive: timeout=5",
                "-H", "TE: gzip",
                "-H", "Trailer: X-Checksum",
                "-H", "Upgrade: foo/1",
                "-H", "Proxy-Connection: keep-alive",
                "-H", "X-End-To-End: kept")
    assert r.status == 200, r
    h = echo_headers(r.json())
    for name in ("x-private-hop", "keep-alive", "te", "trailer", "upgrade", "proxy-connection"):
        assert name not in h, "%s was forwarded: %r" % (name, h)
    # The proxy may send its own Connection header upstream, but never the client's tokens.
    assert all("x-private-hop" not in v.lower() for v in h.get("connection", []))
    assert h["x-end-to-end"] == ["kept"]


def test_client_host_forwarded_without_host_rewrite(lg):
    up = lg.upstreams["a"]
    lg.write_service("host", "default", mapping("host", "/host/", up.addr))
    lg.wait_route_set({"host"})
    r = lg.curl("/host/x", "-H", "Host: shop.example.test")
    assert r.status == 200, r
    assert echo_headers(r.json())["host"] == ["shop.example.test"]


# ---- matching ------------------------------------------------------------------------------


def test_precedence_beats_prefix_length(lg):
    up = lg.upstreams["a"]
    docs = (mapping("short_high", "/p/", up.addr, rewrite="/high/", precedence=10)
            + mapping("long_low", "/p/long/", up.addr, rewrite="/low/"))
    lg.write_service("prec", "default", docs)
    lg.wait_route_set({"short_high", "long_low"})
    r = lg.curl("/p/long/x")
    assert r.status == 200, r
    assert r.json()["path"] == "/high/long/x"


def test_longer_prefix_wins_at_equal_precedence(lg):
    up = lg.upstreams["a"]
    docs = (mapping("short", "/p/", up.addr, rewrite="/short/")
            + mapping("long", "/p/long/", up.addr, rewrite="/long/"))
    lg.write_service("len", "default", docs)
    lg.wait_route_set({"short", "long"})
    assert lg.curl("/p/long/x").json()["path"] == "/long/x"
    assert lg.curl("/p/other").json()["path"] == "/short/other"


def test_method_match(lg):
    up = lg.upstreams["a"]
    docs = (mapping("only_put", "/put/", up.addr, method="PUT")
            + mapping("any", "/any/", up.addr))
    lg.write_service("meth", "default", docs)
    lg.wait_route_set({"only_put", "any"})
    assert lg.curl("/put/x", "-X", "PUT").status == 200
    miss = lg.curl("/put/x", "-X", "DELETE")
    assert miss.status == 404, miss
    for m in ("GET", "DELETE", "PATCH"):
        r = lg.curl("/any/x", "-X", m)
        assert r.status == 200 and r.json()["method"] == m, r
    seen = [(q["method"], q["path"]) for q in up.requests()]
    assert seen == [("PUT", "/x"), ("GET", "/x"), ("DELETE", "/x"), ("PATCH", "/x")]


def test_host_match_ignores_request_port(lg):
    up = lg.upstreams["a"]
    lg.write_service("hosted", "default", mapping("hosted", "/h/", up.addr, host="example.com"))
    lg.wait_route_set({"hosted"})
    assert lg.curl("/h/x", "-H", "Host: example.com").status == 200
    assert lg.curl("/h/x", "-H", "Host: example.com:8080").status == 200
    assert lg.curl("/h/x", "-H", "Host: other.example").status == 404
    assert len(up.requests()) == 2


def test_ambassador_id_filters_mappings(lg):
    up = lg.upstreams["a"]
    docs = (mapping("mine", "/mine/", up.addr)
            + mapping("theirs", "/theirs/", up.addr, ambassador_id=["other"]))
    lg.write_service("ids", "default", docs)
    lg.wait_route_set({"mine"})
    assert lg.curl("/theirs/x").status == 404
    assert lg.curl("/mine/x").status == 200


# ---- responses the proxy makes -------------------------------------------------------------


def test_unknown_path_404_says_why(lg):
    up = lg.upstreams["a"]
    lg.write_service("known", "default", mapping("known", "/known/", up.addr))
    lg.wait_route_set({"known"})
    r = lg.curl("/unknown/path")
    assert r.status == 404, r
    assert "route" in r.text.lower(), r
    assert "server" not in r.text  # the proxy's own text, not an upstream echo
    assert up.requests() == []


def test_empty_source_dir_makes_ready_with_no_routes(lg):
    lg.wait_ready()
    snap = lg.routes()
    assert snap["version"] > 0 and snap["routes"] == [] and snap["errors"] == [], snap
    r = lg.curl("/anything")
    assert r.status == 404, r


def test_503_before_any_table(stack):
    up = stack.start_upstream("a")
    stack.start_proxy()
    # No controller yet: alive but not ready, and nothing to route with.
    assert stack.admin("/live")[0] == 200
    assert stack.admin("/ready")[0] == 503
    assert stack.admin("/ambassador/v0/check_ready")[0] == 503
    assert stack.admin("/ambassador/v0/check_alive")[0] == 200
    r = stack.curl("/svc/x")
    assert r.status == 503, r
    assert r.text.strip(), "503 without a body saying why"

    stack.write_service("svc", "default", mapping("svc", "/svc/", up.addr))
    stack.start_controller()
    stack.wait_ready()
    assert stack.admin("/ambassador/v0/check_ready")[0] == 200
    stack.wait_route_set({"svc"})
    r = stack.curl("/svc/x")
    assert r.status == 200 and r.json()["path"] == "/x", r


def test_502_when_upstream_refuses(lg):
    closed = legate.free_port()
    lg.write_service("gone", "default", mapping("gone", "/gone/", "127.0.0.1:%d" % closed))
    lg.wait_route_set({"gone"})
    r = lg.curl("/gone/x")
    assert r.status == 502, r
    assert r.text.strip()


def test_504_on_route_timeout(lg):
    up = lg.upstreams["a"]
    lg.write_service("slow", "default", mapping("slow", "/slow/", up.addr, rewrite="/", timeout_ms=500))
    lg.wait_route_set({"slow"})
    t0 = time.monotonic()
    r = lg.curl("/slow/sleep?ms=2000")
    took = time.monotonic() - t0
    assert r.status == 504, r
    assert r.text.strip()
    # The proxy gave up at its deadline, not when the upstream finally answered.
    assert 0.4 <= took < 1.8, took
    assert up.paths() == ["/sleep?ms=2000"]


def test_upstream_status_passes_through(lg):
    up = lg.upstreams["a"]
    lg.write_service("st", "default", mapping("st", "/st/", up.addr))
    lg.wait_route_set({"st"})
    r = lg.curl("/st/status/418")
    assert r.status == 418 and r.json()["path"] == "/status/418", r
    r = lg.curl("/st/status/204")
    assert r.status == 204 and r.body == b"", r
    r = lg.curl("/st/status/503")
    assert r.status == 503 and r.json()["server"] == "a", r
