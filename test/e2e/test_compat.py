"""Ambassador compatibility, field by field, through the real controller and proxy: every
match and rewrite field of a Mapping and every routing key of the `ambassador` Module, as the
echo upstream sees the request (path, Host, headers) or as the client sees the proxy's own
answer (redirects, 403). docs/mapping-compat.md points here for each row."""

import json
import subprocess
import sys
import time

import pytest

import legate
from legate import echo_headers, mapping

TLS_ECHO = legate.REPO / "test" / "upstream" / "tls_echo.py"
sys.path.insert(0, str(legate.REPO / "test" / "upstream"))

import echo  # noqa: E402  (the upstream's /bytes/N pattern)


def module(**config):
    """The `ambassador` Module as an annotation document."""
    return ("---\napiVersion: getambassador.io/v2\nkind: Module\nname: ambassador\n"
            "config: %s\n" % json.dumps(config))


def routed(lg, docs, names, svc="compat", ns="default"):
    """Writes docs into one Service and waits until exactly `names` are routed."""
    lg.write_service(svc, ns, docs)
    return lg.wait_route_set(set(names))


def echo_of(r):
    assert r.status == 200, r
    return r.json()


def errors_of(snap, svc):
    return [e for e in snap["errors"] if e.get("service") == svc]


# ---- matching ------------------------------------------------------------------------------


def test_prefix_regex_matches_the_whole_path(lg):
    up = lg.upstreams["a"]
    routed(lg, mapping("re", "/re/[0-9]+/items", up.addr, prefix_regex=True, rewrite="")
           + mapping("re_default", "/rd/.*", up.addr, prefix_regex=True), {"re", "re_default"})
    assert echo_of(lg.curl("/re/42/items?x=1"))["path"] == "/re/42/items?x=1"
    assert lg.curl("/re/ab/items").status == 404
    assert lg.curl("/re/42/items/more").status == 404  # the whole path, not a prefix
    # rewrite (default "/") replaces what a regex matched: the whole path. Ambassador did this.
    assert echo_of(lg.curl("/rd/anything?q=2"))["path"] == "/?q=2"


def test_regex_route_before_a_trie_route_wins(lg):
    up = lg.upstreams["a"]
    # Higher precedence puts the regex route first in the table; a literal prefix that also
    # matches must not win over it.
    routed(lg, mapping("regex_first", "/o/.*", up.addr, prefix_regex=True, precedence=5,
                       rewrite="/by-regex")
           + mapping("literal", "/o/x/", up.addr, rewrite="/by-literal/"),
           {"regex_first", "literal"})
    assert echo_of(lg.curl("/o/x/y"))["path"] == "/by-regex"


def test_prefix_exact_and_case_insensitive(lg):
    up = lg.upstreams["a"]
    routed(lg, mapping("exact", "/exact", up.addr, prefix_exact=True, rewrite="")
           + mapping("nocase", "/case/", up.addr, case_sensitive=False, rewrite="/lower/"),
           {"exact", "nocase"})
    assert echo_of(lg.curl("/exact"))["path"] == "/exact"
    assert lg.curl("/exact/more").status == 404
    assert echo_of(lg.curl("/CaSe/X"))["path"] == "/lower/X"


def test_method_and_method_regex(lg):
    up = lg.upstreams["a"]
    routed(lg, mapping("m_re", "/m/", up.addr, method="GET|PUT", method_regex=True)
           + mapping("m_post", "/m/", up.addr, method="post", rewrite="/posted/"),
           {"m_re", "m_post"})
    assert echo_of(lg.curl("/m/a", "-X", "PUT"))["path"] == "/a"
    assert echo_of(lg.curl("/m/a", "-X", "POST"))["path"] == "/posted/a"
    assert lg.curl("/m/a", "-X", "DELETE").status == 404


def test_host_regex_ignores_the_request_port(lg):
    up = lg.upstreams["a"]
    routed(lg, mapping("hre", "/h/", up.addr, host="[a-z]+\\.example\\.com", host_regex=True),
           {"hre"})
    assert lg.curl("/h/x", "-H", "Host: shop.example.com").status == 200
    assert lg.curl("/h/x", "-H", "Host: shop.example.com:8080").status == 200
    assert lg.curl("/h/x", "-H", "Host: a.b.example.com").status == 404
    assert lg.curl("/h/x", "-H", "Host: other.test").status == 404
    assert len(lg.upstreams["a"].requests()) == 2


