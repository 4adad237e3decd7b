"""The controller's Kubernetes API source, end to end: real kubectl against the test API server
(TLS and a bearer token), the real controller listing and watching it, the real proxy routing
to echo upstreams. Every change is made with kubectl and checked through the proxy."""

import pytest

import legate
from kube_helpers import (api_running, kubectl_annotate, kubectl_apply, legate_requests,
                          log_lines, needs_kube_controller, is_service_list, is_watch, query,
                          start_kube_controller)
from legate import mapping

pytestmark = needs_kube_controller


@pytest.fixture
def kst(stack, api):
    """Upstream a, the proxy and a controller on the API server, ready (a first table)."""
    stack.start_upstream("a")
    stack.start_proxy()
    start_kube_controller(stack, api)
    return stack


def events_of(api, ns, svc):
    """The Events whose involvedObject is Service ns/svc (what kubectl describe shows)."""
    st, lst = api.get_json("/api/v1/namespaces/%s/events?fieldSelector=involvedObject.name=%s,"
                           "involvedObject.kind=Service" % (ns, svc))
    assert st == 200, lst
    return lst["items"]


def test_apply_annotate_and_remove_change_routing_live(kst, api, tmp_path):
    up = kst.upstreams["a"]
    kubectl_apply(api, tmp_path, "web", "default", mapping("web", "/v1/", up.addr))
    kst.wait_route_set({("default", "web", "web")})
    r = kst.curl("/v1/x")
    assert r.status == 200 and r.json()["path"] == "/x", r
    pids = (kst.proxy.pid, kst.controller.pid)

    # A changed prefix: the new route answers, the old one is gone.
    kubectl_annotate(api, "web", "default", mapping("web", "/v2/", up.addr))
    kst.wait_routes(lambda s: [r.get("prefix") for r in s["routes"]] == ["/v2/"], "prefix /v2/")
    assert kst.curl("/v2/x").status == 200
    assert kst.curl("/v1/x").status == 404

    # The annotation removed: no routes from this Service.
    api.kubectl("annotate", "service", "web", "getambassador.io/config-", check=True)
    kst.wait_route_set(set())
    assert kst.curl("/v2/x").status == 404

    # Back, then the Service deleted.
    kubectl_annotate(api, "web", "default", mapping("web", "/v3/", up.addr))
    kst.wait_route_set({"web"})
    api.kubectl("delete", "service", "web", check=True)
    kst.wait_route_set(set())
    assert kst.curl("/v3/x").status == 404
    assert (kst.proxy.pid, kst.controller.pid) == pids

    # All of it over one list and one long watch: no relists, no errors.
    reqs = legate_requests(api)
    lists = [r for r in reqs if is_service_list(r)]
    assert len(lists) == 1, lists
    q = query(lists[0])
    assert (q.get("limit"), q.get("resourceVersion")) == ("500", "0"), lists[0]
    watches = [r for r in reqs if is_watch(r)]
    assert len(watches) == 1, watches
    wq = query(watches[0])
    assert wq["allowWatchBookmarks"] == "true" and 300 <= int(wq["timeoutSeconds"]) < 600, wq
    assert not log_lines(kst.controller, "watch failed")
    assert not log_lines(kst.controller, "list failed")


def test_services_present_at_start_and_other_namespaces(stack, api, tmp_path):
    up = stack.start_upstream("a")
    kubectl_apply(api, tmp_path, "one", "default", mapping("one", "/one/", up.addr))
    api.kubectl("create", "namespace", "team", check=True)
    kubectl_apply(api, tmp_path, "two", "team", mapping("two", "/two/", up.addr))
    stack.start_proxy()
    start_kube_controller(stack, api)
    # The first table the proxy gets already holds both: it is sent after the first list.
    snap = stack.wait_route_set({("default", "one", "one"), ("team", "two", "two")})
    assert stack.curl("/two/x").status == 200
    assert snap["errors"] == []


def test_namespace_flag_watches_one_namespace(stack, api, tmp_path):
    up = stack.start_upstream("a")
    api.kubectl("create", "namespace", "team", check=True)
    kubectl_apply(api, tmp_path, "mine", "team", mapping("mine", "/mine/", up.addr))
    kubectl_apply(api, tmp_path, "theirs", "default", mapping("theirs", "/theirs/", up.addr))
    stack.start_proxy()
    start_kube_controller(stack, api, extra=["--namespace", "team"])
    stack.wait_route_set({"mine"})
    kubectl_apply(api, tmp_path, "more", "team", mapping("more", "/more/", up.addr))
    kubectl_apply(api, tmp_path, "other", "default", mapping("other", "/other/", up.addr))
    stack.wait_route_set({"mine", "more"})
    assert stack.curl("/theirs/x").status == 404
    # Namespaced URLs only, so a Role is enough.
    for r in legate_requests(api):
        assert r["path"].startswith("/api/v1/namespaces/team/"), r


