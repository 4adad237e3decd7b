"""Hostile HTTP, both ways (docs/security.md): requests the proxy must refuse before any byte
reaches an upstream, the path normalisation that keeps prefixes from being bypassed, broken
responses that must never reach a client as if they were good (nor poison a pooled
connection), and least privilege at run time (nothing secret in the logs, the admin listener
on loopback, the control socket's mode)."""

import grp
import json
import os
import socket
import stat
import subprocess
import time

import pytest

import legate
from legate import mapping, read_http_response
from hostile import exchange, request_bytes, start_evil


@pytest.fixture
def routed(lg):
    """lg with /u/ routed to upstream "a" (rewrite "/"), generous timeout."""
    lg.write_service("u", "default", mapping("u", "/u/", lg.upstreams["a"].addr, timeout_ms=30000))
    lg.wait_route_set({"u"})
    return lg


def assert_upstream_untouched_and_proxy_fine(stack, up):
    """Nothing reached the upstream, and the proxy still serves (and that request is the
    first the upstream ever saw)."""
    assert up.requests() == [], "reached the upstream: %r" % up.requests()
    r = stack.curl("/u/after")
    assert r.status == 200, r
    assert up.paths() == ["/after"], up.paths()


H = "Host: e2e.test\r\n"
CHUNKED = "POST /u/x HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n"

