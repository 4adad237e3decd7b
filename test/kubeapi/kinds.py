"""The resources this server serves and their per-kind rules.

Each Resource carries what discovery advertises (name, kind, verbs, short
names), the field labels its field selectors accept, the list fields that
strategic merge patch merges by key, and hooks that default and validate an
object on create and update the way kube-apiserver's registry does for that
kind (Services get a cluster IP, ports get protocol and targetPort, ...).

Validation returns a list of causes (field, reason, message); the server
turns a non-empty list into a 422 Invalid Status.
"""

import base64
import datetime
import ipaddress
import json
import re

from selection import path_getter

DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
ANNOTATIONS_MAX = 256 * 1024

SERVICE_CIDR = ipaddress.ip_network("10.96.0.0/12")
NODE_PORTS = range(30000, 32768)

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text):
    try:
        return datetime.datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(
            tzinfo=datetime.timezone.utc)
    except (TypeError, ValueError):
        return None


def human_duration(ts):
    """Age as kubectl prints it (k8s.io/apimachinery duration.HumanDuration)."""
    t = parse_time(ts) if isinstance(ts, str) else None
    if t is None:
        return "<unknown>"
    s = int((datetime.datetime.now(datetime.timezone.utc) - t).total_seconds())
    if s < 0:
        return "<invalid>"
    if s < 120:
        return "%ds" % s
    m = s // 60
    if m < 10:
        return "%dm%ds" % (m, s % 60) if s % 60 else "%dm" % m
    if m < 180:
        return "%dm" % m
    h = m // 60
    if h < 8:
        return "%dh%dm" % (h, m % 60) if m % 60 else "%dh" % h
    if h < 48:
        return "%dh" % h
    d = h // 24
    if h < 24 * 8:
        return "%dd%dh" % (d, h % 24) if h % 24 else "%dd" % d
    if d < 365 * 2:
        return "%dd" % d
    return "%dy%dd" % (d // 365, d % 365) if d < 365 * 8 else "%dy" % (d // 365)


def cause(field, reason, message):
    return {"field": field, "reason": reason, "message": message}


def invalid(field, value, detail):
    return cause(field, "FieldValueInvalid",
                 "Invalid value: %s: %s" % (json.dumps(value), detail))


def required(field):
    return cause(field, "FieldValueRequired", "Required value")


class Resource:
    """A served resource. Subclasses override default() and validate()."""

    name = ""
    singular = ""
    kind = ""
    namespaced = True
    short_names = []
    categories = []
    verbs = VERBS
    name_pattern = (DNS1123_SUBDOMAIN, 253, "a lowercase RFC 1123 subdomain must consist of lower "
                    "case alphanumeric characters, '-' or '.', and must start and end with an "
                    "alphanumeric character")
    has_status = False
    returns_deleted_object = False      # DELETE answers the object, else a Status
    create_on_update = False            # PUT to a missing name creates it
    smp_schema = {}

    def field_getters(self):
        return {"metadata.name": path_getter("metadata", "name"),
                "metadata.namespace": path_getter("metadata", "namespace")}

    def default(self, obj, old, ctx):
        """Fill server-side defaults; old is the stored object on update."""

    def validate(self, obj, old, ctx):
        return []

    def discovery(self):
        out = {"name": self.name, "singularName": self.singular, "namespaced": self.namespaced,
               "kind": self.kind, "verbs": list(self.verbs)}
        if self.short_names:
            out["shortNames"] = list(self.short_names)
        if self.categories:
            out["categories"] = list(self.categories)
        return out

    def table(self, items):
        """(columnDefinitions, rows cells) for Table output."""
        cols = [col("Name", "name", "Name must be unique within a namespace."),
                col("Age", "", "CreationTimestamp is a timestamp representing the server time "
                    "when this object was created.", typ="date")]
        return cols, [[o["metadata"]["name"], human_duration(o["metadata"].get("creationTimestamp"))]
                      for o in items]


def col(name, fmt, desc, typ="string", priority=0):
    return {"name": name, "type": typ, "format": fmt, "description": desc, "priority": priority}


def validate_meta(res, obj):
    """ObjectMeta checks shared by every kind."""
    causes = []
    meta = obj.get("metadata") or {}
    name = meta.get("name", "")
    pattern, maxlen, detail = res.name_pattern
    if not name:
        causes.append(cause("metadata.name", "FieldValueRequired",
                            "Required value: name or generateName is required"))
    elif len(name) > maxlen:
        causes.append(invalid("metadata.name", name, "must be no more than %d characters" % maxlen))
    elif not pattern.match(name):
        causes.append(invalid("metadata.name", name, detail))
    labels = meta.get("labels") or {}
    for k, v in labels.items():
        if not _qualified_key(k):
            causes.append(invalid("metadata.labels", k, "name part must consist of alphanumeric "
                                  "characters, '-', '_' or '.'"))
        if len(v) > 63 or not LABEL_VALUE.match(v):
            causes.append(invalid("metadata.labels", v, "a valid label must be an empty string or "
                                  "consist of alphanumeric characters, '-', '_' or '.', and must "
                                  "start and end with an alphanumeric character"))
    annotations = meta.get("annotations") or {}
    for k in annotations:
        if not _qualified_key(k):
            causes.append(invalid("metadata.annotations", k, "name part must consist of "
                                  "alphanumeric characters, '-', '_' or '.'"))
    size = sum(len(k.encode()) + len(v.encode()) for k, v in annotations.items())
    if size > ANNOTATIONS_MAX:
        causes.append(cause("metadata.annotations", "FieldValueTooLong",
                            "Too long: must have at most %d bytes" % ANNOTATIONS_MAX))
    return causes


def _qualified_key(key):
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(QUALIFIED_NAME.match(name))


# -- Service --------------------------------------------------------------

class Services(Resource):
    name, singular, kind = "services", "service", "Service"
    short_names = ["svc"]
    categories = ["all"]
    name_pattern = (DNS1035, 63, "a DNS-1035 label must consist of lower case alphanumeric "
                    "characters or '-', start with an alphabetic character, and end with an "
                    "alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for "
                    "validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
    has_status = True
    returns_deleted_object = True
    smp_schema = {("spec", "ports"): ("merge", "port")}

    def default(self, obj, old, ctx):
        spec = obj.setdefault("spec", {})
        ospec = (old or {}).get("spec") or {}
        spec.setdefault("type", "ClusterIP")
        stype = spec["type"]
        if stype != "ExternalName":
            spec.setdefault("sessionAffinity", "None")
        for p in spec.get("ports") or []:
            if isinstance(p, dict):
                p.setdefault("protocol", "TCP")
                if "port" in p and stype != "ExternalName" and p.get("targetPort") in (None, 0, ""):
                    p["targetPort"] = p["port"]
        if stype == "ExternalName":
            return
        # The cluster IP is allocated once and carried over by updates that
        # leave it out, as kube-apiserver does since 1.20.
        if not spec.get("clusterIP") and ospec.get("clusterIP"):
            spec["clusterIP"] = ospec["clusterIP"]
            spec["clusterIPs"] = ospec.get("clusterIPs", [ospec["clusterIP"]])
        if not spec.get("clusterIP"):
            ip = ctx.allocate_cluster_ip()
            if ip:
                spec["clusterIP"] = ip
        if spec.get("clusterIP") and "clusterIPs" not in spec:
            spec["clusterIPs"] = [spec["clusterIP"]]
        if spec.get("clusterIP") != "None":
            spec.setdefault("ipFamilies", ["IPv4"])
            spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
        if stype in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
            old_ports = {(p.get("port"), p.get("protocol")): p.get("nodePort")
                         for p in ospec.get("ports") or [] if isinstance(p, dict)}
            for p in spec.get("ports") or []:
                if isinstance(p, dict) and not p.get("nodePort"):
                    p["nodePort"] = old_ports.get((p.get("port"), p.get("protocol"))) \
                        or ctx.allocate_node_port()
            if stype == "LoadBalancer":
                spec.setdefault("allocateLoadBalancerNodePorts", True)

    def validate(self, obj, old, ctx):
        causes = []
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [required("spec")]
        stype = spec.get("type")
        if stype not in ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName"):
            causes.append(cause("spec.type", "FieldValueNotSupported",
                                'Unsupported value: %s: supported values: "ClusterIP", '
                                '"ExternalName", "LoadBalancer", "NodePort"' % json.dumps(stype)))
        ports = spec.get("ports") or []
        if stype == "ExternalName":
            if not spec.get("externalName"):
                causes.append(required("spec.externalName"))
        elif not ports and spec.get("clusterIP") != "None":
            causes.append(required("spec.ports"))
        seen = set()
        for i, p in enumerate(ports):
            f = "spec.ports[%d]" % i
            if not isinstance(p, dict):
                causes.append(invalid(f, p, "must be an object"))
                continue
            port = p.get("port")
            if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
                causes.append(invalid(f + ".port", port, "must be between 1 and 65535, inclusive"))
            if len(ports) > 1 and not p.get("name"):
                causes.append(required(f + ".name"))
            if p.get("protocol") not in ("TCP", "UDP", "SCTP"):
                causes.append(cause(f + ".protocol", "FieldValueNotSupported",
                                    'Unsupported value: %s: supported values: "SCTP", "TCP", '
                                    '"UDP"' % json.dumps(p.get("protocol"))))
            if (port, p.get("protocol")) in seen:
                causes.append(cause(f, "FieldValueDuplicate",
                                    "Duplicate value: %s" % json.dumps({"port": port,
                                                                        "protocol": p.get("protocol")})))
            seen.add((port, p.get("protocol")))
            if p.get("name") and not DNS1123_LABEL.match(p["name"]):
                causes.append(invalid(f + ".name", p["name"], "a lowercase RFC 1123 label"))
        ip = spec.get("clusterIP")
        ospec = (old or {}).get("spec") or {}
        if old is not None and ospec.get("clusterIP") and ip != ospec.get("clusterIP"):
            causes.append(invalid("spec.clusterIPs[0]", ip, "may not change once set"))
        elif old is None and ip and ip != "None" and stype != "ExternalName":
            err = ctx.check_cluster_ip(ip, obj)
            if err:
                causes.append(invalid("spec.clusterIPs", [ip], err))
        selector = spec.get("selector")
        if selector is not None and not isinstance(selector, dict):
            causes.append(invalid("spec.selector", selector, "must be a map"))
        return causes

    def table(self, items):
        cols = [col("Name", "name", "Name must be unique within a namespace."),
                col("Type", "", "The type of the service."),
                col("Cluster-IP", "", "The cluster IP of the service."),
                col("External-IP", "", "The external IP of the service."),
                col("Port(s)", "", "The ports of the service."),
                col("Age", "", "CreationTimestamp of the service.", typ="date"),
                col("Selector", "", "The selector of the service.", priority=1)]
        rows = []
        for o in items:
            spec = o.get("spec") or {}
            ports = []
            for p in spec.get("ports") or []:
                s = "%s/%s" % (p.get("port"), p.get("protocol", "TCP"))
                if p.get("nodePort"):
                    s = "%s:%s/%s" % (p.get("port"), p["nodePort"], p.get("protocol", "TCP"))
                ports.append(s)
            ext = spec.get("externalName") or ",".join(spec.get("externalIPs") or []) or (
                "<pending>" if spec.get("type") == "LoadBalancer" else "<none>")
            sel = spec.get("selector") or {}
            rows.append([o["metadata"]["name"], spec.get("type", ""),
                         spec.get("clusterIP") or "<none>", ext,
                         ",".join(ports) or "<none>",
                         human_duration(o["metadata"].get("creationTimestamp")),
                         ",".join("%s=%s" % kv for kv in sorted(sel.items())) or "<none>"])
        return cols, rows


# -- Event ----------------------------------------------------------------

class Events(Resource):
    name, singular, kind = "events", "event", "Event"
    short_names = ["ev"]
    create_on_update = True

    def field_getters(self):
        g = super().field_getters()
        for f in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath"):
            g["involvedObject." + f] = path_getter("involvedObject", f)
        g["reason"] = path_getter("reason")
        g["reportingComponent"] = path_getter("reportingComponent")
        g["source"] = path_getter("source", "component")
        g["type"] = path_getter("type")
        return g

    def validate(self, obj, old, ctx):
        causes = []
        ns = obj["metadata"].get("namespace", "")
        inv = obj.get("involvedObject")
        if not isinstance(inv, dict):
            inv = {}
        ins = inv.get("namespace", "")
        # legacyValidateEvent: the event lives in its object's namespace.
        if (ins == "" and ns not in ("", "default")) or (ins != "" and ins != ns):
            causes.append(invalid("involvedObject.namespace", ins, "does not match event.namespace"))
        if "count" in obj and (not isinstance(obj["count"], int) or isinstance(obj["count"], bool)):
            causes.append(invalid("count", obj["count"], "must be an integer"))
        return causes

    def table(self, items):
        cols = [col("Last Seen", "", "Time of the last occurrence."),
                col("Type", "", "Type of this event."),
                col("Reason", "", "Why the action was taken."),
                col("Object", "", "The object this event is about."),
                col("Message", "", "A human-readable description of the status.")]
        rows = []
        for o in items:
            inv = o.get("involvedObject") or {}
            ts = o.get("lastTimestamp") or o.get("eventTime") or o["metadata"].get("creationTimestamp")
            rows.append([human_duration(ts), o.get("type", ""), o.get("reason", ""),
                         "%s/%s" % ((inv.get("kind") or "").lower(), inv.get("name", "")),
                         o.get("message", "")])
        return cols, rows


# -- Namespace ------------------------------------------------------------

class Namespaces(Resource):
    name, singular, kind = "namespaces", "namespace", "Namespace"
    namespaced = False
    short_names = ["ns"]
    verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
    name_pattern = (DNS1123_LABEL, 63, "a lowercase RFC 1123 label must consist of lower case "
                    "alphanumeric characters or '-', and must start and end with an alphanumeric "
                    "character")
    has_status = True

    def field_getters(self):
        g = super().field_getters()
        g["status.phase"] = path_getter("status", "phase")
        return g

    def default(self, obj, old, ctx):
        meta = obj["metadata"]
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {}).setdefault("phase", "Active")

    def table(self, items):
        cols = [col("Name", "name", "Name must be unique within a namespace."),
                col("Status", "", "The status of the namespace"),
                col("Age", "", "CreationTimestamp of the namespace.", typ="date")]
        return cols, [[o["metadata"]["name"], (o.get("status") or {}).get("phase", ""),
                       human_duration(o["metadata"].get("creationTimestamp"))] for o in items]


# -- simple kinds a controller may read later -------------------------------

class Endpoints(Resource):
    name, singular, kind = "endpoints", "endpoints", "Endpoints"
    short_names = ["ep"]
    create_on_update = True


class ConfigMaps(Resource):
    name, singular, kind = "configmaps", "configmap", "ConfigMap"
    short_names = ["cm"]


class Secrets(Resource):
    name, singular, kind = "secrets", "secret", "Secret"

    def field_getters(self):
        g = super().field_getters()
        g["type"] = path_getter("type")
        return g

    def default(self, obj, old, ctx):
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict):
            data = obj.setdefault("data", {})
            for k, v in string_data.items():
                data[k] = base64.b64encode(str(v).encode()).decode()


RESOURCES = {r.name: r for r in (Services(), Events(), Namespaces(), Endpoints(),
                                  ConfigMaps(), Secrets())}
BY_KIND = {r.kind: r for r in RESOURCES.values()}
