#!/usr/bin/python3
"""A test Kubernetes API server that behaves like kube-apiserver on the wire
for what Legate's controller and kubectl use: discovery, OpenAPI stubs,
Services, Events, Namespaces (and simple Endpoints, ConfigMaps, Secrets),
list with pagination, watch with history, bookmarks and 410 Expired,
bearer-token and client-certificate auth, and a /_test/ control plane for
fault injection. See README.md beside this file.

This file holds the HTTP side: connection handling (TLS handshake per
connection thread, keep-alive, chunked watch streams), auth, routing and
the command line. REST semantics live in rest.py, storage in objstore.py.

Python 3 standard library only. Run with /usr/bin/python3.
"""

import argparse
import itertools
import json
import os
import select
import signal
import socket
import ssl
import sys
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import control  # noqa: E402
import discovery  # noqa: E402
import miniyaml  # noqa: E402
import rest  # noqa: E402
from kinds import BY_KIND, RESOURCES, now_rfc3339  # noqa: E402
from objstore import Expired, Store  # noqa: E402
from rest import ApiError, bad_request  # noqa: E402

MAX_BODY = 3 * 1024 * 1024          # kube-apiserver's request size limit
DRAIN_LIMIT = 64 * 1024 * 1024      # bytes of an oversized body read before answering
DEFAULT_WATCH_TIMEOUT = 1800        # --min-request-timeout
IDLE_TIMEOUT = 600                  # keep-alive connections idle this long are closed
HANDSHAKE_TIMEOUT = 10
SEED_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")


