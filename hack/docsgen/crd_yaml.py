"""Reads the YAML that crdgen writes (crds/*.yaml) without third-party modules.

The CRD files are emitted by serde_yaml_ng: block mappings and sequences
(including sequences indented at their key's level), plain, quoted and
literal block scalars, and empty flow collections. This reader handles that
subset and refuses anything else (anchors, aliases, tags, non-empty flow
collections) with the line number, so it fails loudly rather than misread.
When PyYAML is installed, `load_documents` also parses with it and requires
both results to be equal, which keeps this reader honest.
"""

import re

_BOOL = {
    "true": True, "True": True, "TRUE": True, "yes": True, "Yes": True, "YES": True,
    "on": True, "On": True, "ON": True,
    "false": False, "False": False, "FALSE": False, "no": False, "No": False, "NO": False,
    "off": False, "Off": False, "OFF": False,
}
_NULL = {"", "~", "null", "Null", "NULL"}
_INT = re.compile(r"^[-+]?(0|[1-9][0-9_]*)$")
_FLOAT = re.compile(r"^[-+]?([0-9][0-9_]*)?\.[0-9_]*([eE][-+]?[0-9]+)?$")
_ESCAPES = {
    "0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v",
    "f": "\f", "r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\",
    "N": "\x85", "_": "\xa0", "L": "\u2028", "P": "\u2029",
}
_HEX = {"x": 2, "u": 4, "U": 8}


class YamlError(Exception):
    pass


class _Line:
    __slots__ = ("number", "raw", "indent", "text")

    def __init__(self, number, raw):
        self.number = number
        self.raw = raw
        stripped = raw.lstrip(" ")
        self.indent = len(raw) - len(stripped)
        self.text = stripped.rstrip()

    @property
    def blank(self):
        return self.text == "" or self.text.startswith("#")


def plain_value(text):
    """The value of a plain scalar, resolved as PyYAML's safe loader does."""
    if text in _NULL:
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _INT.match(text):
        return int(text.replace("_", ""))
    if text in (".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"):
        return float("inf")
    if text in ("-.inf", "-.Inf", "-.INF"):
        return float("-inf")
    if text in (".nan", ".NaN", ".NAN"):
        return float("nan")
    if _FLOAT.match(text) and any(c.isdigit() for c in text):
        return float(text.replace("_", ""))
    return text


def _fold(lines):
    """Joins the lines of a multi-line flow scalar: a line break is a space,
    an empty line a newline."""
    out, pending_breaks = "", 0
    for i, line in enumerate(lines):
        line = line.strip() if 0 < i < len(lines) - 1 else (line.rstrip() if i == 0 else line.lstrip())
        if i > 0 and line == "" and i < len(lines) - 1:
            pending_breaks += 1
            continue
        if i > 0:
            out += "\n" * pending_breaks if pending_breaks else " "
        pending_breaks = 0
        out += line
    return out


def _unescape_double(body, number):
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = body[i + 1] if i + 1 < len(body) else ""
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt in _HEX:
            width = _HEX[nxt]
            digits = body[i + 2:i + 2 + width]
            if len(digits) != width:
                raise YamlError(f"line {number}: bad escape \\{nxt}{digits}")
            out.append(chr(int(digits, 16)))
            i += 2 + width
        else:
            raise YamlError(f"line {number}: unknown escape \\{nxt}")
    return "".join(out)


