"""Reads `pub const NAME: &str = "value";` items, with their `///` comments,
from a Rust source file: the condition reasons, annotations and finalizer
that the reference lists, taken from the code so they cannot drift."""

import re

_CONST = re.compile(r'^\s*pub const ([A-Z0-9_]+): &str = "([^"]*)";')
_DOC = re.compile(r"^\s*///\s?(.*)$")


def string_consts(path):
    """[(name, value, doc)] in file order; `doc` is the joined `///` comment."""
    out, doc = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = _DOC.match(line)
            if m:
                doc.append(m.group(1))
                continue
            m = _CONST.match(line)
            if m:
                out.append((m.group(1), m.group(2), " ".join(d for d in doc if d).strip()))
            if line.strip() and not line.strip().startswith("#["):
                doc = []
    return out
