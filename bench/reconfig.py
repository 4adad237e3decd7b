#!/usr/bin/python3
"""Reconfiguration latency through the Kubernetes source: the time from `kubectl annotate`
returning to the new route answering through the proxy.

For each background size (--services, default "10,1000": that many annotated Services exist,
each with one Mapping), the script starts the test API server (test/kubeapi, TLS + token), a
minimal upstream, legate-proxy and legate-controller (--kubeconfig), then --changes times
annotates one Service with a new prefix and polls the proxy on that prefix until it answers
200. It prints p50/p90/p99/max per size and writes the raw samples as JSON (--out).

Run it through bench/reconfig.sh (not part of make test)."""

import argparse
import datetime
import http.client
import json
import os
import shutil
import socket
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "test" / "kubeapi"))
sys.path.insert(0, str(REPO / "test" / "e2e"))

from harness import KubeAPI  # noqa: E402

PYTHON = "/usr/bin/python3"


class _Upstream(socketserver.BaseRequestHandler):
    """Answers every request on a kept-alive connection with one 200 written in one send
    (with TCP_NODELAY): an upstream that adds no latency of its own. The echo upstream of the
    e2e tests writes headers and body separately, which costs a delayed ACK (~40 ms) per
    request on a kept-alive connection and would hide what is measured here."""

    def handle(self):
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = b""
        while True:
            while b"\r\n\r\n" not in data:
                chunk = self.request.recv(65536)
                if not chunk:
                    return
                data += chunk
            _, data = data.split(b"\r\n\r\n", 1)
            self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")


