"""The three PATCH formats of the Kubernetes API.

- merge_patch: RFC 7386 JSON merge patch (application/merge-patch+json).
- strategic_merge_patch: what kubectl apply/edit send
  (application/strategic-merge-patch+json): maps merge, lists whose schema
  names a merge key merge element-wise, other lists are replaced, and the
  directives $patch, $retainKeys, $setElementOrder/<field> and
  $deleteFromPrimitiveList/<field> are honoured.
- json_patch: RFC 6902 (application/json-patch+json).

All take the current object and the decoded patch and return a new object;
the inputs are not modified. They raise PatchError for malformed patches
and (json_patch) failed tests; the server answers 422 like the real one.
"""

import copy


class PatchError(ValueError):
    pass


def merge_patch(target, patch):
    """RFC 7386: objects merge recursively, null deletes, others replace."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


# -- strategic merge patch ------------------------------------------------

# A schema maps a field path (tuple of keys; list items add no element) to
# ("merge", merge_key) for lists of maps merged by key, or ("set",) for lists
# of primitives merged as a set. Lists not named here are replaced, as
# atomic lists are.
COMMON_SCHEMA = {
    ("metadata", "finalizers"): ("set",),
    ("metadata", "ownerReferences"): ("merge", "uid"),
    ("status", "conditions"): ("merge", "type"),
}

_ORDER = "$setElementOrder/"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"


def strategic_merge_patch(target, patch, schema=None):
    """Apply a strategic merge patch to target (a dict)."""
    if not isinstance(patch, dict):
        raise PatchError("strategic merge patch must be a JSON object")
    sch = dict(COMMON_SCHEMA)
    sch.update(schema or {})
    out = _smp_map(target if isinstance(target, dict) else {}, patch, (), sch)
    return out if out is not None else {}


def _smp_map(orig, patch, path, schema):
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    if directive == "replace":
        return _strip_directives(patch)
    if directive not in (None, "merge"):
        raise PatchError("Unknown patch type: %s in map: %s" % (directive, patch))

    out = dict(orig)
    retain = patch.get("$retainKeys")
    if retain is not None:
        if not isinstance(retain, list):
            raise PatchError("$retainKeys must be a list")
        out = {k: v for k, v in out.items() if k in retain}

    orders = {}
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith(_ORDER):
            orders[key[len(_ORDER):]] = value
            continue
        if key.startswith(_DELETE_PRIMITIVE):
            field = key[len(_DELETE_PRIMITIVE):]
            if isinstance(out.get(field), list) and isinstance(value, list):
                out[field] = [v for v in out[field] if v not in value]
            continue
        if value is None:
            out.pop(key, None)
            continue
        sub = path + (key,)
        cur = out.get(key)
        if isinstance(value, dict):
            merged = _smp_map(cur if isinstance(cur, dict) else {}, value, sub, schema)
            if merged is None:
                out.pop(key, None)
            else:
                out[key] = merged
        elif isinstance(value, list):
            out[key] = _smp_list(cur if isinstance(cur, list) else [], value, sub, schema)
        else:
            out[key] = copy.deepcopy(value)

    for field, order in orders.items():
        if isinstance(out.get(field), list) and isinstance(order, list):
            out[field] = _apply_order(out[field], order, schema.get(path + (field,)))
    return out


def _smp_list(orig, patch, path, schema):
    strategy = schema.get(path)
    if any(isinstance(e, dict) and e.get("$patch") == "replace" for e in patch):
        return [_strip_directives(e) for e in patch
                if not (isinstance(e, dict) and e.get("$patch") == "replace")]
    if strategy is None:
        return [_strip_directives(e) if isinstance(e, dict) else copy.deepcopy(e) for e in patch]
    if strategy[0] == "set":
        out = list(orig)
        for e in patch:
            if e not in out:
                out.append(copy.deepcopy(e))
        return out

    key = strategy[1]
    out = [copy.deepcopy(e) for e in orig]
    for e in patch:
        if not isinstance(e, dict):
            raise PatchError("merging list %s: element %r is not a map" % (".".join(path), e))
        if key not in e:
            raise PatchError("map: %s does not contain declared merge key: %s" % (e, key))
        idx = next((i for i, o in enumerate(out)
                    if isinstance(o, dict) and o.get(key) == e[key]), None)
        if e.get("$patch") == "delete":
            if idx is not None:
                del out[idx]
            continue
        if idx is None:
            out.append(_strip_directives(e))
        else:
            out[idx] = _smp_map(out[idx], e, path, schema)
    return out


def _apply_order(items, order, strategy):
    """Reorder a merged list per $setElementOrder: elements named in the
    order come in that order; the others keep their place after the
    element that preceded them."""
    if strategy is not None and strategy[0] == "merge":
        key = strategy[1]
        ident = lambda e: e.get(key) if isinstance(e, dict) else e
        order_ids = [o.get(key) if isinstance(o, dict) else o for o in order]
    else:
        ident = lambda e: e
        order_ids = list(order)
    listed = {i: n for n, i in enumerate(order_ids)}
    named = sorted((e for e in items if ident(e) in listed), key=lambda e: listed[ident(e)])
    out, it = [], iter(named)
    for e in items:
        out.append(next(it) if ident(e) in listed else e)
    return out


def _strip_directives(value):
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items()
                if not k.startswith("$")}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


# -- JSON patch -----------------------------------------------------------

def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError("JSON pointer must start with '/': %r" % path)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc, tokens, path):
    cur = doc
    for t in tokens[:-1]:
        if isinstance(cur, dict) and t in cur:
            cur = cur[t]
        elif isinstance(cur, list) and t.isdigit() and int(t) < len(cur):
            cur = cur[int(t)]
        else:
            raise PatchError("doc is missing path: %s" % path)
    return cur


def _get(doc, path):
    tokens = _pointer(path)
    if not tokens:
        return doc
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent[int(last)]
    raise PatchError("doc is missing path: %s" % path)


def _add(doc, path, value):
    tokens = _pointer(path)
    if not tokens:
        return value
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise PatchError("add operation does not apply: doc is missing path: %s" % path)
    else:
        raise PatchError("add operation does not apply: doc is missing path: %s" % path)
    return doc


def _remove(doc, path):
    tokens = _pointer(path)
    if not tokens:
        raise PatchError("cannot remove the whole document")
    parent = _parent(doc, tokens, path)
    last = tokens[-1]
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent.pop(int(last))
    raise PatchError("remove operation does not apply: doc is missing path: %s" % path)


def json_patch(target, ops):
    """RFC 6902: add, remove, replace, move, copy, test."""
    if not isinstance(ops, list):
        raise PatchError("json patch must be a JSON array of operations")
    doc = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError("invalid JSON patch operation: %r" % (op,))
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError("%s operation requires a value" % kind)
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            _get(doc, path)
            if _pointer(path):
                _remove(doc, path)
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind in ("move", "copy"):
            if "from" not in op:
                raise PatchError("%s operation requires from" % kind)
            value = copy.deepcopy(_get(doc, op["from"]))
            if kind == "move":
                _remove(doc, op["from"])
            doc = _add(doc, path, value)
        elif kind == "test":
            if _get(doc, path) != op["value"]:
                raise PatchError("testing value %s failed" % path)
        else:
            raise PatchError("Unexpected kind: %s" % kind)
    return doc
