"""Renders docs/configuration.md from the CRDs and the constants of src/api."""

import os
import re

import rust_consts

_BOILERPLATE = (
    "Auto-generated derived type",
    "Time is a wrapper around time.Time",
)
_DOC_LINK = re.compile(r"\[(`[^`\]]+`)\](?!\()")


def _number(v):
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def _cell(text):
    """One Markdown table cell: paragraphs joined, pipes escaped."""
    text = _DOC_LINK.sub(r"\1", text.strip())
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "<br>".join(paragraphs).replace("|", "\\|")


def _code(text):
    return f"`{text}`"


def _description(schema):
    d = schema.get("description") or ""
    return "" if d.startswith(_BOILERPLATE) else d


def _type(schema):
    t = schema.get("type", "")
    if t == "array":
        return "[]" + _type(schema.get("items", {}))
    if t == "string" and schema.get("format") == "date-time":
        return "timestamp"
    if t == "integer" and schema.get("format") == "int64":
        return "integer"
    if t == "number" and schema.get("format") == "double":
        return "number"
    return t or "any"


def _constraints(schema):
    """What the schema admits beyond its type, as short sentences."""
    out = []
    enum = [v for v in schema.get("enum", []) if v is not None]
    if enum:
        out.append("One of " + ", ".join(_code(v) for v in enum) + ".")
    lo, hi = schema.get("minLength"), schema.get("maxLength")
    if lo is not None or hi is not None:
        out.append(_range(lo, hi, " characters") + ".")
    lo, hi = schema.get("minimum"), schema.get("maximum")
    if (lo is not None and lo != 0) or hi is not None:
        out.append(_range(lo, hi, "") + ".")
    lo, hi = schema.get("minItems"), schema.get("maxItems")
    if lo is not None or hi is not None:
        out.append(_range(lo, hi, " items") + ".")
    if schema.get("x-kubernetes-list-type") == "set":
        out.append("Items are unique.")
    if "pattern" in schema:
        out.append("Pattern " + _code(schema["pattern"]) + ".")
    for rule in schema.get("x-kubernetes-validations", []):
        if rule.get("rule") == "self == oldSelf":
            if "Immutable" not in _description(schema):
                out.append("Immutable.")
        else:
            out.append("Checked at admission: " + rule.get("message", rule.get("rule", "")) + ".")
    return out


def _range(lo, hi, unit):
    if lo is not None and hi is not None:
        return f"{_number(lo)} to {_number(hi)}{unit}"
    if lo is not None:
        return f"At least {_number(lo)}{unit}"
    return f"At most {_number(hi)}{unit}"


def _is_conditions(name, schema):
    props = schema.get("items", {}).get("properties", {})
    return name == "conditions" and {"type", "status", "reason"} <= props.keys()


def _rows(schema, path, required=(), item=None):
    """(path, type, default, required, description) for every field under `schema`."""
    rows = []
    for name, prop in schema.get("properties", {}).items():
        field = f"{path}.{name}"
        text = _description(prop)
        if _is_conditions(name, prop):
            text = "Conditions, one per type (see [Conditions](#conditions))."
            rows.append((field, "[]Condition", "", "", text))
            continue
        items = prop.get("items", {})
        extra = _constraints(prop)
        if prop.get("type") == "array" and items.get("type") != "object":
            extra += ["Each item: " + c[0].lower() + c[1:] for c in _constraints(items)]
        if prop.get("type") == "array" and items.get("type") == "object":
            text = text or _description(items)
        cell = " ".join(p for p in [text.strip()] + extra if p)
        default = _code(prop["default"]) if "default" in prop else ""
        rows.append((field, _type(prop), default, "yes" if name in required else "", cell))
        if prop.get("type") == "object":
            rows += _rows(prop, field, prop.get("required", []))
        elif prop.get("type") == "array" and items.get("type") == "object":
            rows += _object_item_rows(items, field + "[]")
    return rows


def _object_item_rows(items, path):
    rows = _rows(items, path, items.get("required", []))
    rules = [r.get("message", r.get("rule", "")) for r in items.get("x-kubernetes-validations", [])]
    if rules:
        rows.append((path, "", "", "", "Checked at admission: " + "; ".join(rules) + "."))
    return rows


def _table(rows):
    out = ["| field | type | default | required | description |", "| --- | --- | --- | --- | --- |"]
    for field, typ, default, req, text in rows:
        out.append(f"| {_cell(_code(field))} | {typ} | {_cell(default)} | {req} | {_cell(text)} |")
    return out


