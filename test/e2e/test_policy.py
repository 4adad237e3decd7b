"""Traffic policy through the real controller and proxy: canary weights, timeouts, retries,
circuit breakers, CORS (with curl and in a real browser), rate limits, WebSocket tunnels and
shadowing. docs/mapping-compat.md points here for each row."""

import hashlib
import http.client
import http.server
import json
import os
import shutil
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

import legate
from legate import mapping

sys.path.insert(0, str(legate.REPO / "test" / "upstream"))

import ws_echo  # noqa: E402  (frame helpers)

WS_ECHO = legate.REPO / "test" / "upstream" / "ws_echo.py"


def routed(st, docs, names, svc="policy", ns="default"):
    """Writes docs into one Service and waits until exactly `names` are routed."""
    st.write_service(svc, ns, docs)
    return st.wait_route_set(set(names))


def get(st, path, headers=None, method="GET", body=None, timeout=10.0, chunked=False):
    """One request on a new connection; returns (status, headers dict lower-case, body)."""
    c = http.client.HTTPConnection("127.0.0.1", st.port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {}, encode_chunked=chunked)
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def metrics(st):
    status, body = st.admin("/metrics")
    assert status == 200
    return body.decode()


def metric(st, name, **labels):
    """The value of one sample of /metrics, or None."""
    want = ",".join('%s="%s"' % kv for kv in labels.items())
    for line in metrics(st).splitlines():
        if line.startswith(name + "{"):
            lab, _, val = line[len(name) + 1:].rpartition("} ")
            if all(('%s="%s"' % kv) in lab for kv in labels.items()) or lab == want:
                return float(val)
    return None


class Scripted:
    """An in-process HTTP upstream answering from a script: each request to a path takes the
    next (status, delay_s) of that path's list (the last one repeats). Records every request
    (path, headers, body sha256)."""

    def __init__(self, script):
        self.script = {k: list(v) for k, v in script.items()}
        self.seen = []
        self.lock = threading.Lock()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def handle_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                if "chunked" in (self.headers.get("Transfer-Encoding") or ""):
                    body = b""
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            self.rfile.readline()
                            break
                        body += self.rfile.read(size)
                        self.rfile.read(2)
                else:
                    body = self.rfile.read(n)
                path = self.path.split("?")[0]
                with outer.lock:
                    outer.seen.append({"path": self.path, "headers": dict(self.headers),
                                       "sha": hashlib.sha256(body).hexdigest(), "len": len(body)})
                    steps = outer.script.get(path, [(200, 0)])
                    status, delay = steps.pop(0) if len(steps) > 1 else steps[0]
                time.sleep(delay)
                data = json.dumps({"path": self.path, "len": len(body)}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PUT = do_OPTIONS = handle_any

        class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.srv = S(("127.0.0.1", 0), H)
        self.addr = "127.0.0.1:%d" % self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, kwargs={"poll_interval": 0.1},
                         daemon=True).start()

    def hits(self, path):
        with self.lock:
            return [r for r in self.seen if r["path"].split("?")[0] == path]

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


@pytest.fixture
def scripted():
    made = []

    def make(script):
        s = Scripted(script)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def dead_addr():
    """A loopback port nothing listens on."""
    return "127.0.0.1:%d" % legate.free_port()


# ---- canaries ------------------------------------------------------------------------------


def test_weighted_canary_split(stack):
    a, b = stack.start_upstream("a"), stack.start_upstream("b")
    stack.start_proxy()
    stack.start_controller()
    snap = routed(stack, mapping("stable", "/c/", a.addr, weight=70)
                  + mapping("canary", "/c/", b.addr, rewrite="/canary/"), {"stable", "canary"})
    st, ca = stack.route(snap, "stable"), stack.route(snap, "canary")
    assert (st["group_size"], st["weight"], ca["weight"]) == (2, 70, 30)
    n = 2400
    servers = {"a": 0, "b": 0}
    # Four keep-alive connections, so both proxy workers draw.
    conns = [http.client.HTTPConnection("127.0.0.1", stack.port, timeout=10) for _ in range(4)]
    try:
        for i in range(n):
            c = conns[i % 4]
            c.request("GET", "/c/x")
            r = c.getresponse()
            echo = json.loads(r.read())
            assert r.status == 200
            servers[echo["server"]] += 1
            # Each member keeps its own rewrite.
            assert echo["path"] == ("/x" if echo["server"] == "a" else "/canary/x")
    finally:
        for c in conns:
            c.close()
    share = servers["b"] / n
    # 30 %, binomial sd ~0.94 %: 4 points is more than 4 sd away.
    assert abs(share - 0.30) < 0.04, servers
    assert metric(stack, "legate_route_requests_total", mapping="canary") == servers["b"]