def serve_upstream(port_file):
    socketserver.ThreadingTCPServer.daemon_threads = True
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    srv = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Upstream)
    tmp = port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.replace(tmp, port_file)
    srv.serve_forever()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(fn, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
        except OSError:
            pass
        time.sleep(0.01)
    raise SystemExit("reconfig: timed out waiting for %s" % what)


def mapping(name, prefix, service):
    return ("---\napiVersion: ambassador/v1\nkind: Mapping\nname: %s\nprefix: %s\nservice: %s\n"
            % (name, prefix, service))


def get(conn_box, port, path):
    """GET on the proxy over a kept-alive connection; returns the status."""
    for _ in range(2):
        if conn_box[0] is None:
            conn_box[0] = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn_box[0].request("GET", path)
            r = conn_box[0].getresponse()
            r.read()
            return r.status
        except (OSError, http.client.HTTPException):
            conn_box[0].close()
            conn_box[0] = None
    return 0


def poll_until_live(port, prefix, out, timeout=30):
    """Polls prefix on the proxy until it answers 200; stores the wall time in out["wall"]."""
    box = [None]
    deadline = time.monotonic() + timeout
    while get(box, port, prefix + "x") != 200 and time.monotonic() < deadline:
        time.sleep(0.001)
    out["wall"] = time.time()
    if box[0] is not None:
        box[0].close()


def iso_time(text):
    """Seconds since the epoch of "2026-01-01T10:00:00.123456Z"."""
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp()


def pct(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def run(build, work, nservices, changes, pki):
    d = Path(work) / ("n%d" % nservices)
    d.mkdir(parents=True)
    procs = []
    api = KubeAPI(d / "api", tls=True, token="bench-token", pki=pki, history=100000)
    try:
        up_port_file = d / "up.port"
        procs.append(subprocess.Popen([PYTHON, __file__, "--upstream", str(up_port_file)],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        up = "127.0.0.1:%s" % wait(lambda: up_port_file.exists() and
                                   up_port_file.read_text().strip(), 10, "upstream")
        # The background: annotated Services, created before the controller starts.
        for i in range(nservices):
            svc = {"apiVersion": "v1", "kind": "Service",
                   "metadata": {"name": "svc-%04d" % i, "namespace": "default",
                                "annotations": {"getambassador.io/config":
                                                mapping("m%04d" % i, "/svc-%04d/" % i, up)}},
                   "spec": {"ports": [{"port": 80}]}}
            st, out = api.post_json("/api/v1/namespaces/default/services", svc)
            if st != 201:
                raise SystemExit("reconfig: creating a Service failed: %s %s" % (st, out))
        port, admin = free_port(), free_port()
        sock = Path(tempfile.mkdtemp(prefix="lgb-", dir="/tmp")) / "control.sock"
        log = open(d / "proxy.log", "wb")
        procs.append(subprocess.Popen([str(build / "legate-proxy"), "--listen",
                                       "127.0.0.1:%d" % port, "--admin", "127.0.0.1:%d" % admin,
                                       "--control-socket", str(sock), "--log-level", "warn"],
                                      stdout=log, stderr=log))
        clog = open(d / "controller.log", "wb")
        procs.append(subprocess.Popen([str(build / "legate-controller"), "--control-socket",
                                       str(sock), "--kubeconfig", api.kubeconfig,
                                       "--log-level", os.environ.get("RECONFIG_LOG_LEVEL", "warn")], stdout=clog, stderr=clog))
        box = [None]
        last = "/svc-%04d/x" % (nservices - 1)
        wait(lambda: get(box, port, last) == 200, 60, "the background routes")

        samples, kubectl_s, live_wall = [], [], []
        for i in range(changes):
            prefix = "/change-%d/" % i
            # A watcher thread polls from before kubectl starts, to time the change from the
            # API server's side too (see below); the main measure starts when kubectl returns.
            seen = {}
            watcher = threading.Thread(target=poll_until_live, args=(port, prefix, seen))
            watcher.start()
            t_k = time.monotonic()
            api.kubectl("annotate", "--overwrite", "service", "svc-0000",
                        "getambassador.io/config=" + mapping("m0000", prefix, up), check=True)
            t0 = time.monotonic()
            kubectl_s.append(t0 - t_k)
            while get(box, port, prefix + "x") != 200:
                if time.monotonic() - t0 > 30:
                    raise SystemExit("reconfig: change %d never became live" % i)
                time.sleep(0.0005)
            samples.append(time.monotonic() - t0)
            watcher.join()
            live_wall.append(seen["wall"])
        # The same changes timed from the API server's side: from the PATCH being answered
        # (its request log entry, written after the response) to the watcher's first 200.
        # kubectl takes a while to exit after its PATCH, so this is closer to the controller's
        # own latency; both clocks are this machine's wall clock.
        patches = [r for r in api.requests() if r["method"] == "PATCH" and
                   "/services/svc-0000" in r["path"]]
        from_patch = [round((w - iso_time(p["time"])) * 1000, 3)
                      for w, p in zip(live_wall, patches[-changes:])]
        return {"services": nservices, "changes": changes,
                "latency_ms": [round(s * 1000, 3) for s in samples],
                "from_patch_ms": from_patch,
                "kubectl_ms": [round(s * 1000, 1) for s in kubectl_s]}
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        api.stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--services", default="10,1000", help="background sizes (comma list)")
    ap.add_argument("--changes", type=int, default=60, help="changes per size (>= 50)")
    ap.add_argument("--out", help="samples as JSON (default bench/results/reconfig-DATE.json; "
                    "- for none)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--upstream", metavar="PORT_FILE", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.upstream:
        return serve_upstream(a.upstream)
    build = Path(os.environ.get("LEGATE_BUILD", REPO / "build")).resolve()
    for b in ("legate-proxy", "legate-controller"):
        if not (build / b).exists():
            raise SystemExit("reconfig: %s/%s missing (run make)" % (build, b))
    work = tempfile.mkdtemp(prefix="legate-reconfig-")
    pki = Path(work) / "pki"
    results = []
    try:
        for n in [int(x) for x in a.services.split(",") if x]:
            r = run(build, work, n, a.changes, pki)
            lat, fp = r["latency_ms"], r["from_patch_ms"]
            r.update(p50_ms=round(pct(lat, 50), 2), p90_ms=round(pct(lat, 90), 2),
                     p99_ms=round(pct(lat, 99), 2), max_ms=max(lat),
                     mean_ms=round(statistics.mean(lat), 2),
                     from_patch_p50_ms=round(pct(fp, 50), 2),
                     from_patch_p99_ms=round(pct(fp, 99), 2),
                     kubectl_p50_ms=round(pct(r["kubectl_ms"], 50), 1))
            results.append(r)
            print("services=%-5d changes=%d  after kubectl returns: p50=%.1f ms p90=%.1f ms "
                  "p99=%.1f ms max=%.1f ms | after the PATCH is answered: p50=%.1f ms "
                  "p99=%.1f ms | kubectl itself: p50 %.0f ms"
                  % (n, len(lat), r["p50_ms"], r["p90_ms"], r["p99_ms"], r["max_ms"],
                     r["from_patch_p50_ms"], r["from_patch_p99_ms"], r["kubectl_p50_ms"]),
                  flush=True)
    finally:
        if a.keep:
            print("reconfig: work directory kept in %s" % work, file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    out = a.out or str(REPO / "bench" / "results" /
                       time.strftime("reconfig-%Y%m%d-%H%M%S.json"))
    if out != "-":
        with open(out, "w") as f:
            json.dump({"what": "ms from kubectl annotate returning to the new route answering "
                               "200 through legate-proxy", "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
