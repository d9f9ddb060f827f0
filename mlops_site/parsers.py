"""Strict JSON: duplicate keys, NaN / Infinity and deep nesting are bad input, not silently accepted.

Python's json module keeps the last of duplicate keys and accepts the
non-standard constants NaN and Infinity; a metric of NaN would then reach the
database. Both are refused here with a 400.
"""

import json
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

# Deeper than any real payload; refused before a recursive step (a serializer, json.dumps, a
# recursive constructor) can hit the interpreter's recursion limit and end in a 500.
MAX_DEPTH = 64


class StrictJSONError(ValueError):
    pass


def _containers(node: Any) -> list | None:
    """The lists and dicts inside a list or dict (its scalars are never stacked); None for a scalar."""
    if not isinstance(node, dict | list):
        return None
    return [child for child in (node.values() if isinstance(node, dict) else node) if isinstance(child, dict | list)]


def nesting_depth(value: Any, children=_containers) -> int:
    """How deeply lists and dicts nest in `value` (a scalar is 0), walked without recursion and
    stopping past MAX_DEPTH. `children(node)` gives a node's children (None for a leaf) for other
    trees (YAML nodes); by default the lists and dicts inside lists and dict values."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        node, depth = stack.pop()
        inner = children(node)
        if inner is None:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in inner)
    return deepest


def too_deep(value: Any, children=_containers) -> str | None:
    """A message when `value` nests deeper than MAX_DEPTH, else None."""
    if nesting_depth(value, children) > MAX_DEPTH:
        return f"nested too deeply (the limit is {MAX_DEPTH} levels)"
    return None


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    # dict() in C, and a loop only when the sizes say a key repeats: this hook runs once per
    # JSON object, 20,000 times for an ingestion batch of 10,000 events.
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise StrictJSONError(f"duplicate key {key!r}")
            seen.add(key)
    return out


def _no_constants(name: str):
    raise StrictJSONError(f"{name} is not valid JSON (numbers must be finite)")


def strict_loads(text: str | bytes) -> Any:
    """json.loads that refuses duplicate keys and NaN / Infinity. Raises StrictJSONError."""
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except StrictJSONError:
        raise
    except RecursionError:
        raise StrictJSONError(f"nested too deeply (the limit is {MAX_DEPTH} levels)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise StrictJSONError(str(exc)) from None
    if problem := too_deep(value):
        raise StrictJSONError(problem)
    return value


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = stream.read() if stream is not None else b""
        if not data:
            return {}
        try:
            return strict_loads(data)
        except StrictJSONError as exc:
            raise ParseError(f"Malformed JSON: {exc}") from None
