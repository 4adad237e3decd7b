"""Tests of the test Kubernetes API server, with the real kubectl and with
raw HTTP. Run: /usr/bin/python3 -m pytest -q test/kubeapi
"""

import http.client
import json
import socket
import ssl
import time

import pytest

from harness import KubeAPI

NS_SVC = "/api/v1/namespaces/%s/services"
TOKEN = "tok-main"

SERVICE_YAML = """\
apiVersion: v1
kind: Service
metadata:
  name: %(name)s
  annotations:
    getambassador.io/config: |
      ---
      apiVersion: ambassador/v0
      kind: Mapping
      name: %(name)s_mapping
      prefix: %(prefix)s
      service: %(name)s:80
spec:
  selector:
    app: %(name)s
  ports:
%(ports)s
"""
PORT_80 = "  - name: http\n    port: 80\n    targetPort: 8080\n"
PORT_443 = "  - name: https\n    port: 443\n    targetPort: 8443\n"


def manifest(tmp_path, name, prefix="/web/", ports=PORT_80):
    path = tmp_path / ("%s.yaml" % name)
    path.write_text(SERVICE_YAML % {"name": name, "prefix": prefix, "ports": ports.rstrip("\n")})
    return str(path)


def service(name, ns=None, port=80, labels=None, annotations=None):
    meta = {"name": name}
    if ns:
        meta["namespace"] = ns
    if labels:
        meta["labels"] = labels
    if annotations:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta,
            "spec": {"ports": [{"name": "http", "port": port}]}}


def create(api, ns, obj):
    status, out = api.post_json(NS_SVC % ns, obj)
    assert status == 201, out
    return out


