"""A small YAML loader for Kubernetes manifests (standard library only).

Covers what manifests use: block mappings and sequences, `---` documents,
plain/single/double-quoted scalars, flow collections ({a: 1}, [x, y]),
literal and folded block scalars (|, |-, |+, >, >-) — the form of a
`getambassador.io/config` annotation — and comments. Anchors, aliases,
tags other than !!str, and multi-line plain scalars are not supported.

load_all(text) returns the list of documents; errors raise YAMLError with
the line number.
"""

import re


class YAMLError(ValueError):
    pass


def load_all(text):
    docs, cur = [], []
    for line in text.splitlines():
        if re.match(r"^---(\s|$)", line) or line.rstrip() == "...":
            docs.append(cur)
            cur = []
            rest = line[3:].strip() if line.startswith("---") else ""
            if rest and not rest.startswith("#"):
                cur.append(rest)
        else:
            cur.append(line)
    docs.append(cur)
    out = []
    for lines in docs:
        p = _Parser(lines)
        if p.skip() is None:
            continue
        out.append(p.parse())
    return out


def load(text):
    docs = load_all(text)
    return docs[0] if docs else None


_INT = re.compile(r"^[-+]?(0|[1-9][0-9]*)$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")


def _resolve(text):
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    # YAML 1.1 booleans, as sigs.k8s.io/yaml (go-yaml v2) reads them.
    if text in ("true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", "y", "Y"):
        return True
    if text in ("false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", "n", "N"):
        return False
    if re.match(r"^[-+]?0[0-7]+$", text):
        return int(text.replace("0", "0o", 1) if text[0] == "0" else text[0] + "0o" + text[2:], 8)
    if _INT.match(text):
        return int(text)
    if re.match(r"^0x[0-9a-fA-F]+$", text):
        return int(text, 16)
    if re.match(r"^0o[0-7]+$", text):
        return int(text[2:], 8)
    if _FLOAT.match(text) and any(c.isdigit() for c in text):
        return float(text)
    if text in (".inf", ".Inf", "+.inf"):
        return float("inf")
    if text.startswith("!!str "):
        return text[6:].strip()
    return text


def _strip_comment(text):
    """Remove a trailing ' # comment' that is outside quotes."""
    quote, i = None, 0
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                quote = None
        elif c in "'\"" and (i == 0 or text[i - 1] in " \t[{,:"):
            quote = c
        elif c == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i].rstrip()
        i += 1
    return text.rstrip()


def _split_key(text):
    """Return (key, rest) when text is 'key: rest' / 'key:', else None."""
    if text[:1] in "\"'":
        end = _quoted_end(text, 0)
        if end is None:
            return None
        after = text[end + 1:]
        if after.startswith(":") and (len(after) == 1 or after[1] in " \t"):
            return _quoted(text[:end + 1]), after[1:].strip()
        return None
    if text[:1] in "[{":
        return None
    m = re.match(r"^([^#]*?)\s*:(\s+|$)(.*)$", text)
    if not m or m.group(1) == "" or m.group(1).startswith("- "):
        return None
    return m.group(1), m.group(3)


def _quoted_end(text, start):
    q = text[start]
    i = start + 1
    while i < len(text):
        c = text[i]
        if q == '"' and c == "\\":
            i += 2
            continue
        if c == q:
            if q == "'" and i + 1 < len(text) and text[i + 1] == "'":
                i += 2
                continue
            return i
        i += 1
    return None


_ESC = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", '"': '"', "\\": "\\", "/": "/",
        " ": " ", "a": "\a", "b": "\b", "e": "\x1b", "f": "\f", "v": "\v"}


def _quoted(text):
    if text[0] == "'":
        return text[1:-1].replace("''", "'")
    out, i, body = [], 0, text[1:-1]
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            n = body[i + 1]
            if n in _ESC:
                out.append(_ESC[n])
                i += 2
            elif n in "xuU":
                width = {"x": 2, "u": 4, "U": 8}[n]
                out.append(chr(int(body[i + 2:i + 2 + width], 16)))
                i += 2 + width
            else:
                raise YAMLError("unknown escape \\%s" % n)
        else:
            out.append(c)
            i += 1
    return "".join(out)


class _Flow:
    """Parser for flow collections and scalars on one logical line."""

    def __init__(self, text, lineno):
        self.s, self.i, self.lineno = text, 0, lineno

    def error(self, msg):
        raise YAMLError("line %d: %s" % (self.lineno, msg))

    def ws(self):
        while self.i < len(self.s) and self.s[self.i] in " \t\n":
            self.i += 1

    def value(self):
        self.ws()
        c = self.s[self.i:self.i + 1]
        if c == "{":
            return self.mapping()
        if c == "[":
            return self.seq()
        if c in "\"'":
            end = _quoted_end(self.s, self.i)
            if end is None:
                self.error("unterminated quoted string")
            v = _quoted(self.s[self.i:end + 1])
            self.i = end + 1
            return v
        start = self.i
        while self.i < len(self.s) and self.s[self.i] not in ",]}" and \
                not (self.s[self.i] == ":" and self.s[self.i + 1:self.i + 2] in (" ", "")):
            self.i += 1
        return _resolve(self.s[start:self.i].strip())

    def mapping(self):
        self.i += 1
        out = {}
        while True:
            self.ws()
            if self.s[self.i:self.i + 1] == "}":
                self.i += 1
                return out
            key = self.value()
            self.ws()
            if self.s[self.i:self.i + 1] == ":":
                self.i += 1
                out[key] = self.value()
            else:
                out[key] = None
            self.ws()
            c = self.s[self.i:self.i + 1]
            if c == ",":
                self.i += 1
            elif c != "}":
                self.error("expected ',' or '}' in flow mapping")

    def seq(self):
        self.i += 1
        out = []
        while True:
            self.ws()
            if self.s[self.i:self.i + 1] == "]":
                self.i += 1
                return out
            out.append(self.value())
            self.ws()
            c = self.s[self.i:self.i + 1]
            if c == ",":
                self.i += 1
            elif c != "]":
                self.error("expected ',' or ']' in flow sequence")


