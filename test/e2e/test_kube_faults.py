"""The Kubernetes source survives what API servers do: watches closed, history compacted (410),
errors (500, 429), rotated tokens (401). Each case converges without a restart, and the API
server's request log shows what the controller asked: never a hot loop, and a watch that
resumes from a resourceVersion rather than relisting when it can."""

import time

import legate
from kube_helpers import (is_service_list, is_watch, kubectl_annotate, kubectl_apply,
                          legate_requests, log_lines, needs_kube_controller, query, rotate_file,
                          start_kube_controller, write_serviceaccount)
from kubeconfig import write_kubeconfig  # test/kubeapi, on sys.path through kube_helpers
from legate import mapping

pytestmark = needs_kube_controller

SLOW = legate.SLOW


def start(stack, api, tmp_path, **kw):
    """Upstream a, proxy, controller; Service web routed at /v1/. Returns the upstream."""
    up = stack.start_upstream("a")
    stack.start_proxy()
    start_kube_controller(stack, api, **kw)
    kubectl_apply(api, tmp_path, "web", "default", mapping("web", "/v1/", up.addr))
    stack.wait_route_set({"web"})
    return up


def change_and_wait(stack, api, up, prefix, timeout=None):
    """Annotates web with a new prefix and waits until the proxy routes it."""
    kubectl_annotate(api, "web", "default", mapping("web", prefix, up.addr))
    stack.wait_routes(lambda s: [r.get("prefix") for r in s["routes"]] == [prefix],
                      "prefix %s" % prefix, timeout=timeout)
    assert stack.curl(prefix + "x").status == 200


def watches(api):
    return [r for r in legate_requests(api) if is_watch(r)]


def test_closed_watch_resumes_from_the_last_resource_version(stack, api, tmp_path):
    up = start(stack, api, tmp_path)
    change_and_wait(stack, api, up, "/v2/")
    _, svc = api.get_json("/api/v1/namespaces/default/services/web")
    seen = int(svc["metadata"]["resourceVersion"])

    assert api.close_watches() >= 1
    legate.wait_until(lambda: len(watches(api)) >= 2, 10 * SLOW, "a second watch")
    w = watches(api)
    rv = query(w[1])["resourceVersion"]
    # From where it was (the last event or a later bookmark), not from 0, and with no relist.
    assert int(rv) >= seen, (rv, seen)
    assert int(query(w[1])["resourceVersion"]) >= int(query(w[0])["resourceVersion"])
    assert len([r for r in legate_requests(api) if is_service_list(r)]) == 1
    ended = log_lines(stack.controller, "watch ended")
    assert ended and ended[-1]["next"] == "watch", ended
    change_and_wait(stack, api, up, "/v3/")


def test_compacted_history_relists_and_drops_what_vanished(stack, api, tmp_path):
    up = start(stack, api, tmp_path)
    kubectl_apply(api, tmp_path, "gone", "default", mapping("gone", "/gone/", up.addr))
    stack.wait_route_set({"web", "gone"})

    # The deletion happens while the watch delivers nothing, then history is compacted past
    # it and the watch is closed: only a relist can tell the controller that gone is gone.
    api.stall_watches(True)
    api.kubectl("delete", "service", "gone", check=True)
    api.compact()
    api.close_watches()
    api.stall_watches(False)

    stack.wait_route_set({"web"})
    assert stack.curl("/gone/x").status == 404
    assert stack.curl("/v1/x").status == 200

    reqs = legate_requests(api)
    lists = [r for r in reqs if is_service_list(r)]
    assert len(lists) == 2, lists
    # The relist asks for the current state (no resourceVersion: ours is gone).
    assert "resourceVersion" not in query(lists[1]) and query(lists[1])["limit"] == "500", lists
    done = legate.wait_until(lambda: log_lines(stack.controller, "list done")[1:], 5, "list done")
    assert done[0]["removed"] == "1", done
    # Then it watches from the new list's resourceVersion.
    last = legate.wait_until(lambda: [r for r in legate_requests(api) if is_watch(r)
                                      and r["time"] > lists[1]["time"]], 5, "a watch after relist")
    assert query(last[0])["resourceVersion"] == done[0]["rv"], (last, done)
    ended = [e for e in log_lines(stack.controller, "watch ended") if e["next"] == "relist"]
    assert ended and "Expired" in ended[0]["reason"], ended
    change_and_wait(stack, api, up, "/v2/")


