"""hack/docs: writes docs/configuration.md, or checks it and every Markdown link."""

import difflib
import glob
import os
import sys

sys.dont_write_bytecode = True

import crd_yaml  # noqa: E402
import links  # noqa: E402
import reference  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TARGET = "docs/configuration.md"
INTRO = "hack/docsgen/intro.md"


def generate():
    crd_files = sorted(glob.glob(os.path.join(ROOT, "crds", "*.yaml")))
    crds = []
    for path in crd_files:
        crds += [d for d in crd_yaml.load_documents(path) if d.get("kind") == "CustomResourceDefinition"]
    with open(os.path.join(ROOT, INTRO), encoding="utf-8") as f:
        intro = f.read()
    sources = [os.path.relpath(p, ROOT) for p in crd_files] + ["src/api"]
    return reference.render(crds, intro, os.path.join(ROOT, "src"), sources)


def main(argv):
    if argv not in ([], ["--check"]):
        print("usage: hack/docs [--check]", file=sys.stderr)
        return 2
    try:
        text = generate()
    except (crd_yaml.YamlError, OSError, KeyError) as e:
        print(f"hack/docs: {e}", file=sys.stderr)
        return 1
    path = os.path.join(ROOT, TARGET)
    if not argv:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {TARGET}")
    else:
        failed = False
        try:
            with open(path, encoding="utf-8") as f:
                current = f.read()
        except FileNotFoundError:
            current = ""
        if current != text:
            print(f"{TARGET} is stale: run hack/docs and commit the result", file=sys.stderr)
            diff = difflib.unified_diff(current.splitlines(), text.splitlines(), TARGET, "generated", lineterm="")
            for line in list(diff)[:40]:
                print(line, file=sys.stderr)
            failed = True
        pages = [f for f in links.markdown_files(ROOT) if f != INTRO]  # the intro's links are docs/-relative
        problems = links.check(ROOT, pages)
        for p in problems:
            print(f"broken link: {p}", file=sys.stderr)
        if failed or problems:
            return 1
        print(f"{TARGET} up to date, links resolve")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
