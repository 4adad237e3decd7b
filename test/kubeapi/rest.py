"""REST semantics of kube-apiserver's generic registry, without the HTTP.

Each operation takes the store, a kinds.Resource and decoded parameters,
and returns (http_status, body) or raises ApiError carrying a Status. The
HTTP layer (server.py) only decodes requests and encodes answers.
"""

import base64
import binascii
import copy
import ipaddress
import json
import random
import uuid

import miniyaml
import patching
import protodec
from kinds import (NODE_PORTS, RESOURCES, SERVICE_CIDR, now_rfc3339, validate_meta)
from objstore import Expired
from selection import SelectorError, parse_field_selector, parse_label_selector

META_ORDER = ["name", "generateName", "namespace", "selfLink", "uid", "resourceVersion",
              "generation", "creationTimestamp", "deletionTimestamp",
              "deletionGracePeriodSeconds", "labels", "annotations", "ownerReferences",
              "finalizers", "managedFields"]
SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp",
                 "deletionGracePeriodSeconds", "selfLink", "generation", "managedFields")

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSONPATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"


class ApiError(Exception):
    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.status = status(code, reason, message, details)
        self.headers = headers or {}


def status(code, reason, message, details=None):
    out = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason}
    if details:
        out["details"] = details
    out["code"] = code
    return out


def bad_request(message):
    return ApiError(400, "BadRequest", message)


def not_found(res, name):
    return ApiError(404, "NotFound", '%s "%s" not found' % (res.name, name),
                    {"name": name, "kind": res.name})


def conflict(res, name, why="the object has been modified; please apply your changes to the "
                            "latest version and try again"):
    return ApiError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": %s'
                    % (res.name, name, why), {"name": name, "kind": res.name})


def invalid(res, name, causes):
    parts = ["%s: %s" % (c["field"], c["message"]) for c in causes]
    msg = parts[0] if len(parts) == 1 else "[" + ", ".join(parts) + "]"
    return ApiError(422, "Invalid", '%s "%s" is invalid: %s' % (res.kind, name, msg),
                    {"name": name, "kind": res.kind, "causes": causes})


def expired_continue():
    return ApiError(410, "Expired", "The provided continue parameter is too old to display a "
                    "consistent list result. You can start a new list without the continue "
                    "parameter.")


# -- allocation context handed to kinds' default/validate hooks ------------

class Context:
    """Cluster IP and node port allocation over the stored Services."""

    def __init__(self, store):
        self.store = store

    def _services(self):
        return self.store.objects["services"].values()

    def allocate_cluster_ip(self):
        used = {(s.get("spec") or {}).get("clusterIP") for s in self._services()}
        for n in range(256 + 1, SERVICE_CIDR.num_addresses - 1):
            ip = str(SERVICE_CIDR.network_address + n)
            if ip not in used:
                return ip
        return None

    def check_cluster_ip(self, ip, obj):
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return "must be a valid IP address"
        if addr not in SERVICE_CIDR:
            return ("failed to allocate IP %s: provided IP is not in the valid range. The range "
                    "of valid IPs is %s" % (ip, SERVICE_CIDR))
        for s in self._services():
            if (s.get("spec") or {}).get("clusterIP") == ip:
                return "failed to allocate IP %s: provided IP is already allocated" % ip
        return None

    def allocate_node_port(self):
        used = {p.get("nodePort") for s in self._services()
                for p in (s.get("spec") or {}).get("ports") or [] if isinstance(p, dict)}
        for port in NODE_PORTS:
            if port not in used:
                return port
        return None


# -- decoding ---------------------------------------------------------------

