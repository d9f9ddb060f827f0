"""Data validation: a dataset schema as plain data, inferred from a reference, checked on new data. numpy only, no Django.

The schema format is described in `schema`, the checks and the figures for
gates in `checks` (`validate`, `validate_columns`; the report in `report`),
inference from a reference in `inference` (`infer_schema`). Every public name
is importable from here.
"""

from .checks import validate, validate_columns
from .inference import CATEGORY_PREFIX, NULL_SHARE_STEP, infer_schema
from .report import KINDS, ValidationReport, Violation
from .schema import TYPES, ColumnSchema, SchemaError, SchemaSpec, ValidationInputError

__all__ = [
    "CATEGORY_PREFIX", "KINDS", "NULL_SHARE_STEP", "TYPES", "ColumnSchema", "SchemaSpec", "SchemaError", "ValidationInputError",
    "ValidationReport", "Violation", "infer_schema", "validate", "validate_columns",
]