def test_five_500s_back_off_and_converge(stack, api, tmp_path):
    up = start(stack, api, tmp_path)
    api.clear_requests()
    api.fault_fail(count=5, status=500, path_prefix="/api/v1/services")
    api.close_watches()
    t0 = time.monotonic()
    # Backoff 0.8, 1.6, 3.2, 6.4 and 12.8 s at least (twice that at most) before it is back.
    change_and_wait(stack, api, up, "/v2/", timeout=60 * SLOW)
    took = time.monotonic() - t0

    reqs = legate_requests(api)
    failed = [r for r in reqs if r["status"] == 500]
    assert len(failed) == 5, failed
    assert took >= 24.0, took
    # Never a hot loop: each retry waited at least the backoff step, which doubled.
    ts = [time.mktime(time.strptime(r["time"][:19], "%Y-%m-%dT%H:%M:%S")) +
          float("0." + r["time"][20:-1]) for r in failed]
    gaps = [b - a for a, b in zip(ts, ts[1:])]
    for i, g in enumerate(gaps):
        assert g >= 0.8 * 2 ** i * 0.95, gaps
        assert g < 30.0, gaps
    # Bounded: the 5 failures, one successful list and one watch.
    services = [r for r in reqs if "/services" in r["path"] and r["method"] == "GET"]
    assert len(services) == 7, services
    warns = log_lines(stack.controller, "watch failed") + log_lines(stack.controller, "list failed")
    assert len(warns) == 5 and all(int(w["backoff_ms"]) >= 800 for w in warns), warns
    assert {w["status"] for w in warns} == {"500"}, warns


def test_429_backs_off_and_keeps_the_resource_version(stack, api, tmp_path):
    up = start(stack, api, tmp_path)
    api.clear_requests()
    api.fault_fail(count=2, status=429, match="watch=true", retry_after=1)
    api.close_watches()
    legate.wait_until(lambda: [r for r in watches(api) if r["status"] == 200], 15 * SLOW,
                      "a watch after the 429s")
    w = watches(api)
    assert [r["status"] for r in w] == [429, 429, 200], w
    assert len({query(r)["resourceVersion"] for r in w}) == 1, w
    assert not [r for r in legate_requests(api) if is_service_list(r)]
    change_and_wait(stack, api, up, "/v2/")


def test_rotated_token_401_rereads_the_file_and_retries_at_once(stack, api, tmp_path):
    sa = write_serviceaccount(tmp_path / "sa", api.token, api.ca_file)
    env = {"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(api.port),
           "KUBECONFIG": ""}
    up = start(stack, api, tmp_path, kubeconfig=False, env=env,
               extra=["--serviceaccount-dir", str(sa)])
    assert log_lines(stack.controller, "kubernetes source")[0]["config"] == "in-cluster"

    # kubelet rotates the projected token; the old one stops working at once.
    rotate_file(sa / "token", "t0k3n-two\n")
    api.rotate_token("t0k3n-two")
    write_kubeconfig(api.kubeconfig, api.url, ca=api.ca_file, token="t0k3n-two")  # for kubectl
    api.clear_requests()
    api.close_watches()
    legate.wait_until(lambda: [r for r in watches(api) if r["status"] == 200], 10 * SLOW,
                      "a watch with the new token")
    w = watches(api)
    assert [r["status"] for r in w] == [401, 200], w
    assert query(w[0])["resourceVersion"] == query(w[1])["resourceVersion"], w
    ts = [r["time"] for r in w]
    assert ts[1] >= ts[0]
    # Retried at once (no backoff), and no relist.
    t = [time.mktime(time.strptime(x[:19], "%Y-%m-%dT%H:%M:%S")) + float("0." + x[20:-1])
         for x in ts]
    assert t[1] - t[0] < 0.7, ts
    assert not [r for r in legate_requests(api) if is_service_list(r)]
    change_and_wait(stack, api, up, "/v2/")
    assert "t0k3n" not in stack.controller.log_text()