def encode(obj):
    """Compact JSON as Go's encoder writes it: UTF-8, with <, > and &
    escaped, and U+2028/U+2029 escaped."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    text = text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return text.encode("utf-8")


def parse_bool(text):
    return (text or "").lower() in ("1", "t", "true")


class BodyError(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT

    # -- plumbing ---------------------------------------------------------

    def setup(self):
        super().setup()
        self.conn_id = next(self.server.conn_ids)
        self.conn_requests = 0

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write("kubeapi: %s %s\n" % (self.address_string(), fmt % args))

    def send_response(self, code, message=None):
        # kube-apiserver sends no Server header.
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())
        self.status_sent = code

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts, total = [], 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise BodyError("bad chunk size")
                if size == 0:
                    while self.rfile.readline(1024).strip():
                        pass
                    return b"".join(parts)
                total += size
                if total > MAX_BODY:
                    raise BodyError("too large")
                parts.append(self.rfile.read(size))
                self.rfile.readline(16)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise BodyError("bad Content-Length")
        if length > MAX_BODY:
            # Read the rest (up to a bound) so the client gets to see the 413
            # instead of a broken pipe; the connection is closed after it.
            left = min(length, DRAIN_LIMIT)
            while left > 0:
                got = self.rfile.read(min(left, 65536))
                if not got:
                    break
                left -= len(got)
            raise BodyError("too large")
        return self.rfile.read(length) if length > 0 else b""

    def send_body(self, code, data, ctype="application/json", headers=None):
        self.send_response(code)
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        # Log before the answer leaves, so a client that got it finds it logged.
        self.record()
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_json(self, code, obj, ctype="application/json", headers=None):
        data = encode(obj) + b"\n"
        if parse_bool(self.query.get("pretty")):
            data = json.dumps(obj, indent=2, ensure_ascii=False).encode() + b"\n"
        self.send_body(code, data, ctype, headers)

    def record(self, stream=False):
        if self.logged or self.control_request:
            return
        self.logged = True
        self.server.request_log.add({
            "method": self.command, "path": self.path, "status": self.status_sent or 0,
            "duration_ms": round((time.monotonic() - self.t0) * 1000, 3),
            "user_agent": self.headers.get("User-Agent", ""),
            "content_type": self.headers.get("Content-Type", ""),
            "peer": "%s:%s" % self.client_address[:2], "conn": self.conn_id,
            "conn_request": self.conn_requests, "watch": stream})

    # -- request entry ----------------------------------------------------

    def dispatch(self, method):
        self.t0 = time.monotonic()
        self.status_sent = None
        self.logged = False
        self.conn_requests += 1
        url = urlsplit(self.path)
        self.req_path = url.path
        self.query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        self.control_request = url.path.startswith("/_test/")
        try:
            try:
                body = self.read_body()
            except BodyError as e:
                self.close_connection = True
                if str(e) == "too large":
                    raise ApiError(413, "RequestEntityTooLarge",
                                   "Request entity too large: limit is %d" % MAX_BODY)
                raise bad_request(str(e))
            if self.control_request:
                if not self.server.control_enabled:
                    raise rest.ApiError(404, "NotFound", "the server could not find the requested resource")
                code, out = control.handle(self.server, method, url.path, body)
                self.send_json(code, out)
                return
            if self.server.control_only:
                raise rest.ApiError(404, "NotFound", "the server could not find the requested resource")
            if self.inject_faults(method):
                return
            if not self.authenticated():
                raise ApiError(401, "Unauthorized", "Unauthorized")
            self.route(method, body)
        except ApiError as e:
            self.send_json(e.status["code"], e.status, headers=e.headers)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout):
            self.close_connection = True
        except Exception as e:      # a server bug: answer 500, keep serving
            traceback.print_exc()
            if self.status_sent is not None:
                self.close_connection = True    # mid-response: only hanging up is left
                return
            try:
                self.send_json(500, rest.status(500, "InternalError",
                                                "Internal error occurred: %s" % e))
            except OSError:
                self.close_connection = True
        finally:
            self.record()

    def inject_faults(self, method):
        """Apply pending faults; True when the request was answered."""
        faults = self.server.faults
        path, full = self.req_path, self.path
        delay = faults.take("delay", method, path, full)
        if delay:
            time.sleep(delay["ms"] / 1000.0)
        if faults.take("hangup", method, path, full):
            self.close_connection = True
            self.status_sent = 0
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return True
        fail = faults.take("fail", method, path, full)
        if fail:
            details, headers = None, {}
            if "retry_after" in fail:
                details = {"retryAfterSeconds": fail["retry_after"]}
                headers["Retry-After"] = fail["retry_after"]
            self.send_json(fail["status"], rest.status(fail["status"], fail["reason"],
                                                       fail["message"], details), headers=headers)
            return True
        return False

    def authenticated(self):
        srv = self.server
        if not srv.auth_required:
            return True
        if srv.client_ca and isinstance(self.connection, ssl.SSLSocket):
            try:
                if self.connection.getpeercert():
                    return True
            except (ValueError, ssl.SSLError):
                pass
        header = self.headers.get("Authorization") or ""
        if header[:7].lower() == "bearer ":
            token = header[7:].strip()
            return bool(token) and token in srv.valid_tokens()
        return False

    # -- routing ----------------------------------------------------------

    def route(self, method, body):
        path = self.req_path
        srv = self.server
        if method == "GET":
            if path == "/version":
                return self.send_json(200, discovery.version_info(srv.git_version))
            if path in ("/healthz", "/livez", "/readyz"):
                return self.send_body(200, b"ok", "text/plain; charset=utf-8")
            if path == "/api":
                return self.send_json(200, discovery.api_versions(srv.address_string))
            if path == "/apis":
                return self.send_json(200, discovery.api_group_list())
            if path == "/api/v1":
                return self.send_json(200, discovery.core_v1_resources())
            if path == "/openapi/v3":
                return self.send_json(200, discovery.openapi_v3_root())
            if path == "/openapi/v3/api/v1":
                return self.send_json(200, discovery.OPENAPI_V3_CORE)
            if path == "/openapi/v2":
                if "protobuf" in (self.headers.get("Accept") or ""):
                    return self.send_body(200, discovery.openapi_v2_protobuf(srv.git_version),
                                          "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
                return self.send_json(200, discovery.openapi_v2_json(srv.git_version))
        segs = [s for s in path.split("/") if s]
        if len(segs) < 3 or segs[0] != "api" or segs[1] != "v1":
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        rest_segs = segs[2:]
        watch = parse_bool(self.query.get("watch"))
        if rest_segs[0] == "watch":
            watch, rest_segs = True, rest_segs[1:]
        ns = None
        if len(rest_segs) >= 3 and rest_segs[0] == "namespaces" and \
                rest_segs[2] not in ("status", "finalize"):
            ns, rest_segs = rest_segs[1], rest_segs[2:]
        res = RESOURCES.get(rest_segs[0]) if rest_segs else None
        name = rest_segs[1] if len(rest_segs) > 1 else None
        sub = rest_segs[2] if len(rest_segs) > 2 else None
        if res is None or len(rest_segs) > 3 or (ns is not None and not res.namespaced) or \
                (sub is not None and (sub != "status" or not res.has_status)) or \
                (res.namespaced and ns is None and name is not None):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        dry_run = self.dry_run()
        if name is None:
            return self.collection(method, res, ns, watch, body, dry_run)
        if method == "GET" and watch:
            self.query["fieldSelector"] = ",".join(
                x for x in (self.query.get("fieldSelector"), "metadata.name=" + name) if x)
            return self.watch(res, ns)
        if method == "GET":
            obj = rest.get_object(srv.store, res, ns, name)
            return self.send_object(200, res, obj)
        if method == "PUT":
            obj = rest.decode_body(body, self.headers.get("Content-Type"))
            code, out = rest.update(srv.store, res, ns, name, obj, sub, dry_run)
            return self.send_json(code, out)
        if method == "PATCH":
            code, out = rest.patch(srv.store, res, ns, name, self.headers.get("Content-Type"),
                                   body, self.query, sub, dry_run)
            return self.send_json(code, out)
        if method == "DELETE" and sub is None:
            opts = rest.decode_body(body, "application/json") if body.strip() else {}
            code, out = rest.delete(srv.store, res, ns, name, opts, dry_run)
            return self.send_json(code, out)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the "
                       "requested resource")

    def dry_run(self):
        value = self.query.get("dryRun")
        if value in (None, ""):
            return False
        if value != "All":
            raise bad_request('dryRun: Unsupported value: "%s": supported values: "All"' % value)
        return True

    def collection(self, method, res, ns, watch, body, dry_run):
        srv = self.server
        if method == "GET" and watch:
            return self.watch(res, ns)
        if method == "GET":
            return self.send_list(res, rest.list_objects(srv.store, res, ns, self.query))
        if method == "POST" and (ns is not None or not res.namespaced):
            obj = rest.decode_body(body, self.headers.get("Content-Type"))
            code, out = rest.create(srv.store, res, ns, obj, dry_run)
            return self.send_json(code, out)
        if method == "DELETE" and (ns is not None or not res.namespaced) and \
                "deletecollection" in res.verbs:
            listed = rest.list_objects(srv.store, res, ns, self.query)
            gone = []
            for item in listed["items"]:
                try:
                    gone.append(rest.delete(srv.store, res, item["metadata"].get("namespace"),
                                            item["metadata"]["name"], {}, dry_run)[1])
                except ApiError:
                    pass
            listed["items"] = [rest.strip_item(rest.normalize(res, o)) if o.get("kind") != "Status"
                               else o for o in gone]
            return self.send_json(200, listed)
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method on the "
                       "requested resource")

    # -- output -----------------------------------------------------------

    def table_requested(self, res):
        accept = self.headers.get("Accept") or ""
        for alt in accept.split(","):
            params = dict(p.strip().partition("=")[::2] for p in alt.split(";")[1:])
            if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
                return params.get("v") or "v1"
        return None

    def send_object(self, code, res, obj):
        version = self.table_requested(res)
        if version:
            table = rest.to_table(res, [obj], {"resourceVersion": obj["metadata"].get(
                "resourceVersion", "")}, self.query.get("includeObject", "Metadata"))
            table["apiVersion"] = "meta.k8s.io/" + version
            return self.send_json(code, table, "application/json;as=Table;v=%s;g=meta.k8s.io"
                                  % version)
        return self.send_json(code, obj)

    def send_list(self, res, listed):
        version = self.table_requested(res)
        if version:
            items = [dict(o, kind=res.kind, apiVersion="v1") for o in listed["items"]]
            table = rest.to_table(res, items, listed["metadata"],
                                  self.query.get("includeObject", "Metadata"))
            table["apiVersion"] = "meta.k8s.io/" + version
            return self.send_json(200, table, "application/json;as=Table;v=%s;g=meta.k8s.io"
                                  % version)
        return self.send_json(200, listed)

    # -- watch ------------------------------------------------------------

    def start_stream(self):
        self.send_response(200)
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.record(stream=True)
        self.end_headers()
        self.wfile.flush()

    def write_chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def write_event(self, etype, obj, table=None):
        if table and etype in ("ADDED", "MODIFIED", "DELETED"):
            # kubectl get -w asks for Table; each event then carries a
            # one-row Table, as the real server sends.
            res, version = table
            obj = rest.to_table(res, [obj], {"resourceVersion": obj["metadata"].get(
                "resourceVersion", "")}, self.query.get("includeObject", "Metadata"))
            obj["apiVersion"] = "meta.k8s.io/" + version
        self.write_chunk(encode({"type": etype, "object": obj}) + b"\n")

    def end_stream(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def bookmark(self, res, rv, annotations=None):
        meta = {"resourceVersion": str(rv)}
        if annotations:
            meta["annotations"] = annotations
        obj = {"kind": res.kind, "apiVersion": "v1", "metadata": meta}
        if res.name == "services":
            obj["spec"] = {}
        return obj

    def watch(self, res, ns):
        """Serve a watch: backlog (synthetic ADDED or history replay), then
        live events, bookmarks, until timeoutSeconds, /_test/close-watches
        or the client going away. An expired RV is a 200 stream carrying one
        ERROR event (410 Expired)."""
        srv, q = self.server, self.query
        match = rest.selector(res, q)
        rv_text = q.get("resourceVersion") or ""
        since = None if rv_text in ("", "0") else rest.parse_rv(rv_text)
        try:
            timeout = int(q.get("timeoutSeconds") or 0)
        except ValueError:
            raise bad_request("invalid timeoutSeconds: %s" % q.get("timeoutSeconds"))
        bookmarks = parse_bool(q.get("allowWatchBookmarks"))
        initial = parse_bool(q.get("sendInitialEvents"))
        if initial and (q.get("resourceVersionMatch") != "NotOlderThan" or not bookmarks):
            raise rest.invalid(res, "", [{"field": "sendInitialEvents", "reason": "FieldValueForbidden",
                                          "message": "Forbidden: sendInitialEvents requires "
                                          "setting resourceVersionMatch to NotOlderThan and "
                                          "allowWatchBookmarks"}])
        if initial:
            since = None
        if since is not None and since > srv.store.rv:
            raise rest.too_large(since, srv.store.rv)
        version = self.table_requested(res)
        table = (res, version) if version else None
        info = {"path": self.path, "peer": "%s:%s" % self.client_address[:2],
                "started": now_rfc3339(), "user_agent": self.headers.get("User-Agent", "")}
        try:
            w, backlog, open_rv = srv.store.open_watch(res.name, ns, match, since, info)
        except Expired as e:
            self.start_stream()
            self.write_event("ERROR", rest.status(410, "Expired", str(e)))
            self.end_stream()
            return
        clean = True
        # poll(), not select(): descriptors may exceed FD_SETSIZE in long runs.
        poller = select.poll()
        poller.register(self.connection.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
        poller.register(w.fileno(), select.POLLIN)
        try:
            self.start_stream()
            pending = list(backlog)
            if initial:
                pending.append(("BOOKMARK", self.bookmark(res, open_rv,
                                                          {"k8s.io/initial-events-end": "true"})))
            now = time.monotonic()
            deadline = now + (timeout if timeout > 0 else DEFAULT_WATCH_TIMEOUT)
            interval = srv.bookmark_interval
            next_bookmark = now + interval if bookmarks else None
            while True:
                with srv.store.lock:
                    w.drain_wakeups()
                    stalled = srv.store.stalled
                    if not stalled:
                        pending.extend(w.queue)
                        w.queue.clear()
                    current_rv = srv.store.rv
                    closed, abort = w.closed, w.abort
                if not stalled:
                    for etype, obj in pending:
                        self.write_event(etype, obj, table)
                    pending = []
                if closed:
                    clean = not abort
                    break
                now = time.monotonic()
                if now >= deadline:
                    break
                if next_bookmark is not None and now >= next_bookmark:
                    if not stalled:
                        self.write_event("BOOKMARK", self.bookmark(res, current_rv))
                    next_bookmark = now + interval
                wake_at = deadline if next_bookmark is None else min(deadline, next_bookmark)
                ready = dict(poller.poll(max(0.0, wake_at - now) * 1000))
                if ready.get(self.connection.fileno()):
                    clean = False   # the client hung up (or broke protocol)
                    break
        except (OSError, ssl.SSLError, ValueError):
            clean = False
        finally:
            srv.store.close_watch(w)
        if clean:
            try:
                self.end_stream()
                return
            except OSError:
                pass
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, cfg, store, faults, request_log, control_only=False):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, Handler)
        self.store = store
        self.faults = faults
        self.request_log = request_log
        self.conn_ids = itertools.count(1)
        self.verbose = cfg.verbose
        self.bookmark_interval = max(0.05, cfg.bookmark_interval)
        self.git_version = cfg.server_version
        self.control_only = control_only
        self.control_enabled = control_only or not cfg.no_control
        self.tokens = set(cfg.token or [])
        self.token_file = cfg.token_file
        self.client_ca = cfg.client_ca
        self.auth_required = bool(self.tokens or self.token_file or self.client_ca) and not control_only
        self.ssl_context = None
        if cfg.tls_cert and not control_only:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(cfg.tls_cert, cfg.tls_key)
            ctx.set_alpn_protocols(["http/1.1"])
            if cfg.client_ca:
                ctx.verify_mode = ssl.CERT_OPTIONAL
                ctx.load_verify_locations(cfg.client_ca)
            self.ssl_context = ctx
        host, port = self.server_address[:2]
        self.address_string = ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)

    def valid_tokens(self):
        """--token values plus the token file's current lines (re-read on
        every request so tests can rotate tokens)."""
        tokens = set(self.tokens)
        if self.token_file:
            try:
                with open(self.token_file, encoding="utf-8") as f:
                    tokens.update(line.strip() for line in f if line.strip())
            except OSError:
                pass
        return tokens

    def finish_request(self, request, client_address):
        # The TLS handshake runs here, in the connection's own thread, so a
        # slow or broken client cannot stall the accept loop.
        if self.ssl_context is not None:
            request.settimeout(HANDSHAKE_TIMEOUT)
            try:
                request = self.ssl_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as e:
                if self.verbose:
                    sys.stderr.write("kubeapi: TLS handshake from %s failed: %s\n"
                                     % (client_address[0], e))
                request.close()
                return
        try:
            self.RequestHandlerClass(request, client_address, self)
        finally:
            if self.ssl_context is not None:
                try:
                    request.close()
                except OSError:
                    pass

    def handle_error(self, request, client_address):
        if self.verbose:
            super().handle_error(request, client_address)


# -- startup ------------------------------------------------------------------

def parse_address(text):
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


def load_state(store, path):
    """Seed objects from a JSON or YAML file: a list, a List with items, or
    YAML documents. Each object needs kind; namespace defaults to default."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        docs = [json.loads(text)]
    except ValueError:
        docs = miniyaml.load_all(text)
    objs = []
    for doc in docs:
        if isinstance(doc, list):
            objs.extend(doc)
        elif isinstance(doc, dict) and doc.get("kind", "").endswith("List") and "items" in doc:
            objs.extend(doc["items"])
        elif doc is not None:
            objs.append(doc)
    for obj in objs:
        res = BY_KIND.get(obj.get("kind") if isinstance(obj, dict) else None)
        if res is None:
            raise SystemExit("kubeapi: %s: unsupported object %r" % (path, obj)[:300])
        ns = ((obj.get("metadata") or {}).get("namespace") or "default") if res.namespaced else None
        if res.name == "namespaces" and store.get("namespaces", ("", obj["metadata"]["name"])):
            continue
        try:
            code, created = rest.create(store, res, ns, obj, dry_run=True)
        except ApiError as e:
            raise SystemExit("kubeapi: %s: %s" % (path, e.status["message"]))
        key = (ns or "", created["metadata"]["name"])
        store.seed(res.name, key, created)