def test_weight_over_100_refuses_the_offender(lg):
    up = lg.upstreams["a"]
    lg.write_service("policy", "default", mapping("w1", "/w/", up.addr, weight=60)
                     + mapping("w2", "/w/", up.addr, weight=50))
    snap = lg.wait_routes(lambda s: {r["mapping"] for r in s["routes"]} == {"w1"}
                          and s["errors"], "w2 refused")
    assert snap["errors"][0]["mapping"] == "w2"
    assert snap["errors"][0]["field"] == "weight"
    assert "over 100" in snap["errors"][0]["message"]
    assert lg.curl("/w/x").status == 200


# ---- timeouts ------------------------------------------------------------------------------


def test_idle_timeout_504_before_the_response_and_close_after(lg):
    up = lg.upstreams["a"]
    routed(lg, mapping("idle", "/idle/", up.addr, idle_timeout_ms=400, timeout_ms=10000,
                       rewrite="/"), {"idle"})
    t0 = time.monotonic()
    r = lg.curl("/idle/sleep?ms=3000")
    took = time.monotonic() - t0
    assert r.status == 504, r
    assert b"idle" in r.body
    assert 0.3 < took < 2.0, took
    # Streaming with pauses longer than the idle timeout: the response is cut.
    s = lg.raw(b"GET /idle/slow-chunked?n=4&delay=1.0 HTTP/1.1\r\nHost: x\r\n\r\n")
    f = s.makefile("rb")
    with pytest.raises((ValueError, EOFError, ConnectionError, socket.timeout)):
        status, headers, body, chunks = legate.read_http_response(f)
        assert status == 200
        raise AssertionError("the response was not cut: %d chunks" % len(chunks))
    s.close()
    # Chunks that keep coming keep the stream alive.
    r = lg.curl("/idle/slow-chunked?n=4&delay=0.1")
    assert r.status == 200 and r.body.count(b"chunk") == 4


def test_connect_timeout_504(lg):
    # A listener whose accept queue is full drops SYNs: connecting to it hangs.
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(0)
    fillers = []
    for _ in range(4):
        f = socket.socket()
        f.setblocking(False)
        f.connect_ex(lst.getsockname())
        fillers.append(f)
    time.sleep(0.2)
    addr = "127.0.0.1:%d" % lst.getsockname()[1]
    try:
        routed(lg, mapping("hang", "/hang/", addr, connect_timeout_ms=300, timeout_ms=10000),
               {"hang"})
        t0 = time.monotonic()
        r = lg.curl("/hang/x")
        took = time.monotonic() - t0
        assert r.status == 504, r
        assert b"connect timeout" in r.body
        assert took < 2.0, took
        assert metric(lg, "legate_route_timeouts_total", mapping="hang") == 1
    finally:
        for f in fillers:
            f.close()
        lst.close()


def test_cluster_idle_timeout_and_max_lifetime(lg):
    up = lg.upstreams["a"]
    # Pools are per upstream host and port: "localhost" keeps the lifetime test's apart.
    routed(lg, mapping("idle", "/ci/", up.addr, cluster_idle_timeout_ms=300)
           + mapping("life", "/cl/", "localhost:%d" % up.port,
                     cluster_max_connection_lifetime_ms=600)
           + mapping("plain", "/cp/", up.addr), {"idle", "life", "plain"})
    c = http.client.HTTPConnection("127.0.0.1", lg.port, timeout=10)

    def conn_id(path):
        c.request("GET", path)
        r = c.getresponse()
        return json.loads(r.read())["conn_id"]

    try:
        # One client connection: one worker, one pool.
        i1 = conn_id("/ci/x")
        assert conn_id("/ci/x") == i1  # reused while fresh
        time.sleep(0.5)
        assert conn_id("/ci/x") != i1  # idle past 300 ms: not reused
        p1 = conn_id("/cp/x")
        time.sleep(0.5)
        assert conn_id("/cp/x") == p1  # the default keeps it
        l1 = conn_id("/cl/x")
        time.sleep(0.3)
        assert conn_id("/cl/x") == l1
        time.sleep(0.4)
        assert conn_id("/cl/x") != l1  # older than 600 ms
    finally:
        c.close()


