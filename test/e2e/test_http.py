"""HTTP/1.1 through the proxy: large bodies both ways, streaming, keep-alive and pooling,
pipelining, and the requests the proxy must refuse itself."""

import hashlib
import json
import os
import socket
import subprocess
import sys
import time

import pytest

import legate
from legate import echo_headers, mapping, read_http_response

sys.path.insert(0, str(legate.REPO / "test" / "upstream"))
import echo  # noqa: E402  (the upstream's own pattern functions)

MiB = 1 << 20


@pytest.fixture
def routed(lg):
    """lg with /u/ routed to upstream "a" (rewrite "/"), and a generous timeout so that
    slow sanitized builds never hit it in tests about something else."""
    lg.write_service("u", "default", mapping("u", "/u/", lg.upstreams["a"].addr, timeout_ms=30000))
    lg.wait_route_set({"u"})
    return lg


def request_bytes(method, target, headers=(), body=b""):
    lines = ["%s %s HTTP/1.1" % (method, target), "Host: e2e.test"] + ["%s: %s" % h for h in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# ---- bodies --------------------------------------------------------------------------------


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_10mib_request_body_intact(routed, tmp_path, framing):
    data = os.urandom(10 * MiB)
    f = tmp_path / "body.bin"
    f.write_bytes(data)
    args = ["-X", "POST", "--data-binary", "@%s" % f, "-H", "Content-Type: application/octet-stream"]
    if framing == "chunked":
        args += ["-H", "Transfer-Encoding: chunked"]
    r = routed.curl("/u/upload", *args, timeout=60)
    assert r.status == 200, r
    e = r.json()
    assert e["body_len"] == len(data)
    assert e["body_sha256"] == hashlib.sha256(data).hexdigest()
    assert e["path"] == "/upload"


def test_10mib_response_body_intact(routed):
    n = 10 * MiB
    r = routed.curl("/u/bytes/%d" % n, timeout=60)
    assert r.status == 200
    assert len(r.body) == n
    assert hashlib.sha256(r.body).hexdigest() == hashlib.sha256(echo.pattern_bytes(n)).hexdigest()


def test_slow_chunked_response_streams(routed):
    n, delay = 5, 0.2
    want = b"".join(echo.slow_chunk(i) for i in range(n))
    s = routed.raw(request_bytes("GET", "/u/slow-chunked?n=%d&delay=%s" % (n, delay)))
    t0 = time.monotonic()
    with s, s.makefile("rb") as f:
        status, headers, body, chunks = read_http_response(f)
    assert status == 200
    assert body == want
    assert chunks, "response was not streamed chunked: %r" % headers
    first, last = chunks[0][0] - t0, chunks[-1][0] - t0
    # The upstream sends its last chunk (n-1)*delay = 0.8 s after its first; a proxy that
    # buffers the response delivers the first chunk only after that.
    assert chunks[0][1].startswith(echo.slow_chunk(0)[:10])
    assert first < (n - 1) * delay / 2, "first chunk after %.2fs" % first
    assert last - first >= (n - 1) * delay * 0.75, (first, last)


def test_slow_chunked_response_via_curl(routed):
    want = b"".join(echo.slow_chunk(i) for i in range(4))
    r = routed.curl("/u/slow-chunked?n=4&delay=0.05", "--no-buffer")
    assert r.status == 200 and r.body == want, r


def proxy_rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def test_slow_client_does_not_make_the_proxy_buffer(lg):
    # A 300 MB response to a client that stops reading: the proxy must apply backpressure
    # to the upstream rather than hold the response in memory.
    up = lg.upstreams["a"]
    lg.write_service("big", "default", mapping("big", "/big/", up.addr, timeout_ms=0))
    lg.wait_route_set({"big"})
    lg.curl("/big/x")  # warm up: workers, pool, snapshot
    before = proxy_rss_mib(lg.proxy.pid)
    s = socket.create_connection(("127.0.0.1", lg.port), timeout=10)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    with s:
        s.sendall(request_bytes("GET", "/big/bytes/300000000"))
        got = 0
        while got < MiB:
            got += len(s.recv(65536))
        # The upstream writes as fast as it may; give it time to push what it can.
        peak = before
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            peak = max(peak, proxy_rss_mib(lg.proxy.pid))
            time.sleep(0.05)
    assert peak - before < 32, "proxy RSS grew from %.1f to %.1f MiB" % (before, peak)
    # The client went away mid-response; the proxy carries on.
    r = lg.curl("/big/after")
    assert r.status == 200 and r.json()["path"] == "/after", r


# ---- connections ---------------------------------------------------------------------------


def test_keepalive_reuses_client_and_upstream_connection(routed, tmp_path):
    url = routed.url("/u/one")
    url2 = routed.url("/u/two")
    o1, o2 = tmp_path / "one.json", tmp_path / "two.json"
    cp = subprocess.run([legate.CURL, "-q", "-v", "-sS", "--noproxy", "*", "--max-time", "10",
                         "-w", "%{json}\n", "-o", str(o1), url, "-o", str(o2), url2],
                        capture_output=True, timeout=20)
    assert cp.returncode == 0, cp.stderr
    infos = [json.loads(l) for l in cp.stdout.decode().splitlines() if l.strip()]
    assert [i["http_code"] for i in infos] == [200, 200]
    # curl reused its connection to the proxy...
    trace = [l for l in cp.stderr.decode().splitlines() if l.startswith(("*", "< HTTP", "< Conn"))]
    assert infos[1]["num_connects"] == 0, trace
    one, two = json.loads(o1.read_bytes()), json.loads(o2.read_bytes())
    assert (one["path"], two["path"]) == ("/one", "/two")
    # ...and the proxy reused its pooled connection to the upstream.
    assert one["conn_id"] == two["conn_id"], (one["conn_id"], two["conn_id"])


def test_pipelined_requests_answered_in_order(routed):
    # The first is slower than the second: answers must still come back in request order.
    data = request_bytes("GET", "/u/sleep?ms=300") + request_bytes("GET", "/u/status/201")
    s = routed.raw(data)
    with s, s.makefile("rb") as f:
        st1, _, b1, _ = read_http_response(f)
        st2, _, b2, _ = read_http_response(f)
    assert (st1, json.loads(b1)["path"]) == (200, "/sleep?ms=300")
    assert (st2, json.loads(b2)["path"]) == (201, "/status/201")


def sends_meet_reset(s, tries=20):
    """Whether bytes sent on s, after the peer's response and EOF, are answered with a reset
    (the peer's socket is closed) within tries * 50 ms."""
    try:
        for _ in range(tries):
            s.sendall(b"x")
            time.sleep(0.05)
    except (ConnectionResetError, BrokenPipeError):
        return True
    return False


def test_connection_close_request_is_closed_at_once(routed):
    """A client that asked to close and sent nothing more is closed right after its response:
    no half-close and wait for its FIN (that costs four system calls per connection), so what
    it sends afterwards meets a closed socket."""
    s = routed.raw(request_bytes("GET", "/u/x", [("Connection", "close")]))
    with s, s.makefile("rb") as f:
        status, _, body, _ = read_http_response(f)
        assert status == 200 and json.loads(body)["path"] == "/x"
        assert f.read() == b""
        assert sends_meet_reset(s)


def test_connection_close_with_bytes_behind_it_lingers(routed):
    """Bytes behind a Connection: close request (a pipelined request) are unread when the
    answer goes out: closing then would reset the connection, so the proxy half-closes and
    drains instead, and the client's later bytes are read and dropped, not reset."""
    s = routed.raw(request_bytes("GET", "/u/x", [("Connection", "close")]) +
                   request_bytes("GET", "/u/never"))
    with s, s.makefile("rb") as f:
        status, _, body, _ = read_http_response(f)
        assert status == 200 and json.loads(body)["path"] == "/x"
        assert f.read() == b""
        assert not sends_meet_reset(s, tries=6)
    assert "/never" not in routed.upstreams["a"].paths()


# ---- requests the proxy refuses ------------------------------------------------------------


def test_content_length_and_transfer_encoding_rejected(routed):
    up = routed.upstreams["a"]
    body = b"0\r\n\r\nGET /u/smuggled HTTP/1.1\r\nHost: e2e.test\r\n\r\n"
    data = request_bytes("POST", "/u/clte", [("Content-Length", str(len(body))),
                                              ("Transfer-Encoding", "chunked")], body)
    s = routed.raw(data)
    with s, s.makefile("rb") as f:
        status, _, text, _ = read_http_response(f)
    assert status == 400, text
    assert text.strip()
    assert routed.curl("/u/after").status == 200
    assert up.paths() == ["/after"], "CL+TE request (or its smuggled tail) reached the upstream"


def test_malformed_request_400(routed):
    up = routed.upstreams["a"]
    s = routed.raw(b"THIS IS NOT HTTP\r\n\r\n")
    with s, s.makefile("rb") as f:
        status, _, text, _ = read_http_response(f)
    assert status == 400 and text.strip()
    assert up.requests() == []


@pytest.mark.parametrize("shape", ["one-70KiB-header", "ten-7KiB-headers"])
def test_header_block_over_64kib_431(routed, shape):
    up = routed.upstreams["a"]
    if shape == "one-70KiB-header":
        hdrs = ["-H", "X-Big: " + "a" * (70 * 1024)]
    else:
        hdrs = []
        for i in range(10):
            hdrs += ["-H", "X-Big-%d: %s" % (i, "b" * (7 * 1024))]
    r = routed.curl("/u/big", *hdrs)
    assert r.status == 431, r
    assert r.text.strip()
    assert up.requests() == []
    assert routed.curl("/u/after").status == 200


def test_header_block_under_64kib_forwarded(routed):
    value = "c" * (48 * 1024)
    r = routed.curl("/u/big", "-H", "X-Large: " + value)
    assert r.status == 200, r
    assert echo_headers(r.json())["x-large"] == [value]


# ---- connection reuse must never mix requests up --------------------------------------------


def test_pooled_connection_closed_by_upstream_is_not_reused(routed):
    # /close answers like a keep-alive response, then the upstream closes the connection
    # while it sits idle in the proxy's pool. The next request must not fail on it.
    assert routed.curl("/u/close").status == 200
    a = routed.upstreams["a"]
    legate.wait_until(lambda: len(a.requests()) == 1, 5, "upstream logged /close")
    r = routed.curl("/u/after-close")
    assert r.status == 200 and r.json()["path"] == "/after-close", r


def test_timed_out_upstream_connection_is_not_reused(lg):
    # After a 504 the upstream still answers the old request later; a proxy that pools that
    # connection hands the stale answer to the next request.
    up = lg.upstreams["a"]
    lg.write_service("t", "default", mapping("t", "/t/", up.addr, timeout_ms=300))
    lg.wait_route_set({"t"})
    assert lg.curl("/t/sleep?ms=600").status == 504
    for i in range(4):
        r = lg.curl("/t/next-%d" % i)
        assert r.status == 200 and r.json()["path"] == "/next-%d" % i, r
        time.sleep(0.1)  # let the late answer to /sleep arrive while requests keep coming


def test_body_of_unrouted_request_is_not_parsed_as_a_request(routed):
    # A 404 answered by the proxy must consume (or refuse) the request body: bytes of a
    # body must never be taken for the next request on the connection.
    up = routed.upstreams["a"]
    hidden = request_bytes("GET", "/u/smuggled")
    data = (request_bytes("POST", "/nowhere", [("Content-Length", str(len(hidden)))], hidden)
            + request_bytes("GET", "/u/real", [("Connection", "close")]))
    s = routed.raw(data)
    statuses = []
    with s, s.makefile("rb") as f:
        while True:
            try:
                st, _, body, _ = read_http_response(f)
            except (EOFError, OSError):
                break
            statuses.append(st)
    assert statuses[0] == 404, statuses
    assert "/smuggled" not in up.paths(), up.paths()
    # Answering /u/real on the same connection is allowed, closing after the 404 too.
    assert statuses[1:] in ([], [200]), statuses
