"""A table's columns checked against a dataset schema. numpy only, no Django.

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

import numpy as np

from registry.tables import Table

from .report import ValidationReport, Violation, python_value
from .schema import ColumnSchema, SchemaSpec, ValidationInputError, json_number

_BOOLEAN_TEXT = ("true", "false", "1", "0")


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
        examples = tuple((int(i) + 1, None if values is None else python_value(values[i])) for i in first)
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
        found.cells(name, "below_min", below, values, lambda n: f"{_cells(n)} in {name!r} are below the minimum {json_number(col.min)}.")
    if col.max is not None:
        above = (values > col.max) & ~infinite
        found.cells(name, "above_max", above, values, lambda n: f"{_cells(n)} in {name!r} are above the maximum {json_number(col.max)}.")
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


def column_array(name: str, values) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValidationInputError(f"Column {name!r} must be one value per row.")
    if array.dtype.kind in "biuf":
        return array.astype(np.float64, copy=False)
    if array.dtype.kind == "U":
        return array
    raise ValidationInputError(f"Column {name!r} must be float64 numbers (NaN for missing) or str values ('' for missing), not {array.dtype}.")


def validate_columns(columns: Mapping[str, np.ndarray], schema: SchemaSpec | Mapping, *, max_examples: int = 5) -> ValidationReport:
    """Check decoded columns against a schema: float64 arrays with NaN for missing, str arrays with "" for missing.

    The checks, counts and figures are those of the module docstring.
    """
    schema = schema if isinstance(schema, SchemaSpec) else SchemaSpec.from_dict(schema)
    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 0:
        raise ValidationInputError(f"max_examples must be a whole number >= 0, not {max_examples!r}.")
    arrays = {name: column_array(name, values) for name, values in columns.items()}
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


def validate(table: Table, schema: SchemaSpec | Mapping, *, max_examples: int = 5) -> ValidationReport:
    """Check a table read by `registry.tables.read_table` against a schema (a SchemaSpec or its dict)."""
    return validate_columns(table.columns, schema, max_examples=max_examples)