def test_invalid_mapping_gets_a_warning_event_and_the_rest_keeps_routing(kst, api, tmp_path):
    up = kst.upstreams["a"]
    kubectl_apply(api, tmp_path, "good", "default", mapping("good", "/good/", up.addr))
    kst.wait_route_set({"good"})
    bad = mapping("bad_mapping", None, up.addr)  # no prefix
    kubectl_apply(api, tmp_path, "bad", "default", bad)
    snap = kst.wait_routes(lambda s: any(e["service"] == "bad" for e in s["errors"]),
                           "error for bad")
    err = [e for e in snap["errors"] if e["service"] == "bad"][0]
    assert kst.curl("/good/x").status == 200

    evs = legate.wait_until(lambda: events_of(api, "default", "bad"), 10, "an Event on bad")
    assert len(evs) == 1, evs
    ev = evs[0]
    st, svc = api.get_json("/api/v1/namespaces/default/services/bad")
    assert ev["involvedObject"]["uid"] == svc["metadata"]["uid"], ev
    assert (ev["type"], ev["reason"], ev["source"]["component"]) == (
        "Warning", "InvalidMapping", "legate"), ev
    assert "bad_mapping" in ev["message"] and "prefix" in ev["message"], ev
    assert "line %d" % err["line"] in ev["message"] and err["message"] in ev["message"], ev
    assert ev["metadata"]["name"].startswith("bad.") and len(ev["metadata"]["name"]) == 20, ev
    assert ev["count"] == 1

    # kubectl describe shows it (it matches on kind, name, namespace and uid).
    out = api.kubectl("describe", "service", "bad", check=True).stdout
    assert "InvalidMapping" in out and "bad_mapping" in out, out

    # Fixed: a Normal Event says so; the route appears.
    kubectl_annotate(api, "bad", "default", mapping("bad_mapping", "/bad/", up.addr))
    kst.wait_route_set({"good", "bad_mapping"})
    evs = legate.wait_until(lambda: [e for e in events_of(api, "default", "bad")
                                     if e["type"] == "Normal"], 10, "a Normal Event on bad")
    assert evs[0]["reason"] == "MappingsValid", evs

    # Broken the same way again: the Warning is a repeat, PATCHed (count 2), not a new Event.
    kubectl_annotate(api, "bad", "default", bad)
    warn = legate.wait_until(lambda: [e for e in events_of(api, "default", "bad")
                                      if e["type"] == "Warning" and e["count"] == 2], 10,
                             "the Warning with count 2")
    assert len([e for e in events_of(api, "default", "bad") if e["type"] == "Warning"]) == 1
    assert warn[0]["lastTimestamp"] >= warn[0]["firstTimestamp"]
    patches = [r for r in legate_requests(api) if r["method"] == "PATCH"]
    assert len(patches) == 1 and patches[0]["status"] == 200, patches
    # The good Service never got an Event.
    assert events_of(api, "default", "good") == []


def test_event_post_failures_never_touch_routing(kst, api, tmp_path):
    up = kst.upstreams["a"]
    # As without RBAC for events: every post is forbidden.
    api.fault_fail(count=1000, status=403, path_prefix="/api/v1/namespaces/default/events")
    for i in range(3):
        kubectl_apply(api, tmp_path, "bad%d" % i, "default", mapping("b%d" % i, None, up.addr))
    kubectl_apply(api, tmp_path, "good", "default", mapping("good", "/good/", up.addr))
    kst.wait_routes(lambda s: len(s["errors"]) == 3 and len(s["routes"]) == 1, "3 errors, 1 route")
    assert kst.curl("/good/x").status == 200
    posts = legate.wait_until(lambda: [r for r in legate_requests(api) if r["method"] == "POST"],
                              10, "event posts")
    assert all(r["status"] == 403 for r in posts), posts
    # Logged once for the kind of failure, not once per Event.
    legate.wait_until(lambda: log_lines(kst.controller, "cannot post Kubernetes Events "
                                                        "(logged once per kind of failure)"),
                      10, "the failure log line")
    kubectl_annotate(api, "good", "default", mapping("good", "/good2/", up.addr))
    kst.wait_routes(lambda s: any(r["prefix"] == "/good2/" for r in s["routes"]), "/good2/")
    lines = log_lines(kst.controller, "cannot post Kubernetes Events (logged once per kind of "
                                      "failure)")
    assert len(lines) == 1 and lines[0]["status"] == "403", lines


