import io
import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

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
