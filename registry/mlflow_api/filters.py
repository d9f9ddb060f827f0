r"""MLflow's search syntax for registered models: `name = 'x'`, `name LIKE 'fraud%'`, `tags.team = 'risk'`,
`tag.\`mlflow.prompt.is_prompt\` != 'true'`, joined by AND; and `order_by` such as `["name DESC"]`.

LIKE and ILIKE patterns (`%` any text, `_` one character) become anchored regular expressions built here from
escaped text, so a pattern cannot inject its own. A `!=` on a tag also matches a model without that tag, as MLflow's
own server does (its client adds `tag.mlflow.prompt.is_prompt != 'true'` to every model search)."""

from __future__ import annotations

import re

from django.db.models import Q, QuerySet
from django.db.models.fields.json import KeyTextTransform

from mlops_site.exceptions import ValidationFailed

from ..models import RegisteredModel

MAX_CLAUSES = 20
CLAUSE = re.compile(
    r"""\s*(?P<ident>name|(?:tags?)\.(?:`(?P<bkey>[^`]+)`|"(?P<dkey>[^"]+)"|(?P<key>[\w.\-:/ ]+?)))\s*"""
    r"""(?P<op>!=|=|(?i:ilike)|(?i:like))\s*"""
    r"""(?:'(?P<sval>(?:[^'\\]|\\.)*)'|"(?P<dval>(?:[^"\\]|\\.)*)")\s*""",
    re.IGNORECASE,
)
AND = re.compile(r"\s+and\s+", re.IGNORECASE)
ORDER_FIELDS = {"name": "name", "creation_timestamp": "created_at", "timestamp": "created_at", "last_updated_timestamp": "created_at"}


def _bad(text: str) -> ValidationFailed:
    return ValidationFailed(f"Invalid filter {text[:200]!r}: use name = / != / LIKE / ILIKE 'value' or tags.<key> = / != 'value', "
                            "joined by AND.", code="invalid_parameter_value")


def like_regex(pattern: str) -> str:
    """SQL LIKE as an anchored regex: % is any text, _ one character, everything else literal."""
    return "^" + "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern) + "$"


def _clauses(text: str) -> list[re.Match]:
    found, rest = [], text.strip()
    while rest:
        match = CLAUSE.match(rest)
        if match is None:
            raise _bad(text)
        found.append(match)
        rest = rest[match.end():]
        if rest:
            joined = AND.match(" " + rest)
            if joined is None:
                raise _bad(text)
            rest = rest[joined.end() - 1:]
    if len(found) > MAX_CLAUSES:
        raise ValidationFailed(f"At most {MAX_CLAUSES} clauses in a filter.", code="invalid_parameter_value")
    return found


def models_filtered(text: str) -> QuerySet[RegisteredModel]:
    queryset = RegisteredModel.objects.all()
    if not isinstance(text, str) or len(text) > 4000:
        raise _bad(str(text))
    for i, clause in enumerate(_clauses(text)):
        op = clause["op"].upper()
        value = clause["sval"] if clause["sval"] is not None else clause["dval"]
        value = re.sub(r"\\(.)", r"\1", value)
        if clause["ident"].lower() == "name":
            field = "name"
        else:
            field = f"_tag{i}"
            key = clause["bkey"] or clause["dkey"] or clause["key"]
            queryset = queryset.annotate(**{field: KeyTextTransform(key, "tags")})
        if op == "=":
            queryset = queryset.filter(**{field: value})
        elif op == "!=":
            queryset = queryset.filter(~Q(**{field: value}) | Q(**{f"{field}__isnull": True}))
        elif op == "LIKE":
            queryset = queryset.filter(**{f"{field}__regex": like_regex(value)})
        else:
            queryset = queryset.filter(**{f"{field}__iregex": like_regex(value)})
    return queryset


def model_ordering(order_by) -> list[str]:
    if order_by in (None, "", []):
        return ["name"]
    items = [order_by] if isinstance(order_by, str) else order_by
    if not isinstance(items, list) or len(items) > 5:
        raise ValidationFailed("order_by: a list of at most five 'field [ASC|DESC]'.", code="invalid_parameter_value")
    out = []
    for item in items:
        parts = str(item).split()
        if not parts or len(parts) > 2 or parts[0] not in ORDER_FIELDS or (len(parts) == 2 and parts[1].upper() not in ("ASC", "DESC")):
            raise ValidationFailed(f"Invalid order_by clause {str(item)[:100]!r}: use one of {', '.join(ORDER_FIELDS)} with ASC or DESC.",
                                   code="invalid_parameter_value")
        out.append(("-" if len(parts) == 2 and parts[1].upper() == "DESC" else "") + ORDER_FIELDS[parts[0]])
    return [*out, "name"] if "name" not in {o.lstrip("-") for o in out} else out
