"""The result of a validation: one Violation per (column, kind), and the figures gates read. No Django."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

KINDS = ("missing_column", "unexpected_column", "type_mismatch", "non_finite", "below_min", "above_max", "unknown_category", "null_share")


def python_value(value):
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
