"""Write the endpoint reference of docs/api.md from the OpenAPI schema (the one served at /api/v1/schema/).

The part of docs/api.md between the two markers below is generated: every operation with its method and path,
what it does, its path and query parameters, the fields of its request body and its answers. The text around
the markers is written by hand. `make test` runs the check (tests/test_docs.py), so an endpoint added or
changed without running this script fails the build.

    .venv/bin/python scripts/api_docs.py          # rewrite the generated part of docs/api.md
    .venv/bin/python scripts/api_docs.py --check  # exit 1 when docs/api.md is not what the schema says
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "api.md"
BEGIN = "<!-- generated: endpoints (scripts/api_docs.py writes this part from the OpenAPI schema; do not edit it by hand) -->"
END = "<!-- end generated -->"
METHODS = ("get", "post", "put", "patch", "delete")


def load_schema() -> dict:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mlops_site.settings")
    import django

    django.setup()
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


CODE_SPAN = re.compile(r"(`[^`]*`)")


def one_line(text: str | None) -> str:
    """A description on one line for a list or a table: the choice list drf-spectacular appends to an enum's help
    left out (the type column lists the values), pipes escaped, angle brackets outside code shown as such."""
    text = (text or "").split("\n\n* `", 1)[0]
    return escape_prose(" ".join(text.split()).replace("|", "\\|").rstrip("."))


def escape_prose(text: str) -> str:
    """`<` outside code spans as an entity, so `<token>` in prose is shown, not taken for an HTML tag."""
    return "\n".join("".join(part if part.startswith("`") else part.replace("<", "&lt;")
                              for part in CODE_SPAN.split(line)) for line in text.split("\n"))


class Renderer:
    def __init__(self, schema: dict):
        self.components = schema.get("components", {}).get("schemas", {})

    def resolve(self, node: dict) -> tuple[dict, str]:
        ref = node.get("$ref", "")
        if ref:
            name = ref.rsplit("/", 1)[-1]
            return self.components.get(name, {}), name
        return node, ""

    def type_of(self, node: dict, depth: int = 0) -> str:
        """A short type: `string`, `integer`, `"a" | "b"`, `[VersionOut]`, `{string: number}`, `Name`."""
        if not node:
            return "any JSON"
        resolved, name = self.resolve(node)
        if "enum" in resolved:
            return " \\| ".join(f"`{value!r}`".replace("'", '"') if isinstance(value, str) else f"`{value}`"
                                for value in resolved["enum"] if value not in ("", None)) or "`\"\"`"
        if name:
            return f"`{name}`"
        for combiner in ("oneOf", "anyOf", "allOf"):
            if combiner in node:
                parts = [self.type_of(part, depth + 1) for part in node[combiner]]
                return (" and " if combiner == "allOf" else " or ").join(dict.fromkeys(parts))
        kind = node.get("type")
        if kind == "array":
            return f"[{self.type_of(node.get('items', {}), depth + 1)}]"
        if kind == "object" and isinstance(node.get("additionalProperties"), dict) and not node.get("properties"):
            return f"{{string: {self.type_of(node['additionalProperties'], depth + 1)}}}"
        if kind == "object" and node.get("properties") and depth < 1:
            return "object: " + ", ".join(f"`{field}`" for field in node["properties"])
        text = kind or "any JSON"
        if node.get("format"):
            text += f" ({node['format']})"
        if node.get("nullable"):
            text += " or null"
        return text

    def fields_table(self, node: dict) -> list[str]:
        resolved, _ = self.resolve(node)
        properties = resolved.get("properties", {})
        if not properties:
            return []
        required = set(resolved.get("required", []))
        rows = ["| field | type | required | description |", "|---|---|---|---|"]
        for field, spec in properties.items():
            if spec.get("readOnly"):
                continue
            described = one_line(spec.get("description"))
            if "default" in spec and spec["default"] not in ("", None, [], {}):
                described = (described + " " if described else "") + f"(default `{spec['default']}`)"
            rows.append(f"| `{field}` | {self.type_of(spec)} | {'yes' if field in required else ''} | {described} |")
        return rows

    def answer(self, status: str, response: dict) -> str:
        content = response.get("content", {})
        if not content:
            return f"- `{status}`" + (f": {one_line(response['description'])}" if response.get("description") else ": no body")
        parts = []
        for media_type, body in content.items():
            schema = body.get("schema", {})
            resolved, name = self.resolve(schema)
            shape = self.type_of(schema)
            properties = resolved.get("properties", {})
            if name and properties:
                shape += " with " + ", ".join(f"`{field}`" for field in properties)
            parts.append(f"`{media_type}` {shape}")
        return f"- `{status}`: " + "; ".join(parts)

    def operation(self, path: str, method: str, operation: dict, shared_parameters: list[dict]) -> list[str]:
        lines = [f"### `{method.upper()} {path}`", ""]
        text = operation.get("summary") or ""
        if operation.get("description"):
            text = (text + "\n\n" if text else "") + operation["description"].strip()
        if text:
            lines += [escape_prose(text.strip()), ""]
        parameters = [*shared_parameters, *operation.get("parameters", [])]
        if parameters:
            lines.append("Parameters: " + "; ".join(
                f"`{p['name']}` ({p['in']}, {self.type_of(p.get('schema', {}))}{', required' if p.get('required') else ''})"
                + (f": {one_line(p['description'])}" if p.get("description") else "")
                for p in parameters) + ".")
            lines.append("")
        if operation.get("security") is not None and (not operation["security"] or {} in operation["security"]):
            lines += ["No token needed.", ""]
        bodies: dict[str, list[str]] = {}  # one table per schema, whichever media types carry it
        schemas: dict[str, dict] = {}
        for media_type, spec in operation.get("requestBody", {}).get("content", {}).items():
            schema = spec.get("schema", {})
            key = schema.get("$ref") or repr(sorted(schema.items()))
            bodies.setdefault(key, []).append(f"`{media_type}`")
            schemas[key] = schema
        for key, media_types in bodies.items():
            schema = schemas[key]
            _, name = self.resolve(schema)
            table = self.fields_table(schema)
            shape = f" `{name}`" if name else f" {self.type_of(schema)}"
            lines.append(f"Request body ({', '.join(media_types)}):{shape}" + (":" if table else "."))
            lines += ["", *table, ""] if table else [""]
        lines.append("Answers:")
        lines.append("")
        lines += [self.answer(status, response) for status, response in sorted(operation.get("responses", {}).items())]
        lines.append("")
        return lines

    def endpoints(self, schema: dict) -> str:
        lines = [BEGIN, "", "## Endpoints", "",
                 "Every operation of the OpenAPI schema (`/api/v1/schema/`), by path. Each one takes a token "
                 "(`Bearer` or `Token`) or a signed-in session unless it says \"No token needed\"; every error has the shape "
                 "above. The types named in backticks are the schema's components.", ""]
        for path, item in schema["paths"].items():
            shared = item.get("parameters", [])
            for method in METHODS:
                if method in item:
                    lines += self.operation(path, method, item[method], shared)
        lines.append(END)
        return "\n".join(lines)


def render(document: str, schema: dict) -> str:
    """`document` with its generated part (or, the first time, a new one at its end) written from `schema`."""
    generated = Renderer(schema).endpoints(schema)
    if BEGIN in document and END in document:
        before = document[: document.index(BEGIN)]
        after = document[document.index(END) + len(END):]
        return before + generated + after
    return document.rstrip("\n") + "\n\n" + generated + "\n"


def main(argv: list[str]) -> int:
    current = DOC.read_text()
    wanted = render(current, load_schema())
    if "--check" in argv:
        if wanted != current:
            print("docs/api.md is out of date with the API: run `.venv/bin/python scripts/api_docs.py` and commit it")
            return 1
        print("docs/api.md matches the OpenAPI schema")
        return 0
    if wanted != current:
        DOC.write_text(wanted)
        print("docs/api.md: endpoints rewritten from the OpenAPI schema")
    else:
        print("docs/api.md: unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
