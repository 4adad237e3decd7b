"""Start the test Kubernetes API server from Python tests.

    from harness import KubeAPI

    with KubeAPI(tmp_path, tls=True, token="s3cret") as api:
        api.kubectl("apply", "-f", "svc.yaml", check=True)
        status, svc = api.get_json("/api/v1/namespaces/default/services/web")
        with api.watch("/api/v1/services?watch=1&resourceVersion=0") as w:
            ev = w.next_event()
        api.fault_fail(count=2, status=429, retry_after=1)
        api.requests()          # the request log

KubeAPI runs server.py as a subprocess on a free loopback port, waits until
it listens, and writes a kubeconfig (api.kubeconfig) that any client can
use, e.g. Legate's controller through api.env(). Everything it writes lives
under the tmpdir it is given.
"""

import http.client
import json
import os
import ssl
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from kubeconfig import write_kubeconfig  # noqa: E402

PYTHON = "/usr/bin/python3"
KUBECTL = "/usr/bin/kubectl"
SERVER = os.path.join(HERE, "server.py")
MKCERTS = os.path.join(HERE, "mkcerts.sh")
_DEFAULT = object()


def make_certs(outdir):
    """Run mkcerts.sh into outdir unless it already holds a PKI."""
    if not os.path.exists(os.path.join(outdir, "client.key")):
        subprocess.run(["sh", MKCERTS, outdir], check=True, capture_output=True)
    return outdir


