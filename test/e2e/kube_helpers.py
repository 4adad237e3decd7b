"""Helpers for the end-to-end tests of the controller's Kubernetes API source.

The usual `legate.Stack` runs the proxy and the echo upstreams; a `KubeAPI` from
test/kubeapi/harness.py plays the API server (TLS, bearer token, real kubectl); the
controller is started on that API instead of a source directory:

    api = start_api(tmp_path, pki)             # or the `api` fixture (conftest.py)
    start_kube_controller(stack, api)          # --kubeconfig api.kubeconfig
    kubectl_apply(api, tmp_path, "web", "default", mapping("web", "/web/", up.addr))
    stack.wait_route_set({"web"})

`legate_requests(api)` is the API server's request log restricted to the controller, which
is what the no-hot-loop and resume-from-resourceVersion assertions read.
"""

import contextlib
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

import legate

sys.path.insert(0, str(legate.REPO / "test" / "kubeapi"))

from harness import KubeAPI  # noqa: E402

ANNOTATION = "getambassador.io/config"


def controller_speaks_kubernetes():
    """True when the controller binary has the Kubernetes source wired in (main.c)."""
    if not legate.CONTROLLER_BIN.exists():
        return False
    out = subprocess.run([str(legate.CONTROLLER_BIN), "--help"], capture_output=True, text=True,
                         timeout=10)
    return "--kubeconfig" in out.stdout + out.stderr and "not used yet" not in out.stdout + out.stderr


needs_kube_controller = pytest.mark.skipif(
    not controller_speaks_kubernetes(),
    reason="legate-controller does not wire the Kubernetes source yet (controller/main.c)")


def start_api(tmp_path, pki, **kw):
    """A test API server with TLS and a bearer token, bookmarks every 2 s."""
    kw.setdefault("bookmark_interval", 2)
    return KubeAPI(Path(tmp_path) / "api", tls=True, token="t0k3n-one", pki=pki, **kw)


@contextlib.contextmanager
def api_running(tmp_path, pki, **kw):
    """start_api(tmp_path, pki, **kw) for the length of a with block (the `api` fixture of
    conftest.py when the defaults do)."""
    api = start_api(tmp_path, pki, **kw)
    try:
        yield api
    finally:
        api.stop()


def start_kube_controller(stack, api, extra=(), env=None, kubeconfig=True, wait=True):
    """Starts legate-controller on the stack's socket against api (not a source directory),
    registered with the stack so teardown stops it and checks its log. Waits for the proxy to
    be ready unless wait is False."""
    stack.n_controller += 1
    argv = [legate.CONTROLLER_BIN, "--control-socket", stack.sock, "--log-level", "debug"]
    if kubeconfig:
        argv += ["--kubeconfig", api.kubeconfig]
    argv += list(extra)
    e = {"HOME": api.home}
    e.update(env or {})
    c = legate.Proc("controller#%d" % stack.n_controller, argv,
                    stack.dir / ("controller-%d.log" % stack.n_controller), env=e)
    stack.procs.append(c)
    stack.controller = c
    if wait:
        stack.wait_ready()
    return c


def service_yaml(name, ns, mappings_yaml):
    return legate.service_manifest(name, ns, legate.annotation_for(mappings_yaml))


def kubectl_apply(api, tmp_path, name, ns, mappings_yaml):
    """kubectl apply -f of a Service carrying the Mapping annotation."""
    path = Path(tmp_path) / ("svc-%s-%s.yaml" % (ns, name))
    path.write_text(service_yaml(name, ns, mappings_yaml))
    return api.kubectl("apply", "-f", str(path), check=True)


def kubectl_annotate(api, name, ns, mappings_yaml):
    """kubectl annotate --overwrite of the Mapping annotation."""
    return api.kubectl("annotate", "--overwrite", "-n", ns, "service", name,
                       "%s=%s" % (ANNOTATION, legate.annotation_for(mappings_yaml)), check=True)


def legate_requests(api):
    """The API server's request log entries sent by the controller, oldest first."""
    return [r for r in api.requests() if r.get("user_agent", "").startswith("legate-controller")]


def query(entry):
    """The query parameters of a logged request, as a dict of single values."""
    return {k: v[-1] for k, v in parse_qs(urlsplit(entry["path"]).query,
                                          keep_blank_values=True).items()}


def is_watch(entry):
    return query(entry).get("watch") in ("true", "1")


def is_service_list(entry):
    p = urlsplit(entry["path"]).path
    return entry["method"] == "GET" and p.endswith("/services") and not is_watch(entry)


def log_lines(proc, msg):
    """The logfmt records of proc's log whose msg is msg."""
    out = []
    for line in proc.log_text().splitlines():
        f = legate.parse_logfmt(line)
        if f.get("msg") == msg:
            out.append(f)
    return out


def write_serviceaccount(dirpath, token, ca_file, namespace="default"):
    """An in-cluster service-account folder (token, ca.crt, namespace)."""
    d = Path(dirpath)
    d.mkdir(parents=True, exist_ok=True)
    (d / "ca.crt").write_bytes(Path(ca_file).read_bytes())
    (d / "namespace").write_text(namespace)
    rotate_file(d / "token", token)
    return d


def rotate_file(path, text):
    """Replaces path atomically (as kubelet does with projected tokens)."""
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