class _Parser:
    def __init__(self, lines):
        # Each entry is [indent, text]; sequence entries are rewritten in
        # place so "- key: v" becomes a mapping line at a deeper indent.
        self.raw = lines
        self.lines = [[len(l) - len(l.lstrip(" ")), l.strip()] for l in lines]
        self.pos = 0

    def skip(self):
        """Advance past blank and comment lines; return the current entry."""
        while self.pos < len(self.lines):
            text = self.lines[self.pos][1]
            if text and not text.startswith("#"):
                return self.lines[self.pos]
            self.pos += 1
        return None

    def error(self, msg):
        raise YAMLError("line %d: %s" % (self.pos + 1, msg))

    def parse(self):
        line = self.skip()
        value = self.block(line[0])
        if self.skip() is not None:
            self.error("unexpected content")
        return value

    def block(self, indent):
        line = self.skip()
        if line is None or line[0] < indent:
            return None
        text = line[1]
        if text == "-" or text.startswith("- "):
            return self.sequence(line[0])
        if _split_key(_strip_comment(text)) is not None:
            return self.mapping(line[0])
        return self.scalar_line(line[0])

    def sequence(self, indent):
        out = []
        while True:
            line = self.skip()
            if line is None or line[0] != indent or not (line[1] == "-" or line[1].startswith("- ")):
                return out
            rest = line[1][1:]
            stripped = rest.lstrip(" ")
            if not _strip_comment(stripped):
                self.pos += 1
                nxt = self.skip()
                out.append(self.block(nxt[0]) if nxt is not None and nxt[0] > indent else None)
                continue
            line[0] = indent + 1 + (len(rest) - len(stripped))
            line[1] = stripped
            out.append(self.block(line[0]))

    def mapping(self, indent):
        out = {}
        while True:
            line = self.skip()
            if line is None or line[0] != indent:
                return out
            kv = _split_key(_strip_comment(line[1]))
            if kv is None:
                self.error("expected a mapping key")
            key, rest = kv
            if isinstance(key, str) and not line[1].startswith(("'", '"')):
                key = key.strip()
            if key in out:
                self.error("duplicate key %r" % key)
            rest = rest.strip()
            if rest[:1] in ("|", ">"):
                out[key] = self.block_scalar(indent, rest)
                continue
            self.pos += 1
            if rest:
                out[key] = self.inline(rest)
                continue
            nxt = self.skip()
            if nxt is None:
                out[key] = None
            elif nxt[0] > indent:
                out[key] = self.block(nxt[0])
            elif nxt[0] == indent and (nxt[1] == "-" or nxt[1].startswith("- ")):
                out[key] = self.sequence(indent)
            else:
                out[key] = None

    def inline(self, text):
        """A scalar or flow collection after 'key:' or '- ', possibly
        continued on following lines while brackets are open."""
        text = _strip_comment(text)
        if text[:1] in "[{":
            while text.count("[") + text.count("{") > text.count("]") + text.count("}") and \
                    self.pos < len(self.lines):
                text += " " + _strip_comment(self.lines[self.pos][1])
                self.pos += 1
            f = _Flow(text, self.pos)
            v = f.value()
            f.ws()
            if f.i != len(f.s):
                self.error("trailing content after flow collection")
            return v
        if text[:1] in "\"'":
            end = _quoted_end(text, 0)
            while end is None and self.pos < len(self.lines):
                text += " " + self.lines[self.pos][1]
                self.pos += 1
                end = _quoted_end(text, 0)
            if end is None:
                self.error("unterminated quoted string")
            return _quoted(text[:end + 1])
        if text.startswith(("&", "*")):
            self.error("anchors and aliases are not supported")
        return _resolve(text)

    def scalar_line(self, indent):
        text = self.lines[self.pos][1]
        self.pos += 1
        return self.inline(text)

    def block_scalar(self, indent, header):
        m = re.match(r"^([|>])([-+]?)([1-9]?)([-+]?)\s*(#.*)?$", header)
        if not m:
            self.error("bad block scalar header %r" % header)
        style, chomp = m.group(1), m.group(2) or m.group(4)
        self.pos += 1
        body, block_indent = [], int(m.group(3)) + indent if m.group(3) else None
        while self.pos < len(self.raw):
            raw = self.raw[self.pos]
            if raw.strip() == "":
                body.append("")
                self.pos += 1
                continue
            ind = len(raw) - len(raw.lstrip(" "))
            if block_indent is None:
                if ind <= indent:
                    break
                block_indent = ind
            if ind < block_indent:
                break
            body.append(raw[block_indent:])
            self.pos += 1
        trailing = 0
        while body and body[-1] == "":
            body.pop()
            trailing += 1
        if style == "|":
            text = "\n".join(body)
        else:
            text, prev_blank = "", True
            for line in body:
                if line == "":
                    text += "\n"
                    prev_blank = True
                elif line.startswith((" ", "\t")):
                    text += ("" if prev_blank or text.endswith("\n") else "\n") + line + "\n"
                    prev_blank = True
                else:
                    text += ("" if prev_blank or text.endswith("\n") else " ") + line
                    prev_blank = False
            text = text.rstrip("\n") if text.endswith("\n") and not body[-1:] == [""] else text
        if not body:
            return ""
        if chomp == "-":
            return text
        if chomp == "+":
            return text + "\n" * (1 + trailing)
        return text + "\n"
