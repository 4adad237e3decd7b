"""The proxy keeps serving whatever happens to the controller, and the two converge again
after either restarts."""

import signal
import time

import pytest

import legate
from legate import mapping


def test_controller_killed_proxy_keeps_serving_new_controller_converges(lg):
    up = lg.upstreams["a"]
    lg.write_service("svc", "default", mapping("before", "/before/", up.addr), filename="svc.yaml")
    snap1 = lg.wait_route_set({"before"})
    assert lg.curl("/before/x").status == 200

    old = lg.controller
    old.kill(signal.SIGKILL)
    # Without a controller the last table stays in force.
    for _ in range(3):
        r = lg.curl("/before/x")
        assert r.status == 200 and r.json()["path"] == "/x", r
    assert lg.admin("/ready")[0] == 200
    assert lg.proxy.alive()

    # Changed while no controller runs: only the new controller can bring it in.
    lg.write_service("svc", "default", mapping("after", "/after/", up.addr), filename="svc.yaml")
    assert lg.curl("/after/x").status == 404
    lg.start_controller()
    snap2 = lg.wait_route_set({"after"})
    assert snap2["version"] > snap1["version"], (snap1["version"], snap2["version"])
    r = lg.curl("/after/x")
    assert r.status == 200 and r.json()["path"] == "/x", r
    assert lg.curl("/before/x").status == 404


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_proxy_restart_converges_within_2s(lg, sig):
    up = lg.upstreams["a"]
    lg.write_service("svc", "default", mapping("svc", "/svc/", up.addr))
    lg.wait_route_set({"svc"})
    controller_pid = lg.controller.pid

    lg.proxy.kill(sig)
    t0 = time.monotonic()
    lg.start_proxy(wait=False)  # same ports, same socket path

    # The controller reconnects on its own and pushes the table it has.
    lg.wait_route_set({"svc"}, timeout=5)
    legate.wait_until(lambda: lg.curl("/svc/x").status == 200, 5, "GET /svc/x routed")
    took = time.monotonic() - t0
    assert lg.admin("/ready")[0] == 200
    assert took < 2.0, "converged after %.2fs" % took
    assert lg.controller.pid == controller_pid and lg.controller.alive()


def test_controller_started_before_proxy_converges(stack):
    up = stack.start_upstream("a")
    stack.write_service("svc", "default", mapping("svc", "/svc/", up.addr))
    stack.start_controller()
    # Deliberately no proxy for a moment: the controller must meet a missing socket, keep
    # running, and connect once the proxy is there.
    t0 = time.monotonic()
    while time.monotonic() - t0 < 0.3:
        assert stack.controller.alive(), stack.controller.log_text()
        time.sleep(0.05)
    stack.start_proxy()
    stack.wait_route_set({"svc"})
    r = stack.curl("/svc/x")
    assert r.status == 200 and r.json()["path"] == "/x", r


def test_reconfiguration_under_load_drops_nothing(stack):
    """Tables swap while requests flow: no request on a route present in every table may
    fail, be reset, or reach the wrong upstream (the proxy never re-binds or drains)."""
    stack.start(upstreams=("a", "b"))
    a, b = stack.upstreams["a"], stack.upstreams["b"]
    base = mapping("to_a", "/a/", a.addr) + mapping("to_b", "/b/", b.addr)
    stack.write_service("load", "default", base, filename="load.yaml")
    stack.wait_route_set({"to_a", "to_b"})
    first = stack.routes()["version"]

    def request(k, i):
        prefix, server = ("/a/", "a") if (i + k) % 2 else ("/b/", "b")
        path = "%sc%d-%d" % (prefix, k, i)
        return path, {"path": path[2:], "server": server}

    with legate.Load(stack.port, 8, 3.0, request) as load:
        n = 0
        while time.monotonic() < load.stop - 0.3:
            n += 1
            extra = mapping("extra%d" % n, "/extra%d/" % n, a.addr)
            stack.write_service("load", "default", base + extra, filename="load.yaml")
            stack.wait_routes(lambda s, n=n: any(r["mapping"] == "extra%d" % n for r in s["routes"]),
                              "extra%d applied" % n)
    assert load.wrong == [], load.wrong[:10]
    assert n >= 5 and stack.routes()["version"] > first
    assert load.ok > 100, load.ok