# ---- retries -------------------------------------------------------------------------------


def test_retry_on_5xx_then_success(lg, scripted):
    s = scripted({"/r": [(503, 0), (200, 0)], "/never": [(503, 0)]})
    routed(lg, mapping("retry", "/", s.addr, rewrite="",
                       retry_policy={"retry_on": "5xx", "num_retries": 2}), {"retry"})
    r = lg.curl("/r")
    assert r.status == 200, r
    assert len(s.hits("/r")) == 2
    r = lg.curl("/never")
    assert r.status == 503  # the last attempt's answer
    assert len(s.hits("/never")) == 3  # first try and num_retries 2
    assert metric(lg, "legate_route_retries_total", mapping="retry") == 3


def test_retry_replays_the_request_body(lg, scripted):
    s = scripted({"/b": [(503, 0), (200, 0)], "/c": [(503, 0), (200, 0)],
                  "/big": [(503, 0), (200, 0)]})
    routed(lg, mapping("retry", "/", s.addr, rewrite="",
                       retry_policy={"retry_on": "gateway-error"}), {"retry"})
    body = os.urandom(20000)
    status, _, data = get(lg, "/b", method="POST", body=body)
    assert status == 200
    hits = s.hits("/b")
    assert [h["sha"] for h in hits] == [hashlib.sha256(body).hexdigest()] * 2
    # Chunked: the second attempt gets the same body, re-chunked.
    status, _, data = get(lg, "/c", method="POST", body=iter([body[:7000], body[7000:]]),
                          headers={"Transfer-Encoding": "chunked"}, chunked=True)
    assert status == 200
    assert [h["sha"] for h in s.hits("/c")] == [hashlib.sha256(body).hexdigest()] * 2
    # Over the buffer (64 KiB with the head): streamed, and not retried.
    big = os.urandom(300000)
    status, _, data = get(lg, "/big", method="POST", body=big)
    assert status == 503
    assert len(s.hits("/big")) == 1


def test_retry_on_connect_failure_counts_attempts(lg):
    addr = dead_addr()
    routed(lg, mapping("dead", "/dead/", addr,
                       retry_policy={"retry_on": "connect-failure", "num_retries": 3}), {"dead"})
    r = lg.curl("/dead/x")
    assert r.status == 502
    assert metric(lg, "legate_route_retries_total", mapping="dead") == 3
    log = lg.proxy.log_text()
    assert log.count("msg=retrying") >= 3


def test_per_try_timeout_retries_a_slow_attempt(lg, scripted):
    s = scripted({"/slow": [(200, 3.0), (200, 0)]})
    routed(lg, mapping("pt", "/", s.addr, rewrite="", timeout_ms=10000,
                       retry_policy={"retry_on": "gateway-error", "num_retries": 1,
                                     "per_try_timeout": "300ms"}), {"pt"})
    t0 = time.monotonic()
    r = lg.curl("/slow")
    took = time.monotonic() - t0
    assert r.status == 200, r
    assert took < 2.0, took
    assert len(s.hits("/slow")) == 2


def test_metrics_pass_promtool(lg):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    up = lg.upstreams["a"]
    routed(lg, mapping("m", "/m/", up.addr, weight=10) + mapping("m2", "/m/", up.addr)
           + mapping("odd", "/odd/", up.addr, circuit_breakers=[{"max_requests": 3}]),
           {"m", "m2", "odd"})
    lg.curl("/m/x")
    text = metrics(lg)
    assert 'legate_cluster_active_requests{cluster="%s"} 0' % up.addr in text
    cp = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True)
    assert cp.returncode == 0, cp.stdout.decode() + cp.stderr.decode()


# ---- circuit breakers ----------------------------------------------------------------------


