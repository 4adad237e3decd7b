"""Helpers for Legate's end-to-end tests: real binaries, real upstream processes, real curl.

A `Stack` owns everything one test starts: echo upstreams (test/upstream/echo.py),
`legate-proxy`, `legate-controller`, the controller's source directory and the control
socket. Every process writes its output to a file in the test's tmp_path; `Stack.close()`
stops them all and returns the problems found (unexpected exits, sanitizer reports), which
the fixture turns into a failure at teardown.

Nothing here sleeps blindly: waits poll a condition until a deadline and fail with what
they last saw.
"""

import http.client
import json
import os
import re
import shutil
import signal
import random
import socket
import subprocess
import tempfile
import textwrap
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("LEGATE_BUILD", str(REPO / "build"))).resolve()
PROXY_BIN = BUILD / "legate-proxy"
CONTROLLER_BIN = BUILD / "legate-controller"
ECHO = REPO / "test" / "upstream" / "echo.py"
EXAMPLES = REPO / "manifests" / "examples"
PYTHON = "/usr/bin/python3"
CURL = shutil.which("curl") or "/usr/bin/curl"

# Sanitized builds start and run slower; deadlines stretch, assertions about latency don't.
SANITIZED = "san-" in BUILD.name
# LEGATE_VALGRIND=1 runs the proxy and the controller under valgrind (docs/security.md): a
# memory error or a definite leak makes the process exit 99, which teardown reports.
VALGRIND = os.environ.get("LEGATE_VALGRIND") == "1"
VALGRIND_ARGV = ["valgrind", "--leak-check=full", "--errors-for-leak-kinds=definite",
                 "--error-exitcode=99"]
SLOW = 10.0 if VALGRIND else 3.0 if SANITIZED else 1.0
START_TIMEOUT = 10.0 * SLOW
CONVERGE_TIMEOUT = 10.0 * SLOW

# Lines that mean a sanitizer caught something, whatever the exit code.
SANITIZER_MARKS = (
    "ERROR: AddressSanitizer",
    "ERROR: LeakSanitizer",
    "WARNING: ThreadSanitizer",
    "runtime error:",
    "SUMMARY: UndefinedBehaviorSanitizer",
)


_handed_out = set()


def free_port():
    """A TCP port nothing listens on right now, for a process the test starts next.

    Not a port-0 bind: such a port comes from the kernel's ephemeral range, which outgoing
    connections (curl, the proxy's upstream legs) also draw from, so one of them could take it
    between the check and the server's bind ("address already in use"). Ports below the
    ephemeral range are only ever taken by an explicit bind, and each is handed out once per
    test session."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    low = max(low, 12000)
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(10000, low)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free TCP port below the ephemeral range")


class ProcessDied(AssertionError):
    """A process a wait depends on has exited: waiting longer cannot help."""


def wait_until(fn, timeout, what, interval=0.02):
    """Calls fn until it returns a truthy value, which is returned. On deadline raises
    AssertionError naming `what` and the last value or exception."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            v = fn()
            if v:
                return v
            last = v
        except ProcessDied:
            raise
        except Exception as e:  # the condition may fail while things start
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s (last: %r)" % (timeout, what, last))
        time.sleep(interval)


def parse_logfmt(line):
    """Parses one logfmt line into a dict (quoted values use JSON escapes)."""
    out = {}
    for m in re.finditer(r'([A-Za-z0-9_.\-]+)=("(?:[^"\\]|\\.)*"|\S*)', line):
        k, v = m.group(1), m.group(2)
        if v.startswith('"'):
            try:
                v = json.loads(v)
            except ValueError:
                v = v[1:-1]
        out[k] = v
    return out


# ---- processes ---------------------------------------------------------------------------


