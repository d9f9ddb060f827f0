"""Strict JSON: duplicate keys and NaN / Infinity are bad input, not silently accepted.

Python's json module keeps the last of duplicate keys and accepts the
non-standard constants NaN and Infinity; a metric of NaN would then reach the
database. Both are refused here with a 400.
"""

import json
from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser


class StrictJSONError(ValueError):
    pass


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
        return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except StrictJSONError:
        raise
    except RecursionError:
        raise StrictJSONError("nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise StrictJSONError(str(exc)) from None


class StrictJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        data = stream.read() if stream is not None else b""
        if not data:
            return {}
        try:
            return strict_loads(data)
        except StrictJSONError as exc:
            raise ParseError(f"Malformed JSON: {exc}") from None
