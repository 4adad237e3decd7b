"""Changing the source directory changes routing live, with no restart, and one bad
annotation never takes the others down."""

import json

import legate
from legate import mapping, parse_logfmt


def invalid_mapping_lines(lg, ns, svc):
    """The controller's warn/error log lines about ns/svc that carry a line= field."""
    out = []
    for line in lg.controller.log_text().splitlines():
        f = parse_logfmt(line)
        if f.get("level") in ("warn", "error") and f.get("ns") == ns and f.get("svc") == svc and "line" in f:
            out.append(f)
    return out


def error_for(snap, ns, svc):
    return [e for e in snap.get("errors", []) if e.get("namespace") == ns and e.get("service") == svc]


def line_of(annotation, text):
    """1-based line of the annotation whose content is exactly text."""
    return annotation.splitlines().index(text) + 1


def test_edit_changes_routing_without_restart(lg):
    a = lg.upstreams["a"]
    b = lg.start_upstream("b")
    lg.write_service("web", "default", mapping("web", "/v1/", a.addr), filename="web.yaml", atomic=False)
    lg.wait_route_set({"web"})
    assert lg.curl("/v1/x").json()["server"] == "a"
    pids = (lg.proxy.pid, lg.controller.pid)

    # Rewritten in place (as `>` or many editors do): new prefix, new upstream.
    lg.write_service("web", "default", mapping("web", "/v2/", b.addr), filename="web.yaml", atomic=False)
    lg.wait_routes(lambda s: [r.get("prefix") for r in s["routes"]] == ["/v2/"], "prefix /v2/")
    r = lg.curl("/v2/x")
    assert r.status == 200 and r.json()["server"] == "b" and r.json()["path"] == "/x", r
    assert lg.curl("/v1/x").status == 404
    assert (lg.proxy.pid, lg.controller.pid) == pids
    assert lg.proxy.alive() and lg.controller.alive()


def test_delete_file_removes_its_routes(lg):
    up = lg.upstreams["a"]
    lg.write_service("keep", "default", mapping("keep", "/keep/", up.addr), filename="keep.yaml")
    lg.write_service("drop", "default", mapping("drop", "/drop/", up.addr), filename="drop.yaml")
    lg.wait_route_set({"keep", "drop"})
    assert lg.curl("/drop/x").status == 200

    lg.delete_file("drop.yaml")
    lg.wait_route_set({"keep"})
    r = lg.curl("/drop/x")
    assert r.status == 404, r
    assert lg.curl("/keep/x").status == 200
    assert up.paths() == ["/x", "/x"]


def test_add_files_adds_routes(lg):
    up = lg.upstreams["a"]
    lg.write_service("first", "default", mapping("first", "/first/", up.addr), filename="first.yaml")
    lg.wait_route_set({"first"})
    assert lg.curl("/second/x").status == 404

    lg.write_service("second", "team", mapping("second", "/second/", up.addr), filename="second.yml")
    # A JSON manifest is read too.
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "third", "namespace": "team",
                     "annotations": {"getambassador.io/config": mapping("third", "/third/", up.addr)}},
        "spec": {"selector": {"app": "third"}, "ports": [{"port": 80}]},
    }
    lg.write_file("third.json", json.dumps(svc, indent=2))
    snap = lg.wait_route_set({("default", "first", "first"), ("team", "second", "second"),
                              ("team", "third", "third")})
    assert snap["errors"] == []
    for p in ("/first/x", "/second/x", "/third/x"):
        r = lg.curl(p)
        assert r.status == 200 and r.json()["path"] == "/x", (p, r)


