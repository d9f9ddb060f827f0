import gzip
import io
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from registry import tables
from registry.tables import TableError, read_table


def test_csv_numbers_strings_and_missing_cells():
    table = read_table(b"\xef\xbb\xbfamount,country,flag\n1.5,DE,1\n,FR,0\n3,,1\n")

    assert table.format == "csv" and table.rows == 3
    assert table.kinds == {"amount": "numeric", "country": "categorical", "flag": "numeric"}
    assert table.columns["amount"][0] == 1.5 and math.isnan(table.columns["amount"][1])
    assert table.columns["country"].tolist() == ["DE", "FR", ""]


def test_parquet_and_json_lines_and_json_arrays_read_alike():
    buffer = io.BytesIO()
    pq.write_table(pa.table({"x": [1, None, 3], "c": ["a", None, "b"], "ok": [True, False, None]}), buffer)
    lines = b'{"x": 1, "c": "a", "ok": true}\n{"x": null, "c": null, "ok": false}\n{"x": 3, "c": "b"}\n'
    array = b'[{"x": 1, "c": "a", "ok": true}, {"x": null, "c": null, "ok": false}, {"x": 3, "c": "b"}]'

    for data, fmt in ((buffer.getvalue(), "parquet"), (lines, "jsonl"), (array, "jsonl")):
        table = read_table(data)
        assert table.format == fmt
        assert table.columns["c"].tolist() == ["a", "", "b"]
        assert [v if not math.isnan(v) else None for v in table.columns["x"]] == [1.0, None, 3.0]
        assert [v if not math.isnan(v) else None for v in table.columns["ok"]] == [1.0, 0.0, None]


@pytest.mark.parametrize(
    "data, words",
    [
        (b"", "empty"),
        (b"a,b\n1,2,3\n", "CSV"),
        (b"a,a\n1,2\n", "once"),
        (b"a,b\n", "no rows"),
        (b"\xff\xfe\x00a", "UTF-8"),
        (b'{"a": {"b": 1}}\n', "nested"),
        (b"[1, 2]", "array of objects"),
        (b"PAR1 not really", "PARQUET"),
    ],
)
def test_unreadable_files_say_why(data, words):
    with pytest.raises(TableError, match=words):
        read_table(data)


def _parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


@pytest.fixture
def decoded(monkeypatch):
    """How many Parquet batches were decoded."""
    batches = []
    iter_batches = pq.ParquetFile.iter_batches
    monkeypatch.setattr(pq.ParquetFile, "iter_batches", lambda self, **kw: (batches.append(b) or b for b in iter_batches(self, **kw)))
    return batches


def _data_pages_zeroed(data: bytes) -> bytes:
    """The file with every byte between its magic and its footer zeroed: the footer still says its shape, but
    decoding any data fails, so a refusal naming the shape shows the data was never decoded."""
    footer = int.from_bytes(data[-8:-4], "little")
    body_end = len(data) - 8 - footer
    return data[:4] + bytes(body_end - 4) + data[body_end:]


def test_parquet_over_the_row_limit_is_refused_by_its_footer_before_decoding():
    zeros = _parquet(pa.table({"x": np.zeros(5_000_001)}))  # compresses to a few kB

    with pytest.raises(TableError, match="The file has 5,000,001 rows; the limit is 5,000,000 rows."):
        read_table(_data_pages_zeroed(zeros))

    assert len(zeros) < 1_000_000
    with pytest.raises(TableError, match="Not a readable PARQUET"):  # under the limit, decoding the zeroed pages fails
        read_table(_data_pages_zeroed(_parquet(pa.table({"x": np.zeros(1000)}))))


def test_parquet_over_the_column_limit_is_refused_by_its_footer_before_decoding():
    wide = _parquet(pa.table({f"c{i}": [1.0] for i in range(1001)}))

    with pytest.raises(TableError, match="The file has 1,001 columns; the limit is 1,000 columns."):
        read_table(_data_pages_zeroed(wide))


def test_csv_and_json_over_the_row_limit_are_refused(monkeypatch):
    monkeypatch.setattr(tables, "MAX_TABLE_ROWS", 3)

    for data in (b"x\n1\n2\n3\n4\n", b'{"x": 1}\n{"x": 2}\n{"x": 3}\n{"x": 4}\n'):
        with pytest.raises(TableError, match="4 rows; the limit is 3 rows"):
            read_table(data)
    assert read_table(b"x\n1\n2\n3\n").rows == 3


def test_parquet_that_decodes_past_the_limit_stops_after_the_batch_that_crosses_it(monkeypatch, decoded):
    monkeypatch.setattr(tables, "MAX_TABLE_ARRAY_BYTES", 2_500_000)
    monkeypatch.setattr(tables, "PARQUET_BATCH_ROWS", 1000)
    repeated = _parquet(pa.table({"text": ["x" * 1000] * 10_000}))  # one value, dictionary encoded: 10 MB decoded

    with pytest.raises(TableError, match="decodes to more than 2 MB"):
        read_table(repeated)

    assert len(repeated) < 100_000 and len(decoded) == 3  # about 1 MB a batch: the third crosses 2.5 MB


def test_one_long_cell_in_many_rows_is_refused_before_numpy_widens_the_column(monkeypatch):
    monkeypatch.setattr(tables, "MAX_TABLE_ARRAY_BYTES", 1_000_000)
    data = b"text\n" + b"x" * 10_000 + b"\n" + b"a\n" * 99  # 0.01 MB of text; 100 rows x 10,000 characters x 4 bytes = 4 MB

    with pytest.raises(TableError, match="need 3 MB as arrays; the limit is 0 MB"):
        read_table(data)
    assert read_table(b"text\n" + b"x" * 1000 + b"\n" + b"a\n" * 99).rows == 100  # 0.4 MB


def _garbage_parquet() -> bytes:
    return b"PAR1" + np.random.default_rng(0).bytes(4000) + b"PAR1"


@pytest.mark.parametrize(
    "data, words",
    [
        (_garbage_parquet(), "PARQUET"),
        (_parquet(pa.table({"x": list(range(1000))}))[:-300], "PARQUET"),  # truncated: its footer cut off
        (gzip.compress(b"x\n" + b"1\n" * 1000)[:40], "UTF-8"),  # a truncated gzip is not text
        (b"x,y\n1,\xff\xfe\n", "UTF-8"),
        (_parquet(pa.table({"blob": pa.array([b"\xff\xfe", b"ok"], pa.binary())})), "PARQUET"),  # bytes that are not text
    ],
)
def test_corrupt_files_are_table_errors(data, words):
    with pytest.raises(TableError, match=words):
        read_table(data)
