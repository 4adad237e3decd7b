"""Test control plane: fault injection, the request log and the /_test/
endpoints. None of this exists on a real API server; tests use it to
provoke the failures a controller must survive and to count what it asked.
"""

import collections
import datetime
import json
import threading

REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
           405: "MethodNotAllowed", 406: "NotAcceptable", 409: "Conflict", 410: "Expired",
           413: "RequestEntityTooLarge", 415: "UnsupportedMediaType", 422: "Invalid",
           429: "TooManyRequests", 500: "InternalError", 503: "ServiceUnavailable",
           504: "Timeout"}

MESSAGES = {401: "Unauthorized", 403: "forbidden", 429: "Too many requests, please try again later.",
            500: "Internal error occurred: injected fault",
            503: "the server is currently unable to handle the request",
            504: "the server was unable to return a response in the time allotted, but may "
                 "still be processing the request"}


class ControlError(ValueError):
    pass


def _int(spec, key, default, low, high):
    value = spec.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ControlError("%s must be an integer in [%d, %d]" % (key, low, high))
    return value


class Faults:
    """Pending faults. Each rule fires on the next `count` API requests that
    match it (path_prefix on the path, method, and `match` as a substring
    of path+query), then disappears. Kinds: fail, delay, hangup."""

    KINDS = ("fail", "delay", "hangup")

    def __init__(self):
        self.lock = threading.Lock()
        self.rules = []

    def add(self, kind, spec):
        if not isinstance(spec, dict):
            raise ControlError("body must be a JSON object")
        rule = {"kind": kind, "count": _int(spec, "count", 1, 1, 1000000),
                "path_prefix": spec.get("path_prefix") or "",
                "method": (spec.get("method") or "").upper(),
                "match": spec.get("match") or ""}
        if kind == "fail":
            rule["status"] = _int(spec, "status", 500, 400, 599)
            if "retry_after" in spec:
                rule["retry_after"] = _int(spec, "retry_after", 1, 0, 3600)
            rule["message"] = spec.get("message") or MESSAGES.get(rule["status"], "injected fault")
            rule["reason"] = spec.get("reason") or REASONS.get(rule["status"], "InternalError")
        elif kind == "delay":
            rule["ms"] = _int(spec, "ms", 0, 0, 600000)
        with self.lock:
            self.rules.append(rule)
        return rule

    def take(self, kind, method, path, full):
        """Consume and return the first matching rule of this kind, or None."""
        with self.lock:
            for rule in self.rules:
                if rule["kind"] != kind or not path.startswith(rule["path_prefix"]):
                    continue
                if rule["method"] and rule["method"] != method:
                    continue
                if rule["match"] and rule["match"] not in full:
                    continue
                rule["count"] -= 1
                if rule["count"] <= 0:
                    self.rules.remove(rule)
                return dict(rule)
        return None

    def clear(self):
        with self.lock:
            self.rules.clear()

    def pending(self):
        with self.lock:
            return [dict(r) for r in self.rules]


class RequestLog:
    """Every API request: kept in memory for /_test/requests (the last
    MEMORY_LIMIT) and appended as one JSON line to the --request-log file."""

    MEMORY_LIMIT = 100000

    def __init__(self, path=None):
        self.lock = threading.Lock()
        self.entries = collections.deque(maxlen=self.MEMORY_LIMIT)
        self.file = open(path, "a", encoding="utf-8") if path else None

    def add(self, entry):
        entry = dict(entry)
        entry["time"] = datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%dT%H:%M:%S.%fZ")
        line = json.dumps(entry, separators=(",", ":"))
        with self.lock:
            self.entries.append(entry)
            if self.file:
                self.file.write(line + "\n")
                self.file.flush()

    def list(self):
        with self.lock:
            return list(self.entries)

    def clear(self):
        with self.lock:
            self.entries.clear()


def handle(server, method, path, body):
    """Serve one /_test/ request; returns (status, JSON-able body)."""
    store = server.store
    try:
        spec = json.loads(body) if body.strip() else {}
    except ValueError as e:
        return 400, {"error": "body is not JSON: %s" % e}
    op = path[len("/_test/"):].rstrip("/")
    try:
        if method == "GET" and op == "requests":
            return 200, server.request_log.list()
        if method == "GET" and op == "objects":
            with store.lock:
                out = {"resourceVersion": str(store.rv), "compacted": str(store.compacted)}
                out.update(store.all_objects())
            return 200, out
        if method == "GET" and op == "watches":
            return 200, store.watch_infos()
        if method == "GET" and op == "state":
            with store.lock:
                return 200, {"resourceVersion": str(store.rv), "compacted": str(store.compacted),
                             "history": len(store.history), "watches": len(store.watchers),
                             "stalled": store.stalled, "faults": server.faults.pending()}
        if method != "POST":
            return 404, {"error": "unknown control endpoint %s %s" % (method, path)}
        if op == "close-watches":
            return 200, {"closed": store.close_all(abort=bool(spec.get("abort")))}
        if op == "compact":
            return 200, {"compacted": str(store.compact())}
        if op in Faults.KINDS:
            return 200, {"added": server.faults.add(op, spec)}
        if op == "stall-watches":
            store.set_stalled(bool(spec.get("stall", True)))
            return 200, {"stalled": store.stalled}
        if op == "reset":
            server.faults.clear()
            store.set_stalled(False)
            return 200, {"reset": True}
        if op == "clear-requests":
            server.request_log.clear()
            return 200, {"cleared": True}
    except ControlError as e:
        return 400, {"error": str(e)}
    return 404, {"error": "unknown control endpoint %s %s" % (method, path)}