def seed_namespaces(store):
    for name in SEED_NAMESPACES:
        _, obj = rest.create(store, RESOURCES["namespaces"], None,
                             {"metadata": {"name": name}}, dry_run=True)
        store.seed("namespaces", ("", name), obj)


def write_port_file(path, port):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("%d\n" % port)
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Test Kubernetes API server.")
    ap.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0: any free port)")
    ap.add_argument("--port-file", help="write the chosen port here once listening")
    ap.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    ap.add_argument("--tls-key", help="private key of --tls-cert (PEM)")
    ap.add_argument("--client-ca", help="accept client certificates signed by this CA")
    ap.add_argument("--token", action="append", help="accepted bearer token (repeatable)")
    ap.add_argument("--token-file", help="file of accepted bearer tokens, one a line, re-read "
                    "on every request")
    ap.add_argument("--request-log", help="append one JSON line per request to this file")
    ap.add_argument("--history", type=int, default=1000, help="watch events kept for resume")
    ap.add_argument("--bookmark-interval", type=float, default=60.0,
                    help="seconds between BOOKMARK events (allowWatchBookmarks=true)")
    ap.add_argument("--state", help="initial objects (JSON or YAML list, List, or documents)")
    ap.add_argument("--initial-rv", type=int, default=1, help="first resourceVersion")
    ap.add_argument("--server-version", default="v1.32.4", help="gitVersion served at /version")
    ap.add_argument("--control-listen", help="HOST:PORT of a plain-HTTP listener serving only "
                    "/_test/ (it is always served on the main port too unless --no-control)")
    ap.add_argument("--control-port-file", help="write the control listener's port here")
    ap.add_argument("--no-control", action="store_true", help="no /_test/ on the main port")
    ap.add_argument("--verbose", action="store_true", help="log requests to stderr")
    cfg = ap.parse_args(argv)
    if bool(cfg.tls_cert) != bool(cfg.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    if cfg.client_ca and not cfg.tls_cert:
        ap.error("--client-ca needs --tls-cert")

    store = Store(cfg.history, cfg.initial_rv)
    seed_namespaces(store)
    if cfg.state:
        load_state(store, cfg.state)
    faults = control.Faults()
    request_log = control.RequestLog(cfg.request_log)

    servers = [Server(parse_address(cfg.listen), cfg, store, faults, request_log)]
    if cfg.control_listen:
        servers.append(Server(parse_address(cfg.control_listen), cfg, store, faults,
                              request_log, control_only=True))

    def stop(signum, frame):
        store.close_all()
        for s in servers:
            threading.Thread(target=s.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    for s in servers[1:]:
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2},
                         daemon=True).start()
    if cfg.control_port_file and len(servers) > 1:
        write_port_file(cfg.control_port_file, servers[1].server_address[1])
    if cfg.port_file:
        write_port_file(cfg.port_file, servers[0].server_address[1])
    sys.stderr.write("kubeapi: listening on %s://%s\n" % (
        "https" if servers[0].ssl_context else "http", servers[0].address_string))
    sys.stderr.flush()
    try:
        servers[0].serve_forever(poll_interval=0.2)
    finally:
        for s in servers:
            s.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
