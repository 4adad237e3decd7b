"""Field and label selectors as kube-apiserver parses them.

parse_field_selector() and parse_label_selector() turn the query-string
forms into predicates over an object (a dict). Both raise SelectorError,
which the server answers with 400 BadRequest, as the real server does.
"""

import re


class SelectorError(ValueError):
    pass


def _split_unescaped(text, sep):
    """Split on sep, honouring the backslash escapes of field selectors."""
    parts, cur, i = [], [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            cur.append(text[i:i + 2])
            i += 2
            continue
        if c == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def _unescape(text):
    return re.sub(r"\\(.)", r"\1", text)


def parse_field_selector(text, getters):
    """Return a predicate for a field selector such as
    'involvedObject.name=web,involvedObject.kind!=Pod'.

    getters maps a field label to a function obj -> str. An unknown label
    raises SelectorError, like the real server's 'field label not supported'.
    """
    terms = []
    text = (text or "").strip()
    if not text:
        return lambda obj: True
    for term in _split_unescaped(text, ","):
        term = term.strip()
        if not term:
            continue
        m = re.match(r"^((?:[^=!\\]|\\.)+)(==|!=|=)(.*)$", term)
        if not m:
            raise SelectorError("invalid selector: '%s'; can't understand '%s'" % (text, term))
        label, op, value = _unescape(m.group(1)).strip(), m.group(2), _unescape(m.group(3))
        if label not in getters:
            raise SelectorError('field label not supported: %s' % label)
        terms.append((getters[label], op == "!=", value))

    def match(obj):
        for get, negate, value in terms:
            if (get(obj) == value) == negate:
                return False
        return True
    return match


_LABEL_TERM = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9][-A-Za-z0-9_./]*)\s*"
    r"(?:(?P<op>==|!=|=|>|<)\s*(?P<val>[-A-Za-z0-9_.]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<set>[^)]*)\))?\s*$")


def _split_label_terms(text):
    """Split a label selector on commas that are not inside parentheses."""
    parts, depth, cur = [], 0, []
    for c in text:
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        if c == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
    parts.append("".join(cur))
    return parts


def parse_label_selector(text):
    """Return a predicate over obj['metadata']['labels'] for a label
    selector: k, !k, k=v, k==v, k!=v, k in (a,b), k notin (a,b), k>1, k<1."""
    text = (text or "").strip()
    if not text:
        return lambda obj: True
    checks = []
    for term in _split_label_terms(text):
        if not term.strip():
            raise SelectorError("unable to parse requirement: found '', expected: identifier")
        m = _LABEL_TERM.match(term)
        if not m:
            raise SelectorError("unable to parse requirement: invalid label selector term '%s'" % term.strip())
        key, neg, op, val = m.group("key"), bool(m.group("neg")), m.group("op"), m.group("val")
        setop = m.group("setop")
        if neg and (op or setop):
            raise SelectorError("unable to parse requirement: '!' only goes with a bare key")
        if setop:
            values = {v.strip() for v in m.group("set").split(",") if v.strip()}
            checks.append(_set_check(key, setop == "in", values))
        elif op:
            checks.append(_op_check(key, op, val))
        else:
            checks.append(_exists_check(key, not neg))

    def match(obj):
        labels = ((obj.get("metadata") or {}).get("labels")) or {}
        return all(check(labels) for check in checks)
    return match


def _set_check(key, want_in, values):
    if want_in:
        return lambda labels: key in labels and labels[key] in values
    return lambda labels: key not in labels or labels[key] not in values


def _exists_check(key, present):
    return lambda labels: (key in labels) == present


def _op_check(key, op, val):
    if op in ("=", "=="):
        return lambda labels: labels.get(key) == val
    if op == "!=":
        return lambda labels: labels.get(key) != val
    try:
        bound = int(val)
    except ValueError:
        raise SelectorError("unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer")

    def cmp(labels):
        try:
            have = int(labels.get(key, ""))
        except ValueError:
            return False
        return have > bound if op == ">" else have < bound
    return cmp


def path_getter(*path, default=""):
    """Return obj -> str for a nested field, '' when absent (as the real
    server's field sets do). Integers and booleans are formatted the Go way."""
    def get(obj):
        cur = obj
        for part in path:
            if not isinstance(cur, dict) or part not in cur:
                return default
            cur = cur[part]
        if cur is None:
            return default
        if isinstance(cur, bool):
            return "true" if cur else "false"
        return str(cur)
    return get
