"""Data validation: a dataset schema as plain data, inferred from a reference, checked on new data. numpy only, no Django.

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

Checks, per cell (a missing cell is NaN in a float column, "" in a str column):
- type_mismatch: a numeric or integer column holding cells that are not numbers
  (the reader then gives strings), an integer column holding fractions, a boolean
  column holding anything but true / false / 1 / 0. Such cells are neither missing
  nor range-checked.
- non_finite (numeric, integer): +inf or -inf, which are never valid values.
- below_min / above_max: finite values outside [min, max].
- unknown_category: a non-missing value outside `categories` (numbers in a
  categorical column are compared as text: 3.0 -> "3", 2.5 -> "2.5").
- null_share: missing cells / rows > nullable_share; its cells are then the missing ones.
and per column: missing_column (a required column is absent: every row lacks a
required value) and unexpected_column (when extra columns are not allowed; the
column is ignored, so its rows are not made invalid).

Figures for gates: violations_total = the number of violation entries;
invalid_rows = rows with at least one violation in a cell (all rows when a
required column is missing); valid_share = 1 - invalid_rows / rows (1 for no rows);
passed = no violations. Example rows are 1-based data rows (the header is not a row).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from registry.tables import Table

TYPES = ("numeric", "integer", "categorical", "boolean")
KINDS = ("missing_column", "unexpected_column", "type_mismatch", "non_finite", "below_min", "above_max", "unknown_category", "null_share")
NULL_SHARE_STEP = 100  # inferred nullable_share is rounded up to whole percentage points (1 / 100)
CATEGORY_PREFIX = 100_000  # infer_schema counts categories on this prefix first to give up early on free text
_COLUMN_KEYS = ("name", "type", "required", "nullable_share", "min", "max", "categories", "allow_new_categories")
_BOOLEAN_TEXT = ("true", "false", "1", "0")


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
            "min": _json_number(self.min), "max": _json_number(self.max),
            "categories": list(self.categories) if self.categories is not None else None,
            "allow_new_categories": self.allow_new_categories,
        }


@dataclass(frozen=True)
class DatasetSchema:
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
    def from_dict(cls, data: Mapping) -> DatasetSchema:
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


def _json_number(value: float | None):
    return int(value) if value is not None and value.is_integer() and abs(value) < 2**53 else value


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def _json_value(value):
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else "-inf"
    return value


@dataclass(frozen=True)
class Violation:
    column: str
    kind: str
    count: int  # offending cells (rows, for missing_column and unexpected_column)
    share: float  # count / rows
    examples: tuple[tuple[int, object], ...]  # (1-based data row, offending value), the first rows found
    message: str

    def as_dict(self) -> dict:
        return {
            "column": self.column, "kind": self.kind, "count": self.count, "share": self.share, "message": self.message,
            "examples": [{"row": row, "value": _json_value(value)} for row, value in self.examples],
        }


@dataclass(frozen=True)
class ValidationReport:
    rows: int
    columns_checked: int  # schema columns found in the data and checked
    violations: tuple[Violation, ...]
    invalid_rows: int  # rows with at least one violation in a cell

    @property
    def passed(self) -> bool:
        return not self.violations

    @property
    def violations_total(self) -> int:
        return len(self.violations)

    @property
    def valid_share(self) -> float:
        return 1.0 - self.invalid_rows / self.rows if self.rows else 1.0

    def as_dict(self) -> dict:
        return {
            "rows": self.rows, "columns_checked": self.columns_checked, "passed": self.passed,
            "violations_total": self.violations_total, "invalid_rows": self.invalid_rows, "valid_share": self.valid_share,
            "violations": [v.as_dict() for v in self.violations],
        }


class _Findings:
    """Violations found so far and the rows they touch (one bool per row, OR-ed)."""

    def __init__(self, rows: int, max_examples: int):
        self.rows, self.max_examples = rows, max_examples
        self.violations: list[Violation] = []
        self.invalid = np.zeros(rows, dtype=bool)

    def cells(self, column: str, kind: str, mask: np.ndarray, values: np.ndarray | None, message: Callable[[int], str]) -> None:
        count = int(np.count_nonzero(mask))
        if not count:
            return
        self.invalid |= mask
        first = np.flatnonzero(mask)[: self.max_examples]
        examples = tuple((int(i) + 1, None if values is None else _plain(values[i])) for i in first)
        self.violations.append(Violation(column, kind, count, count / self.rows, examples, message(count)))

    def column(self, column: str, kind: str, message: str, *, invalidates: bool) -> None:
        if invalidates:
            self.invalid[:] = True
        self.violations.append(Violation(column, kind, self.rows, 1.0 if self.rows else 0.0, (), message))

    def nulls(self, col: ColumnSchema, missing: np.ndarray) -> None:
        count = int(np.count_nonzero(missing))
        if count and count / self.rows > col.nullable_share:
            self.cells(col.name, "null_share", missing, None, lambda n: (
                f"{col.name!r} is missing in {_percent(n / self.rows)} of rows ({n:,} of {self.rows:,}); "
                f"at most {_percent(col.nullable_share)} allowed."
            ))


def _percent(share: float) -> str:
    return f"{100 * share:.3g} %"


def _cells(n: int) -> str:
    return f"{n:,} value{'s' if n != 1 else ''}"


def _parse_numbers(text: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Strings to float64 (NaN where missing or not a number) and the mask of cells that are not numbers.

    Python's float() syntax (numpy uses it too). Chunks that all parse take one
    vectorised cast; only a chunk holding a bad cell is parsed cell by cell.
    """
    out = np.full(len(text), np.nan)
    bad = np.zeros(len(text), dtype=bool)
    step = 1 << 16
    for start in range(0, len(text), step):
        chunk = text[start : start + step]
        chunk = np.where(chunk == "", "nan", chunk)
        try:
            out[start : start + step] = chunk.astype(np.float64)
        except ValueError:
            for i, cell in enumerate(chunk.tolist(), start=start):
                try:
                    out[i] = float(cell)
                except ValueError:
                    bad[i] = True
    return out, bad


