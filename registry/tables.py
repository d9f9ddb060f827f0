"""Tabular files (CSV, JSON lines, Parquet) read into numpy columns. No Django.

Shared by monitoring references, data validation and model evaluations: one
reader, so a file that one of them accepts means the same to the others.
pyarrow does the parsing (multi-threaded, in C++), so a reference of a
million rows reads in about a second instead of a minute of per-cell Python.

Each column comes back as float64 (numbers and booleans; NaN where a value is
missing) or as a str array ("" where missing). `kinds` says which.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from mlops_site.parsers import too_deep

PARQUET_MAGIC = b"PAR1"
# The largest table file an upload page or endpoint reads (references, schema inference).
MAX_TABLE_BYTES = 200 * 1024 * 1024
# What a file may decode to. A compressed Parquet file of a few MB can hold a billion rows, so its row and column
# counts are read from its footer and checked before any data is decoded; CSV and JSON decode in proportion to their
# bytes, so their counts are checked once parsed. Five times the million-row references the drift reports are built
# for; columns as many as an event batch may name features; the numpy arrays handed back at most 1 GB.
MAX_TABLE_ROWS = 5_000_000
MAX_TABLE_COLUMNS = 1_000
MAX_TABLE_ARRAY_BYTES = 1024 * 1024 * 1024
# Parquet is decoded this many rows at a time, so a file whose cells decode to far more than its bytes stops early.
PARQUET_BATCH_ROWS = 65_536


class TableError(ValueError):
    """The file cannot be read as a table; the message says why (and where, when known)."""


@dataclass(frozen=True)
class Table:
    columns: dict[str, np.ndarray]
    kinds: dict[str, str]  # name -> "numeric" or "categorical"
    rows: int
    format: str  # "csv", "jsonl" or "parquet"


def _is_numeric(kind) -> bool:
    return pa.types.is_boolean(kind) or pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)


def _check_shape(rows: int, columns: int) -> None:
    if rows > MAX_TABLE_ROWS:
        raise TableError(f"The file has {rows:,} rows; the limit is {MAX_TABLE_ROWS:,} rows.")
    if columns > MAX_TABLE_COLUMNS:
        raise TableError(f"The file has {columns:,} columns; the limit is {MAX_TABLE_COLUMNS:,} columns.")


def _array_bytes(column) -> int:
    """The bytes of the numpy array `_to_numpy` makes of `column`: 8 a number, 4 a character times the longest string."""
    if _is_numeric(column.type) or pa.types.is_null(column.type):
        return 8 * len(column)
    text = column if pa.types.is_string(column.type) or pa.types.is_large_string(column.type) else column.cast(pa.string())
    longest = pc.max(pc.utf8_length(text)).as_py() or 1
    return 4 * longest * len(column)


def _read_parquet(data: bytes) -> pa.Table:
    """The footer's row and column counts checked before the data is decoded, then the data a batch at a time."""
    source = pq.ParquetFile(io.BytesIO(data))
    _check_shape(source.metadata.num_rows, source.metadata.num_columns)
    batches, decoded = [], 0
    for batch in source.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        decoded += batch.nbytes
        if decoded > MAX_TABLE_ARRAY_BYTES:
            raise TableError(f"The file decodes to more than {MAX_TABLE_ARRAY_BYTES // 2**20:,} MB; that is the limit.")
        batches.append(batch)
    return pa.Table.from_batches(batches, schema=source.schema_arrow)


def _to_numpy(column) -> tuple[np.ndarray, str]:
    kind = column.type
    if _is_numeric(kind):
        values = column.cast(pa.float64())
        return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64), "numeric"
    if pa.types.is_null(kind):
        return np.full(len(column), np.nan), "numeric"
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        column = column.cast(pa.string())
    filled = pc.fill_null(column, "")
    return np.asarray(filled.to_numpy(zero_copy_only=False), dtype=str), "categorical"


def _detect(data: bytes, filename: str) -> str:
    if data[:4] == PARQUET_MAGIC:
        return "parquet"
    name = filename.lower()
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    head = data.lstrip()[:1]
    if head in (b"{", b"["):
        return "jsonl"
    return "csv"


def _json_array_as_lines(data: bytes) -> bytes:
    """A JSON array of objects, rewritten as JSON lines for pyarrow (which reads only lines)."""
    try:
        rows = json.loads(data)
    except RecursionError:
        raise TableError("Not valid JSON: nested too deeply") from None
    except ValueError as exc:
        raise TableError(f"Not valid JSON: {exc}") from None
    if problem := too_deep(rows):
        raise TableError(f"Not valid JSON: {problem}")
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise TableError("A JSON file must be an array of objects, or one object per line.")
    return "\n".join(json.dumps(row) for row in rows).encode()


def read_table(data: bytes, *, filename: str = "") -> Table:
    """Read CSV (a header row; empty cells are missing), JSON lines (or an array of objects) or Parquet."""
    if not data.strip():
        raise TableError("The file is empty.")
    fmt = _detect(data, filename)
    try:
        if fmt == "parquet":
            table = _read_parquet(data)
        elif fmt == "jsonl":
            if data.lstrip()[:1] == b"[":
                data = _json_array_as_lines(data)
            table = pa_json.read_json(io.BytesIO(data))
        else:
            if data.startswith(b"\xef\xbb\xbf"):
                data = data[3:]
            data.decode("utf-8")  # pyarrow would read invalid UTF-8 as binary; say so instead
            table = pa_csv.read_csv(
                io.BytesIO(data),
                read_options=pa_csv.ReadOptions(block_size=1 << 24),
                # Only an empty cell is missing: pyarrow's default null words ("NA", "None", "null"...) are real
                # categories in real data (NA is Namibia). "NaN" in a number column still reads as NaN.
                convert_options=pa_csv.ConvertOptions(null_values=[""], strings_can_be_null=True),
            )
    except UnicodeDecodeError as exc:
        raise TableError(f"The file is not UTF-8 text: {exc}") from None
    except (pa.ArrowException, OSError) as exc:
        raise TableError(f"Not a readable {fmt.upper()} file: {exc}") from None
    _check_shape(table.num_rows, table.num_columns)
    names = table.column_names
    if any(not str(name).strip() for name in names) or len(set(names)) != len(names):
        raise TableError("The header must name every column once.")
    if table.num_rows == 0:
        raise TableError("The file has no rows.")
    for name, column in zip(names, table.columns, strict=True):
        if pa.types.is_struct(column.type) or pa.types.is_list(column.type) or pa.types.is_map(column.type):
            raise TableError(f"Column {name!r} holds nested values; give one number or string per cell.")
    try:
        # numpy keeps strings at the width of the longest one: one long cell times many rows could ask for terabytes.
        size = sum(_array_bytes(column) for column in table.columns)
        if size > MAX_TABLE_ARRAY_BYTES:
            raise TableError(
                f"The file's columns need {size // 2**20:,} MB as arrays; the limit is {MAX_TABLE_ARRAY_BYTES // 2**20:,} MB "
                "(a string column takes its longest value's length in every row)."
            )
        columns, kinds = {}, {}
        for name, column in zip(names, table.columns, strict=True):
            columns[name], kinds[name] = _to_numpy(column)
    except pa.ArrowException as exc:  # e.g. a binary column that is not UTF-8 text
        raise TableError(f"Not a readable {fmt.upper()} file: {exc}") from None
    return Table(columns=columns, kinds=kinds, rows=table.num_rows, format=fmt)