def test_headers_and_regex_headers(lg):
    up = lg.upstreams["a"]
    routed(lg, mapping("hdr", "/hd/", up.addr, headers={"x-canary": "1", "x-debug": True},
                       regex_headers={"x-version": "v[2-9]"}), {"hdr"})
    ok = ["-H", "X-Canary: 1", "-H", "X-Debug: ", "-H", "X-Version: v3"]
    # curl drops a header given as "Name: "; "Name;" sends it empty.
    ok[3] = "X-Debug;"
    assert lg.curl("/hd/x", *ok).status == 200
    assert lg.curl("/hd/x", "-H", "X-Canary: 1", "-H", "X-Debug;", "-H", "X-Version: v1").status == 404
    assert lg.curl("/hd/x", "-H", "X-Canary: 1", "-H", "X-Version: v3").status == 404


def test_query_parameters_and_regex_query_parameters(lg):
    up = lg.upstreams["a"]
    routed(lg, mapping("qp", "/q/", up.addr, query_parameters={"debug": True, "user": "Zoë Q"},
                       regex_query_parameters={"id": "[0-9]+"}, rewrite=""), {"qp"})
    r = lg.curl("/q/x?debug&user=Zo%C3%AB+Q&id=12")
    assert echo_of(r)["path"] == "/q/x?debug&user=Zo%C3%AB+Q&id=12"  # forwarded as sent
    assert lg.curl("/q/x?debug&user=Zo%C3%AB%20Q&id=007").status == 200
    assert lg.curl("/q/x?user=Zo%C3%AB+Q&id=12").status == 404  # debug missing
    assert lg.curl("/q/x?debug&user=Zoe+Q&id=12").status == 404
    assert lg.curl("/q/x?debug&user=Zo%C3%AB+Q&id=12a").status == 404


def test_query_weight_orders_routes(lg):
    up = lg.upstreams["a"]
    routed(lg, mapping("plain", "/w/", up.addr, rewrite="/plain/")
           + mapping("with_query", "/w/", up.addr, query_parameters={"v": "2"}, rewrite="/v2/"),
           {"plain", "with_query"})
    assert echo_of(lg.curl("/w/a?v=2"))["path"] == "/v2/a?v=2"
    assert echo_of(lg.curl("/w/a?v=1"))["path"] == "/plain/a?v=1"


# ---- destination and rewriting -------------------------------------------------------------


def test_service_forms(lg):
    up = lg.upstreams["a"]
    routed(lg, mapping("hostport", "/hp/", up.addr)
           + mapping("scheme", "/sc/", "http://" + up.addr), {"hostport", "scheme"})
    assert echo_of(lg.curl("/hp/x"))["server"] == "a"
    assert echo_of(lg.curl("/sc/x"))["server"] == "a"
    assert {r["upstream"] for r in lg.routes()["routes"]} == {up.addr}


def test_regex_rewrite_with_capture_groups(lg):
    up = lg.upstreams["a"]
    routed(lg, mapping("rr", "/svc/", up.addr, rewrite="/ignored/",
                       regex_rewrite={"pattern": "^/svc/([^/]+)/(.*)$",
                                      "substitution": "/\\2/instance/\\1"}), {"rr"})
    assert echo_of(lg.curl("/svc/abc/items/7?z=1"))["path"] == "/items/7/instance/abc?z=1"


def test_host_rewrite_and_auto_host_rewrite(lg):
    up = lg.upstreams["a"]
    routed(lg, mapping("hr", "/hr/", up.addr, host_rewrite="api.internal")
           + mapping("auto", "/auto/", up.addr, auto_host_rewrite=True),
           {"hr", "auto"})
    assert echo_headers(echo_of(lg.curl("/hr/x", "-H", "Host: public.test")))["host"] == [
        "api.internal"]
    # auto_host_rewrite: the upstream's host name from `service` (no port).
    assert echo_headers(echo_of(lg.curl("/auto/x", "-H", "Host: public.test")))["host"] == [
        "127.0.0.1"]