def _as_text(values: np.ndarray) -> np.ndarray:
    """Numbers as the text a categorical comparison sees: whole numbers without ".0", NaN as ""."""
    distinct, inverse = np.unique(values, return_inverse=True)
    text = ["" if math.isnan(v) else str(int(v)) if v.is_integer() else repr(v) for v in distinct.tolist()]
    return np.asarray(text, dtype=str)[inverse]


def _check_numeric(found: _Findings, col: ColumnSchema, values: np.ndarray) -> None:
    name = col.name
    if values.dtype.kind == "U":
        original, (values, bad) = values, _parse_numbers(values)
        found.cells(name, "type_mismatch", bad, original, lambda n: f"{_cells(n)} in {col.type} column {name!r} are not numbers.")
        missing = np.isnan(values) & ~bad
    else:
        missing = np.isnan(values)
    infinite = np.isinf(values)
    found.cells(name, "non_finite", infinite, values, lambda n: f"{_cells(n)} in {name!r} are infinite.")
    if col.type == "integer":
        fraction = (values != np.round(values)) & np.isfinite(values)
        found.cells(name, "type_mismatch", fraction, values, lambda n: f"{_cells(n)} in integer column {name!r} have a fraction.")
    if col.min is not None:
        below = (values < col.min) & ~infinite
        found.cells(name, "below_min", below, values, lambda n: f"{_cells(n)} in {name!r} are below the minimum {_json_number(col.min)}.")
    if col.max is not None:
        above = (values > col.max) & ~infinite
        found.cells(name, "above_max", above, values, lambda n: f"{_cells(n)} in {name!r} are above the maximum {_json_number(col.max)}.")
    found.nulls(col, missing)


def _check_boolean(found: _Findings, col: ColumnSchema, values: np.ndarray) -> None:
    if values.dtype.kind == "U":
        missing = values == ""
        words = np.strings.lower(np.strings.strip(values))
        bad = ~missing
        for word in _BOOLEAN_TEXT:  # a few vectorised comparisons; np.isin would sort every cell
            bad &= words != word
    else:
        missing = np.isnan(values)
        bad = ~missing & (values != 0) & (values != 1)
    found.cells(col.name, "type_mismatch", bad, values, lambda n: f"{_cells(n)} in boolean column {col.name!r} are not true / false / 1 / 0.")
    found.nulls(col, missing)


def _check_categorical(found: _Findings, col: ColumnSchema, values: np.ndarray) -> None:
    missing = np.isnan(values) if values.dtype.kind == "f" else values == ""
    if col.categories is not None and not col.allow_new_categories:
        text = _as_text(values) if values.dtype.kind == "f" else values
        known = np.sort(np.asarray(col.categories, dtype=str))
        if len(known):
            # a binary search per cell: O(n log k) comparisons, where np.isin would sort all n strings
            at = np.minimum(np.searchsorted(known, text), len(known) - 1)
            unknown = (known[at] != text) & ~missing
        else:
            unknown = ~missing
        if unknown.any():
            seen, counts = np.unique(text[unknown], return_counts=True)
            top = np.argsort(-counts, kind="stable")[:5].tolist()
            listed = ", ".join(f"{seen[i].item()!r} ({int(counts[i]):,})" for i in top) + (", ..." if len(seen) > 5 else "")
            found.cells(col.name, "unknown_category", unknown, text, lambda n: (
                f"{_cells(n)} in {col.name!r} are not among its {len(known)} categories: {listed}."
            ))
    found.nulls(col, missing)


_CHECKS = {"numeric": _check_numeric, "integer": _check_numeric, "boolean": _check_boolean, "categorical": _check_categorical}


def _column_array(name: str, values) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValidationInputError(f"Column {name!r} must be one value per row.")
    if array.dtype.kind in "biuf":
        return array.astype(np.float64, copy=False)
    if array.dtype.kind == "U":
        return array
    raise ValidationInputError(f"Column {name!r} must be float64 numbers (NaN for missing) or str values ('' for missing), not {array.dtype}.")