def decode_body(body, content_type):
    """Decode a request body as JSON, or YAML for application/yaml."""
    ctype = (content_type or "application/json").split(";")[0].strip().lower()
    if ctype == PROTOBUF:
        try:
            return protodec.decode(body)
        except protodec.ProtoError as e:
            raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an "
                           "unknown format - %s" % e)
    if ctype not in ("application/json", "application/yaml", APPLY, MERGE, STRATEGIC, JSONPATCH):
        raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown "
                       "format - accepted media types include: application/json, "
                       "application/yaml, application/vnd.kubernetes.protobuf")
    text = body.decode("utf-8", errors="replace")
    if ctype in ("application/yaml", APPLY):
        try:
            return json.loads(text)
        except ValueError:
            try:
                return miniyaml.load(text)
            except miniyaml.YAMLError as e:
                raise bad_request("error converting YAML to JSON: yaml: %s" % e)
    try:
        return json.loads(text)
    except ValueError as e:
        raise bad_request("couldn't get version/kind; json parse error: %s" % e)


def _go_type(value):
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def check_object(res, obj):
    """Shape checks that the real server's JSON decoding into Go structs
    performs: metadata is an object, names and label/annotation values are
    strings. Raises 400 like the decoder does."""
    if not isinstance(obj, dict):
        raise bad_request("Object 'Kind' is missing in '%s'" % json.dumps(obj)[:200])
    kind = obj.get("kind")
    if kind not in (None, "", res.kind):
        raise bad_request("the kind of the object (%s) does not match the kind of the "
                          "resource (%s)" % (kind, res.kind))
    if obj.get("apiVersion") not in (None, "", "v1"):
        raise bad_request("the API version in the data (%s) does not match the expected API "
                          "version (v1)" % obj.get("apiVersion"))
    meta = obj.get("metadata")
    if meta is None:
        obj["metadata"] = meta = {}
    if not isinstance(meta, dict):
        raise bad_request("json: cannot unmarshal %s into Go struct field %s.metadata of type "
                          "v1.ObjectMeta" % (_go_type(meta), res.kind))
    for field in ("name", "namespace", "generateName", "resourceVersion", "uid"):
        if field in meta and meta[field] is not None and not isinstance(meta[field], str):
            raise bad_request("json: cannot unmarshal %s into Go struct field ObjectMeta."
                              "metadata.%s of type string" % (_go_type(meta[field]), field))
    for field in ("labels", "annotations"):
        value = meta.get(field)
        if value is None:
            meta.pop(field, None)
            continue
        if not isinstance(value, dict):
            raise bad_request("json: cannot unmarshal %s into Go struct field ObjectMeta."
                              "metadata.%s of type map[string]string" % (_go_type(value), field))
        for v in value.values():
            if not isinstance(v, str):
                raise bad_request("json: cannot unmarshal %s into Go struct field ObjectMeta."
                                  "metadata.%s of type string" % (_go_type(v), field))
    return obj


def normalize(res, obj):
    """kind and apiVersion first, metadata keys in ObjectMeta order, status last."""
    out = {"kind": res.kind, "apiVersion": "v1"}
    meta = obj.get("metadata") or {}
    m = {k: meta[k] for k in META_ORDER if k in meta}
    m.update((k, v) for k, v in meta.items() if k not in m)
    out["metadata"] = m
    for k, v in obj.items():
        if k not in ("kind", "apiVersion", "metadata", "status"):
            out[k] = v
    if "status" in obj:
        out["status"] = obj["status"]
    return out


def strip_item(obj):
    """List items carry no kind/apiVersion."""
    return {k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}


def _same(a, b):
    strip = lambda o: dict(o, metadata={k: v for k, v in o["metadata"].items()
                                        if k != "resourceVersion"})
    return strip(a) == strip(b)


GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


# -- write operations ----------------------------------------------------------

