"""Checks the links of the repository's Markdown files: every relative link
names a file that exists, and every `#anchor` a heading of its target."""

import os
import re

_FENCE = re.compile(r"^\s*(```|~~~)")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_INLINE = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s+<?(\S+?)>?(\s|$)")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_HTML_ID = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")
_SKIP_DIRS = {".git", "target", "node_modules"}


def slug(heading):
    """GitHub's anchor for a heading: its text, lowercased, punctuation
    dropped, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"<[^>]+>", "", text)
    text = "".join(c for c in text.lower() if c.isalnum() or c in "-_ ")
    return text.replace(" ", "-")


def _lines_outside_code(text):
    fenced = False
    for number, line in enumerate(text.split("\n"), start=1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, line


def anchors(text):
    seen, out = {}, set()
    for _, line in _lines_outside_code(text):
        out.update(_HTML_ID.findall(line))
        m = _HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def _links(text):
    for number, line in _lines_outside_code(text):
        bare = _CODE_SPAN.sub("", line)
        for m in _INLINE.finditer(bare):
            yield number, m.group(1)
        m = _REFERENCE.match(bare)
        if m:
            yield number, m.group(1)


def markdown_files(root):
    for top, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(files):
            if name.endswith(".md"):
                yield os.path.relpath(os.path.join(top, name), root)


def check(root, files):
    """Messages for every broken link in `files` (paths relative to `root`)."""
    problems, cache = [], {}

    def anchors_of(path):
        if path not in cache:
            with open(os.path.join(root, path), encoding="utf-8") as f:
                cache[path] = anchors(f.read())
        return cache[path]

    for path in files:
        with open(os.path.join(root, path), encoding="utf-8") as f:
            text = f.read()
        for number, target in _links(text):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.I):
                continue
            file_part, _, anchor = target.partition("#")
            if file_part:
                resolved = os.path.normpath(os.path.join(os.path.dirname(path), file_part))
                if resolved.startswith("..") or not os.path.exists(os.path.join(root, resolved)):
                    problems.append(f"{path}:{number}: {target}: no file {resolved}")
                    continue
            else:
                resolved = path
            if anchor and resolved.endswith(".md") and anchor not in anchors_of(resolved):
                problems.append(f"{path}:{number}: {target}: no heading #{anchor} in {resolved}")
    return problems