def _columns(version):
    out = [
        "| column | JSONPath | type | shown |",
        "| --- | --- | --- | --- |",
    ]
    for c in version.get("additionalPrinterColumns", []):
        shown = "with `-o wide`" if c.get("priority", 0) else "always"
        out.append(f"| {_cell(c['name'])} | {_cell(_code(c['jsonPath']))} | {c['type']} | {shown} |")
    return out


def _resource(crd):
    spec = crd["spec"]
    names = spec["names"]
    kind = names["kind"]
    versions = spec["versions"]
    lines = []
    for version in versions:
        schema = version["schema"]["openAPIV3Schema"]
        props = schema["properties"]
        scope = "cluster-scoped" if spec["scope"] == "Cluster" else "namespaced"
        short = ", ".join(_code(s) for s in names.get("shortNames", []))
        cats = ", ".join(_code(s) for s in names.get("categories", []))
        lines += [
            f"## {kind}",
            "",
            f"`{spec['group']}/{version['name']}`, {scope}. Plural {_code(names['plural'])}, "
            f"short name {short}, category {cats}"
            + ("." if version.get("served") else " (not served)."),
            "",
            _cell(_description(props["spec"])).replace("<br>", "\n\n"),
            "",
            "### `kubectl get` columns",
            "",
        ]
        lines += _columns(version) + ["", "### spec", ""]
        lines += _table(_rows(props["spec"], "spec", props["spec"].get("required", [])))
        rules = props["spec"].get("x-kubernetes-validations", [])
        if rules:
            lines += ["", "Checked at admission, for the whole `spec`:", ""]
            lines += [f"- {_cell(r.get('message', r.get('rule', '')))}" for r in rules]
        if "status" in props:
            lines += ["", "### status", "", "Written by the operator.", ""]
            lines += _table(_rows(props["status"], "status"))
        lines.append("")
    return lines


def _conditions(src):
    consts = rust_consts.string_consts(os.path.join(src, "api/conditions.rs"))
    used = _used_reasons(src)
    types = [c for c in consts if c[0] in ("READY", "RECONCILING", "STALLED")]
    reasons = [c for c in consts if c not in types and c[0] in used]
    binding = rust_consts.string_consts(os.path.join(src, "controller/binding.rs"))
    bound = [c for c in binding if c[2].startswith("Condition reason")]
    return [
        "## Conditions",
        "",
        "Sites and spaces report kstatus conditions, which `kubectl wait --for=condition=Ready`,",
        "Flux, Argo CD and other kstatus readers understand: "
        + ", ".join(_code(c[1]) for c in types) + ".",
        "Each carries a machine-readable `reason`; what each means and what to do about it is in",
        "the README's [Troubleshooting](../README.md#troubleshooting) section.",
        "",
        "Reasons the operator sets: " + ", ".join(_code(c[1]) for c in reasons) + ".",
        "",
        "A ViewerBinding carries `Ready` only, with reason "
        + ", ".join(_code(c[1]) for c in bound) + " once the operator has read it.",
        "",
    ]


def _used_reasons(src):
    """Names of `reason::X` constants used anywhere in the operator's source."""
    used = set()
    for root, _, files in os.walk(src):
        for name in files:
            if name.endswith(".rs") and not (root.endswith("api") and name == "conditions.rs"):
                with open(os.path.join(root, name), encoding="utf-8") as f:
                    used |= set(re.findall(r"reason::([A-Z0-9_]+)", f.read()))
    return used


def _metadata(src):
    consts = rust_consts.string_consts(os.path.join(src, "api/mod.rs"))
    lines = [
        "## Annotations and finalizer",
        "",
        "| name | meaning |",
        "| --- | --- |",
    ]
    for name, value, doc in consts:
        if "/" in value:
            lines.append(f"| {_code(value)} | {_cell(doc)} |")
    return lines + [""]


def render(crds, intro, src, sources):
    kinds = [c["spec"]["names"]["kind"] for c in crds]
    lines = [
        "<!-- Generated by hack/docs from " + " and ".join(sources) + ".",
        "     Do not edit: change the Rust types (then run hack/crds) or hack/docsgen/intro.md,",
        "     then run hack/docs. -->",
        "",
        intro.rstrip(),
        "",
        "Contents: " + ", ".join(f"[{k}](#{k.lower()})" for k in kinds)
        + ", [Conditions](#conditions), [Annotations and finalizer](#annotations-and-finalizer).",
        "",
    ]
    for crd in crds:
        lines += _resource(crd)
    lines += _conditions(src)
    lines += _metadata(src)
    return "\n".join(lines).rstrip() + "\n"