def _finish(store, res, obj, old, dry_run):
    """Default, validate and store obj; old is the stored object or None.
    Returns (status, stored object). Caller holds store.lock."""
    ctx = Context(store)
    res.default(obj, old, ctx)
    name = obj["metadata"].get("name", "")
    causes = validate_meta(res, obj) + res.validate(obj, old, ctx)
    if causes:
        raise invalid(res, name, causes)
    obj = normalize(res, obj)
    key = (obj["metadata"].get("namespace", ""), name)
    if old is not None and _same(obj, old):
        return 200, old     # no-op: no new resourceVersion, no watch event
    if dry_run:
        return (200 if old is not None else 201), obj
    return (200 if old is not None else 201), store.write(res.name, key, obj)


def create(store, res, ns, obj, dry_run=False):
    check_object(res, obj)
    obj = copy.deepcopy(obj)
    meta = obj["metadata"]
    if res.namespaced:
        if meta.get("namespace") not in (None, "", ns):
            raise bad_request("the namespace of the provided object does not match the "
                              "namespace sent on the request")
        meta["namespace"] = ns
    else:
        meta.pop("namespace", None)
    for f in SERVER_FIELDS:
        meta.pop(f, None)
    with store.lock:
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + "".join(
                random.choice(GENERATE_ALPHABET) for _ in range(5))
        name = meta.get("name") or ""
        if res.has_status:
            obj["status"] = {"loadBalancer": {}} if res.name == "services" else {}
        if name and store.get(res.name, (ns or "", name)) is not None:
            raise ApiError(409, "AlreadyExists", '%s "%s" already exists' % (res.name, name),
                           {"name": name, "kind": res.name})
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        return _finish(store, res, obj, None, dry_run)


def _carry_over(res, new, old, subresource):
    """Build the object an update stores: server-owned metadata from old;
    for the main resource, status from old; for /status, only status
    from new."""
    if subresource == "status":
        out = copy.deepcopy(old)
        out["status"] = copy.deepcopy(new.get("status") or {})
        out["metadata"]["resourceVersion"] = new["metadata"].get("resourceVersion", "")
        return out
    out = copy.deepcopy(new)
    meta = out["metadata"]
    for f in ("uid", "creationTimestamp", "deletionTimestamp", "generation"):
        if f in old["metadata"]:
            meta[f] = old["metadata"][f]
        else:
            meta.pop(f, None)
    if res.has_status:
        if "status" in old:
            out["status"] = copy.deepcopy(old["status"])
        else:
            out.pop("status", None)
    return out


def _check_identity(res, obj, ns, name):
    meta = obj["metadata"]
    if meta.get("name") and meta["name"] != name:
        raise bad_request("the name of the object (%s) does not match the name on the URL (%s)"
                          % (meta["name"], name))
    meta["name"] = name
    if res.namespaced:
        if meta.get("namespace") not in (None, "", ns):
            raise bad_request("the namespace of the provided object does not match the "
                              "namespace sent on the request")
        meta["namespace"] = ns


def update(store, res, ns, name, obj, subresource=None, dry_run=False):
    check_object(res, obj)
    obj = copy.deepcopy(obj)
    _check_identity(res, obj, ns, name)
    with store.lock:
        old = store.get(res.name, (ns or "", name))
        if old is None:
            if res.create_on_update and not subresource:
                return create(store, res, ns, obj, dry_run)
            raise not_found(res, name)
        return _update_existing(store, res, old, obj, subresource, dry_run)


def _update_existing(store, res, old, obj, subresource, dry_run):
    name = old["metadata"]["name"]
    rv = obj["metadata"].get("resourceVersion")
    if rv and rv != old["metadata"]["resourceVersion"]:
        raise conflict(res, name)
    uid = obj["metadata"].get("uid")
    if uid and uid != old["metadata"]["uid"]:
        raise conflict(res, name, "Precondition failed: UID in precondition: %s, UID in object "
                                  "meta: %s" % (old["metadata"]["uid"], uid))
    new = _carry_over(res, obj, old, subresource)
    return _finish(store, res, new, old, dry_run)