class _Reader:
    def __init__(self, lines):
        self.lines = lines
        self.pos = 0

    def _skip_blank(self):
        while self.pos < len(self.lines) and self.lines[self.pos].blank:
            self.pos += 1

    def _peek(self):
        self._skip_blank()
        return self.lines[self.pos] if self.pos < len(self.lines) else None

    def node(self, min_indent):
        line = self._peek()
        if line is None or line.indent < min_indent:
            return None
        if line.text == "-" or line.text.startswith("- "):
            return self.sequence(line.indent)
        return self.mapping(line.indent)

    def sequence(self, indent):
        items = []
        while True:
            line = self._peek()
            if line is None or line.indent != indent or not (line.text == "-" or line.text.startswith("- ")):
                return items
            rest = line.text[1:]
            content = rest.lstrip(" ")
            if content == "":
                self.pos += 1
                items.append(self.node(indent + 1))
                continue
            # The item continues on this line: read it as if its text began a
            # line of its own at the column it starts at.
            line.indent = indent + 1 + (len(rest) - len(content))
            line.text = content
            if _split_key(content, line.number) is not None or content == "-" or content.startswith("- "):
                items.append(self.node(line.indent))
            else:
                items.append(self.scalar(content, indent, line))
        return items

    def mapping(self, indent):
        result = {}
        while True:
            line = self._peek()
            if line is None or line.indent < indent:
                return result
            if line.indent > indent:
                raise YamlError(f"line {line.number}: unexpected indentation")
            if line.text == "-" or line.text.startswith("- "):
                return result
            split = _split_key(line.text, line.number)
            if split is None:
                raise YamlError(f"line {line.number}: expected `key: value`, got {line.text!r}")
            key, rest = split
            if key in result:
                raise YamlError(f"line {line.number}: duplicate key {key!r}")
            if rest == "":
                self.pos += 1
                nxt = self._peek()
                if nxt is not None and nxt.indent > indent:
                    result[key] = self.node(nxt.indent)
                elif nxt is not None and nxt.indent == indent and (nxt.text == "-" or nxt.text.startswith("- ")):
                    result[key] = self.sequence(indent)
                else:
                    result[key] = None
            else:
                result[key] = self.scalar(rest, indent, line)

    def scalar(self, text, parent_indent, line):
        """A scalar starting at `text` on `line` (the current line); more
        indented lines after it belong to it."""
        self.pos += 1
        first = text[0]
        if first in "&*!":
            raise YamlError(f"line {line.number}: anchors, aliases and tags are not supported")
        if first in "{[":
            if text in ("{}", "[]"):
                return {} if text == "{}" else []
            raise YamlError(f"line {line.number}: flow collections are not supported")
        if first in "|>":
            return self._block(text, parent_indent, line)
        if first in "'\"":
            return self._quoted(text, line)
        parts = [text]
        while True:
            nxt = self._peek()
            if nxt is None or nxt.indent <= parent_indent:
                break
            parts.append(nxt.text)
            self.pos += 1
        return plain_value(_fold(parts) if len(parts) > 1 else text)

    def _quoted(self, text, line):
        quote = text[0]
        parts = [text[1:]]
        while True:
            joined = "\n".join(parts)
            end = _closing_quote(joined, quote)
            if end is not None:
                break
            if self.pos >= len(self.lines):
                raise YamlError(f"line {line.number}: unterminated quoted scalar")
            parts.append(self.lines[self.pos].raw)
            self.pos += 1
        tail = joined[end + 1:].strip()
        if tail:
            raise YamlError(f"line {line.number}: text after a quoted scalar: {tail!r}")
        body = _fold(joined[:end].split("\n"))
        if quote == "'":
            return body.replace("''", "'")
        return _unescape_double(body, line.number)

    def _block(self, header, parent_indent, line):
        style, indicators = header[0], header[1:]
        chomp, explicit = "clip", None
        for c in indicators:
            if c == "-":
                chomp = "strip"
            elif c == "+":
                chomp = "keep"
            elif c.isdigit():
                explicit = int(c)
            else:
                raise YamlError(f"line {line.number}: bad block scalar header {header!r}")
        raw = []
        while self.pos < len(self.lines):
            candidate = self.lines[self.pos]
            if candidate.raw.strip() != "" and candidate.indent <= parent_indent:
                break
            raw.append(candidate.raw)
            self.pos += 1
        while raw and raw[-1].strip() == "" and chomp != "keep":
            raw.pop()
        if explicit is not None:
            width = parent_indent + explicit
        else:
            content = [r for r in raw if r.strip() != ""]
            width = min(len(r) - len(r.lstrip(" ")) for r in content) if content else 0
        body = [r[width:] for r in raw]
        if style == ">":
            text = _fold_block(body)
        else:
            text = "\n".join(body)
        if chomp == "strip" or not body:
            return text
        return text + "\n"


def _fold_block(lines):
    """Folds a `>` block: a break between two lines of text is a space, each
    empty line a newline; lines indented more keep their breaks."""
    out = lines[0] if lines else ""
    for prev, cur in zip(lines, lines[1:]):
        if cur == "":
            out += "\n"
        elif prev != "":
            out += "\n" if (cur.startswith(" ") or prev.startswith(" ")) else " "
        out += cur
    return out


def _closing_quote(text, quote):
    i = 0
    while i < len(text):
        c = text[i]
        if quote == '"' and c == "\\":
            i += 2
            continue
        if c == quote:
            if quote == "'" and text[i + 1:i + 2] == "'":
                i += 2
                continue
            return i
        i += 1
    return None


def _split_key(text, number):
    """(key, rest) when `text` starts a mapping entry, else None."""
    if text[0] in "'\"":
        end = _closing_quote(text[1:], text[0])
        if end is None:
            return None
        after = text[end + 2:]
        if after == ":" or after.startswith(": "):
            key_text = text[1:end + 1]
            key = key_text.replace("''", "'") if text[0] == "'" else _unescape_double(key_text, number)
            return key, after[1:].strip()
        return None
    if text[0] in "-?:" and (len(text) == 1 or text[1] == " "):
        return None
    if text.endswith(":") and ": " not in text:
        return text[:-1], ""
    at = text.find(": ")
    if at <= 0:
        return None
    return text[:at], text[at + 2:].strip()


def load_builtin(text):
    """Every document of a YAML stream in the supported subset."""
    docs, current = [], []
    for number, raw in enumerate(text.split("\n"), start=1):
        if raw.rstrip() == "---" or raw.startswith("--- "):
            docs.append(current)
            current = []
            continue
        if raw.rstrip() == "...":
            continue
        if "\t" in raw[: len(raw) - len(raw.lstrip())]:
            raise YamlError(f"line {number}: tab in indentation")
        current.append(_Line(number, raw))
    docs.append(current)
    out = []
    for lines in docs:
        if all(line.blank for line in lines):
            continue
        reader = _Reader(lines)
        value = reader.node(0)
        rest = reader._peek()
        if rest is not None:
            raise YamlError(f"line {rest.number}: unexpected {rest.text!r}")
        out.append(value)
    return out


def load_documents(path):
    """The documents of `path`; cross-checked against PyYAML when it is installed."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        docs = load_builtin(text)
    except YamlError as e:
        raise YamlError(f"{path}: {e}") from None
    try:
        import yaml  # noqa: PLC0415 (optional)
    except ImportError:
        return docs
    reference = [d for d in yaml.safe_load_all(text) if d is not None]
    if not _same(docs, reference):
        raise YamlError(
            f"{path}: hack/docsgen/crd_yaml.py reads it differently from PyYAML; "
            "fix the reader (it is used where PyYAML is not installed)"
        )
    return docs


def _same(a, b):
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b or (a != a and b != b)