class Proc:
    """A child process whose stdout and stderr go to one log file."""

    def __init__(self, name, argv, log_path, env=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_path)
        self.expected_exit = False  # set when a test kills it on purpose
        self.logf = open(self.log_path, "ab")
        self.logf.write(("## %s\n" % " ".join(self.argv)).encode())
        self.logf.flush()
        e = dict(os.environ)
        # Sanitizer reports must land in the log and fail fast; keep what the caller set.
        e.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        e.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        e.update(env or {})
        self.popen = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=self.logf, stderr=subprocess.STDOUT, env=e
        )
        self.pid = self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def send(self, sig):
        if self.alive():
            self.popen.send_signal(sig)

    def kill(self, sig=signal.SIGKILL, timeout=5.0):
        """Kills on purpose (the test expects the exit) and waits for it."""
        self.expected_exit = True
        self.send(sig)
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            return self.popen.wait(timeout)

    def stop(self, timeout=None):
        """Stops at teardown: SIGTERM, then SIGKILL after `timeout`. Returns a problem
        description or None."""
        timeout = timeout if timeout is not None else 5.0 * SLOW
        problem = None
        rc = self.popen.poll()
        if rc is not None and not self.expected_exit:
            problem = "%s (pid %d) exited by itself during the test with status %s" % (
                self.name, self.pid, rc)
        if rc is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                rc = self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                rc = self.popen.wait(5)
                problem = "%s (pid %d) ignored SIGTERM for %.0fs" % (self.name, self.pid, timeout)
            # 0 after a graceful shutdown, or death by the SIGTERM we sent, are both fine;
            # anything else (a sanitizer's exit 1, SIGSEGV, SIGABRT) is not.
            if rc not in (0, -signal.SIGTERM) and not self.expected_exit and problem is None:
                problem = "%s (pid %d) exited with status %s on SIGTERM" % (self.name, self.pid, rc)
        self.logf.close()
        text = self.log_text()
        marks = [m for m in SANITIZER_MARKS if m in text]
        if VALGRIND and re.search(r"definitely lost: [1-9]", text):
            marks.append("valgrind: definitely lost")
        if marks:
            problem = (problem + "; " if problem else "") + "%s log has sanitizer reports: %s" % (
                self.name,
                ", ".join(marks),
            )
        return problem


class Upstream(Proc):
    """test/upstream/echo.py on a free port."""

    def __init__(self, name, workdir):
        self.port_file = Path(workdir) / ("upstream-%s.port" % name)
        self.req_log = Path(workdir) / ("upstream-%s.jsonl" % name)
        super().__init__(
            "upstream " + name,
            [PYTHON, ECHO, "--listen", "127.0.0.1:0", "--port-file", self.port_file, "--name", name,
             "--log", self.req_log],
            Path(workdir) / ("upstream-%s.log" % name),
        )
        self.server_name = name
        self.port = int(
            wait_until(lambda: self._read_port(), START_TIMEOUT, "upstream %s port file" % name)
        )
        self.addr = "127.0.0.1:%d" % self.port

    def _read_port(self):
        if not self.alive():
            raise ProcessDied("upstream exited: " + self.log_text())
        return self.port_file.read_text().strip() if self.port_file.exists() else None

    def requests(self):
        """Everything that reached this upstream, as logged (one dict per request)."""
        if not self.req_log.exists():
            return []
        out = []
        for line in self.req_log.read_text().splitlines():
            if line.strip():
                out.append(json.loads(line))
        return out

    def paths(self):
        return [r.get("path") for r in self.requests()]


# ---- HTTP results --------------------------------------------------------------------------


class Response:
    """One curl transfer: status, response headers (list of (name, value)), body bytes."""

    def __init__(self, status, headers, body, info):
        self.status = status
        self.headers = headers
        self.body = body
        self.info = info  # curl's --write-out %{json}

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def __repr__(self):
        return "<Response %s %r>" % (self.status, self.body[:200])


def echo_headers(echo):
    """The echo's header list as a dict of lower-case name -> list of values."""
    d = {}
    for k, v in echo["headers"]:
        d.setdefault(k.lower(), []).append(v)
    return d


def parse_header_dump(text):
    """Splits curl's -D output into one header list per response (1xx responses dropped)."""
    blocks = []
    cur = None
    for line in text.split("\r\n"):
        if line.startswith("HTTP/"):
            cur = []
            blocks.append((int(line.split()[1]), cur))
        elif line and cur is not None and ":" in line:
            k, v = line.split(":", 1)
            cur.append((k.strip(), v.strip()))
    return [h for status, h in blocks if status >= 200]


