"""Helpers for the tests of hostile input and failing dependencies (test_hygiene.py,
test_exhaustion.py, test_faults.py): the misbehaving upstream (test/upstream/evil.py), raw
HTTP exchanges, the proxy's memory, and a hand-driven controller on the control socket."""

import json
import socket
import struct
import time
from pathlib import Path

import legate
from legate import Proc, ProcessDied, read_http_response, wait_until

EVIL = legate.REPO / "test" / "upstream" / "evil.py"


class EvilUpstream(Proc):
    """test/upstream/evil.py on a free port; requests() lists what reached it."""

    def __init__(self, name, workdir):
        self.port_file = Path(workdir) / ("evil-%s.port" % name)
        self.req_log = Path(workdir) / ("evil-%s.jsonl" % name)
        super().__init__("evil " + name,
                         [legate.PYTHON, EVIL, "--listen", "127.0.0.1:0", "--port-file",
                          self.port_file, "--log", self.req_log],
                         Path(workdir) / ("evil-%s.log" % name))
        self.port = int(wait_until(self._read_port, legate.START_TIMEOUT, "evil %s port" % name))
        self.addr = "127.0.0.1:%d" % self.port

    def _read_port(self):
        if not self.alive():
            raise ProcessDied("evil upstream exited: " + self.log_text())
        return self.port_file.read_text().strip() if self.port_file.exists() else None

    def requests(self):
        if not self.req_log.exists():
            return []
        return [json.loads(l) for l in self.req_log.read_text().splitlines() if l.strip()]


def start_evil(stack, name="e"):
    u = EvilUpstream(name, stack.dir)
    stack.procs.append(u)
    return u


def request_bytes(method, target, headers=(), body=b"", host="e2e.test"):
    lines = ["%s %s HTTP/1.1" % (method, target)]
    if host is not None:
        lines.append("Host: " + host)
    lines += ["%s: %s" % h for h in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Exchange:
    """The first response on a raw connection, and whether the proxy closed it after."""

    def __init__(self, status, headers, body, closed, elapsed):
        self.status = status  # None: the connection ended before any response
        self.headers = headers
        self.body = body
        self.closed = closed
        self.elapsed = elapsed

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "<Exchange %s closed=%s %r>" % (self.status, self.closed, self.body[:200])


def exchange(stack, data, timeout=10.0, close_wait=3.0):
    """Writes data to the proxy in one send, reads one response, then waits up to close_wait
    for the proxy to close. A reset or EOF before a whole response gives status None."""
    t0 = time.monotonic()
    s = socket.create_connection(("127.0.0.1", stack.port), timeout=timeout)
    with s:
        s.sendall(data)
        f = s.makefile("rb")
        try:
            status, headers, body, _ = read_http_response(f)
        except (EOFError, ConnectionError, ValueError, AssertionError):
            return Exchange(None, [], b"", True, time.monotonic() - t0)
        elapsed = time.monotonic() - t0
        s.settimeout(close_wait)
        try:
            closed = f.read(1) == b""
        except (socket.timeout, ConnectionError):
            closed = False
        return Exchange(status, headers, body, closed, elapsed)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---- a controller by hand ------------------------------------------------------------------


class ControlClient:
    """A connection to the proxy's control socket speaking the framing of
    docs/control-protocol.md: a 4-byte big-endian length, then one JSON object."""

    def __init__(self, path, timeout=5.0):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout * legate.SLOW)
        self.s.connect(str(path))

    def close(self):
        self.s.close()

    def send_raw(self, data):
        self.s.sendall(data)

    def send(self, obj):
        data = json.dumps(obj).encode()
        self.s.sendall(struct.pack(">I", len(data)) + data)

    def _read_exact(self, n):
        out = b""
        while len(out) < n:
            b = self.s.recv(n - len(out))
            if not b:
                raise EOFError("control socket closed")
            out += b
        return out

    def recv(self):
        n = struct.unpack(">I", self._read_exact(4))[0]
        return json.loads(self._read_exact(n))

    def closed_by_peer(self):
        """Reads until the proxy closes the connection (True) or the timeout (False)."""
        try:
            while True:
                b = self.s.recv(65536)
                if not b:
                    return True
        except socket.timeout:
            return False
        except ConnectionError:
            return True


def snapshot(version, routes, clusters):
    return {"type": "snapshot", "protocol": 1, "version": version, "routes": routes,
            "clusters": clusters, "errors": []}


def route(name, prefix, cluster, **extra):
    r = {"namespace": "default", "service": name, "mapping": name, "prefix": prefix,
         "cluster": cluster}
    r.update(extra)
    return r


def cluster_for(addr):
    host, port = addr.rsplit(":", 1)
    return {"name": addr, "scheme": "http", "host": host, "port": int(port)}


def proxy_log_lines(stack):
    return stack.proxy.log_text().splitlines()


def env_nofile():
    """Raises this process's open-file limit to its hard limit (children inherit it)."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return soft, hard


def restore_nofile(soft, hard):
    import resource
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