def current_rv(api):
    return api.state()["resourceVersion"]


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    return str(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def api(tmp_path_factory, pki):
    with KubeAPI(tmp_path_factory.mktemp("api"), tls=True, token=TOKEN,
                 bookmark_interval=0.3, pki=pki) as server:
        yield server


@pytest.fixture
def fresh(tmp_path, pki):
    """Factory for a private server (for compaction, history, tokens)."""
    servers = []

    def start(**kw):
        kw.setdefault("pki", pki)
        server = KubeAPI(tmp_path / ("srv%d" % len(servers)), **kw)
        servers.append(server)
        return server
    yield start
    for server in servers:
        server.stop()


# -- discovery ---------------------------------------------------------------

def test_discovery_documents(api):
    status, version = api.get_json("/version")
    assert status == 200 and version["gitVersion"] == "v1.32.4" and version["minor"] == "32"
    aggregated = ("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
                  "application/json")
    status, headers, body = api.request("GET", "/apis", headers={"Accept": aggregated})
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["kind"] == "APIGroupList"
    status, versions = api.get_json("/api")
    assert versions["kind"] == "APIVersions" and versions["versions"] == ["v1"]
    status, resources = api.get_json("/api/v1")
    svc = next(r for r in resources["resources"] if r["name"] == "services")
    assert svc["singularName"] == "service" and svc["namespaced"] is True
    assert svc["kind"] == "Service" and "watch" in svc["verbs"] and svc["shortNames"] == ["svc"]
    assert any(r["name"] == "events" for r in resources["resources"])
    status, root = api.get_json("/openapi/v3")
    url = root["paths"]["api/v1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/api/v1?hash=")
    status, doc = api.get_json(url)
    op = doc["paths"]["/api/v1/namespaces/{namespace}/services/{name}"]["patch"]
    assert op["x-kubernetes-group-version-kind"] == {"group": "", "version": "v1",
                                                     "kind": "Service"}
    assert any(p["name"] == "fieldValidation" and p["in"] == "query" for p in op["parameters"])


# -- kubectl -----------------------------------------------------------------

def test_kubectl_apply_creates_then_patches(api, tmp_path):
    api.clear_requests()
    out = api.kubectl("apply", "-f", manifest(tmp_path, "web"), check=True)
    assert "service/web created" in out.stdout
    status, first = api.get_json(NS_SVC % "default" + "/web")
    assert "prefix: /web/" in first["metadata"]["annotations"]["getambassador.io/config"]
    out = api.kubectl("apply", "-f", manifest(tmp_path, "web", prefix="/web2/"), check=True)
    assert "service/web configured" in out.stdout
    status, second = api.get_json(NS_SVC % "default" + "/web")
    assert "prefix: /web2/" in second["metadata"]["annotations"]["getambassador.io/config"]
    assert int(second["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    assert second["metadata"]["uid"] == first["metadata"]["uid"]
    writes = [r for r in api.requests() if r["method"] in ("POST", "PATCH")]
    assert writes[0]["method"] == "POST" and "fieldValidation=Strict" in writes[0]["path"]
    assert writes[1]["method"] == "PATCH"
    assert writes[1]["content_type"] == "application/strategic-merge-patch+json"
    assert "fieldManager=kubectl-client-side-apply" in writes[1]["path"]


def test_kubectl_apply_removes_a_port(api, tmp_path):
    api.kubectl("apply", "-f", manifest(tmp_path, "twoports", ports=PORT_80 + PORT_443),
                check=True)
    status, svc = api.get_json(NS_SVC % "default" + "/twoports")
    assert [p["port"] for p in svc["spec"]["ports"]] == [80, 443]
    api.kubectl("apply", "-f", manifest(tmp_path, "twoports", ports=PORT_443), check=True)
    status, svc = api.get_json(NS_SVC % "default" + "/twoports")
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(443, 8443)]


def test_kubectl_annotate_add_and_remove(api):
    create(api, "default", service("annot"))
    api.clear_requests()
    api.kubectl("annotate", "svc", "annot", "k=v", check=True)
    status, svc = api.get_json(NS_SVC % "default" + "/annot")
    assert svc["metadata"]["annotations"] == {"k": "v"}
    patch = next(r for r in api.requests() if r["method"] == "PATCH")
    assert "fieldManager=kubectl-annotate" in patch["path"]
    assert patch["content_type"] == "application/merge-patch+json"
    api.kubectl("annotate", "svc", "annot", "k-", check=True)
    status, svc = api.get_json(NS_SVC % "default" + "/annot")
    assert "k" not in (svc["metadata"].get("annotations") or {})


def test_kubectl_get_json_and_table(api):
    create(api, "getns", service("alpha"))
    create(api, "getns", service("beta", port=8080))
    out = api.kubectl("get", "svc", "-n", "getns", "-o", "json", check=True)
    listed = json.loads(out.stdout)
    assert [i["metadata"]["name"] for i in listed["items"]] == ["alpha", "beta"]
    ip = listed["items"][1]["spec"]["clusterIP"]
    out = api.kubectl("get", "svc", "-n", "getns", check=True)
    lines = out.stdout.splitlines()
    assert lines[0].split()[:4] == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP"]
    assert lines[2].split()[:5] == ["beta", "ClusterIP", ip, "<none>", "8080/TCP"]


def test_kubectl_create_and_delete(api, tmp_path):
    path = manifest(tmp_path, "made")
    out = api.kubectl("create", "-f", path, check=True)
    assert "service/made created" in out.stdout
    again = api.kubectl("create", "-f", path)
    assert again.returncode != 0 and "AlreadyExists" in again.stderr
    out = api.kubectl("delete", "svc", "made", check=True)
    assert 'service "made" deleted' in out.stdout
    status, body = api.get_json(NS_SVC % "default" + "/made")
    assert status == 404 and body["reason"] == "NotFound" and body["code"] == 404


def test_kubectl_describe_shows_events_for_that_uid(api):
    svc = create(api, "desc", service("web"))
    event = {"apiVersion": "v1", "kind": "Event",
             "metadata": {"name": "web.17a8c3b2f0e1d2c3", "namespace": "desc"},
             "involvedObject": {"apiVersion": "v1", "kind": "Service", "name": "web",
                                "namespace": "desc", "uid": svc["metadata"]["uid"]},
             "reason": "InvalidMapping", "message": "mapping web_mapping: bad prefix",
             "type": "Warning", "source": {"component": "legate"},
             "firstTimestamp": "2026-01-01T10:00:00Z", "lastTimestamp": "2026-01-01T10:00:00Z",
             "count": 1}
    status, out = api.post_json("/api/v1/namespaces/desc/events", event)
    assert status == 201, out
    stale = json.loads(json.dumps(event))
    stale["metadata"]["name"] = "web.old"
    stale["involvedObject"]["uid"] = "00000000-0000-0000-0000-000000000000"
    stale["reason"] = "StaleObject"
    assert api.post_json("/api/v1/namespaces/desc/events", stale)[0] == 201
    out = api.kubectl("describe", "svc", "web", "-n", "desc", check=True)
    assert "InvalidMapping" in out.stdout and "mapping web_mapping: bad prefix" in out.stdout
    assert "legate" in out.stdout
    assert "StaleObject" not in out.stdout


def test_kubectl_with_client_cert_and_embedded_kubeconfig(fresh):
    api = fresh(tls=True, token=None, client_cert=True, embed=True)
    text = open(api.kubeconfig).read()
    assert "certificate-authority-data:" in text and "client-key-data:" in text
    out = api.kubectl("get", "ns", "-o", "name", check=True)
    assert "namespace/default" in out.stdout and "namespace/kube-system" in out.stdout
    bare = http.client.HTTPSConnection("127.0.0.1", api.port, timeout=5,
                                       context=ssl.create_default_context(cafile=api.ca_file))
    bare.request("GET", "/api/v1/services")
    assert bare.getresponse().status == 401


def test_kubectl_imperative_create_sends_protobuf(api):
    """kubectl create namespace/service/secret encode their body as protobuf;
    the stored object must equal what kubectl would send as JSON."""
    def subset(want, got, where):
        if isinstance(want, dict):
            for k, v in want.items():
                if k not in ("creationTimestamp", "status"):
                    assert k in got, "%s.%s missing" % (where, k)
                    subset(v, got[k], where + "." + k)
        else:
            assert want == got, "%s: %r != %r" % (where, want, got)
    api.clear_requests()
    for args, path in [
            (("create", "namespace", "proto"), "/api/v1/namespaces/proto"),
            (("create", "service", "nodeport", "pb", "--tcp=80:8080", "--tcp=443:https",
              "--node-port=30080", "-n", "proto"), NS_SVC % "proto" + "/pb"),
            (("create", "secret", "generic", "pbs", "--from-literal=k=v\u00e9", "-n", "proto"),
             "/api/v1/namespaces/proto/secrets/pbs")]:
        want = json.loads(api.kubectl(*args, "--dry-run=client", "-o", "json",
                                      check=True).stdout)
        api.kubectl(*args, check=True)
        status, got = api.get_json(path)
        assert status == 200
        subset(want, got, want["kind"])
    posts = [r for r in api.requests() if r["method"] == "POST"]
    assert len(posts) == 3
    assert all(r["content_type"] == "application/vnd.kubernetes.protobuf" for r in posts)


# -- events ------------------------------------------------------------------

def test_event_namespace_must_match_involved_object(api):
    event = {"metadata": {"name": "e1"}, "reason": "R", "message": "m",
             "involvedObject": {"kind": "Service", "name": "web", "namespace": "other"}}
    status, out = api.post_json("/api/v1/namespaces/default/events", event)
    assert status == 422 and out["reason"] == "Invalid"
    assert out["details"]["causes"][0]["field"] == "involvedObject.namespace"
    event["metadata"]["namespace"] = "other"
    status, out = api.post_json("/api/v1/namespaces/default/events", event)
    assert status == 400 and out["reason"] == "BadRequest"


def test_event_count_patch(api):
    event = {"metadata": {"name": "cnt.1"}, "reason": "R", "message": "m", "count": 1,
             "lastTimestamp": "2026-01-01T10:00:00Z",
             "involvedObject": {"kind": "Service", "name": "web", "namespace": "default"}}
    assert api.post_json("/api/v1/namespaces/default/events", event)[0] == 201
    path = "/api/v1/namespaces/default/events/cnt.1"
    status, out = api.patch_json(path, {"count": 2, "lastTimestamp": "2026-01-01T10:05:00Z"},
                                 "application/strategic-merge-patch+json")
    assert status == 200 and out["count"] == 2
    status, out = api.patch_json(path, {"count": 3})
    assert status == 200 and out["count"] == 3
    assert out["lastTimestamp"] == "2026-01-01T10:05:00Z" and out["message"] == "m"


# -- list ----------------------------------------------------------------------

def test_pagination_is_a_consistent_snapshot(api):
    for name in ("p1", "p2", "p3", "p4", "p5"):
        create(api, "pag", service(name))
    status, page1 = api.get_json(NS_SVC % "pag" + "?limit=2&resourceVersion=0")
    assert [i["metadata"]["name"] for i in page1["items"]] == ["p1", "p2"]
    assert page1["metadata"]["remainingItemCount"] == 3
    assert "kind" not in page1["items"][0] and "apiVersion" not in page1["items"][0]
    create(api, "pag", service("p2a"))          # after the snapshot: not in later pages
    token = page1["metadata"]["continue"]
    status, page2 = api.get_json(NS_SVC % "pag" + "?limit=2&continue=" + token)
    assert [i["metadata"]["name"] for i in page2["items"]] == ["p3", "p4"]
    assert page2["metadata"]["resourceVersion"] == page1["metadata"]["resourceVersion"]
    status, page3 = api.get_json(NS_SVC % "pag" + "?limit=2&continue=" +
                                 page2["metadata"]["continue"])
    assert [i["metadata"]["name"] for i in page3["items"]] == ["p5"]
    assert "continue" not in page3["metadata"]
    status, err = api.get_json(NS_SVC % "pag" + "?limit=2&resourceVersion=3&continue=" + token)
    assert status == 400 and err["reason"] == "BadRequest"
    status, whole = api.get_json(NS_SVC % "pag")
    assert len(whole["items"]) == 6 and int(whole["metadata"]["resourceVersion"]) > \
        int(page1["metadata"]["resourceVersion"])


def test_continue_token_expires_after_compaction(fresh):
    api = fresh(tls=False, token=None)
    for name in ("a", "b", "c"):
        create(api, "default", service(name))
    status, page1 = api.get_json(NS_SVC % "default" + "?limit=1")
    create(api, "default", service("d"))
    api.compact()
    status, err = api.get_json(NS_SVC % "default" + "?limit=1&continue=" +
                               page1["metadata"]["continue"])
    assert status == 410 and err["reason"] == "Expired" and err["code"] == 410


# -- watch ---------------------------------------------------------------------

def test_watch_from_zero_sends_synthetic_added(api):
    create(api, "w0", service("one"))
    create(api, "w0", service("two"))
    with api.watch(NS_SVC % "w0" + "?watch=true&resourceVersion=0&timeoutSeconds=1") as w:
        assert w.status == 200 and w.headers["Transfer-Encoding"] == "chunked"
        assert w.headers["Content-Type"] == "application/json"
        events = w.rest()
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == \
        [("ADDED", "one"), ("ADDED", "two")]
    assert events[0]["object"]["kind"] == "Service" and events[0]["object"]["apiVersion"] == "v1"


def test_watch_resumes_from_list_rv(api):
    create(api, "wr", service("keep"))
    create(api, "wr", service("gone"))
    status, listed = api.get_json(NS_SVC % "wr")
    rv = listed["metadata"]["resourceVersion"]
    status, patched = api.patch_json(NS_SVC % "wr" + "/keep", {"metadata": {"labels": {"v": "2"}}})
    status, deleted = api.call("DELETE", NS_SVC % "wr" + "/gone")
    path = NS_SVC % "wr" + "?watch=1&resourceVersion=%s&allowWatchBookmarks=true&timeoutSeconds=1"
    with api.watch(path % rv) as w:
        events = [e for e in w.rest() if e["type"] != "BOOKMARK"]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == \
        [("MODIFIED", "keep"), ("DELETED", "gone")]
    assert events[0]["object"]["metadata"]["labels"] == {"v": "2"}
    assert events[0]["object"]["metadata"]["resourceVersion"] == patched["metadata"]["resourceVersion"]
    assert events[1]["object"]["metadata"]["resourceVersion"] == deleted["metadata"]["resourceVersion"]
    assert int(deleted["metadata"]["resourceVersion"]) > int(patched["metadata"]["resourceVersion"])


def test_watch_live_events_then_close_keeps_connection(api):
    path = NS_SVC % "live" + "?watch=1&resourceVersion=%s" % current_rv(api)
    with api.watch(path) as w:
        create(api, "live", service("fresh"))
        ev = w.next_event(timeout=5)
        assert ev["type"] == "ADDED" and ev["object"]["metadata"]["name"] == "fresh"
        assert api.wait_for(lambda: any(x["path"] == path for x in api.watches()))
        assert api.close_watches() >= 1
        assert w.next_event(timeout=5) is None
        # The stream ended with its terminating chunk: the connection is reusable.
        w.conn.request("GET", "/version", headers={"Authorization": "Bearer " + TOKEN})
        assert w.conn.getresponse().status == 200


def test_watch_selectors_and_leaving_the_selection(api):
    create(api, "sel", service("x", labels={"team": "a"}))
    create(api, "sel", service("y", labels={"team": "a"}))
    path = NS_SVC % "sel" + "?watch=1&labelSelector=team%%3Da&resourceVersion=%s&timeoutSeconds=2"
    with api.watch(path % current_rv(api)) as w:
        api.patch_json(NS_SVC % "sel" + "/y", {"metadata": {"labels": {"team": "b"}}})
        ev = w.next_event(timeout=5)
    assert ev["type"] == "DELETED" and ev["object"]["metadata"]["name"] == "y"
    with api.watch(NS_SVC % "sel" + "?watch=1&fieldSelector=metadata.name%3Dx&timeoutSeconds=1") as w:
        events = w.rest()
    assert [e["object"]["metadata"]["name"] for e in events] == ["x"]


def test_watch_too_old_rv_is_410_in_stream(fresh):
    api = fresh(tls=False, token=None, history=3)
    start = current_rv(api)
    for name in ("a", "b", "c", "d", "e"):
        create(api, "default", service(name))
    with api.watch(NS_SVC % "default" + "?watch=1&resourceVersion=%s" % start) as w:
        assert w.status == 200
        events = w.rest(timeout=5)
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    err = events[0]["object"]
    assert err["code"] == 410 and err["reason"] == "Expired" and err["kind"] == "Status"
    assert err["message"].startswith("too old resource version: %s (" % start)
    recent = int(current_rv(api)) - 2
    with api.watch(NS_SVC % "default" + "?watch=1&resourceVersion=%d&timeoutSeconds=1" % recent) as w:
        assert [e["object"]["metadata"]["name"] for e in w.rest()] == ["d", "e"]
    api.compact()
    with api.watch(NS_SVC % "default" + "?watch=1&resourceVersion=%d" % recent) as w:
        assert [e["object"]["code"] for e in w.rest(timeout=5)] == [410]


def test_bookmarks_only_when_allowed(api):
    path = NS_SVC % "bm" + "?watch=1&resourceVersion=%s&timeoutSeconds=1" % current_rv(api)
    with api.watch(path + "&allowWatchBookmarks=true") as w:
        ev = w.next_event(timeout=3)
        assert ev["type"] == "BOOKMARK"
        assert ev["object"]["metadata"] == {"resourceVersion": current_rv(api)}
        assert ev["object"]["kind"] == "Service"
    started = time.monotonic()
    with api.watch(path) as w:
        assert w.rest(timeout=5) == []
    assert 0.8 <= time.monotonic() - started < 3


# -- writes -----------------------------------------------------------------------

def test_put_with_stale_resource_version_conflicts(api):
    svc = create(api, "put", service("web"))
    api.patch_json(NS_SVC % "put" + "/web", {"metadata": {"labels": {"a": "1"}}})
    stale = dict(svc, metadata=dict(svc["metadata"], labels={"a": "2"}))
    status, out = api.call("PUT", NS_SVC % "put" + "/web", stale)
    assert status == 409 and out["reason"] == "Conflict"
    status, fresh_obj = api.get_json(NS_SVC % "put" + "/web")
    fresh_obj["metadata"]["labels"] = {"a": "3"}
    status, out = api.call("PUT", NS_SVC % "put" + "/web", fresh_obj)
    assert status == 200 and out["metadata"]["labels"] == {"a": "3"}
    assert out["spec"]["clusterIP"] == svc["spec"]["clusterIP"]


def test_create_conflicts_and_validation(api):
    create(api, "val", service("dup"))
    status, out = api.post_json(NS_SVC % "val", service("dup"))
    assert status == 409 and out["reason"] == "AlreadyExists"
    status, out = api.post_json(NS_SVC % "val", service("badport", port=0))
    assert status == 422 and out["reason"] == "Invalid"
    assert out["details"]["causes"][0]["field"] == "spec.ports[0].port"
    bad = service("badannot")
    bad["metadata"]["annotations"] = {"n": 1}
    status, out = api.post_json(NS_SVC % "val", bad)
    assert status == 400 and out["reason"] == "BadRequest"


def test_strategic_merge_patch_directives(api):
    create(api, "smp", service("web", labels={"a": "1", "b": "2"}))
    path = NS_SVC % "smp" + "/web"
    smp = "application/strategic-merge-patch+json"
    status, out = api.patch_json(path, {"spec": {
        "$setElementOrder/ports": [{"port": 443}, {"port": 80}],
        "ports": [{"port": 443, "name": "https"}, {"port": 80, "targetPort": 8080}]}}, smp)
    assert status == 200, out
    assert [(p["port"], p.get("name"), p["targetPort"]) for p in out["spec"]["ports"]] == \
        [(443, "https", 443), (80, "http", 8080)]
    status, out = api.patch_json(path, {"spec": {"ports": [{"$patch": "delete", "port": 80}]}},
                                 smp)
    assert [p["port"] for p in out["spec"]["ports"]] == [443]
    status, out = api.patch_json(path, {"metadata": {"labels": {"$patch": "replace", "c": "3"}}},
                                 smp)
    assert out["metadata"]["labels"] == {"c": "3"}


def test_json_patch_and_failed_test_op(api):
    create(api, "jp", service("web"))
    path = NS_SVC % "jp" + "/web"
    jp = "application/json-patch+json"
    status, out = api.patch_json(path, [
        {"op": "add", "path": "/metadata/annotations", "value": {}},
        {"op": "add", "path": "/metadata/annotations/getambassador.io~1config", "value": "x"}], jp)
    assert status == 200 and out["metadata"]["annotations"] == {"getambassador.io/config": "x"}
    rv = out["metadata"]["resourceVersion"]
    status, out = api.patch_json(path, [
        {"op": "test", "path": "/spec/type", "value": "NodePort"},
        {"op": "remove", "path": "/metadata/annotations"}], jp)
    assert status == 422
    status, out = api.get_json(path)
    assert out["metadata"]["resourceVersion"] == rv and out["metadata"]["annotations"]


def test_noop_patch_keeps_resource_version(api):
    svc = create(api, "noop", service("web", labels={"a": "1"}))
    status, out = api.patch_json(NS_SVC % "noop" + "/web", {"metadata": {"labels": {"a": "1"}}})
    assert status == 200
    assert out["metadata"]["resourceVersion"] == svc["metadata"]["resourceVersion"]


# -- faults ------------------------------------------------------------------------

def test_fault_fail_with_retry_after(api):
    api.fault_fail(count=2, status=429, retry_after=1, path_prefix="/api/v1/services")
    assert api.get_json("/version")[0] == 200            # other paths pass
    for _ in range(2):
        status, headers, body = api.request("GET", "/api/v1/services?limit=1")
        out = json.loads(body)
        assert status == 429 and headers["Retry-After"] == "1"
        assert out["reason"] == "TooManyRequests" and out["details"]["retryAfterSeconds"] == 1
    assert api.get_json("/api/v1/services?limit=1")[0] == 200
    api.fault_fail(count=1, status=500, match="watch=1")
    assert api.get_json("/api/v1/services?watch=1&timeoutSeconds=1")[1]["reason"] == \
        "InternalError"


def test_fault_delay_and_hangup(api):
    api.fault_delay(ms=300, count=1, path_prefix="/api/v1/namespaces")
    started = time.monotonic()
    assert api.get_json("/api/v1/namespaces")[0] == 200
    assert time.monotonic() - started >= 0.3
    api.fault_hangup(count=1, path_prefix="/api/v1/namespaces")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        api.get_json("/api/v1/namespaces")
    assert api.get_json("/api/v1/namespaces")[0] == 200
    api.fault_fail(count=5, status=503)
    api.reset()
    assert api.get_json("/api/v1/namespaces")[0] == 200


def raw_watch(api, path, action):
    """Send a watch over a bare socket, call action(), then return every
    byte the server sent until it closed the connection."""
    sock = socket.create_connection(("127.0.0.1", api.port), timeout=5)
    sock = ssl.create_default_context(cafile=api.ca_file).wrap_socket(
        sock, server_hostname="127.0.0.1")
    sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                  "Connection: close\r\n\r\n" % (path, TOKEN)).encode())
    api.wait_for(lambda: any(w["path"] == path for w in api.watches()))
    action()
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ssl.SSLError:
            break
        if not chunk:
            break
        data += chunk
    sock.close()
    return data