def validate_columns(columns: Mapping[str, np.ndarray], schema: DatasetSchema | Mapping, *, max_examples: int = 5) -> ValidationReport:
    """Check decoded columns against a schema: float64 arrays with NaN for missing, str arrays with "" for missing.

    The checks, counts and figures are those of the module docstring.
    """
    schema = schema if isinstance(schema, DatasetSchema) else DatasetSchema.from_dict(schema)
    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 0:
        raise ValidationInputError(f"max_examples must be a whole number >= 0, not {max_examples!r}.")
    arrays = {name: _column_array(name, values) for name, values in columns.items()}
    lengths = {name: len(array) for name, array in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValidationInputError(f"The columns differ in length: {lengths}.")
    rows = next(iter(lengths.values()), 0)
    found = _Findings(rows, max_examples)
    checked = 0
    for col in schema.columns:
        if col.name not in arrays:
            if col.required:
                found.column(col.name, "missing_column", f"Required column {col.name!r} is missing.", invalidates=True)
            continue
        checked += 1
        _CHECKS[col.type](found, col, arrays[col.name])
    if not schema.allow_extra_columns:
        known = {col.name for col in schema.columns}
        for name in arrays:
            if name not in known:
                found.column(name, "unexpected_column", f"Column {name!r} is not in the schema, which allows no other columns.", invalidates=False)
    return ValidationReport(rows=rows, columns_checked=checked, violations=tuple(found.violations), invalid_rows=int(found.invalid.sum()))


def validate(table: Table, schema: DatasetSchema | Mapping, *, max_examples: int = 5) -> ValidationReport:
    """Check a table read by `registry.tables.read_table` against a schema (a DatasetSchema or its dict)."""
    return validate_columns(table.columns, schema, max_examples=max_examples)


def _round_up_share(missing: int, rows: int) -> float:
    # exact integer ceiling: the observed share never exceeds the allowed one, so the reference validates
    return -(-missing * NULL_SHARE_STEP // rows) / NULL_SHARE_STEP if rows else 0.0


def _infer_numeric(name: str, values: np.ndarray, slack: float) -> ColumnSchema:
    nullable = _round_up_share(int(np.isnan(values).sum()), len(values))
    finite = values[np.isfinite(values)]
    if not len(finite):
        return ColumnSchema(name=name, type="numeric", nullable_share=nullable)
    if np.all((finite == 0) | (finite == 1)):
        return ColumnSchema(name=name, type="boolean", nullable_share=nullable)
    low, high = float(finite.min()), float(finite.max())
    pad = slack * (high - low)
    if np.all(finite == np.round(finite)):
        return ColumnSchema(name=name, type="integer", nullable_share=nullable, min=math.floor(low - pad), max=math.ceil(high + pad))
    return ColumnSchema(name=name, type="numeric", nullable_share=nullable, min=low - pad, max=high + pad)


def _infer_categorical(name: str, values: np.ndarray, max_categories: int) -> ColumnSchema:
    nullable = _round_up_share(int(np.count_nonzero(values == "")), len(values))
    categories = None
    if len(np.unique_values(values[:CATEGORY_PREFIX])) <= max_categories + 1:  # +1: "" (missing) may be among them
        distinct = [v for v in np.unique_values(values).tolist() if v != ""]
        categories = tuple(sorted(distinct)) if len(distinct) <= max_categories else None
    return ColumnSchema(name=name, type="categorical", nullable_share=nullable, categories=categories)


def infer_schema(table: Table, *, max_categories: int = 50, slack: float = 0.0) -> DatasetSchema:
    """A schema that the reference `table` itself passes, to edit and then check new data against.

    Every column is required and extra columns are not allowed. Numbers: "boolean"
    when every value is 0 or 1, "integer" when every value is whole, else "numeric";
    min / max = the reference's finite range widened by slack x (max - min) on each
    side (integers: then floored / ceiled). Strings: "categorical", with the sorted
    distinct values as categories when there are at most `max_categories`, else
    categories = null (any string). nullable_share = the observed missing share
    rounded UP to whole percentage points (0.3 % -> 0.01, 0 stays 0), so the
    reference validates and a little more missingness passes. Infinite values are
    left out of the range: they are violations, in the reference too.
    """
    if isinstance(max_categories, bool) or not isinstance(max_categories, int) or max_categories < 0:
        raise ValidationInputError(f"max_categories must be a whole number >= 0, not {max_categories!r}.")
    if not (isinstance(slack, int | float) and math.isfinite(slack) and slack >= 0):
        raise ValidationInputError(f"slack must be a finite number >= 0, not {slack!r}.")
    columns = []
    for name, values in table.columns.items():
        array = _column_array(name, values)
        if array.dtype.kind == "f":
            columns.append(_infer_numeric(name, array, slack))
        else:
            columns.append(_infer_categorical(name, array, max_categories))
    return DatasetSchema(columns=tuple(columns), allow_extra_columns=False)