REDIRECTS = [
    # fields, request, status, Location (host is the service's as written)
    ({}, "/r/a/b?q=1", 301, "http://new.example:8080/r/a/b?q=1"),
    ({"path_redirect": "/moved"}, "/r/a?q=1", 301, "http://new.example:8080/moved?q=1"),
    ({"prefix_redirect": "/new/", "redirect_response_code": 302}, "/r/a/b", 302,
     "http://new.example:8080/new/a/b"),
    ({"regex_redirect": {"pattern": "/r/([0-9]+)", "substitution": "/item/\\1"},
      "redirect_response_code": 308}, "/r/42/x", 308, "http://new.example:8080/item/42/x"),
    ({"redirect_response_code": 307}, "/r/", 307, "http://new.example:8080/r/"),
]


@pytest.mark.parametrize("fields,target,status,location", REDIRECTS,
                         ids=["host", "path", "prefix", "regex", "307"])
def test_redirects(lg, fields, target, status, location):
    routed(lg, mapping("redir", "/r/", "new.example:8080", host_redirect=True, **fields),
           {"redir"})
    r = lg.curl(target)
    assert r.status == status, r
    assert r.header("Location") == location
    assert lg.upstreams["a"].requests() == []


def test_request_header_edits(lg):
    up = lg.upstreams["a"]
    routed(lg, mapping("edits", "/e/", up.addr,
                       add_request_headers={"x-added": "plain",
                                            "x-kept": {"value": "mine", "append": True},
                                            "x-replaced": {"value": "mine", "append": False}},
                       remove_request_headers=["x-secret", "X-Other"]), {"edits"})
    h = echo_headers(echo_of(lg.curl("/e/x", "-H", "X-Kept: client", "-H", "X-Replaced: client",
                                     "-H", "X-Secret: s", "-H", "x-other: o", "-H", "X-Stay: 1")))
    assert h["x-added"] == ["plain"]
    assert sorted(h["x-kept"]) == ["client", "mine"]
    assert h["x-replaced"] == ["mine"]
    assert "x-secret" not in h and "x-other" not in h
    assert h["x-stay"] == ["1"]


def test_response_header_edits(lg):
    up = lg.upstreams["a"]
    routed(lg, mapping("redits", "/re/", up.addr,
                       add_response_headers={"x-served-by": "legate",
                                             "Content-Type": {"value": "text/x-test",
                                                              "append": False}},
                       remove_response_headers="server"), {"redits"})
    r = lg.curl("/re/x")
    assert r.status == 200, r
    assert r.header("x-served-by") == "legate"
    assert r.header("content-type") == "text/x-test"
    assert r.header("server") is None
    assert json.loads(r.body)["server"] == "a"  # the body is untouched


def warning_lines(lg, field):
    """The controller's warn log records about field, parsed."""
    records = [legate.parse_logfmt(l) for l in lg.controller.log_text().splitlines()]
    return [f for f in records if f.get("level") == "warn" and f.get("field") == field]


def test_envoy_override_is_accepted_with_a_warning(lg):
    up = lg.upstreams["a"]
    # The Mapping is used with envoy_override ignored; the TLSContext beside it is skipped whole.
    # The log says which is which.
    routed(lg, mapping("eo", "/eo/", up.addr, envoy_override={"per_filter_config": {}})
           + "---\napiVersion: ambassador/v1\nkind: TLSContext\nname: eo_ctx\nhosts: [a]\n",
           {"eo"})
    assert lg.curl("/eo/x").status == 200
    ignored = legate.wait_until(lambda: warning_lines(lg, "envoy_override"), 5,
                                "the warning in the controller's log")
    assert [(f["msg"], f["mapping"], f["error"]) for f in ignored] == [
        ("object applied with a warning", "eo",
         "envoy_override is ignored: Legate has no Envoy to pass it to")], ignored
    skipped = legate.wait_until(lambda: warning_lines(lg, "kind"), 5, "the TLSContext's warning")
    assert [(f["msg"], f["mapping"], f["error"]) for f in skipped] == [
        ("object not applied", "eo_ctx", "kind TLSContext is not supported yet")], skipped


# ---- TLS origination -----------------------------------------------------------------------