def patch(store, res, ns, name, content_type, body, query, subresource=None, dry_run=False):
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype not in (MERGE, STRATEGIC, JSONPATCH, APPLY):
        raise ApiError(415, "UnsupportedMediaType", "the body of the request was in an unknown "
                       "format - accepted media types include: application/json-patch+json, "
                       "application/merge-patch+json, application/apply-patch+yaml, "
                       "application/strategic-merge-patch+json")
    if ctype == APPLY and not query.get("fieldManager"):
        raise ApiError(400, "BadRequest", 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: '
                       'Required value: is required for apply patch')
    doc = decode_body(body, ctype)
    with store.lock:
        old = store.get(res.name, (ns or "", name))
        if old is None:
            if ctype == APPLY and not subresource:
                return create(store, res, ns, _strip_apply(doc), dry_run)
            raise not_found(res, name)
        try:
            if ctype == MERGE:
                new = patching.merge_patch(old, doc)
            elif ctype == JSONPATCH:
                new = patching.json_patch(old, doc)
            elif ctype == STRATEGIC:
                new = patching.strategic_merge_patch(old, doc, res.smp_schema)
            else:
                # Server-side apply without field ownership: the applied
                # configuration is merged over the live object.
                new = patching.strategic_merge_patch(old, _strip_apply(doc), res.smp_schema)
        except patching.PatchError as e:
            raise ApiError(422, "Invalid", str(e))
        if not isinstance(new, dict):
            raise bad_request("patch result is not an object")
        check_object(res, new)
        meta = new["metadata"]
        if meta.get("name") != name or (res.namespaced and meta.get("namespace") != ns):
            raise bad_request("the name of the object (%s) does not match the name on the URL "
                              "(%s)" % (meta.get("name"), name))
        if not meta.get("resourceVersion"):
            meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        return _update_existing(store, res, old, new, subresource, dry_run)


def _strip_apply(doc):
    if not isinstance(doc, dict):
        raise bad_request("apply patch must be an object")
    doc = copy.deepcopy(doc)
    for f in ("resourceVersion", "managedFields"):
        (doc.get("metadata") or {}).pop(f, None)
    return doc


def delete(store, res, ns, name, options, dry_run=False):
    options = options if isinstance(options, dict) else {}
    pre = options.get("preconditions") or {}
    with store.lock:
        key = (ns or "", name)
        old = store.get(res.name, key)
        if old is None:
            raise not_found(res, name)
        if pre.get("uid") and pre["uid"] != old["metadata"]["uid"]:
            raise conflict(res, name, "Precondition failed: UID in precondition: %s, UID in "
                                      "object meta: %s" % (pre["uid"], old["metadata"]["uid"]))
        if pre.get("resourceVersion") and pre["resourceVersion"] != old["metadata"]["resourceVersion"]:
            raise conflict(res, name, "Precondition failed: ResourceVersion in precondition: %s, "
                                      "ResourceVersion in object meta: %s"
                           % (pre["resourceVersion"], old["metadata"]["resourceVersion"]))
        gone = old if dry_run else store.remove(res.name, key)
        if res.name == "namespaces" and not dry_run:
            for other in RESOURCES.values():
                if other.namespaced:
                    for k, _ in store.items(other.name, name)[0]:
                        store.remove(other.name, k)
    if res.returns_deleted_object:
        return 200, gone
    return 200, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                 "details": {"name": name, "kind": res.name, "uid": old["metadata"]["uid"]}}


# -- reads ---------------------------------------------------------------

def selector(res, query):
    """Predicate for fieldSelector and labelSelector; 400 on bad syntax."""
    try:
        fsel = parse_field_selector(query.get("fieldSelector"), res.field_getters())
        lsel = parse_label_selector(query.get("labelSelector"))
    except SelectorError as e:
        raise bad_request(str(e))
    return lambda obj: fsel(obj) and lsel(obj)


def parse_rv(text, what="resourceVersion"):
    try:
        value = int(text)
        if value < 0:
            raise ValueError
        return value
    except (TypeError, ValueError):
        raise bad_request("invalid %s: %s" % (what, text))


