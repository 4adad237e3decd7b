"""Decode the Kubernetes protobuf encoding of a few core/v1 kinds.

kubectl's imperative commands (`kubectl create namespace|service|secret|
configmap`) send their body as application/vnd.kubernetes.protobuf: the
magic bytes "k8s\\0", then a runtime.Unknown {typeMeta, raw}, where raw is
the object in the field numbering of k8s.io/api/core/v1/generated.proto.
decode() turns such a body into the dict the JSON form would give. Fields
with zero values are dropped, as JSON's omitempty drops them; field numbers
not listed below are ignored. Unknown kinds raise ProtoError (answered 415).
"""

import base64
import datetime

MAGIC = b"k8s\x00"


class ProtoError(ValueError):
    pass


def _varint(buf, i):
    shift = value = 0
    while True:
        if i >= len(buf):
            raise ProtoError("truncated varint")
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise ProtoError("varint too long")


def _fields(buf):
    """Yield (field number, value): int for varints, bytes for
    length-delimited fields; fixed-size fields are skipped."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise ProtoError("truncated field %d" % num)
            value, i = buf[i:i + n], i + n
        elif wire == 1:
            i += 8
            continue
        elif wire == 5:
            i += 4
            continue
        else:
            raise ProtoError("unsupported wire type %d" % wire)
        yield num, value


def _signed(v):
    return v - (1 << 64) if v >= 1 << 63 else v


def _time(buf):
    fields = dict(_fields(buf))
    seconds = _signed(fields.get(1, 0))
    if not seconds:
        return None
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime(
        "%Y-%m-%dT%H:%M:%SZ")


def _int_or_string(buf):
    fields = dict(_fields(buf))
    if fields.get(1, 0) == 1:
        return fields.get(3, b"").decode()
    return _signed(fields.get(2, 0))


def _map(buf, conv):
    fields = dict(_fields(buf))
    return fields.get(1, b"").decode(), conv(fields.get(2, b""))


SCALARS = {
    "str": lambda v: v.decode("utf-8"),
    "int": _signed,
    "bool": bool,
    "bytes": lambda v: base64.b64encode(v).decode(),
    "Time": _time,
    "IntOrString": _int_or_string,
}

# message name -> {field number: (json name, type)}; a type is a scalar
# name, a message name, "[]T" for repeated, or "map:str" / "map:bytes".
MESSAGES = {
    "ObjectMeta": {1: ("name", "str"), 2: ("generateName", "str"), 3: ("namespace", "str"),
                   4: ("selfLink", "str"), 5: ("uid", "str"), 6: ("resourceVersion", "str"),
                   7: ("generation", "int"), 8: ("creationTimestamp", "Time"),
                   9: ("deletionTimestamp", "Time"), 10: ("deletionGracePeriodSeconds", "int"),
                   11: ("labels", "map:str"), 12: ("annotations", "map:str"),
                   13: ("ownerReferences", "[]OwnerReference"), 14: ("finalizers", "[]str")},
    "OwnerReference": {1: ("kind", "str"), 3: ("name", "str"), 4: ("uid", "str"),
                       5: ("apiVersion", "str"), 6: ("controller", "bool"),
                       7: ("blockOwnerDeletion", "bool")},
    "Namespace": {1: ("metadata", "ObjectMeta"), 2: ("spec", "NamespaceSpec")},
    "NamespaceSpec": {1: ("finalizers", "[]str")},
    "Service": {1: ("metadata", "ObjectMeta"), 2: ("spec", "ServiceSpec")},
    "ServiceSpec": {1: ("ports", "[]ServicePort"), 2: ("selector", "map:str"),
                    3: ("clusterIP", "str"), 4: ("type", "str"), 5: ("externalIPs", "[]str"),
                    7: ("sessionAffinity", "str"), 8: ("loadBalancerIP", "str"),
                    9: ("loadBalancerSourceRanges", "[]str"), 10: ("externalName", "str"),
                    11: ("externalTrafficPolicy", "str"), 12: ("healthCheckNodePort", "int"),
                    13: ("publishNotReadyAddresses", "bool"), 17: ("ipFamilyPolicy", "str"),
                    18: ("clusterIPs", "[]str"), 19: ("ipFamilies", "[]str"),
                    20: ("allocateLoadBalancerNodePorts", "bool"),
                    21: ("loadBalancerClass", "str"), 22: ("internalTrafficPolicy", "str"),
                    23: ("trafficDistribution", "str")},
    "ServicePort": {1: ("name", "str"), 2: ("protocol", "str"), 3: ("port", "int"),
                    4: ("targetPort", "IntOrString"), 5: ("nodePort", "int"),
                    6: ("appProtocol", "str")},
    "Secret": {1: ("metadata", "ObjectMeta"), 2: ("data", "map:bytes"), 3: ("type", "str"),
               4: ("stringData", "map:str"), 5: ("immutable", "bool")},
    "ConfigMap": {1: ("metadata", "ObjectMeta"), 2: ("data", "map:str"),
                  3: ("binaryData", "map:bytes"), 4: ("immutable", "bool")},
}


def _message(name, buf):
    schema = MESSAGES[name]
    out = {}
    for num, raw in _fields(buf):
        if num not in schema:
            continue
        key, typ = schema[num]
        if typ.startswith("map:"):
            k, v = _map(raw, SCALARS[typ[4:]])
            out.setdefault(key, {})[k] = v
        elif typ.startswith("[]"):
            out.setdefault(key, []).append(_value(typ[2:], raw))
        else:
            out[key] = _value(typ, raw)
    # omitempty: zero values are absent from the JSON form.
    return {k: v for k, v in out.items()
            if not (v is None or v is False or v == "" or v == 0 or v == {} or v == [])}


def _value(typ, raw):
    if typ in SCALARS:
        return SCALARS[typ](raw)
    return _message(typ, raw)


def decode(body):
    """Decode a k8s protobuf body into a JSON-like dict with kind and
    apiVersion. Raises ProtoError for other kinds or malformed input."""
    if not body.startswith(MAGIC):
        raise ProtoError("missing the k8s protobuf magic prefix")
    envelope = dict(_fields(body[len(MAGIC):]))
    type_meta = dict(_fields(envelope.get(1, b"")))
    api_version = type_meta.get(1, b"").decode()
    kind = type_meta.get(2, b"").decode()
    if kind not in MESSAGES or "metadata" not in {v[0] for v in MESSAGES[kind].values()}:
        raise ProtoError("protobuf bodies of kind %r are not supported" % kind)
    obj = {"kind": kind, "apiVersion": api_version}
    obj.update(_message(kind, envelope.get(2, b"")))
    obj.setdefault("metadata", {})
    return obj