def answer_beside_a_slow_request(st, name, breaker, gauge):
    """Routes /name/ to upstream a (rewritten to /) with the circuit breaker `breaker`, then,
    while one slow request is in flight (once the cluster gauge metric says 1), sends one more:
    returns that one's (status, headers). The slow request has ended on return."""
    routed(st, mapping(name, "/%s/" % name, st.upstreams["a"].addr, rewrite="/",
                       circuit_breakers=[breaker]), {name})
    slow = threading.Thread(target=lambda: get(st, "/%s/sleep?ms=1500" % name))
    slow.start()
    try:
        legate.wait_until(lambda: metric(st, gauge) == 1, 5, "the slow request counted in " + gauge)
        status, headers, _ = get(st, "/%s/x" % name)
    finally:
        slow.join()
    return status, headers


def test_circuit_breaker_max_requests_503(lg):
    status, headers = answer_beside_a_slow_request(lg, "cb", {"max_requests": 1},
                                                   "legate_cluster_active_requests")
    assert status == 503
    assert headers["x-legate-overloaded"] == "circuit-breaker"
    assert headers["x-envoy-overloaded"] == "true"
    assert get(lg, "/cb/x")[0] == 200
    assert metric(lg, "legate_route_overloaded_total", mapping="cb") == 1


def test_circuit_breaker_max_connections_503(lg):
    status, headers = answer_beside_a_slow_request(lg, "cc", {"max_connections": 1},
                                                   "legate_cluster_connections")
    assert status == 503 and headers["x-legate-overloaded"] == "circuit-breaker"


# ---- CORS ----------------------------------------------------------------------------------


def cors_routes(lg, origin="http://app.example"):
    up = lg.upstreams["a"]
    cors = {"origins": [origin], "methods": "GET, POST, PUT", "headers": "X-Token",
            "exposed_headers": "X-Echo", "credentials": True, "max_age": 600}
    return routed(lg, mapping("api", "/api/", up.addr, cors=cors)
                  + mapping("dead", "/dead/", dead_addr(), cors=cors), {"api", "dead"})


def test_cors_preflight_answered_by_the_proxy(lg):
    cors_routes(lg)
    up = lg.upstreams["a"]
    r = lg.curl("/api/x", "-X", "OPTIONS", "-H", "Origin: http://app.example",
                "-H", "Access-Control-Request-Method: PUT",
                "-H", "Access-Control-Request-Headers: X-Token")
    assert r.status == 200
    assert r.header("Access-Control-Allow-Origin") == "http://app.example"
    assert r.header("Access-Control-Allow-Methods") == "GET, POST, PUT"
    assert r.header("Access-Control-Allow-Headers") == "X-Token"
    assert r.header("Access-Control-Max-Age") == "600"
    assert r.header("Access-Control-Allow-Credentials") == "true"
    assert up.requests() == []  # never reached the upstream
    # Another origin's preflight is the upstream's business (Envoy's way): no CORS lines.
    r = lg.curl("/api/x", "-X", "OPTIONS", "-H", "Origin: http://evil.example",
                "-H", "Access-Control-Request-Method: PUT")
    assert r.status == 200 and r.json()["server"] == "a"
    assert r.header("Access-Control-Allow-Origin") is None


def test_cors_headers_on_responses_and_errors(lg):
    cors_routes(lg)
    r = lg.curl("/api/x", "-H", "Origin: http://app.example")
    assert r.status == 200
    assert r.header("Access-Control-Allow-Origin") == "http://app.example"
    assert r.header("Access-Control-Expose-Headers") == "X-Echo"
    assert r.header("Access-Control-Allow-Credentials") == "true"
    r = lg.curl("/api/x", "-H", "Origin: http://evil.example")
    assert r.status == 200 and r.header("Access-Control-Allow-Origin") is None
    # The proxy's own 502 carries them too; a 404 (no route, so no cors) does not.
    r = lg.curl("/dead/x", "-H", "Origin: http://app.example")
    assert r.status == 502
    assert r.header("Access-Control-Allow-Origin") == "http://app.example"
    r = lg.curl("/nothing", "-H", "Origin: http://app.example")
    assert r.status == 404 and r.header("Access-Control-Allow-Origin") is None


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

