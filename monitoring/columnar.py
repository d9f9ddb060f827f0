"""Feature values stored column by column: one blob per batch. No Django.

Numbers become float64 arrays (NaN where an event left the value out), any
column that holds a string becomes a str array ("" where missing): reading a
million rows of a column is one array, not a million Python objects.

The blob is a small JSON header (name, dtype, shape, offset of each column)
followed by the raw array bytes, so decoding is np.frombuffer: no unzipping,
no CRC, no copy. (Blobs written as .npz by earlier code still decode.)
"""

from __future__ import annotations

import io
import json

import numpy as np

MAGIC = b"MLOPSCOL1\n"

TS = "__ts__"
PREDICTION = "__prediction__"
LABEL = "__label__"


def column_kind(values: list) -> str:
    # set(map(type, ...)) runs in C: a tenth of the time of a generator over 10,000 values.
    return "categorical" if str in set(map(type, values)) else "numeric"


def to_array(values: list, kind: str) -> np.ndarray:
    if kind == "numeric":
        # numpy turns None into NaN for a float64 array; a numeric column holds no strings.
        return np.array(values, dtype=np.float64)
    return np.array(["" if v is None else str(v) for v in values], dtype=str)


def encode(columns: dict[str, np.ndarray]) -> bytes:
    header, parts, offset = {}, [], 0
    for name, array in columns.items():
        array = np.ascontiguousarray(array)
        if array.dtype.hasobject:
            raise ValueError(f"column {name!r} holds Python objects; store numbers or strings")
        header[name] = [array.dtype.str, list(array.shape), offset]
        raw = array.tobytes()
        parts.append(raw)
        offset += len(raw)
    head = json.dumps(header).encode()
    return MAGIC + len(head).to_bytes(8, "little") + head + b"".join(parts)


def decode(data: bytes) -> dict[str, np.ndarray]:
    """The columns of a blob, as read-only arrays that share the blob's memory."""
    data = bytes(data)
    if not data.startswith(MAGIC):
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:  # an older .npz blob
            return {name: archive[name] for name in archive.files}
    start = len(MAGIC) + 8
    size = int.from_bytes(data[len(MAGIC) : start], "little")
    header = json.loads(data[start : start + size])
    body = memoryview(data)[start + size :]
    out = {}
    for name, (dtype, shape, offset) in header.items():
        dt = np.dtype(dtype)
        count = int(np.prod(shape)) if shape else 1
        out[name] = np.frombuffer(body, dtype=dt, count=count, offset=offset).reshape(shape)
    return out


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