def read_http_response(sock_file):
    """Reads one HTTP/1.1 response from a binary file object made from a socket.
    Returns (status, headers, body, first_body_time, chunk_times): chunk_times holds the
    arrival time of each chunk of a chunked body."""
    line = sock_file.readline()
    if not line:
        raise EOFError("connection closed before a status line")
    words = line.split()
    if len(words) < 2 or not words[0].startswith(b"HTTP/1.") or not words[1].isdigit():
        raise AssertionError("not an HTTP/1.x status line: %r" % line[:200])
    status = int(words[1])
    headers = []
    while True:
        h = sock_file.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        k, v = h.decode("latin-1").split(":", 1)
        headers.append((k.strip().lower(), v.strip()))
    hd = dict(headers)
    body = b""
    chunk_times = []
    if "chunked" in hd.get("transfer-encoding", "").lower():
        while True:
            size = int(sock_file.readline().split(b";")[0].strip(), 16)
            if size == 0:
                while sock_file.readline() not in (b"\r\n", b"\n", b""):
                    pass
                break
            data = sock_file.read(size)
            chunk_times.append((time.monotonic(), data))
            body += data
            sock_file.read(2)
    elif "content-length" in hd:
        body = sock_file.read(int(hd["content-length"]))
    elif status not in (204, 304) and not 100 <= status < 200:
        body = sock_file.read()
    return status, headers, body, chunk_times


class Load:
    """Traffic while a test changes things: `clients` threads, each sending GETs over its own
    keep-alive connection to the proxy on `port` until `seconds` have passed (`stop`, a
    time.monotonic() value). request(k, i) names client k's i-th request (i from 1) as
    (path, fields): a right answer is a 200 whose echo JSON has these field values. Right
    answers are counted in `ok`; anything else, a reset or a timeout included, is listed in
    `wrong`.

        with legate.Load(stack.port, 6, 2.5, request) as load:
            ...                        # kill, restart, rewrite while requests flow
        assert load.wrong == [], load.wrong[:10]

    Leaving the block waits for every client to finish."""

    def __init__(self, port, clients, seconds, request):
        self.port = port
        self.request = request
        self.stop = time.monotonic() + seconds
        self.ok = 0
        self.wrong = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._client, args=(k,)) for k in range(clients)]

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        for t in self.threads:
            t.join()
        return False

    def _client(self, k):
        conn = None
        i = 0
        while time.monotonic() < self.stop:
            i += 1
            path, fields = self.request(k, i)
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", path)
                r = conn.getresponse()
                body = r.read()
                echo = json.loads(body) if r.status == 200 else None
                with self.lock:
                    if echo is None or any(echo.get(f) != v for f, v in fields.items()):
                        self.wrong.append((path, r.status, body[:100]))
                    else:
                        self.ok += 1
            except Exception as ex:  # a reset or a timeout is exactly what must not happen
                with self.lock:
                    self.wrong.append((path, repr(ex)))
                conn = None
        if conn is not None:
            conn.close()


# ---- the stack -----------------------------------------------------------------------------


def annotation_for(mappings_yaml):
    """Normalises a Mapping annotation: strips the common indent, ends with one newline."""
    return textwrap.dedent(mappings_yaml).strip("\n") + "\n"


def mapping(name, prefix, service, **fields):
    """One Mapping document (ambassador/v1) as YAML text, values JSON-quoted."""
    doc = ["---", "apiVersion: ambassador/v1", "kind: Mapping", "name: " + json.dumps(name)]
    if prefix is not None:
        doc.append("prefix: " + json.dumps(prefix))
    if service is not None:
        doc.append("service: " + json.dumps(service))
    for k, v in fields.items():
        doc.append("%s: %s" % (k, json.dumps(v)))
    return "\n".join(doc) + "\n"