PAGE = """<!doctype html><html><body><pre id="out">running</pre><script>
const B = %(proxy)s;
async function one(name, url, init) {
  try {
    const r = await fetch(B + url, init);
    const j = await r.json();
    return name + "=ok:" + r.status + ":" + j.server;
  } catch (e) { return name + "=blocked"; }
}
(async () => {
  const out = [];
  out.push(await one("simple", "/allowed/x", {}));
  out.push(await one("preflighted", "/allowed/y", {method: "PUT", headers: {"X-Token": "t"}}));
  out.push(await one("denied", "/denied/x", {}));
  out.push(await one("denied_put", "/denied/y", {method: "PUT", headers: {"X-Token": "t"}}));
  document.getElementById("out").textContent = out.join(" ");
})();
</script></body></html>
"""


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian package chromium)")
def test_cors_in_a_real_browser(lg, tmp_path):
    up = lg.upstreams["a"]
    # Origin A: a static page server on another port of the same host.
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(PAGE % {"proxy": json.dumps("http://127.0.0.1:%d" % lg.port)})
    page_port = legate.free_port()
    origin = "http://127.0.0.1:%d" % page_port
    web = subprocess.Popen([legate.PYTHON, "-m", "http.server", str(page_port), "--bind",
                            "127.0.0.1", "--directory", str(site)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        legate.wait_until(lambda: socket.create_connection(("127.0.0.1", page_port), 0.5),
                          10, "page server")
        cors = {"origins": origin, "methods": "GET, PUT", "headers": "X-Token"}
        routed(lg, mapping("allowed", "/allowed/", up.addr, cors=cors, rewrite="")
               + mapping("denied", "/denied/", up.addr, rewrite="",
                         cors={"origins": "http://elsewhere.example", "methods": "GET, PUT",
                               "headers": "X-Token"}), {"allowed", "denied"})
        profile = tempfile.mkdtemp(prefix="lg-chromium-")
        try:
            cp = subprocess.run(
                [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--user-data-dir=" + profile,
                 "--virtual-time-budget=10000", "--dump-dom", origin + "/index.html"],
                capture_output=True, timeout=60)
        finally:
            shutil.rmtree(profile, ignore_errors=True)
        dom = cp.stdout.decode(errors="replace")
        results = dict(kv.split("=", 1) for kv in
                       dom.split('<pre id="out">', 1)[1].split("</pre>", 1)[0].split())
        assert results["simple"] == "ok:200:a", dom
        assert results["preflighted"] == "ok:200:a", dom
        assert results["denied"] == "blocked", dom
        assert results["denied_put"] == "blocked", dom
        # The allowed PUT's preflight was answered by the proxy; the denied one went to the
        # upstream (Envoy's way), whose answer has no CORS lines, so the PUT never left.
        methods = [(r["method"], r["path"]) for r in up.requests()]
        assert ("PUT", "/allowed/y") in methods
        assert ("OPTIONS", "/allowed/y") not in methods
        assert ("OPTIONS", "/denied/y") in methods and ("PUT", "/denied/y") not in methods
    finally:
        web.terminate()
        web.wait(5)


# ---- rate limits ---------------------------------------------------------------------------


def test_legate_rate_limit_429_with_retry_after(lg):
    up = lg.upstreams["a"]
    snap = routed(lg, mapping("rl", "/rl/", up.addr,
                              legate_rate_limit={"requests_per_second": 2, "burst": 2},
                              labels={"ambassador": [{"per_client": ["remote_address",
                                                                     "x-user"]}]}), {"rl"})
    rl = lg.route(snap, "rl")
    assert rl["legate_rate_limit"] == {"requests_per_second": 2, "burst": 2}
    assert rl["rate_limits"][0]["name"] == "per_client"
    assert [e["kind"] for e in rl["rate_limits"][0]["entries"]] == ["remote_address",
                                                                    "request_header"]
    statuses = [get(lg, "/rl/x") for _ in range(4)]
    codes = [s for s, _, _ in statuses]
    assert codes[:2] == [200, 200] and 429 in codes[2:], codes
    limited = [h for s, h, _ in statuses if s == 429][0]
    assert int(limited["retry-after"]) >= 1
    time.sleep(1.1)
    assert get(lg, "/rl/x")[0] == 200
    assert metric(lg, "legate_route_rate_limited_total", mapping="rl") >= 1


# ---- WebSockets ----------------------------------------------------------------------------


def start_ws(stack):
    port_file = stack.dir / "ws.port"
    log = stack.dir / "ws.jsonl"
    p = legate.Proc("ws-echo", [legate.PYTHON, WS_ECHO, "--listen", "127.0.0.1:0",
                                "--port-file", port_file, "--log", log], stack.dir / "ws.log")
    stack.procs.append(p)
    port = int(legate.wait_until(lambda: port_file.exists() and port_file.read_text().strip(),
                                 10, "ws port"))
    return "127.0.0.1:%d" % port, log


def ws_handshake(st, path, key="dGhlIHNhbXBsZSBub25jZQ=="):
    s = st.raw(("GET %s HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\n"
                "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
                % (path, key)).encode())
    f = s.makefile("rb")
    line = f.readline()
    headers = {}
    while True:
        h = f.readline()
        if h in (b"\r\n", b""):
            break
        k, _, v = h.decode().partition(":")
        headers[k.strip().lower()] = v.strip()
    return s, f, int(line.split()[1]), headers


def test_websocket_tunnel_both_ways(lg):
    addr, log = start_ws(lg)
    routed(lg, mapping("ws", "/ws/", addr, use_websocket=True)
           + mapping("nows", "/nows/", addr), {"ws", "nows"})
    s, f, status, headers = ws_handshake(lg, "/ws/chat")
    assert status == 101
    assert headers["upgrade"].lower() == "websocket"
    assert headers["sec-websocket-accept"] == ws_echo.accept_value("dGhlIHNhbXBsZSBub25jZQ==")
    for msg in (b"hello", b"x" * 70000, "caf\u00e9".encode()):
        s.sendall(ws_echo.frame(0x1, msg, mask=os.urandom(4)))
        op, data = ws_echo.read_frame(f)
        assert (op, data) == (0x1, msg)
    s.sendall(ws_echo.frame(0x8, b"\x03\xe8", mask=b"abcd"))
    assert ws_echo.read_frame(f)[0] == 0x8
    assert f.read() == b""  # the upstream closed: so does the proxy
    s.close()
    # The upstream saw the upgrade with both hop-by-hop headers restored.
    seen = [json.loads(l) for l in log.read_text().splitlines()]
    h = {k.lower(): v for k, v in seen[0]["headers"]}
    assert h["upgrade"] == "websocket" and h["connection"].lower() == "upgrade"
    # Without use_websocket the Upgrade is not forwarded: the upstream answers 426.
    s, f, status, headers = ws_handshake(lg, "/nows/chat")
    assert status == 426
    s.close()
    h = {k.lower(): v for k, v in json.loads(log.read_text().splitlines()[-1])["headers"]}
    assert "upgrade" not in h


def test_websocket_client_close_ends_the_tunnel(lg):
    addr, log = start_ws(lg)
    routed(lg, mapping("ws", "/ws/", addr, allow_upgrade=["websocket"]), {"ws"})
    s, f, status, _ = ws_handshake(lg, "/ws/")
    assert status == 101
    s.sendall(ws_echo.frame(0x1, b"ping", mask=b"wxyz"))
    assert ws_echo.read_frame(f) == (0x1, b"ping")
    assert metric(lg, "legate_cluster_connections") == 1
    f.close()  # the socket's file object holds the descriptor too
    s.close()
    # Closing the client side closes the upstream side too.
    legate.wait_until(lambda: metric(lg, "legate_cluster_connections") == 0, 5,
                      "the upstream connection closed")


# ---- shadow --------------------------------------------------------------------------------


def test_shadow_gets_a_copy_and_never_delays(stack):
    a, b = stack.start_upstream("a"), stack.start_upstream("b")
    stack.start_proxy()
    stack.start_controller()
    snap = routed(stack, mapping("main", "/s/", a.addr)
                  + mapping("mirror", "/s/", b.addr, shadow=True), {"main"})
    assert stack.route(snap, "main")["shadow"]["mapping"] == "mirror"
    r = stack.curl("/s/x", "-H", "Host: shop.test:8080", "--data-binary", "payload")
    assert r.status == 200 and r.json()["server"] == "a"
    legate.wait_until(lambda: b.requests(), 5, "shadow request")
    seen = b.requests()[0]
    assert seen["path"] == "/x"
    assert legate.echo_headers(seen)["host"] == ["shop.test-shadow:8080"]
    assert seen["body_len"] == len("payload")


def test_slow_shadow_never_delays(lg, scripted):
    slow = scripted({"/x": [(200, 3.0)]})
    up = lg.upstreams["a"]
    routed(lg, mapping("main", "/s/", up.addr)
           + mapping("mirror", "/s/", slow.addr, shadow=True), {"main"})
    t0 = time.monotonic()
    for _ in range(3):
        r = lg.curl("/s/x")
        assert r.status == 200 and r.json()["server"] == "a"
    assert time.monotonic() - t0 < 1.5
    legate.wait_until(lambda: len(slow.hits("/x")) == 3, 5, "three shadow copies")


def test_dead_shadow_never_fails_the_request(lg):
    up = lg.upstreams["a"]
    routed(lg, mapping("main", "/s/", up.addr)
           + mapping("mirror", "/s/", dead_addr(), shadow=True), {"main"})
    for _ in range(5):
        assert lg.curl("/s/x").status == 200


# ---- load balancing ------------------------------------------------------------------------


def start_proxy_with_hosts(stack, hosts_text):
    """Starts legate-proxy in a private mount namespace whose /etc/hosts is hosts_text: a name
    with several loopback addresses, visible to that process only. Skips when the namespace
    cannot be made (no privilege)."""
    hosts = stack.dir / "hosts"
    hosts.write_text(hosts_text)
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare (util-linux) not installed")
    wrap = [unshare, "--mount", "sh", "-c", 'mount --bind "$1" /etc/hosts && shift && exec "$@"',
            "sh", str(hosts)]
    probe = subprocess.run(wrap + ["getent", "ahostsv4", "multi.test"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("no private mount namespace here: %s" % probe.stderr.decode().strip())
    stack.n_proxy += 1
    argv = wrap + [legate.PROXY_BIN, "--listen", "127.0.0.1:%d" % stack.port, "--admin",
                   "127.0.0.1:%d" % stack.admin_port, "--control-socket", stack.sock,
                   "--workers", "2", "--log-level", "debug"]
    p = legate.Proc("proxy#%d" % stack.n_proxy, argv, stack.dir / ("proxy-%d.log" % stack.n_proxy))
    stack.procs.append(p)
    stack.proxy = p
    stack.wait_live()


def start_multi(stack, names=("a", "b", "c")):
    """Echo upstreams on one port of 127.0.0.1, 127.0.0.2, ...: the addresses of multi.test."""
    port = legate.free_port()
    for i, name in enumerate(names):
        ip = "127.0.0.%d" % (i + 1)
        pf = stack.dir / ("multi-%s.port" % name)
        p = legate.Proc("upstream " + name,
                        [legate.PYTHON, legate.ECHO, "--listen", "%s:%d" % (ip, port),
                         "--port-file", pf, "--name", name],
                        stack.dir / ("upstream-%s.log" % name))
        stack.procs.append(p)
        legate.wait_until(lambda: pf.exists(), 10, "upstream %s" % name)
    hosts = "".join("127.0.0.%d multi.test\n" % (i + 1) for i in range(len(names)))
    return port, hosts


def test_round_robin_over_every_address(stack):
    port, hosts = start_multi(stack)
    start_proxy_with_hosts(stack, hosts)
    stack.start_controller()
    routed(stack, mapping("rr", "/rr/", "multi.test:%d" % port), {"rr"})
    c = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=10)
    seen = []
    try:
        for _ in range(31):
            c.request("GET", "/rr/x")
            r = c.getresponse()
            seen.append(json.loads(r.read())["server"])
    finally:
        c.close()
    # One client connection: one worker, whose cursor goes round the three addresses (the
    # first request also resolved the name). Each address gets its turn, per request, pooled
    # connections notwithstanding.
    counts = {s: seen.count(s) for s in "abc"}
    assert sorted(counts.values()) == [10, 10, 11], seen
    assert all(seen[i] != seen[i + 1] for i in range(1, 30)), seen


def test_ring_hash_sticks_by_header(stack):
    port, hosts = start_multi(stack)
    start_proxy_with_hosts(stack, hosts)
    stack.start_controller()
    routed(stack, mapping("rh", "/rh/", "multi.test:%d" % port,
                          load_balancer={"policy": "ring_hash", "header": "x-user"}), {"rh"})
    where = {}
    for rnd in range(3):
        for u in range(12):
            status, _, body = get(stack, "/rh/x", headers={"X-User": "user-%d" % u})
            assert status == 200
            where.setdefault(u, set()).add(json.loads(body)["server"])
    assert all(len(s) == 1 for s in where.values()), where  # each user sticks to one address
    assert len(set().union(*where.values())) >= 2, where  # and users spread over them
