"""How the controller authenticates to the API server and verifies it: exec credential
plugins (re-run after a 401), client certificates from memory, tls-server-name, and
insecure-skip-tls-verify. Each ends with a Service routed through the proxy."""

import os
import stat
import textwrap

import legate
from kube_helpers import (api_running, is_watch, kubectl_apply, legate_requests, log_lines,
                          needs_kube_controller, start_kube_controller)
from kubeconfig import write_kubeconfig  # test/kubeapi, on sys.path through kube_helpers
from legate import mapping

pytestmark = needs_kube_controller

PLUGIN = """\
#!/usr/bin/python3
# A client-go exec credential plugin: prints an ExecCredential with the token in
# $PLUGIN_DIR/token and counts its runs in $PLUGIN_DIR/runs.
import datetime, json, os, sys
d = os.environ["PLUGIN_DIR"]
info = json.loads(os.environ["KUBERNETES_EXEC_INFO"])
runs = os.path.join(d, "runs")
n = int(open(runs).read()) if os.path.exists(runs) else 0
open(runs, "w").write(str(n + 1))
exp = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=1)
json.dump({"apiVersion": info["apiVersion"], "kind": "ExecCredential",
           "status": {"token": open(os.path.join(d, "token")).read().strip(),
                      "expirationTimestamp": exp.strftime("%Y-%m-%dT%H:%M:%SZ")}}, sys.stdout)
"""


def on_kubeconfig(stack, api, kc, wait=True):
    """The proxy (unless it runs already) and a controller that reads only kubeconfig kc."""
    if stack.proxy is None:
        stack.start_proxy()
    return start_kube_controller(stack, api, kubeconfig=False, extra=["--kubeconfig", kc],
                                 wait=wait)


def failed_lists(stack):
    """Waits until the controller logs a failed list; returns those log records."""
    return legate.wait_until(lambda: log_lines(stack.controller, "list failed"), 10,
                             "a failed list")


def routed(stack, api, tmp_path, name="web"):
    up = stack.upstreams.get("a") or stack.start_upstream("a")
    kubectl_apply(api, tmp_path, name, "default", mapping(name, "/%s/" % name, up.addr))
    stack.wait_routes(lambda s: name in {r["mapping"] for r in s["routes"]}, "route " + name)
    assert stack.curl("/%s/x" % name).status == 200


def test_exec_plugin_token_and_rerun_after_401(stack, api, tmp_path):
    d = tmp_path / "kc"
    d.mkdir()
    plugin = d / "bin" / "plugin.py"
    plugin.parent.mkdir()
    plugin.write_text(PLUGIN)
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    (d / "token").write_text(api.token)
    kc = d / "config"
    kc.write_text(textwrap.dedent("""\
        apiVersion: v1
        kind: Config
        current-context: t
        clusters:
        - name: c
          cluster: {server: "%s", certificate-authority: "%s"}
        users:
        - name: u
          user:
            exec:
              apiVersion: client.authentication.k8s.io/v1
              command: ./bin/plugin.py
              args: ["--unused"]
              env: [{name: PLUGIN_DIR, value: "%s"}]
              interactiveMode: Never
        contexts:
        - {name: t, context: {cluster: c, user: u}}
        """ % (api.url, os.path.relpath(api.ca_file, d), d)))
    on_kubeconfig(stack, api, kc)
    routed(stack, api, tmp_path)
    assert (d / "runs").read_text() == "1"  # one credential serves every request
    assert log_lines(stack.controller, "kubernetes source")[0]["auth"] == "exec"

    # The credential is revoked: the next request gets a 401, the plugin runs again, and
    # the watch resumes at once with the new token.
    (d / "token").write_text("t0k3n-new")
    api.rotate_token("t0k3n-new")
    write_kubeconfig(api.kubeconfig, api.url, ca=api.ca_file, token="t0k3n-new")
    api.clear_requests()
    api.close_watches()
    legate.wait_until(lambda: [r for r in legate_requests(api) if is_watch(r)
                               and r["status"] == 200], 10, "a watch with the new token")
    assert [r["status"] for r in legate_requests(api) if is_watch(r)] == [401, 200]
    assert (d / "runs").read_text() == "2"
    routed(stack, api, tmp_path, "after")
    assert "t0k3n" not in stack.controller.log_text()


def test_client_certificate_and_ca_from_kubeconfig_data(stack, tmp_path, pki):
    # No token at all: the server trusts the client certificate (embedded as -data).
    with api_running(tmp_path, pki, client_cert=True, embed=True) as api:
        kc = tmp_path / "kc-cert"
        write_kubeconfig(kc, api.url, ca=api.ca_file, embed=True,
                         client_cert=os.path.join(api.pki, "client.crt"),
                         client_key=os.path.join(api.pki, "client.key"))
        assert "client-key-data" in kc.read_text()
        # The server still accepts api.token; take it away so only the certificate works.
        api.rotate_token("nobody-has-this")
        write_kubeconfig(api.kubeconfig, api.url, ca=api.ca_file, token="nobody-has-this")
        on_kubeconfig(stack, api, kc)
        assert log_lines(stack.controller, "kubernetes source")[0]["auth"] == "client-cert"
        routed(stack, api, tmp_path)
        assert all(r["status"] < 400 for r in legate_requests(api))


def test_tls_server_name_is_the_name_verified(stack, api, tmp_path):
    # The certificate is for localhost/127.0.0.1: a wrong tls-server-name must fail...
    bad = tmp_path / "kc-bad"
    write_kubeconfig(bad, api.url, ca=api.ca_file, token=api.token,
                     tls_server_name="wrong.example")
    on_kubeconfig(stack, api, bad, wait=False)
    fails = failed_lists(stack)
    assert fails[0]["status"] == "0" and "wrong.example" in fails[0]["reason"], fails
    assert legate_requests(api) == []
    stack.controller.kill()

    # ...and the right one works although the URL says 127.0.0.1.
    good = tmp_path / "kc-good"
    write_kubeconfig(good, api.url, ca=api.ca_file, token=api.token, tls_server_name="localhost")
    on_kubeconfig(stack, api, good)
    routed(stack, api, tmp_path)


def test_insecure_skip_tls_verify(stack, api, tmp_path):
    kc = tmp_path / "kc-insecure"
    write_kubeconfig(kc, api.url, token=api.token, insecure=True)
    assert "certificate-authority" not in kc.read_text()
    on_kubeconfig(stack, api, kc)
    assert log_lines(stack.controller, "kubernetes source")[0]["tls"] == "insecure"
    routed(stack, api, tmp_path)


def test_without_the_ca_verification_fails(stack, api, tmp_path):
    kc = tmp_path / "kc-noca"
    write_kubeconfig(kc, api.url, token=api.token)
    on_kubeconfig(stack, api, kc, wait=False)
    fails = failed_lists(stack)
    assert fails[0]["status"] == "0", fails
    assert legate_requests(api) == []
    assert stack.admin("/ready")[0] != 200
