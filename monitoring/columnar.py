"""Feature values stored column by column: one .npz blob per batch. No Django.

Numbers become float64 arrays (NaN where an event left the value out), any
column that holds a string becomes a str array ("" where missing): reading a
million rows of a column is one array, not a million Python objects.
"""

from __future__ import annotations

import io

import numpy as np

TS = "__ts__"
PREDICTION = "__prediction__"
LABEL = "__label__"


def column_kind(values: list) -> str:
    return "categorical" if any(isinstance(v, str) for v in values) else "numeric"


def to_array(values: list, kind: str) -> np.ndarray:
    if kind == "numeric":
        # numpy turns None into NaN for a float64 array; a numeric column holds no strings.
        return np.array(values, dtype=np.float64)
    return np.array(["" if v is None else str(v) for v in values], dtype=str)


def encode(columns: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **columns)
    return buffer.getvalue()


def decode(data: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(bytes(data)), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def build_batch(timestamps: list[float], predictions: list, labels: list, features: list[dict]) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Columns of one batch: timestamps, predictions and labels (when any), one array per feature name seen."""
    names = sorted({name for row in features for name in row})
    kinds = {name: column_kind([row.get(name) for row in features]) for name in names}
    columns = {TS: np.asarray(timestamps, dtype=np.float64)}
    for key, values in ((PREDICTION, predictions), (LABEL, labels)):
        if any(v is not None for v in values):
            values = [int(v) if isinstance(v, bool) else v for v in values]
            columns[key] = to_array(values, column_kind(values))
    for name in names:
        columns[name] = to_array([row.get(name) for row in features], kinds[name])
    return columns, kinds