def test_no_secrets_in_the_log(kst, api, tmp_path):
    up = kst.upstreams["a"]
    kubectl_apply(api, tmp_path, "web", "default", mapping("web", "/web/", up.addr))
    kst.wait_route_set({"web"})
    text = kst.controller.log_text()
    assert api.token not in text
    assert "Bearer" not in text and "Authorization" not in text


def test_bad_kubeconfig_exits_2_with_the_reason(stack, tmp_path):
    c = legate.Proc("controller", [legate.CONTROLLER_BIN, "--control-socket", stack.sock,
                                   "--kubeconfig", tmp_path / "nope"], tmp_path / "c.log",
                    env={"KUBERNETES_SERVICE_HOST": ""})
    assert c.popen.wait(10) == 2
    c.expected_exit = True
    c.logf.close()
    assert "nope" in c.log_text()


def test_nothing_to_talk_to_exits_2_saying_what_was_tried(stack, tmp_path):
    c = legate.Proc("controller", [legate.CONTROLLER_BIN, "--control-socket", stack.sock],
                    tmp_path / "c.log", env={"KUBERNETES_SERVICE_HOST": "", "KUBECONFIG": "",
                                             "HOME": str(tmp_path)})
    assert c.popen.wait(10) == 2
    c.expected_exit = True
    c.logf.close()
    text = c.log_text()
    assert "KUBERNETES_SERVICE_HOST" in text and ".kube/config" in text, text


def test_list_is_paginated_and_applied_whole(stack, tmp_path, pki):
    # 1200 Services, one with a Mapping: three pages of 500, one route, one compile.
    up = stack.start_upstream("a")
    items = []
    for i in range(1200):
        md = {"name": "s%04d" % i, "namespace": "default"}
        if i == 777:
            md["annotations"] = {"getambassador.io/config": mapping("m777", "/m/", up.addr)}
        items.append({"apiVersion": "v1", "kind": "Service", "metadata": md,
                      "spec": {"ports": [{"port": 80}]}})
    with api_running(tmp_path, pki, state=items) as api:
        stack.start_proxy()
        start_kube_controller(stack, api)
        stack.wait_route_set({"m777"})
        assert stack.curl("/m/x").status == 200
        pages = [r for r in legate_requests(api) if is_service_list(r)]
        assert [query(p).get("limit") for p in pages] == ["500", "500", "500"], pages
        assert query(pages[0]).get("resourceVersion") == "0", pages
        for p in pages[1:]:
            assert "continue" in query(p) and "resourceVersion" not in query(p), pages
        done = log_lines(stack.controller, "list done")
        assert done[0]["count"] == "1200" and done[0]["pages"] == "3", done
        # Applied whole: the proxy got one table, after the last page.
        compiled = log_lines(stack.controller, "compiled")
        assert len(compiled) == 1 and compiled[0]["routes"] == "1", compiled
        watch = [r for r in legate_requests(api) if is_watch(r)]
        assert query(watch[0])["resourceVersion"] == done[0]["rv"], (watch, done)


def test_expired_continue_token_lists_again_without_limit(stack, tmp_path, pki):
    up = stack.start_upstream("a")
    items = [{"apiVersion": "v1", "kind": "Service",
              "metadata": {"name": "s%03d" % i, "namespace": "default",
                           "annotations": {"getambassador.io/config":
                                           mapping("m%03d" % i, "/p%03d/" % i, up.addr)}},
              "spec": {"ports": [{"port": 80}]}} for i in range(600)]
    with api_running(tmp_path, pki, state=items) as api:
        # The second page's continue token has expired (as after an etcd compaction).
        api.fault_fail(count=1, status=410, match="continue=", message="The provided continue "
                       "parameter is too old to display a consistent list result.")
        stack.start_proxy()
        start_kube_controller(stack, api)
        snap = stack.wait_routes(lambda s: len(s["routes"]) == 600, "600 routes")
        assert snap["errors"] == []
        assert stack.curl("/p599/x").status == 200
        lists = [r for r in legate_requests(api) if is_service_list(r)]
        assert [r["status"] for r in lists] == [200, 410, 200], lists
        assert "limit" not in query(lists[2]) and "continue" not in query(lists[2]), lists
        done = log_lines(stack.controller, "list done")
        assert len(done) == 1 and done[0]["count"] == "600", done