def test_close_watches_clean_end_or_abort(api):
    path = NS_SVC % "ab" + "?watch=1&resourceVersion=0"
    data = raw_watch(api, path, lambda: api.close_watches())
    assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b"\r\n0\r\n\r\n")
    data = raw_watch(api, path + "&x=1", lambda: api.close_watches(abort=True))
    assert data.startswith(b"HTTP/1.1 200 OK") and not data.endswith(b"0\r\n\r\n")


# -- auth ----------------------------------------------------------------------------

def test_tokens_and_rotation(fresh):
    api = fresh(tls=True, token="first")
    assert api.get_json("/api/v1/services")[0] == 200
    status, out = api.get_json("/api/v1/services", token="wrong")
    assert status == 401 and out["reason"] == "Unauthorized" and out["kind"] == "Status"
    assert api.get_json("/api/v1/services", token=None)[0] == 401
    api.rotate_token("second")
    assert api.get_json("/api/v1/services", token="first")[0] == 401
    assert api.get_json("/api/v1/services", token="second")[0] == 200
    out = api.kubectl("get", "svc")         # its kubeconfig still holds "first"
    assert out.returncode != 0 and "must be logged in" in out.stderr


# -- logs and state ------------------------------------------------------------------

def test_request_log_file_records_watches(fresh):
    api = fresh(tls=False, token=None)
    with api.watch(NS_SVC % "default" + "?watch=true&resourceVersion=0&timeoutSeconds=1") as w:
        w.rest()
    api.get_json(NS_SVC % "default" + "/missing")
    with open(api.request_log) as f:
        entries = [json.loads(line) for line in f]
    watch = [e for e in entries if "watch=true&resourceVersion=0" in e["path"]]
    assert len(watch) == 1 and watch[0]["status"] == 200 and watch[0]["watch"] is True
    miss = entries[-1]
    assert miss["method"] == "GET" and miss["status"] == 404 and miss["duration_ms"] >= 0
    assert api.requests()[-1]["path"] == NS_SVC % "default" + "/missing"


def test_state_file_yaml_and_large_rv(fresh, tmp_path):
    state = SERVICE_YAML % {"name": "seeded", "prefix": "/seed/", "ports": PORT_80.rstrip()}
    api = fresh(tls=False, token=None, state=state, initial_rv=2 ** 40)
    status, svc = api.get_json(NS_SVC % "default" + "/seeded")
    assert status == 200
    assert svc["metadata"]["annotations"]["getambassador.io/config"].splitlines()[4] == \
        "prefix: /seed/"
    assert int(svc["metadata"]["resourceVersion"]) > 2 ** 40
    assert svc["spec"]["ports"][0]["targetPort"] == 8080