class TLSUpstream(legate.Proc):
    """test/upstream/tls_echo.py on a free port, with a certificate made for the test."""

    def __init__(self, name, workdir):
        workdir = legate.Path(workdir)
        cert, key = workdir / ("%s.crt" % name), workdir / ("%s.key" % name)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=legate-test", "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True)
        self.port_file = workdir / ("tls-%s.port" % name)
        self.req_log = workdir / ("tls-%s.jsonl" % name)
        self.sni_log = workdir / ("tls-%s.sni" % name)
        super().__init__("tls upstream " + name,
                         [legate.PYTHON, TLS_ECHO, "--listen", "127.0.0.1:0", "--port-file",
                          self.port_file, "--name", name, "--log", self.req_log, "--cert", cert,
                          "--key", key, "--sni-log", self.sni_log],
                         workdir / ("tls-%s.log" % name))
        self.port = int(legate.wait_until(self._port, legate.START_TIMEOUT, "tls upstream port"))
        self.addr = "127.0.0.1:%d" % self.port

    def _port(self):
        if not self.alive():
            raise legate.ProcessDied("tls upstream exited: " + self.log_text())
        return self.port_file.read_text().strip() if self.port_file.exists() else None

    def snis(self):
        return self.sni_log.read_text().splitlines() if self.sni_log.exists() else []


@pytest.fixture
def tls_up(lg):
    u = TLSUpstream("t", lg.dir)
    lg.procs.append(u)
    return u


def test_https_service_originates_tls_with_sni(lg, tls_up):
    routed(lg, mapping("tls_sni", "/ts/", "https://" + tls_up.addr, host_rewrite="api.example")
           + mapping("tls_flag", "/tf/", tls_up.addr, tls=True), {"tls_sni", "tls_flag"})
    e = echo_of(lg.curl("/ts/x?k=v"))
    assert (e["server"], e["path"]) == ("t", "/x?k=v")
    assert echo_headers(e)["host"] == ["api.example"]
    assert "api.example" in tls_up.snis()  # SNI from host_rewrite
    e = echo_of(lg.curl("/tf/y", "-X", "POST", "--data-binary", "payload"))
    assert (e["path"], e["body_len"]) == ("/y", 7)
    # An IP literal is never sent as a server name.
    assert "" in tls_up.snis()
    # Several requests over the pooled TLS connection, one after another.
    for i in range(5):
        assert echo_of(lg.curl("/ts/n%d" % i))["path"] == "/n%d" % i
    assert {r["upstream"] for r in lg.routes()["routes"]} == {tls_up.addr}


def test_large_response_over_tls(lg, tls_up):
    routed(lg, mapping("tls_big", "/tb/", "https://" + tls_up.addr), {"tls_big"})
    r = lg.curl("/tb/bytes/3000000")
    assert r.status == 200, r
    assert r.body == echo.pattern_bytes(3000000)


def test_tls_to_a_plain_upstream_is_a_502(lg):
    up = lg.upstreams["a"]
    routed(lg, mapping("tls_bad", "/tx/", "https://" + up.addr), {"tls_bad"})
    r = lg.curl("/tx/x")
    assert r.status == 502, r
    assert "TLS handshake failed" in r.text


# ---- the ambassador Module -----------------------------------------------------------------


def test_use_remote_address_appends_the_peer(lg):
    up = lg.upstreams["a"]
    routed(lg, mapping("xff", "/x/", up.addr), {"xff"})
    h = echo_headers(echo_of(lg.curl("/x/a", "-H", "X-Forwarded-For: 203.0.113.7")))
    assert h["x-forwarded-for"] == ["203.0.113.7, 127.0.0.1"]


def test_use_remote_address_false_forwards_xff_unchanged(lg):
    up = lg.upstreams["a"]
    routed(lg, mapping("xff", "/x/", up.addr) + module(use_remote_address=False), {"xff"})
    h = echo_headers(echo_of(lg.curl("/x/a", "-H", "X-Forwarded-For: 203.0.113.7")))
    assert h["x-forwarded-for"] == ["203.0.113.7"]
    assert "x-forwarded-for" not in echo_headers(echo_of(lg.curl("/x/a")))


