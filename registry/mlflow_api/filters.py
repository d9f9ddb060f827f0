r"""MLflow's search syntax: clauses joined by AND, each `<identifier> <comparator> <value>`.

- registered models: `name = 'x'`, `name LIKE 'fraud%'`, `tags.team = 'risk'`,
  `tag.\`mlflow.prompt.is_prompt\` != 'true'`;
- runs: `metrics.accuracy > 0.9`, `params.lr = '0.01'`, `tags.team = 'risk'`, `attributes.status = 'FINISHED'`,
  `attributes.run_name LIKE 'base%'`;
- run groups (experiments): `name LIKE 'fraud%'`, `tags.team = 'risk'`.

Keys may be written bare, in backticks or in double quotes. LIKE and ILIKE patterns (`%` any text, `_` one
character) become anchored regular expressions built here from escaped text, so a pattern cannot inject its own.
A `!=` on a tag or param also matches a run or model without it, as MLflow's own server does (its client adds
`tag.mlflow.prompt.is_prompt != 'true'` to every model search)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.db.models import Q, QuerySet, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from mlops_site.exceptions import ValidationFailed

MAX_CLAUSES = 20
KINDS = {"metric": "metric", "metrics": "metric", "param": "param", "params": "param", "parameter": "param", "parameters": "param",
         "tag": "tag", "tags": "tag", "attribute": "attribute", "attributes": "attribute", "attr": "attribute", "run": "attribute"}
CLAUSE = re.compile(
    r"""\s*(?:(?P<prefix>[a-z]+)\.(?:`(?P<bkey>[^`]+)`|"(?P<dkey>[^"]+)"|(?P<key>[\w.\-:/]+?))|(?P<bare>[a-z_]+))\s*"""
    r"""(?P<op>!=|>=|<=|=|>|<|(?i:not\s+ilike)|(?i:not\s+like)|(?i:ilike)|(?i:like))\s*"""
    r"""(?:'(?P<sval>(?:[^'\\]|\\.)*)'|"(?P<dval>(?:[^"\\]|\\.)*)"|(?P<nval>-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?))\s*""",
    re.IGNORECASE,
)
AND = re.compile(r"\s+and\s+", re.IGNORECASE)
STRING_OPS = {"=", "!=", "LIKE", "ILIKE"}
NUMBER_OPS = {"=", "!=", ">", ">=", "<", "<="}


@dataclass(frozen=True)
class Clause:
    kind: str  # "name", "metric", "param", "tag" or "attribute"
    key: str
    op: str
    value: str | float


def bad_filter(text: str, hint: str = "") -> ValidationFailed:
    return ValidationFailed(f"Invalid filter {text[:200]!r}{': ' + hint if hint else ''}.", code="invalid_parameter_value")


def like_regex(pattern: str) -> str:
    """SQL LIKE as an anchored regex: % is any text, _ one character, everything else literal."""
    return "^" + "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern) + "$"


def parse(text, *, kinds: set[str]) -> list[Clause]:
    """The clauses of `text`; identifiers of other kinds than `kinds` are refused with MLflow's error code."""
    if not isinstance(text, str) or len(text) > 4000:
        raise bad_filter(str(text))
    found, rest = [], text.strip()
    while rest:
        match = CLAUSE.match(rest)
        if match is None:
            raise bad_filter(text)
        found.append(_clause(match, text, kinds))
        rest = rest[match.end():]
        if rest:
            joined = AND.match(" " + rest)
            if joined is None:
                raise bad_filter(text, "join clauses with AND")
            rest = rest[joined.end() - 1:]
    if len(found) > MAX_CLAUSES:
        raise bad_filter(text, f"at most {MAX_CLAUSES} clauses")
    return found


def _clause(match: re.Match, text: str, kinds: set[str]) -> Clause:
    op = " ".join(match["op"].upper().split())
    if match["bare"]:
        kind, key = ("name", "name") if match["bare"].lower() == "name" else ("attribute", match["bare"].lower())
    else:
        kind = KINDS.get(match["prefix"].lower())
        key = match["bkey"] or match["dkey"] or match["key"]
    if kind not in kinds:
        raise bad_filter(text, f"'{match.group(0).strip()[:60]}' cannot be searched here")
    if match["nval"] is not None:
        value: str | float = float(match["nval"])
    else:
        value = re.sub(r"\\(.)", r"\1", match["sval"] if match["sval"] is not None else match["dval"])
    numeric = kind == "metric" or (kind == "attribute" and key in ("start_time", "end_time"))
    if numeric and (not isinstance(value, float) or op not in NUMBER_OPS):
        raise bad_filter(text, f"compare {kind} {key} to a number with {', '.join(sorted(NUMBER_OPS))}")
    if not numeric and (isinstance(value, float) or op not in STRING_OPS | {"NOT LIKE", "NOT ILIKE"}):
        raise bad_filter(text, f"compare {kind} {key} to a quoted string with =, !=, LIKE or ILIKE")
    return Clause(kind=kind, key=key, op=op, value=value)


def condition(field: str, op: str, value, *, missing_matches_not_equal: bool = False) -> Q:
    """The Q for `field <op> value`."""
    if op == "=":
        return Q(**{field: value})
    if op == "!=":
        q = ~Q(**{field: value})
        return q | Q(**{f"{field}__isnull": True}) if missing_matches_not_equal else q & Q(**{f"{field}__isnull": False})
    lookups = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte", "LIKE": "regex", "ILIKE": "iregex"}
    if op in ("NOT LIKE", "NOT ILIKE"):
        return ~Q(**{f"{field}__{lookups[op.removeprefix('NOT ')]}": like_regex(value)})
    return Q(**{f"{field}__{lookups[op]}": like_regex(value) if op in ("LIKE", "ILIKE") else value})


def tagged(queryset: QuerySet, clauses: list[Clause], *, name_field: str = "name") -> QuerySet:
    """Apply name and tag clauses to a queryset of rows with a `tags` JSON object (models, run groups)."""
    for i, clause in enumerate(clauses):
        if clause.kind == "name":
            queryset = queryset.filter(condition(name_field, clause.op, clause.value))
        else:
            field = f"_tag{i}"
            # Cast: a KeyTextTransform keeps the JSON key lookups, and SQLite's exact one reads the value as JSON
            # (`tags.team = 'risk'` was "malformed JSON", a 500); as plain text every comparison is a text one.
            queryset = queryset.annotate(**{field: Cast(KeyTextTransform(clause.key, "tags"), TextField())})
            queryset = queryset.filter(condition(field, clause.op, clause.value, missing_matches_not_equal=True))
    return queryset


def ordering(order_by, fields: dict[str, str], *, default: list[str]) -> list[str]:
    """`order_by` (a list of 'field [ASC|DESC]') as Django ordering over `fields` (MLflow's name -> ours)."""
    if order_by in (None, "", []):
        return default
    items = [order_by] if isinstance(order_by, str) else order_by
    if not isinstance(items, list) or len(items) > 5:
        raise ValidationFailed("order_by: a list of at most five 'field [ASC|DESC]'.", code="invalid_parameter_value")
    out = []
    for item in items:
        parts = str(item).split()
        if not parts or len(parts) > 2 or parts[0] not in fields or (len(parts) == 2 and parts[1].upper() not in ("ASC", "DESC")):
            raise ValidationFailed(f"Invalid order_by clause {str(item)[:100]!r}: use one of {', '.join(fields)} with ASC or DESC.",
                                   code="invalid_parameter_value")
        out.append(("-" if len(parts) == 2 and parts[1].upper() == "DESC" else "") + fields[parts[0]])
    return out + [d for d in default if d.lstrip("-") not in {o.lstrip("-") for o in out}]