class Watch:
    """A streaming watch response read one event (JSON line) at a time."""

    def __init__(self, conn, resp):
        self.conn, self.resp = conn, resp
        self.status = resp.status
        self.headers = dict(resp.getheaders())

    def next_event(self, timeout=10):
        """The next event as a dict, or None at the end of the stream.
        Raises TimeoutError (socket.timeout) when none arrives in time."""
        self.conn.sock.settimeout(timeout)
        line = self.resp.readline()
        if not line:
            return None
        return json.loads(line)

    def events(self, n, timeout=10):
        out = []
        for _ in range(n):
            ev = self.next_event(timeout)
            if ev is None:
                break
            out.append(ev)
        return out

    def rest(self, timeout=10):
        """Every event until the stream ends."""
        out = []
        while True:
            ev = self.next_event(timeout)
            if ev is None:
                return out
            out.append(ev)

    def close(self):
        self.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class KubeAPI:
    """A running server.py subprocess and a kubeconfig for it.

    tls: HTTPS with a test PKI (pki: a folder to share between servers);
    token: accepted bearer token, kept in a token file the server re-reads
    (None: no token); client_cert: also accept client certificates and put
    one in the kubeconfig; embed: kubeconfig with *-data fields; history,
    bookmark_interval, initial_rv: server options; state: initial objects (a
    list of dicts, or JSON/YAML text); extra_args: more server flags."""

    def __init__(self, tmpdir, tls=True, token="test-token", client_cert=False,
                 history=None, bookmark_interval=None, state=None, embed=False,
                 initial_rv=None, pki=None, extra_args=(), start_timeout=10):
        self.dir = os.path.abspath(str(tmpdir))
        os.makedirs(self.dir, exist_ok=True)
        self.tls = tls
        self.token = token
        self.client_cert = client_cert
        self.pki = make_certs(os.path.abspath(str(pki or os.path.join(self.dir, "pki")))) \
            if tls else None
        self.ca_file = os.path.join(self.pki, "ca.crt") if tls else None
        self.token_file = os.path.join(self.dir, "token")
        self.port_file = os.path.join(self.dir, "port")
        self.request_log = os.path.join(self.dir, "requests.jsonl")
        self.log_file = os.path.join(self.dir, "server.log")
        self.kubeconfig = os.path.join(self.dir, "kubeconfig")
        self.cache_dir = os.path.join(self.dir, "kube-cache")
        self.home = os.path.join(self.dir, "home")
        os.makedirs(self.home, exist_ok=True)
        if os.path.exists(self.port_file):
            os.unlink(self.port_file)

        args = [PYTHON, SERVER, "--listen", "127.0.0.1:0", "--port-file", self.port_file,
                "--request-log", self.request_log]
        if tls:
            args += ["--tls-cert", os.path.join(self.pki, "server.crt"),
                     "--tls-key", os.path.join(self.pki, "server.key")]
            if client_cert:
                args += ["--client-ca", self.ca_file]
        if token:
            self._write_token(token)
            args += ["--token-file", self.token_file]
        if history is not None:
            args += ["--history", str(history)]
        if bookmark_interval is not None:
            args += ["--bookmark-interval", str(bookmark_interval)]
        if initial_rv is not None:
            args += ["--initial-rv", str(initial_rv)]
        if state is not None:
            state_file = os.path.join(self.dir, "state.json")
            with open(state_file, "w", encoding="utf-8") as f:
                json.dump(state, f) if not isinstance(state, str) else f.write(state)
            args += ["--state", state_file]
        args += list(extra_args)
        self._log = open(self.log_file, "ab")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        self.port = self._wait_port(start_timeout)
        self.url = "%s://127.0.0.1:%d" % ("https" if tls else "http", self.port)
        kw = {}
        if client_cert:
            kw.update(client_cert=os.path.join(self.pki, "client.crt"),
                      client_key=os.path.join(self.pki, "client.key"))
        write_kubeconfig(self.kubeconfig, self.url, ca=self.ca_file, token=token or None,
                         embed=embed, namespace="default", **kw)
        self._ssl = None
        if tls:
            self._ssl = ssl.create_default_context(cafile=self.ca_file)
            if client_cert:
                self._ssl.load_cert_chain(kw["client_cert"], kw["client_key"])

    # -- lifecycle ------------------------------------------------------------

    def _wait_port(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("kubeapi server exited with %s:\n%s"
                                   % (self.proc.returncode, self.server_log()))
            try:
                with open(self.port_file, encoding="utf-8") as f:
                    text = f.read().strip()
                if text:
                    return int(text)
            except FileNotFoundError:
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("kubeapi server did not start in %ss:\n%s" % (timeout, self.server_log()))

    def server_log(self):
        try:
            with open(self.log_file, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- clients --------------------------------------------------------------

    def env(self):
        """Environment for a client process: KUBECONFIG and a private HOME."""
        env = dict(os.environ)
        env["KUBECONFIG"] = self.kubeconfig
        env["HOME"] = self.home
        return env

    def kubectl(self, *args, input=None, timeout=60, check=False):
        """Run /usr/bin/kubectl against this server; returns CompletedProcess
        (text mode). check=True raises CalledProcessError with stderr shown."""
        cmd = [KUBECTL, "--kubeconfig", self.kubeconfig, "--cache-dir", self.cache_dir] + \
            [str(a) for a in args]
        proc = subprocess.run(cmd, input=input, capture_output=True, text=True,
                              timeout=timeout, env=self.env())
        if check and proc.returncode != 0:
            raise AssertionError("kubectl %s failed (%d):\n%s%s" % (
                " ".join(map(str, args)), proc.returncode, proc.stdout, proc.stderr))
        return proc

    def connection(self, timeout=10):
        if self.tls:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               context=self._ssl)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def _headers(self, token, headers):
        h = {"Accept": "application/json", "User-Agent": "kubeapi-harness"}
        token = self.token if token is _DEFAULT else token
        if token:
            h["Authorization"] = "Bearer " + token
        h.update(headers or {})
        return h

    def request(self, method, path, body=None, headers=None, token=_DEFAULT, timeout=10):
        """One HTTP request; returns (status, headers dict, body bytes).
        A dict or list body is sent as JSON (or with the given Content-Type)."""
        h = self._headers(token, headers)
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        elif isinstance(body, str):
            body = body.encode()
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def call(self, method, path, body=None, **kw):
        """request() with the answer decoded as JSON: (status, obj)."""
        status, _, data = self.request(method, path, body, **kw)
        return status, json.loads(data) if data.strip() else None

    def get_json(self, path, **kw):
        return self.call("GET", path, **kw)

    def post_json(self, path, obj, **kw):
        return self.call("POST", path, obj, **kw)

    def patch_json(self, path, patch, content_type="application/merge-patch+json", **kw):
        return self.call("PATCH", path, patch, headers={"Content-Type": content_type}, **kw)

    def watch(self, path, token=_DEFAULT, timeout=10):
        """Open a watch (path includes watch=1 etc.); returns a Watch."""
        conn = self.connection(timeout)
        conn.request("GET", path, headers=self._headers(token, None))
        return Watch(conn, conn.getresponse())

    # -- tokens ---------------------------------------------------------------

    def _write_token(self, token):
        tmp = self.token_file + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(token + "\n")
        os.replace(tmp, self.token_file)

    def rotate_token(self, token):
        """Make token the only accepted one (the server re-reads the file on
        every request); the kubeconfig still holds the old token."""
        self._write_token(token)
        self.token = token

    # -- control plane ----------------------------------------------------------

    def control(self, method, op, body=None):
        status, _, data = self.request(method, "/_test/" + op, body if body is not None else
                                       ({} if method == "POST" else None), token=None)
        out = json.loads(data)
        if status != 200:
            raise RuntimeError("control %s %s: %s %s" % (method, op, status, out))
        return out

    @staticmethod
    def _spec(**kw):
        return {k: v for k, v in kw.items() if v is not None}

    def fault_fail(self, count=1, status=500, path_prefix=None, retry_after=None, match=None,
                   method=None, message=None):
        return self.control("POST", "fail", self._spec(
            count=count, status=status, path_prefix=path_prefix, retry_after=retry_after,
            match=match, method=method, message=message))

    def fault_delay(self, ms, count=1, path_prefix=None, match=None, method=None):
        return self.control("POST", "delay", self._spec(ms=ms, count=count, path_prefix=path_prefix,
                                                        match=match, method=method))

    def fault_hangup(self, count=1, path_prefix=None, match=None, method=None):
        return self.control("POST", "hangup", self._spec(count=count, path_prefix=path_prefix,
                                                         match=match, method=method))

    def close_watches(self, abort=False):
        return self.control("POST", "close-watches", {"abort": abort})["closed"]

    def compact(self):
        return self.control("POST", "compact")["compacted"]

    def stall_watches(self, stall=True):
        return self.control("POST", "stall-watches", {"stall": stall})

    def reset(self):
        return self.control("POST", "reset")

    def requests(self):
        return self.control("GET", "requests")

    def clear_requests(self):
        return self.control("POST", "clear-requests")

    def objects(self):
        return self.control("GET", "objects")

    def watches(self):
        return self.control("GET", "watches")

    def state(self):
        return self.control("GET", "state")

    def wait_for(self, predicate, timeout=10, interval=0.05):
        """Poll predicate() until it returns a true value; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value or time.monotonic() >= deadline:
                return value
            time.sleep(interval)

