"""A dataset schema as plain data, checked for being well formed (SchemaError names the column and key). No Django.

A schema is a JSON-serialisable dict, so it can be stored and edited:

    {"columns": [{"name": "age", "type": "integer", "required": true, "nullable_share": 0.01,
                  "min": 18, "max": 99, "categories": null, "allow_new_categories": false}, ...],
     "allow_extra_columns": false}

- type: "numeric" (float), "integer" (whole numbers), "categorical" (strings) or
  "boolean" (true / false, 1 / 0).
- required (default true): the column must be present. nullable_share (default 0):
  the largest allowed share of missing cells, 0 to 1. min / max (numeric and integer,
  inclusive, null = unbounded). categories (categorical; null = any string) and
  allow_new_categories (default false). allow_extra_columns (default true in a
  hand-written dict; false in an inferred schema).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

TYPES = ("numeric", "integer", "categorical", "boolean")
_COLUMN_KEYS = ("name", "type", "required", "nullable_share", "min", "max", "categories", "allow_new_categories")


class ValidationInputError(ValueError):
    """Inputs that cannot be validated (columns of unequal length, Python objects); the message says why."""


class SchemaError(ValidationInputError):
    """A schema that is not a valid schema; the message names the column and the key."""


def _number(where: str, key: str, value, *, optional: bool = True) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SchemaError(f"{where}: {key!r} must be a finite number{' or null' if optional else ''}, not {value!r}.")
    return float(value)


def _flag(where: str, key: str, value) -> bool:
    if not isinstance(value, bool):
        raise SchemaError(f"{where}: {key!r} must be true or false, not {value!r}.")
    return value


@dataclass(frozen=True)
class ColumnSchema:
    name: str
    type: str
    required: bool = True
    nullable_share: float = 0.0
    min: float | None = None
    max: float | None = None
    categories: tuple[str, ...] | None = None
    allow_new_categories: bool = False

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name.strip():
            raise SchemaError(f"Column name must be a non-empty string, not {self.name!r}.")
        where = f"Column {self.name!r}"
        if self.type not in TYPES:
            raise SchemaError(f"{where}: unknown 'type' {self.type!r}; use one of {', '.join(TYPES)}.")
        _flag(where, "required", self.required)
        _flag(where, "allow_new_categories", self.allow_new_categories)
        share = _number(where, "nullable_share", self.nullable_share, optional=False)
        if not 0 <= share <= 1:
            raise SchemaError(f"{where}: 'nullable_share' must be a share from 0 to 1, not {share!r}.")
        object.__setattr__(self, "nullable_share", share)
        for key in ("min", "max"):
            value = _number(where, key, getattr(self, key))
            if value is not None and self.type not in ("numeric", "integer"):
                raise SchemaError(f"{where}: {key!r} applies to numeric and integer columns, not {self.type}.")
            object.__setattr__(self, key, value)
        if self.min is not None and self.max is not None and self.min > self.max:
            raise SchemaError(f"{where}: 'min' ({self.min:g}) is greater than 'max' ({self.max:g}).")
        if self.allow_new_categories and self.type != "categorical":
            raise SchemaError(f"{where}: 'allow_new_categories' applies to categorical columns, not {self.type}.")
        if self.categories is not None:
            self._check_categories(where)

    def _check_categories(self, where: str) -> None:
        if self.type != "categorical":
            raise SchemaError(f"{where}: 'categories' applies to categorical columns, not {self.type}.")
        if isinstance(self.categories, str) or not isinstance(self.categories, list | tuple):
            raise SchemaError(f"{where}: 'categories' must be a list of strings or null.")
        for value in self.categories:
            if not isinstance(value, str) or value == "":
                raise SchemaError(f"{where}: 'categories' must hold non-empty strings (write \"1\", not 1), not {value!r}.")
        if len(set(self.categories)) != len(self.categories):
            twice = sorted({v for v in self.categories if self.categories.count(v) > 1})
            raise SchemaError(f"{where}: 'categories' lists {', '.join(map(repr, twice))} more than once.")
        object.__setattr__(self, "categories", tuple(self.categories))

    @classmethod
    def from_dict(cls, data: Mapping, *, position: int = 1) -> ColumnSchema:
        """One entry of the schema's "columns" list; `position` (1-based) names it while it has no name."""
        if not isinstance(data, Mapping):
            raise SchemaError(f"Column {position}: each column must be an object with a name and a type, not {data!r}.")
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise SchemaError(f"Column {position}: 'name' must be a non-empty string, not {name!r}.")
        unknown = [key for key in data if key not in _COLUMN_KEYS]
        if unknown:
            raise SchemaError(f"Column {name!r}: unknown key(s) {', '.join(map(repr, unknown))}; the keys are {', '.join(_COLUMN_KEYS)}.")
        if "type" not in data:
            raise SchemaError(f"Column {name!r}: 'type' is missing; use one of {', '.join(TYPES)}.")
        return cls(**{key: data[key] for key in _COLUMN_KEYS if key in data})

    def to_dict(self) -> dict:
        return {
            "name": self.name, "type": self.type, "required": self.required, "nullable_share": self.nullable_share,
            "min": json_number(self.min), "max": json_number(self.max),
            "categories": list(self.categories) if self.categories is not None else None,
            "allow_new_categories": self.allow_new_categories,
        }


@dataclass(frozen=True)
class SchemaSpec:
    """A dataset schema as plain data, well formed: what the `schema` field of a `registry.models.DatasetSchema` row holds, parsed."""

    columns: tuple[ColumnSchema, ...]
    allow_extra_columns: bool = True

    def __post_init__(self):
        object.__setattr__(self, "columns", tuple(self.columns))
        _flag("The schema", "allow_extra_columns", self.allow_extra_columns)
        seen: dict[str, int] = {}
        for position, column in enumerate(self.columns, start=1):
            if column.name in seen:
                raise SchemaError(f"Column {column.name!r}: the name is used twice (columns {seen[column.name]} and {position}).")
            seen[column.name] = position

    @classmethod
    def from_dict(cls, data: Mapping) -> SchemaSpec:
        """Validate a schema dict (the format in the module docstring); SchemaError names the column and key."""
        if not isinstance(data, Mapping):
            raise SchemaError("A schema must be an object with a 'columns' list.")
        unknown = [key for key in data if key not in ("columns", "allow_extra_columns")]
        if unknown:
            raise SchemaError(f"The schema: unknown key(s) {', '.join(map(repr, unknown))}; the keys are columns, allow_extra_columns.")
        columns = data.get("columns")
        if not isinstance(columns, list | tuple) or not columns:
            raise SchemaError("The schema: 'columns' must be a non-empty list of columns.")
        parsed = tuple(ColumnSchema.from_dict(column, position=i) for i, column in enumerate(columns, start=1))
        return cls(columns=parsed, allow_extra_columns=data.get("allow_extra_columns", True))

    def to_dict(self) -> dict:
        return {"columns": [column.to_dict() for column in self.columns], "allow_extra_columns": self.allow_extra_columns}


def json_number(value: float | None):
    return int(value) if value is not None and value.is_integer() and abs(value) < 2**53 else value
