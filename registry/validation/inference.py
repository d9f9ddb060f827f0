"""A schema inferred from a reference table, to edit and then check new data against. numpy only, no Django."""

from __future__ import annotations

import math

import numpy as np

from registry.tables import Table

from .checks import column_array
from .schema import ColumnSchema, SchemaSpec, ValidationInputError

NULL_SHARE_STEP = 100  # inferred nullable_share is rounded up to whole percentage points (1 / 100)
CATEGORY_PREFIX = 100_000  # infer_schema counts categories on this prefix first to give up early on free text


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


def infer_schema(table: Table, *, max_categories: int = 50, slack: float = 0.0) -> SchemaSpec:
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
        array = column_array(name, values)
        if array.dtype.kind == "f":
            columns.append(_infer_numeric(name, array, slack))
        else:
            columns.append(_infer_categorical(name, array, max_categories))
    return SchemaSpec(columns=tuple(columns), allow_extra_columns=False)