def encode_continue(rv, key):
    start = ("%s/%s" % key if key[0] else key[1]) + "\x00"
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": rv, "start": start}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_continue(token):
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
        if data.get("v") != "meta.k8s.io/v1":
            raise ValueError("unsupported version")
        start = data["start"].rstrip("\x00")
        ns, _, name = start.rpartition("/")
        return int(data["rv"]), (ns, name)
    except (ValueError, KeyError, TypeError, AttributeError, binascii.Error) as e:
        raise bad_request("continue key is not valid: %s" % e)


def list_objects(store, res, ns, query):
    """LIST with selectors, limit/continue pagination and resourceVersion
    semantics. Returns the List object (items without kind/apiVersion)."""
    match = selector(res, query)
    token = query.get("continue") or ""
    rv_param = query.get("resourceVersion") or ""
    rv_match = query.get("resourceVersionMatch") or ""
    limit = parse_rv(query.get("limit") or "0", "limit")
    after = None
    with store.lock:
        if token:
            if rv_param not in ("", "0"):
                raise bad_request("specifying resource version is not allowed when using continue")
            list_rv, after = decode_continue(token)
            try:
                items = store.snapshot(res.name, list_rv, ns)
            except Expired:
                raise expired_continue()
        elif rv_match == "Exact":
            list_rv = parse_rv(rv_param)
            if list_rv > store.rv:
                raise too_large(list_rv, store.rv)
            try:
                items = store.snapshot(res.name, list_rv, ns)
            except Expired as e:
                raise ApiError(410, "Expired", str(e))
        else:
            if rv_match not in ("", "NotOlderThan"):
                raise bad_request("resourceVersionMatch: Unsupported value: %s" % json.dumps(rv_match))
            if rv_param not in ("", "0") and parse_rv(rv_param) > store.rv:
                raise too_large(parse_rv(rv_param), store.rv)
            items, list_rv = store.items(res.name, ns)
    selected = [(k, o) for k, o in items if (after is None or k > after) and match(o)]
    meta = {"resourceVersion": str(list_rv)}
    if limit and len(selected) > limit:
        meta["continue"] = encode_continue(list_rv, selected[limit - 1][0])
        if not query.get("fieldSelector") and not query.get("labelSelector"):
            meta["remainingItemCount"] = len(selected) - limit
        selected = selected[:limit]
    return {"kind": res.kind + "List", "apiVersion": "v1", "metadata": meta,
            "items": [strip_item(o) for _, o in selected]}


def too_large(want, have):
    return ApiError(504, "Timeout", "Too large resource version: %d, current: %d" % (want, have),
                    {"causes": [{"reason": "ResourceVersionTooLarge",
                                 "message": "Too large resource version"}],
                     "retryAfterSeconds": 1})


def get_object(store, res, ns, name):
    obj = store.get(res.name, (ns or "", name))
    if obj is None:
        if res.name == "namespaces":
            return implicit_namespace(name)
        raise not_found(res, name)
    return obj


def implicit_namespace(name):
    """Every namespace exists; one never created reads as Active."""
    return {"kind": "Namespace", "apiVersion": "v1",
            "metadata": {"name": name, "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
                         "resourceVersion": "1", "creationTimestamp": "2026-01-01T00:00:00Z",
                         "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}


def to_table(res, objs, list_meta, include="Metadata"):
    """meta.k8s.io/v1 Table for `kubectl get`; rows carry the object's
    metadata (PartialObjectMetadata) unless includeObject says otherwise."""
    cols, cells = res.table(objs)
    rows = []
    for obj, row in zip(objs, cells):
        r = {"cells": row}
        if include == "Object":
            r["object"] = normalize(res, obj)
        elif include != "None":
            r["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                           "metadata": obj["metadata"]}
        rows.append(r)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
            "columnDefinitions": cols, "rows": rows}