def service_manifest(name, ns, annotation):
    """A Kubernetes v1 Service manifest carrying the annotation (a YAML block scalar)."""
    body = "".join("      " + l + "\n" if l else "\n" for l in annotation.splitlines())
    return (
        "apiVersion: v1\n"
        "kind: Service\n"
        "metadata:\n"
        "  name: %s\n"
        "  namespace: %s\n"
        "  annotations:\n"
        "    getambassador.io/config: |\n"
        "%s"
        "spec:\n"
        "  selector:\n"
        "    app: %s\n"
        "  ports:\n"
        "  - name: http\n"
        "    port: 80\n"
        "    targetPort: 8080\n" % (name, ns, body, name)
    )


class Stack:
    """Processes and files of one test. Use through the `stack`/`legate` fixtures."""

    def __init__(self, tmp_path):
        self.dir = Path(tmp_path)
        self.src = self.dir / "src"
        self.src.mkdir(exist_ok=True)
        # sun_path holds 108 bytes and pytest's tmp paths can be longer: keep the socket in a
        # short private directory of its own.
        self.sock_dir = Path(tempfile.mkdtemp(prefix="lg-", dir="/tmp"))
        self.sock = self.sock_dir / "control.sock"
        self.port = free_port()
        self.admin_port = free_port()
        self.procs = []
        self.upstreams = {}
        self.proxy = None
        self.controller = None
        self.n_proxy = 0
        self.n_controller = 0

    # -- processes --

    def start_upstream(self, name):
        u = Upstream(name, self.dir)
        self.procs.append(u)
        self.upstreams[name] = u
        return u

    def start_proxy(self, wait=True, extra=()):
        """Starts legate-proxy on this stack's ports and socket and waits for /live."""
        self.n_proxy += 1
        argv = [PROXY_BIN, "--listen", "127.0.0.1:%d" % self.port, "--admin",
                "127.0.0.1:%d" % self.admin_port, "--control-socket", self.sock, "--workers", "2",
                "--log-level", "debug"] + list(extra)
        if VALGRIND:
            argv = VALGRIND_ARGV + argv
        p = Proc("proxy#%d" % self.n_proxy, argv, self.dir / ("proxy-%d.log" % self.n_proxy))
        self.procs.append(p)
        self.proxy = p
        if wait:
            self.wait_live()
        return p

    def start_controller(self, extra=()):
        self.n_controller += 1
        argv = [CONTROLLER_BIN, "--control-socket", self.sock, "--source-dir", self.src,
                "--log-level", "debug"] + list(extra)
        if VALGRIND:
            argv = VALGRIND_ARGV + argv
        c = Proc("controller#%d" % self.n_controller, argv,
                 self.dir / ("controller-%d.log" % self.n_controller))
        self.procs.append(c)
        self.controller = c
        return c

    def start(self, upstreams=("a",)):
        """The usual test setup: upstreams, a proxy and a controller. The source dir is
        empty; tests write Services and wait for the routes they expect."""
        for u in upstreams:
            self.start_upstream(u)
        self.start_proxy()
        self.start_controller()
        return self

    def close(self):
        """Stops every process (controller first, so it does not log a lost proxy as an
        error while we stop) and returns the list of problems found."""
        problems = []
        order = [p for p in self.procs if p.name.startswith("controller")]
        order += [p for p in self.procs if p not in order]
        for p in order:
            pr = p.stop()
            if pr:
                problems.append(pr)
        shutil.rmtree(self.sock_dir, ignore_errors=True)
        return problems

    def logs(self, tail=200):
        """Every process log (last `tail` lines each), for failure reports."""
        out = []
        for p in self.procs:
            lines = p.log_text().splitlines()
            out.append(("%s (%s)" % (p.name, p.log_path), "\n".join(lines[-tail:])))
        return out

    # -- admin --

    def admin(self, path, timeout=2.0):
        """GET on the admin listener; returns (status, body bytes)."""
        c = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=timeout)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def routes(self):
        st, body = self.admin("/routes")
        assert st == 200, "/routes answered %d: %r" % (st, body[:200])
        return json.loads(body)

    def _check_alive(self, *procs):
        for p in procs:
            if p is not None and not p.alive() and not p.expected_exit:
                raise ProcessDied("%s exited with %s:\n%s" % (
                    p.name, p.popen.returncode, p.log_text()[-4000:]))

    def wait_live(self, timeout=None):
        def ok():
            self._check_alive(self.proxy)
            return self.admin("/live", timeout=0.5)[0] == 200

        wait_until(ok, timeout or START_TIMEOUT, "proxy /live")

    def wait_ready(self, timeout=None):
        def ok():
            self._check_alive(self.proxy, self.controller)
            return self.admin("/ready", timeout=0.5)[0] == 200

        wait_until(ok, timeout or CONVERGE_TIMEOUT, "proxy /ready")

    def wait_routes(self, pred, what, timeout=None):
        """Polls /routes until pred(snapshot) is truthy; returns the snapshot."""

        def ok():
            self._check_alive(self.proxy, self.controller)
            snap = self.routes()
            # Version 0 is "no table yet": nothing to judge.
            return snap if snap.get("version") and pred(snap) else None

        return wait_until(ok, timeout or CONVERGE_TIMEOUT, what)

    def wait_route_set(self, keys, timeout=None):
        """Waits until /routes holds exactly the routes named by keys, a collection of
        (namespace, service, mapping) or of mapping names."""
        want = set(keys)

        def have(snap):
            rs = snap.get("routes", [])
            if all(isinstance(k, str) for k in want):
                got = {r.get("mapping") for r in rs}
            else:
                got = {(r.get("namespace"), r.get("service"), r.get("mapping")) for r in rs}
            return got == want

        return self.wait_routes(have, "routes %s" % sorted(want, key=str), timeout)

    def route(self, snap, mapping_name):
        for r in snap["routes"]:
            if r.get("mapping") == mapping_name:
                return r
        return None

    # -- source directory --

    def write_file(self, filename, text, atomic=True):
        path = self.src / filename
        if atomic:
            # Written beside and renamed, like kubectl-style tools: the controller never sees
            # half a file. The temp name does not match *.yaml.
            tmp = self.src / (".%s.tmp" % filename)
            tmp.write_text(text)
            os.rename(tmp, path)
        else:
            with open(path, "w") as f:
                f.write(text)
        return path

    def write_service(self, name, ns, mappings_yaml, filename=None, atomic=True):
        """Writes a Service manifest whose getambassador.io/config annotation is
        mappings_yaml; returns (path, annotation text as the controller sees it)."""
        ann = annotation_for(mappings_yaml)
        filename = filename or ("%s-%s.yaml" % (ns, name))
        path = self.write_file(filename, service_manifest(name, ns, ann), atomic)
        return path, ann

    def delete_file(self, filename):
        (self.src / filename).unlink()

    # -- requests --

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def curl(self, path, *args, port=None, timeout=15):
        """Runs real curl on the proxy; returns a Response. Extra args go before the URL."""
        fd, body_path = tempfile.mkstemp(dir=self.dir, prefix="curl-body-")
        os.close(fd)
        hdr_path = body_path + ".hdr"
        url = "http://127.0.0.1:%d%s" % (port or self.port, path)
        argv = [CURL, "-q", "-sS", "--noproxy", "*", "--path-as-is", "--max-time", str(timeout),
                "-o", body_path, "-D", hdr_path, "-w", "%{json}"] + list(args) + [url]
        cp = subprocess.run(argv, capture_output=True, timeout=timeout + 5)
        try:
            info = json.loads(cp.stdout.decode() or "{}")
        except ValueError:
            info = {"raw": cp.stdout.decode(errors="replace")}
        body = Path(body_path).read_bytes() if os.path.exists(body_path) else b""
        hdrs = []
        if os.path.exists(hdr_path):
            hdrs = parse_header_dump(Path(hdr_path).read_bytes().decode("latin-1"))
        for p in (body_path, hdr_path):
            if os.path.exists(p):
                os.unlink(p)
        if cp.returncode != 0:
            raise AssertionError("curl %s failed (%d): %s" % (
                " ".join(map(str, argv[1:]))[:500], cp.returncode, cp.stderr.decode(errors="replace")))
        return Response(int(info.get("http_code", 0)), hdrs[-1] if hdrs else [], body, info)

    def raw(self, data, timeout=10.0):
        """Opens a TCP connection to the proxy, writes data in one send, returns the socket."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        s.sendall(data)
        return s

