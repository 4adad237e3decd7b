"""Discovery and OpenAPI documents: /version, /api, /apis, /api/v1,
/openapi/v2 and /openapi/v3.

The OpenAPI documents are stubs with just what kubectl reads:
- /openapi/v3/api/v1 lists, for each kind, the PATCH operation of its item
  path with the x-kubernetes-group-version-kind extension and the
  fieldValidation query parameter, so kubectl's default --validate=strict
  sees server-side field validation and skips client-side schema checks.
  The PATCH operations advertise no strategic-merge request body, so
  `kubectl apply` computes its patch from its compiled-in types.
- /openapi/v2 is an empty swagger document (protobuf when asked, as
  client-go asks, JSON otherwise).
"""

import hashlib
import json

from kinds import RESOURCES


def version_info(git_version):
    parts = git_version.lstrip("v").split(".")
    return {"major": parts[0], "minor": parts[1] if len(parts) > 1 else "0",
            "gitVersion": git_version, "gitCommit": "0" * 40, "gitTreeState": "clean",
            "buildDate": "2025-04-22T16:02:27Z", "goVersion": "go1.23.6", "compiler": "gc",
            "platform": "linux/amd64"}


def api_versions(server_address):
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                            "serverAddress": server_address}]}


def api_group_list():
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}


def core_v1_resources():
    res = []
    for r in sorted(RESOURCES.values(), key=lambda r: r.name):
        res.append(r.discovery())
        if r.has_status:
            res.append({"name": r.name + "/status", "singularName": "", "namespaced": r.namespaced,
                        "kind": r.kind, "verbs": ["get", "patch", "update"]})
    return {"kind": "APIResourceList", "groupVersion": "v1", "resources": res}


def _param(name, desc):
    return {"name": name, "in": "query", "description": desc,
            "schema": {"type": "string", "uniqueItems": True}}


def _item_path(r):
    if r.namespaced:
        return "/api/v1/namespaces/{namespace}/%s/{name}" % r.name
    return "/api/v1/%s/{name}" % r.name


def openapi_v3_core():
    paths = {}
    for r in RESOURCES.values():
        gvk = {"group": "", "version": "v1", "kind": r.kind}
        ok = {"200": {"description": "OK", "content": {"application/json": {"schema": {}}}}}
        paths[_item_path(r)] = {
            "get": {"operationId": "readCoreV1" + r.kind, "x-kubernetes-action": "get",
                    "x-kubernetes-group-version-kind": gvk, "responses": ok},
            "put": {"operationId": "replaceCoreV1" + r.kind, "x-kubernetes-action": "put",
                    "x-kubernetes-group-version-kind": gvk, "responses": ok,
                    "parameters": [_param("fieldValidation", "fieldValidation instructs the "
                                          "server on how to handle objects in the request "
                                          "containing unknown or duplicate fields.")]},
            "patch": {"operationId": "patchCoreV1" + r.kind, "x-kubernetes-action": "patch",
                      "x-kubernetes-group-version-kind": gvk, "responses": ok,
                      "parameters": [_param("dryRun", "When present, indicates that "
                                            "modifications should not be persisted."),
                                     _param("fieldManager", "fieldManager is a name associated "
                                            "with the actor or entity that is making these "
                                            "changes."),
                                     _param("fieldValidation", "fieldValidation instructs the "
                                            "server on how to handle objects in the request "
                                            "containing unknown or duplicate fields."),
                                     _param("force", "Force is going to \"force\" Apply requests.")]},
        }
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.4"},
            "paths": paths, "components": {"schemas": {}}}


def _hash(doc):
    return hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest().upper()[:128]


OPENAPI_V3_CORE = openapi_v3_core()
OPENAPI_V3_CORE_HASH = _hash(OPENAPI_V3_CORE)


def openapi_v3_root():
    return {"paths": {"api/v1": {"serverRelativeURL": "/openapi/v3/api/v1?hash=" +
                                 OPENAPI_V3_CORE_HASH}}}


def openapi_v2_json(git_version):
    return {"swagger": "2.0", "info": {"title": "Kubernetes", "version": git_version},
            "paths": {}, "definitions": {}}


def _pb_string(field, text):
    data = text.encode()
    return bytes([(field << 3) | 2, len(data)]) + data


def openapi_v2_protobuf(git_version):
    """gnostic openapi_v2.Document{swagger: "2.0", info: {title, version}}."""
    info = _pb_string(1, "Kubernetes") + _pb_string(2, git_version)
    return _pb_string(1, "2.0") + bytes([(2 << 3) | 2, len(info)]) + info