def test_ip_allow_remote_with_trusted_hops(lg):
    up = lg.upstreams["a"]
    routed(lg, mapping("ipa", "/ip/", up.addr)
           + module(xff_num_trusted_hops=1, ip_allow=[{"remote": "10.0.0.0/8"}]), {"ipa"})
    # One trusted hop: the client is the last address its proxy (the peer) appended.
    assert lg.curl("/ip/x", "-H", "X-Forwarded-For: 192.0.2.1, 10.1.2.3").status == 200
    r = lg.curl("/ip/x", "-H", "X-Forwarded-For: 10.1.2.3, 192.0.2.1")
    assert r.status == 403, r
    assert lg.curl("/ip/x").status == 403  # no XFF: the peer, 127.0.0.1
    assert len(up.requests()) == 1


def test_ip_deny_peer(lg):
    up = lg.upstreams["a"]
    routed(lg, mapping("ipd", "/ip/", up.addr) + module(ip_deny=[{"peer": "127.0.0.0/8"}],
                                                       server_name="edge-proxy"), {"ipd"})
    r = lg.curl("/ip/x", "-H", "X-Forwarded-For: 10.1.2.3")
    assert r.status == 403, r
    assert r.header("Server") == "edge-proxy"  # server_name on the proxy's own answers
    assert up.requests() == []


def test_x_forwarded_proto_redirect(lg):
    up = lg.upstreams["a"]
    routed(lg, mapping("xfp", "/p/", up.addr)
           + module(x_forwarded_proto_redirect=True, xff_num_trusted_hops=1), {"xfp"})
    r = lg.curl("/p/a?b=1", "-H", "Host: shop.test:8080", "-H", "X-Forwarded-Proto: http")
    assert r.status == 301, r
    assert r.header("Location") == "https://shop.test/p/a?b=1"
    e = echo_of(lg.curl("/p/a", "-H", "X-Forwarded-Proto: https"))
    assert echo_headers(e)["x-forwarded-proto"] == ["https"]
    assert len(up.requests()) == 1


def test_merge_slashes(lg):
    up = lg.upstreams["a"]
    routed(lg, mapping("ms", "/m/x/", up.addr, rewrite="") + module(merge_slashes=True), {"ms"})
    assert echo_of(lg.curl("//m///x//y"))["path"] == "/m/x/y"


def test_server_name_on_proxy_answers(lg):
    up = lg.upstreams["a"]
    routed(lg, mapping("sn", "/sn/", up.addr) + module(server_name="legate-edge"), {"sn"})
    r = lg.curl("/nowhere")
    assert r.status == 404 and r.header("Server") == "legate-edge", r


def test_module_defaults_apply_to_every_mapping(lg):
    up = lg.upstreams["a"]
    lg.write_service("a1", "default", mapping("own", "/own/", up.addr,
                                              add_request_headers={"x-env": "mapping"}))
    lg.write_service("mod", "default", mapping("other", "/other/", up.addr, rewrite="/")
                     + module(add_request_headers={"x-env": "module", "x-edge": "1"},
                              cluster_request_timeout_ms=400, regex_type="unsafe"))
    lg.wait_route_set({"own", "other"})
    h = echo_headers(echo_of(lg.curl("/own/x")))
    assert (h["x-env"], h["x-edge"]) == (["mapping"], ["1"])
    h = echo_headers(echo_of(lg.curl("/other/x")))
    assert (h["x-env"], h["x-edge"]) == (["module"], ["1"])
    t0 = time.monotonic()
    assert lg.curl("/other/sleep?ms=2000").status == 504
    assert time.monotonic() - t0 < 1.8
    legate.wait_until(lambda: "unsafe is treated as safe" in lg.controller.log_text(), 5,
                      "the regex_type warning in the controller's log")


def test_second_module_is_an_error(lg):
    up = lg.upstreams["a"]
    lg.write_service("m1", "default", mapping("one", "/one/", up.addr)
                     + module(server_name="first"))
    lg.write_service("m2", "default", module(server_name="second"))
    snap = lg.wait_routes(lambda s: errors_of(s, "m2"), "an error for m2")
    assert errors_of(snap, "m2")[0]["message"] == (
        'duplicate ambassador Module: Service "default/m1" defines it first and wins')
    assert lg.curl("/nowhere").header("Server") == "first"