def test_yaml_syntax_error_is_isolated(lg):
    up = lg.upstreams["a"]
    lg.write_service("good", "default", mapping("good", "/good/", up.addr), filename="good.yaml")
    lg.wait_route_set({"good"})

    broken = """\
        ---
        apiVersion: ambassador/v1
        kind: Mapping
        name: broken_syntax
        prefix: /broken/
          service: %s
        """ % up.addr
    _, ann = lg.write_service("broken", "shop", broken, filename="broken.yaml")
    want_line = line_of(ann, "  service: %s" % up.addr)

    snap = lg.wait_routes(lambda s: error_for(s, "shop", "broken"), "an error for shop/broken in /routes")
    errs = error_for(snap, "shop", "broken")
    assert len(errs) == 1, errs
    assert errs[0]["line"] == want_line, errs
    assert errs[0]["message"]
    assert lg.route(snap, "good") is not None
    assert lg.curl("/good/x").status == 200
    assert lg.curl("/broken/x").status == 404

    lines = legate.wait_until(lambda: invalid_mapping_lines(lg, "shop", "broken"), 5,
                              "controller log line for shop/broken")
    assert len(lines) == 1, lines
    assert int(lines[0]["line"]) == want_line, lines
    assert "mapping" in lines[0] and "field" in lines[0], lines


def test_unknown_field_is_reported_and_isolated(lg):
    up = lg.upstreams["a"]
    lg.write_service("good", "default", mapping("good", "/good/", up.addr), filename="good.yaml")
    lg.wait_route_set({"good"})

    _, ann = lg.write_service("odd", "shop", mapping("odd_mapping", "/odd/", up.addr, bogus_field=1),
                              filename="odd.yaml")
    want_line = line_of(ann, "bogus_field: 1")

    snap = lg.wait_routes(lambda s: error_for(s, "shop", "odd"), "an error for shop/odd in /routes")
    errs = error_for(snap, "shop", "odd")
    assert len(errs) == 1, errs
    e = errs[0]
    assert (e["mapping"], e["field"], e["line"]) == ("odd_mapping", "bogus_field", want_line), e
    assert e["message"]
    assert lg.curl("/good/x").status == 200

    lines = legate.wait_until(lambda: invalid_mapping_lines(lg, "shop", "odd"), 5,
                              "controller log line for shop/odd")
    assert len(lines) == 1, lines
    f = lines[0]
    assert (f["level"], f["msg"], f["mapping"], f["field"], int(f["line"])) == (
        "warn", "invalid mapping", "odd_mapping", "bogus_field", want_line), f
    assert f.get("error"), f


def test_invalid_first_document_does_not_hide_the_second(lg):
    up = lg.upstreams["a"]
    docs = mapping("first_bad", None, up.addr) + mapping("second_good", "/second/", up.addr)
    lg.write_service("two", "default", docs)
    snap = lg.wait_route_set({"second_good"})
    snap = lg.wait_routes(lambda s: error_for(s, "default", "two"), "an error for default/two")
    errs = error_for(snap, "default", "two")
    assert [(e["mapping"], e["field"]) for e in errs] == [("first_bad", "prefix")], errs
    r = lg.curl("/second/x")
    assert r.status == 200 and r.json()["path"] == "/x", r


def test_empty_document_does_not_hide_the_next(lg):
    # Ambassador 0.40 dropped everything after an empty document; Legate must not.
    up = lg.upstreams["a"]
    docs = "---\n" + mapping("after_empty", "/after/", up.addr)
    lg.write_service("empty", "default", docs)
    lg.wait_route_set({"after_empty"})
    assert lg.curl("/after/x").status == 200


def test_duplicate_mapping_name_first_service_wins(lg):
    up = lg.upstreams["a"]
    lg.write_service("s1", "default", mapping("dup", "/d1/", up.addr), filename="s1.yaml")
    lg.write_service("s2", "default", mapping("dup", "/d2/", up.addr), filename="s2.yaml")
    lg.write_service("s3", "other", mapping("dup", "/d3/", up.addr), filename="s3.yaml")
    # Same name in another namespace is another object: both live.
    snap = lg.wait_route_set({("default", "s1", "dup"), ("other", "s3", "dup")})
    snap = lg.wait_routes(lambda s: error_for(s, "default", "s2"), "an error for default/s2")
    assert [(e["mapping"], e["field"]) for e in error_for(snap, "default", "s2")] == [("dup", "name")]
    assert lg.curl("/d1/x").status == 200
    assert lg.curl("/d2/x").status == 404
    assert lg.curl("/d3/x").status == 200
