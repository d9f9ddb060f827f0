"""The OpenAPI schema: every operation answers a typed body for each 2xx status, and drf-spectacular has nothing to say.

A client generated from /api/v1/schema/ must know the shape of every answer. Typed means: a $ref to a component,
an object with properties (or a map with typed values), an array of typed items, a paginated wrapper whose
`results` are typed, or what the body really is (a binary file, Prometheus text). Free-form JSON *inside* a
typed object (a version's params, a report's statistics) is allowed; a bare `{"type": "object"}` is not,
anywhere in an answer.
"""

import pytest
from django.core.management import call_command
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator

METHODS = ("get", "put", "post", "patch", "delete")


@pytest.fixture(scope="module")
def schema():
    GENERATOR_STATS.reset()
    return SchemaGenerator().get_schema(request=None, public=True)


def _resolve(node: dict, components: dict) -> tuple[dict, str]:
    ref = node.get("$ref", "")
    if ref:
        name = ref.rsplit("/", 1)[-1]
        return components[name], name
    return node, ""


def bare_objects(node, components: dict, where: str, seen: set[str]) -> list[str]:
    """Every place under `node` whose schema says `object` and nothing about its keys or values."""
    if not isinstance(node, dict):
        return []
    node, name = _resolve(node, components)
    if name:
        if name in seen:
            return []
        seen = seen | {name}
        where = f"{where} -> {name}"
    found = []
    if node.get("type") == "object" and "properties" not in node and "additionalProperties" not in node and not any(
        k in node for k in ("oneOf", "anyOf", "allOf")
    ):
        found.append(where)
    for key, child in (node.get("properties") or {}).items():
        found += bare_objects(child, components, f"{where}.{key}", seen)
    if isinstance(node.get("additionalProperties"), dict):
        found += bare_objects(node["additionalProperties"], components, f"{where}{{*}}", seen)
    if isinstance(node.get("items"), dict):
        found += bare_objects(node["items"], components, f"{where}[]", seen)
    for key in ("oneOf", "anyOf", "allOf"):
        for i, child in enumerate(node.get(key) or []):
            found += bare_objects(child, components, f"{where}.{key}[{i}]", seen)
    return found


def untyped(node: dict, components: dict) -> str:
    """Why a response body's schema does not say its shape ('' when it does)."""
    node, _ = _resolve(node, components)
    if any(k in node for k in ("oneOf", "anyOf")):
        problems = [untyped(child, components) for child in node.get("oneOf", node.get("anyOf"))]
        return next((p for p in problems if p), "")
    if node.get("type") == "array":
        return untyped(node.get("items") or {}, components) and "an array of untyped items"
    if node.get("type") == "object":
        properties = node.get("properties") or {}
        if "results" in properties and "count" in properties:  # a page
            return untyped(properties["results"], components) and "a page of untyped results"
        if properties or isinstance(node.get("additionalProperties"), dict) and node["additionalProperties"]:
            return ""
        return "an object without properties"
    if node.get("type") == "string" and node.get("format") == "binary":
        return ""
    return f"no shape ({node or 'empty schema'})"


def response_problems(schema: dict) -> list[str]:
    components = schema.get("components", {}).get("schemas", {})
    problems = []
    for path, item in sorted(schema["paths"].items()):
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            name = f"{method.upper()} {path}"
            successes = {code: r for code, r in operation.get("responses", {}).items() if str(code).startswith("2")}
            if not successes:
                problems.append(f"{name}: no 2xx response")
            for code, response in sorted(successes.items()):
                if str(code) == "204":
                    continue
                content = response.get("content") or {}
                if not content:
                    problems.append(f"{name} {code}: no content")
                for media, body in sorted(content.items()):
                    body_schema = body.get("schema") or {}
                    if media.startswith("text/") and body_schema.get("type") == "string":
                        continue  # plain text (Prometheus exposition) is what it is
                    why = untyped(body_schema, components)
                    if why:
                        problems.append(f"{name} {code} {media}: {why}")
                    problems += [f"{name} {code} {media}: bare object at {w}" for w in bare_objects(body_schema, components, "body", set())]
    return problems


def test_schema_every_success_answer_is_typed(schema):
    problems = response_problems(schema)

    assert problems == [], "untyped answers:\n" + "\n".join(problems)


def test_schema_types_the_download_and_the_metrics_as_what_they_are(schema):
    artifact = schema["paths"]["/api/v1/models/{name}/versions/{version}/artifact/"]["get"]["responses"]["200"]["content"]
    metrics = schema["paths"]["/metrics"]["get"]["responses"]["200"]["content"]

    assert artifact == {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    assert list(metrics) == ["text/plain"]
    assert metrics["text/plain"]["schema"]["type"] == "string"


def test_schema_passes_drf_spectacular_validation_without_warnings(tmp_path, capsys):
    GENERATOR_STATS.reset()  # a warning seen earlier in this process is neither printed nor counted twice

    try:
        call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    except Exception as exc:  # SchemaGenerationError (warnings) or SchemaValidationError (not valid OpenAPI 3)
        pytest.fail(f"{exc}\n{capsys.readouterr().err}")


def _answer(code: str, schema: dict | None) -> dict:
    return {"responses": {code: {"content": {"application/json": {"schema": schema}}} if schema is not None else {"description": ""}}}


def test_schema_walker_names_bare_objects_untyped_pages_and_missing_content():
    outer = {"$ref": "#/components/schemas/Outer"}
    broken = {
        "paths": {
            "/a": {"get": _answer("200", {"type": "object"})},
            "/b": {"get": _answer("200", {"$ref": "#/components/schemas/Page"})},
            "/c": {"post": _answer("202", None)},
            "/d": {"get": _answer("200", outer)},
            "/e": {"get": _answer("200", outer), "put": _answer("200", {})},
            "/f": {"get": _answer("200", {"type": "array", "items": outer}), "delete": _answer("204", None)},
        },
        "components": {"schemas": {
            "Page": {"type": "object", "properties": {"count": {"type": "integer"}, "results": {"type": "array", "items": {"type": "object"}}}},
            "Outer": {"type": "object", "properties": {"inner": {"type": "object"}, "ok": {"type": "object", "additionalProperties": {}}}},
        }},
    }

    problems = response_problems(broken)

    assert problems == [
        "GET /a 200 application/json: an object without properties",
        "GET /a 200 application/json: bare object at body",
        "GET /b 200 application/json: a page of untyped results",
        "GET /b 200 application/json: bare object at body -> Page.results[]",
        "POST /c 202: no content",
        "GET /d 200 application/json: bare object at body -> Outer.inner",
        "GET /e 200 application/json: bare object at body -> Outer.inner",
        "PUT /e 200 application/json: no shape (empty schema)",
        "GET /f 200 application/json: bare object at body[] -> Outer.inner",
    ]
