"""Prompt templates are data, never code: `{name}` placeholders only, filled by `render`. No Django."""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping
from typing import Any

IDENTIFIER_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class TemplateInvalid(ValueError):
    pass


class RenderError(ValueError):
    def __init__(self, message: str, *, missing: list[str] | None = None, unknown: list[str] | None = None):
        super().__init__(message)
        self.missing, self.unknown = missing or [], unknown or []


def template_placeholders(template: str) -> list[str]:
    """The `{name}` placeholders of a template, in order of first use.

    Templates are data, never code: only plain identifiers are allowed, so
    `{text.__class__}`, `{0.__globals__}`, `{x[0]}`, conversions (`!r`) and
    format specs are refused. `{{` and `}}` are literal braces.
    """
    names: list[str] = []
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateInvalid(f"unbalanced braces in template ({exc}); write {{{{ and }}}} for literal braces") from None
    for _, name, spec, conversion in parts:
        if name is None:
            continue
        if not IDENTIFIER_RE.fullmatch(name):
            raise TemplateInvalid(f"placeholder {{{name}}} is not a plain name: attribute, index and positional access are not allowed")
        if conversion or spec:
            raise TemplateInvalid(f"placeholder {{{name}}} has a conversion or format spec; only {{{name}}} is allowed")
        if name not in names:
            names.append(name)
    return names


def render(template: str, variables: Mapping[str, Any]) -> str:
    """Fill `template` from `variables`; every placeholder must be given and nothing else."""
    names = template_placeholders(template)
    missing = [n for n in names if n not in variables]
    unknown = sorted(set(variables) - set(names))
    if missing or unknown:
        parts = ([f"missing variable(s): {', '.join(missing)}"] if missing else []) + ([f"unknown variable(s): {', '.join(unknown)}"] if unknown else [])
        raise RenderError("; ".join(parts), missing=missing, unknown=unknown)
    out = []
    for literal, name, _, _ in string.Formatter().parse(template):
        out.append(literal)
        if name is not None:
            value = variables[name]
            out.append(value if isinstance(value, str) else json.dumps(value))
    return "".join(out)