# (id, raw request, acceptable statuses). Every one must be answered by the proxy itself,
# followed by the close, with nothing reaching the upstream.
BAD_REQUESTS = [
    # Framing: Content-Length and Transfer-Encoding.
    ("cl-and-te", "POST /u/x HTTP/1.1\r\n" + H + "Content-Length: 5\r\n"
     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", {400}),
    ("te-and-cl", "POST /u/x HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n"
     "Content-Length: 5\r\n\r\n0\r\n\r\n", {400}),
    ("cl-differing-duplicates", "POST /u/x HTTP/1.1\r\n" + H + "Content-Length: 5\r\n"
     "Content-Length: 6\r\n\r\nhello!", {400}),
    ("cl-identical-duplicates", "POST /u/x HTTP/1.1\r\n" + H + "Content-Length: 5\r\n"
     "Content-Length: 5\r\n\r\nhello", {400}),
    ("cl-list", "POST /u/x HTTP/1.1\r\n" + H + "Content-Length: 5, 5\r\n\r\nhello", {400}),
    ("cl-plus-sign", "POST /u/x HTTP/1.1\r\n" + H + "Content-Length: +5\r\n\r\nhello", {400}),
    ("te-gzip", "POST /u/x HTTP/1.1\r\n" + H + "Transfer-Encoding: gzip\r\n\r\nxx", {400, 501}),
    ("te-gzip-then-chunked", "POST /u/x HTTP/1.1\r\n" + H + "Transfer-Encoding: gzip, chunked"
     "\r\n\r\n0\r\n\r\n", {400, 501}),
    ("te-chunked-not-last", "POST /u/x HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked, gzip"
     "\r\n\r\n0\r\n\r\n", {400, 501}),
    ("te-chunked-twice", "POST /u/x HTTP/1.1\r\n" + H + "Transfer-Encoding: chunked\r\n"
     "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", {400}),
    ("te-empty", "POST /u/x HTTP/1.1\r\n" + H + "Transfer-Encoding:\r\n\r\n", {400}),
    ("te-xchunked", "POST /u/x HTTP/1.1\r\n" + H + "Transfer-Encoding: xchunked\r\n\r\n"
     "0\r\n\r\n", {400, 501}),
    ("te-space-before-colon", "POST /u/x HTTP/1.1\r\n" + H + "Transfer-Encoding : chunked\r\n"
     "\r\n0\r\n\r\n", {400}),
    ("te-vertical-tab", "POST /u/x HTTP/1.1\r\n" + H + "Transfer-Encoding: \x0bchunked\r\n\r\n"
     "0\r\n\r\n", {400}),
    ("te-on-http10", "POST /u/x HTTP/1.0\r\n" + H + "Transfer-Encoding: chunked\r\n\r\n"
     "0\r\n\r\n", {400}),
    # Line endings and bytes in the head.
    ("obs-fold", "GET /u/x HTTP/1.1\r\n" + H + "X-A: one\r\n two\r\n\r\n", {400}),
    ("obs-fold-tab", "GET /u/x HTTP/1.1\r\n" + H + "X-A: one\r\n\ttwo\r\n\r\n", {400}),
    ("bare-cr-in-value", "GET /u/x HTTP/1.1\r\n" + H + "X-A: a\rb\r\n\r\n", {400}),
    ("bare-cr-line-end", "GET /u/x HTTP/1.1\r\n" + H + "X-A: a\r\r\n\r\n", {400}),
    ("bare-lf-header-line", "GET /u/x HTTP/1.1\r\n" + H + "X-A: a\nX-B: b\r\n\r\n", {400}),
    ("bare-lf-end-of-head", "GET /u/x HTTP/1.1\r\n" + H + "\n", {400}),
    ("bare-lf-request-line", "GET /u/x HTTP/1.0\nHost: e2e.test\r\n\r\n", {400}),
    ("bare-lf-before-request", "\nGET /u/x HTTP/1.1\r\n" + H + "\r\n", {400}),
    ("nul-in-value", "GET /u/x HTTP/1.1\r\n" + H + "X-A: a\x00b\r\n\r\n", {400}),
    ("nul-in-name", "GET /u/x HTTP/1.1\r\n" + H + "X\x00A: ab\r\n\r\n", {400}),
    ("ctl-in-value", "GET /u/x HTTP/1.1\r\n" + H + "X-A: a\x01b\r\n\r\n", {400}),
    ("del-in-value", "GET /u/x HTTP/1.1\r\n" + H + "X-A: a\x7fb\r\n\r\n", {400}),
    ("esc-in-name", "GET /u/x HTTP/1.1\r\n" + H + "X\x1bA: ab\r\n\r\n", {400}),
    ("empty-header-name", "GET /u/x HTTP/1.1\r\n" + H + ": v\r\n\r\n", {400}),
    ("space-in-header-name", "GET /u/x HTTP/1.1\r\n" + H + "X A: v\r\n\r\n", {400}),
    # Chunked bodies: all detected after the head was complete, in the same write.
    ("chunk-size-not-hex", CHUNKED + "zz\r\nhello\r\n0\r\n\r\n", {400}),
    ("chunk-size-overflow", CHUNKED + "10000000000000000\r\nx\r\n0\r\n\r\n", {400}),
    ("chunk-size-negative", CHUNKED + "-5\r\nhello\r\n0\r\n\r\n", {400}),
    ("chunk-size-0x", CHUNKED + "0x5\r\nhello\r\n0\r\n\r\n", {400}),
    ("chunk-size-space", CHUNKED + "5 \r\nhello\r\n0\r\n\r\n", {400}),
    ("chunk-ext-over-4kib", CHUNKED + "5;e=" + "v" * 4100 + "\r\nhello\r\n0\r\n\r\n", {400}),
    ("chunk-data-without-crlf", CHUNKED + "5\r\nhelloXX0\r\n\r\n", {400}),
    ("chunk-line-bare-lf", CHUNKED + "5\nhello\r\n0\r\n\r\n", {400}),
    ("last-chunk-bare-lf", CHUNKED + "5\r\nhello\r\n0\r\n\n", {400}),
    ("trailer-bare-lf", CHUNKED + "5\r\nhello\r\n0\r\nX-T: 1\r\n\n", {400}),
    # Sizes.
    ("target-over-8kib", "GET /u/" + "a" * 8200 + " HTTP/1.1\r\n" + H + "\r\n", {414}),
    ("head-over-64kib", "GET /u/x HTTP/1.1\r\n" + H + "X-Big: " + "b" * (65 * 1024) + "\r\n\r\n",
     {431}),
    ("101-header-fields", "GET /u/x HTTP/1.1\r\n" + H
     + "".join("X-H%d: v\r\n" % i for i in range(100)) + "\r\n", {431}),
    # Methods, versions, target forms.
    ("connect", "CONNECT e2e.test:443 HTTP/1.1\r\nHost: e2e.test:443\r\n\r\n", {405, 501}),
    ("http-2-0", "GET /u/x HTTP/2.0\r\n" + H + "\r\n", {505}),
    ("asterisk-form-with-get", "GET * HTTP/1.1\r\n" + H + "\r\n", {400}),
    ("absolute-form-userinfo", "GET http://user:pw@e2e.test/u/x HTTP/1.1\r\n" + H + "\r\n", {400}),
    ("absolute-form-ftp", "GET ftp://e2e.test/u/x HTTP/1.1\r\n" + H + "\r\n", {400}),
    ("authority-form-with-get", "GET e2e.test:80 HTTP/1.1\r\n" + H + "\r\n", {400}),
    ("tab-in-target", "GET /u/a\tb HTTP/1.1\r\n" + H + "\r\n", {400}),
    ("fragment-in-target", "GET /u/a#b HTTP/1.1\r\n" + H + "\r\n", {400}),
    ("backslash-in-path", "GET /u/a\\..\\..\\b HTTP/1.1\r\n" + H + "\r\n", {400}),
    ("encoded-slash", "GET /u/a%2Fb HTTP/1.1\r\n" + H + "\r\n", {400}),
    ("encoded-slash-lower", "GET /u/a%2fb HTTP/1.1\r\n" + H + "\r\n", {400}),
    ("encoded-backslash", "GET /u/a%5Cb HTTP/1.1\r\n" + H + "\r\n", {400}),
    ("encoded-nul", "GET /u/a%00b HTTP/1.1\r\n" + H + "\r\n", {400}),
    ("malformed-escape", "GET /u/a%zz HTTP/1.1\r\n" + H + "\r\n", {400}),
    ("dotdot-above-root", "GET /u/../../etc/passwd HTTP/1.1\r\n" + H + "\r\n", {400}),
    ("encoded-dotdot-above-root", "GET /%2e%2E/u/x HTTP/1.1\r\n" + H + "\r\n", {400}),
    # Host.
    ("host-with-slash", "GET /u/x HTTP/1.1\r\nHost: e2e.test/evil\r\n\r\n", {400}),
    ("host-with-userinfo", "GET /u/x HTTP/1.1\r\nHost: user@e2e.test\r\n\r\n", {400}),
    ("host-with-space", "GET /u/x HTTP/1.1\r\nHost: e2e test\r\n\r\n", {400}),
    ("two-hosts", "GET /u/x HTTP/1.1\r\n" + H + H + "\r\n", {400}),
    ("no-host-http11", "GET /u/x HTTP/1.1\r\n\r\n", {400}),
]


@pytest.mark.parametrize("name,raw,statuses", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_refused_before_reaching_upstream(routed, name, raw, statuses):
    up = routed.upstreams["a"]
    ex = exchange(routed, raw.encode("latin-1"))
    assert ex.status in statuses, ex
    assert ex.text.strip(), "the proxy's answer says why"
    assert ex.closed, "the connection must close after a refused request"
    assert_upstream_untouched_and_proxy_fine(routed, up)


def test_framing_error_after_head_in_one_write_never_reaches_upstream(routed):
    """llhttp announces headers-complete before it meets a framing error later in the same
    buffer; the proxy pauses after the head and routes, but forwards nothing before the
    bytes behind it are parsed. Each body holds a valid first chunk, then the error."""
    up = routed.upstreams["a"]
    bodies = ["5\r\nhello\r\nzz\r\n", "5\r\nhello\r\n10000000000000000\r\n",
              "5\r\nhelloXX0\r\n\r\n", "5\r\nhello\r\n1;" + "e" * 5000 + "\r\nx\r\n0\r\n\r\n",
              "5\r\nhello\r\n0\r\n\n" + "GET /u/smuggled HTTP/1.1\r\n" + H + "\r\n"]
    for body in bodies:
        ex = exchange(routed, (CHUNKED + body).encode())
        assert ex.status == 400 and ex.closed, (body[:40], ex)
    assert_upstream_untouched_and_proxy_fine(routed, up)


def test_framing_error_in_a_later_write_never_completes_a_request(routed):
    """When the bad chunk comes in a later packet, the head and the good chunk have gone
    upstream: the upstream connection is then cut, so the upstream never sees a complete
    request (echo.py logs it as an error), and the client gets its 400."""
    up = routed.upstreams["a"]
    s = socket.create_connection(("127.0.0.1", routed.port), timeout=10)
    with s, s.makefile("rb") as f:
        s.sendall((CHUNKED + "5\r\nhello\r\n").encode())
        time.sleep(0.3 * legate.SLOW)  # the head and the first chunk go upstream
        s.sendall(b"zz\r\nGET /u/smuggled HTTP/1.1\r\n" + H.encode() + b"\r\n")
        status, _, _, _ = read_http_response(f)
    assert status == 400
    legate.wait_until(lambda: up.requests(), 5, "the upstream noticed the cut request")
    assert all("error" in r for r in up.requests()), up.requests()
    assert "/smuggled" not in up.paths()


ACCEPTED = [
    ("transfer-encoding-any-case", "POST /u/x HTTP/1.1\r\n" + H + "Transfer-Encoding: CHUNKED\r\n"
     "\r\n5\r\nhello\r\n0\r\n\r\n", 5),
    ("chunk-extensions-under-cap", CHUNKED + "5;e=" + "v" * 4000 + "\r\nhello\r\n0\r\n\r\n", 5),
    ("trailers-dropped", CHUNKED + "5\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n", 5),
    ("empty-line-before-request", "\r\nPOST /u/x HTTP/1.1\r\n" + H + "Content-Length: 5\r\n\r\n"
     "hello", 5),
    ("100-header-fields", "GET /u/x HTTP/1.1\r\n" + H
     + "".join("X-H%d: v\r\n" % i for i in range(99)) + "\r\n", 0),
]


@pytest.mark.parametrize("name,raw,body_len", ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_well_formed_edge_cases_are_forwarded(routed, name, raw, body_len):
    up = routed.upstreams["a"]
    ex = exchange(routed, raw.encode(), close_wait=0.2)
    assert ex.status == 200, ex
    e = json.loads(ex.body)
    assert e["path"] == "/x" and e["body_len"] == body_len, e
    assert [r["path"] for r in up.requests()] == ["/x"]
    names = [k.lower() for k, _ in e["headers"]]
    assert "x-trailer" not in names


# ---- request targets -------------------------------------------------------------------------


def test_absolute_form_routes_on_its_authority_and_goes_upstream_in_origin_form(lg):
    a = lg.upstreams["a"]
    b = lg.start_upstream("b")
    lg.write_service("h", "default", mapping("on_host", "/h/", b.addr, host="abs.example")
                     + mapping("any_host", "/h/", a.addr))
    lg.wait_route_set({"on_host", "any_host"})
    ex = exchange(lg, b"GET http://abs.example/h/x?q=1 HTTP/1.1\r\nHost: other.example\r\n\r\n",
                  close_wait=0.2)
    assert ex.status == 200, ex
    e = json.loads(ex.body)
    assert e["server"] == "b" and e["path"] == "/x?q=1", e
    hosts = [v for k, v in e["headers"] if k.lower() == "host"]
    assert hosts == ["abs.example"], e["headers"]
    # The Host header loses to the authority, both ways.
    ex = exchange(lg, b"GET http://other.example/h/y HTTP/1.1\r\nHost: abs.example\r\n\r\n",
                  close_wait=0.2)
    assert ex.status == 200 and json.loads(ex.body)["server"] == "a", ex
    assert [r["path"] for r in b.requests()] == ["/x?q=1"]


def test_options_asterisk_is_answered_by_the_proxy(routed):
    up = routed.upstreams["a"]
    ex = exchange(routed, b"OPTIONS * HTTP/1.1\r\nHost: e2e.test\r\n\r\n", close_wait=0.2)
    assert ex.status == 200 and not ex.closed, ex
    assert up.requests() == []


@pytest.fixture
def public_admin(lg):
    """/public/ goes to upstream "a", /admin/ to upstream "b"; paths are forwarded as routed
    (rewrite ""), so the upstream shows the normalised path."""
    b = lg.start_upstream("b")
    lg.write_service("pa", "default",
                     mapping("public", "/public/", lg.upstreams["a"].addr, rewrite="")
                     + mapping("admin", "/admin/", b.addr, rewrite=""))
    lg.wait_route_set({"public", "admin"})
    return lg


# (path sent, upstream expected or None for a 400, path the upstream sees)
NORMALISATION = [
    ("/public/../admin/x", "b", "/admin/x"),
    ("/public/%2e%2e/admin/x", "b", "/admin/x"),
    ("/public/%2E%2E/admin/x", "b", "/admin/x"),
    ("/public/.%2e/admin/x", "b", "/admin/x"),
    ("/public/./../admin/./x", "b", "/admin/x"),
    ("/%61dmin/x", "b", "/admin/x"),
    ("/admin/../public/x", "a", "/public/x"),
    ("/public/./x", "a", "/public/x"),
    ("/public/%7Euser/%41", "a", "/public/~user/A"),
    ("/public//x", "a", "/public//x"),
    ("/public/a/..", "a", "/public/"),
    ("/public/caf%C3%A9?x=%2F..", "a", "/public/caf%C3%A9?x=%2F.."),
    ("/public/..%2Fadmin/x", None, None),
    ("/public/%2e%2e%2fadmin/x", None, None),
    ("/public/..%5Cadmin/x", None, None),
    ("/public/..\\admin/x", None, None),
    ("/public/../../admin/x", None, None),
]


@pytest.mark.parametrize("sent,server,seen", NORMALISATION, ids=[c[0] for c in NORMALISATION])
def test_path_normalised_before_routing(public_admin, sent, server, seen):
    a, b = public_admin.upstreams["a"], public_admin.upstreams["b"]
    ex = exchange(public_admin, request_bytes("GET", sent), close_wait=0.2)
    if server is None:
        assert ex.status == 400 and ex.closed, ex
        assert a.requests() == [] and b.requests() == []
        return
    assert ex.status == 200, ex
    e = json.loads(ex.body)
    assert (e["server"], e["path"]) == (server, seen), e
    # Whatever the spelling, no upstream ever sees a dot segment.
    for r in a.requests() + b.requests():
        assert "/../" not in r["path"] and "/./" not in r["path"], r["path"]


def test_merge_slashes_module_setting(lg):
    """The ambassador Module's merge_slashes (another Module key) switches on the merging
    step of the normalisation."""
    a = lg.upstreams["a"]
    module = ("---\napiVersion: ambassador/v1\nkind: Module\nname: ambassador\n"
              "config:\n  merge_slashes: true\n")
    lg.write_service("m", "default", module + mapping("public", "/public/", a.addr, rewrite=""))
    lg.wait_routes(lambda s: any(r["mapping"] == "public" for r in s["routes"]), "public route")
    r = lg.curl("//public///x//y")
    assert r.status == 200, r
    assert r.json()["path"] == "/public/x/y"


# ---- responses -------------------------------------------------------------------------------


@pytest.fixture
def evil(lg):
    e = start_evil(lg)
    lg.write_service("e", "default", mapping("e", "/e/", e.addr, timeout_ms=30000))
    lg.wait_route_set({"e"})
    lg.evil = e
    return lg


def conn_of(evil_up, path):
    for r in evil_up.requests():
        if r["path"] == path:
            return r["conn_id"]
    raise AssertionError("%s never reached the evil upstream: %r" % (path, evil_up.requests()))


@pytest.mark.parametrize("path", ["/bad-chunk", "/chunk-no-crlf", "/te-gzip", "/cl-te",
                                  "/bare-lf"])
def test_broken_response_is_a_502_and_its_connection_is_dropped(evil, path):
    e = evil.evil
    ex = exchange(evil, request_bytes("GET", "/e" + path), close_wait=0.2)
    assert ex.status == 502, ex
    assert "invalid response" in ex.text or "upstream" in ex.text, ex
    # The next request goes over a new upstream connection, never the broken one.
    r = evil.curl("/e/after")
    assert r.status == 200, r
    assert r.json()["conn_id"] != conn_of(e, path), e.requests()


@pytest.mark.parametrize("path", ["/short-body", "/chunk-then-bad"])
def test_response_broken_after_its_head_closes_the_client_connection(evil, path):
    e = evil.evil
    s = socket.create_connection(("127.0.0.1", evil.port), timeout=10)
    with s, s.makefile("rb") as f:
        s.sendall(request_bytes("GET", "/e" + path))
        with pytest.raises((EOFError, ValueError, ConnectionError)):
            status, headers, body, _ = read_http_response(f)
            # A Content-Length body cut short reads as fewer bytes than announced.
            n = dict(headers).get("content-length")
            if n is not None and len(body) < int(n):
                raise EOFError("body cut at %d of %s bytes" % (len(body), n))
    r = evil.curl("/e/after")
    assert r.status == 200 and r.json()["conn_id"] != conn_of(e, path), r


@pytest.mark.parametrize("path", ["/two-responses", "/two-responses?gap_ms=150", "/long-body"])
def test_unasked_bytes_after_a_response_never_reach_a_client(evil, path):
    """An upstream that answers twice to one request (or sends more than its Content-Length)
    gets its first answer relayed, and the connection is not reused: the extra "response"
    must never become the answer to the next request, on this client connection or another."""
    e = evil.evil
    s = socket.create_connection(("127.0.0.1", evil.port), timeout=10)
    with s, s.makefile("rb") as f:
        s.sendall(request_bytes("GET", "/e" + path))
        status, _, body, _ = read_http_response(f)
        assert status == 200
        time.sleep(0.4)  # let a late second response arrive while the connection is idle
        s.sendall(request_bytes("GET", "/e/next"))
        status2, _, body2, _ = read_http_response(f)
    assert status2 == 200 and b"smuggled" not in body2, body2
    nxt = json.loads(body2)
    assert nxt["path"] == "/next" and nxt["conn_id"] != conn_of(e, path), (nxt, e.requests())
    r = evil.curl("/e/third")
    assert r.status == 200 and r.json()["path"] == "/third", r


# ---- least privilege ---------------------------------------------------------------------------

SECRETS = ("Bearer-s3cr3t-AUTHZ", "session=s3cr3t-COOKIE", "Basic-s3cr3t-PROXYAUTH",
           "s3cr3t-QUERYTOKEN")


@pytest.mark.parametrize("fmt", ["logfmt", "json"])
def test_secrets_never_logged_even_at_debug(stack, fmt):
    stack.start_upstream("a")
    stack.start_proxy(extra=["--log-format", fmt])
    stack.start_controller()
    e = start_evil(stack)
    stack.write_service("u", "default", mapping("u", "/u/", stack.upstreams["a"].addr)
                        + mapping("e", "/e/", e.addr, timeout_ms=300)
                        + mapping("dns", "/dns/", "does-not-exist.invalid:80"))
    stack.wait_route_set({"u", "e", "dns"})
    secret_headers = [("Authorization", SECRETS[0]), ("Cookie", SECRETS[1]),
                      ("Proxy-Authorization", SECRETS[2])]
    q = "?token=" + SECRETS[3]
    # Served, unrouted, timed out, failed upstream, refused malformed, refused too large.
    for target, extra in [("/u/ok" + q, ()), ("/nowhere" + q, ()), ("/e/never" + q, ()),
                          ("/e/bad-chunk" + q, ()), ("/dns/x" + q, ()),
                          ("/u/bad" + q, [("X Bad", "1")]),
                          ("/u/big" + q, [("X-Big", "b" * 70000)])]:
        exchange(stack, request_bytes("GET", target, secret_headers + list(extra)),
                 close_wait=0.1)
    assert stack.upstreams["a"].requests(), "the routed request went through"
    text = stack.proxy.log_text()
    assert "level=debug" in text or '"level":"debug"' in text, "the proxy logged at debug level"
    for s in SECRETS:
        assert s not in text, "%s appears in the proxy log" % s


def free_admin_port_or_skip():
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", 8877))
        except OSError:
            pytest.skip("the default admin port 8877 is taken on this machine")


def listening_addresses(pid):
    """(address, port) of every listening TCP socket of process pid, from /proc."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            t = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if t.startswith("socket:["):
            inodes.add(t[8:-1])
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and cols[9] in inodes:  # LISTEN
                    addr, port = cols[1].split(":")
                    out.append((addr, int(port, 16)))
    return out


def test_admin_listener_is_loopback_only_by_default(stack):
    free_admin_port_or_skip()
    argv = [legate.PROXY_BIN, "--listen", "127.0.0.1:%d" % stack.port, "--control-socket",
            stack.sock, "--workers", "1"]
    p = legate.Proc("proxy#default-admin", argv, stack.dir / "proxy-default.log")
    stack.procs.append(p)
    stack.proxy = p
    stack.admin_port = 8877
    stack.wait_live()
    admin = [a for a, port in listening_addresses(p.pid) if port == 8877]
    assert admin == ["0100007F"], admin  # 127.0.0.1, and nothing else
    assert "admin listener is not on a loopback address" not in p.log_text()


def test_admin_listener_elsewhere_is_logged(stack):
    stack.start_proxy(extra=["--admin", "0.0.0.0:%d" % stack.admin_port])
    assert "admin listener is not on a loopback address" in stack.proxy.log_text()


def test_control_socket_group_makes_it_0660(stack):
    # As root any group will do, so pick one that is not ours to see the chgrp happen.
    if os.geteuid() == 0:
        name = next(g for g in ("nogroup", "daemon", "adm") if _group_exists(g))
    else:
        name = grp.getgrgid(os.getgid()).gr_name
    stack.start_proxy(extra=["--control-socket-group", name])
    st = os.stat(stack.sock)
    assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
    assert st.st_gid == grp.getgrnam(name).gr_gid
    # The controller still talks to it.
    stack.start_upstream("a")
    stack.start_controller()
    stack.write_service("u", "default", mapping("u", "/u/", stack.upstreams["a"].addr))
    stack.wait_route_set({"u"})


def _group_exists(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def test_control_socket_without_group_stays_0600(stack):
    stack.start_proxy()
    assert stat.S_IMODE(os.stat(stack.sock).st_mode) == 0o600


def test_unknown_control_socket_group_exits_2(stack):
    cp = subprocess.run([str(legate.PROXY_BIN), "--control-socket-group", "no-such-group-xyz"],
                        capture_output=True, timeout=10)
    assert cp.returncode == 2
    err = cp.stderr.decode()
    assert "no-such-group-xyz" in err and len(err.strip().splitlines()) == 1, err
