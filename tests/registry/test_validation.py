"""registry/validation.py on small CSV files read by registry.tables, against hand-computed counts and examples."""

import json

import numpy as np
import pytest

from registry.tables import TableError, read_table
from registry.validation import (
    ColumnSchema,
    SchemaError,
    SchemaSpec,
    ValidationInputError,
    infer_schema,
    validate,
    validate_columns,
)


def _schema(*columns: dict, allow_extra_columns: bool = True) -> SchemaSpec:
    return SchemaSpec.from_dict({"columns": list(columns), "allow_extra_columns": allow_extra_columns})


def _found(report) -> dict:
    return {(v.column, v.kind): (v.count, v.examples) for v in report.violations}


def test_validate_numbers_below_min_above_max_infinite_and_missing():
    table = read_table(b"amount,age\n10.5,30\n-1,41\n200,\ninf,25\n7,17\n")
    schema = _schema(
        {"name": "amount", "type": "numeric", "min": 0, "max": 100},
        {"name": "age", "type": "integer", "min": 18, "max": 99},
    )

    report = validate(table, schema)

    assert _found(report) == {
        ("amount", "below_min"): (1, ((2, -1.0),)),
        ("amount", "above_max"): (1, ((3, 200.0),)),
        ("amount", "non_finite"): (1, ((4, float("inf")),)),
        ("age", "below_min"): (1, ((5, 17.0),)),
        ("age", "null_share"): (1, ((3, None),)),
    }
    assert report.rows == 5 and report.columns_checked == 2 and not report.passed
    assert report.violations_total == 5
    assert report.invalid_rows == 4  # rows 2, 3, 4, 5
    assert report.valid_share == pytest.approx(0.2)
    null = next(v for v in report.violations if v.kind == "null_share")
    assert null.share == pytest.approx(0.2) and "20 %" in null.message


def test_validate_type_mismatch_text_in_numbers_and_fractions_in_integers():
    table = read_table(b"price,qty\n1.5,1\nabc,2\n3,2.5\n,x\nn/a?,4\n")
    schema = _schema({"name": "price", "type": "numeric", "nullable_share": 0.2}, {"name": "qty", "type": "integer", "max": 3})

    report = validate(table, schema)

    assert table.kinds == {"price": "categorical", "qty": "categorical"}
    assert [(v.column, v.kind, v.count, v.examples) for v in report.violations] == [
        ("price", "type_mismatch", 2, ((2, "abc"), (5, "n/a?"))),
        ("qty", "type_mismatch", 1, ((4, "x"),)),
        ("qty", "type_mismatch", 1, ((3, 2.5),)),
        ("qty", "above_max", 1, ((5, 4.0),)),
    ]
    assert "not numbers" in report.violations[0].message and "fraction" in report.violations[2].message
    assert report.invalid_rows == 4  # price's one missing cell (row 4) is within its 20 %


def test_validate_unknown_categories_with_counts_and_numbers_compared_as_text():
    table = read_table(b"country,plan,code\nDE,free,1\nFR,pro,2\nXX,free,3\nDE,,1\nYY,gold,2.5\nXX,pro,1\n")
    schema = _schema(
        {"name": "country", "type": "categorical", "categories": ["DE", "FR"]},
        {"name": "plan", "type": "categorical", "categories": ["free", "pro"], "allow_new_categories": True, "nullable_share": 0.2},
        {"name": "code", "type": "categorical", "categories": ["1", "2"]},
    )

    report = validate(table, schema)

    assert _found(report) == {
        ("country", "unknown_category"): (3, ((3, "XX"), (5, "YY"), (6, "XX"))),
        ("code", "unknown_category"): (2, ((3, "3"), (5, "2.5"))),
    }
    assert "'XX' (2), 'YY' (1)" in report.violations[0].message
    assert report.invalid_rows == 3


def test_validate_boolean_columns_accept_true_false_one_zero_only():
    table = read_table(b"ok,paid\ntrue,1\nFALSE,0\nmaybe,2\n1,1\n")
    schema = _schema({"name": "ok", "type": "boolean"}, {"name": "paid", "type": "boolean"})

    report = validate(table, schema)

    assert _found(report) == {("ok", "type_mismatch"): (1, ((3, "maybe"),)), ("paid", "type_mismatch"): (1, ((3, 2.0),))}
    assert report.invalid_rows == 1


def test_validate_missing_and_unexpected_columns():
    table = read_table(b"a,extra\n1,x\n2,y\n")
    schema = _schema(
        {"name": "a", "type": "integer"},
        {"name": "b", "type": "numeric"},
        {"name": "optional", "type": "numeric", "required": False},
        allow_extra_columns=False,
    )

    report = validate(table, schema)

    assert [(v.column, v.kind, v.count, v.share) for v in report.violations] == [
        ("b", "missing_column", 2, 1.0),
        ("extra", "unexpected_column", 2, 1.0),
    ]
    assert report.columns_checked == 1
    assert report.invalid_rows == 2 and report.valid_share == 0.0  # a missing required column makes every row invalid
    assert validate(table, _schema({"name": "a", "type": "integer"})).passed  # extra columns allowed by default


def test_validate_null_share_is_a_violation_only_above_the_allowed_share():
    data = b"x,y\n" + b"".join(b",1\n" if i < 7 else b"1,1\n" for i in range(100))  # 7 % of x missing

    at_limit = validate(read_table(data), _schema({"name": "x", "type": "numeric", "nullable_share": 0.07}))
    above = validate(read_table(data), _schema({"name": "x", "type": "numeric", "nullable_share": 0.06}))

    assert at_limit.passed
    assert [(v.kind, v.count, v.share) for v in above.violations] == [("null_share", 7, 0.07)]
    assert above.invalid_rows == 7


def test_validate_examples_are_limited_and_the_report_is_json():
    table = read_table(b"x,y\n" + b"".join(b"%d,inf\n" % i for i in range(1, 11)))
    schema = _schema({"name": "x", "type": "integer", "max": 3}, {"name": "y", "type": "numeric"})

    report = validate(table, schema, max_examples=2)
    out = json.loads(json.dumps(report.as_dict(), allow_nan=False))

    assert [(v["kind"], v["count"], v["examples"]) for v in out["violations"]] == [
        ("above_max", 7, [{"row": 4, "value": 4.0}, {"row": 5, "value": 5.0}]),
        ("non_finite", 10, [{"row": 1, "value": "inf"}, {"row": 2, "value": "inf"}]),
    ]
    assert {k: out[k] for k in ("rows", "passed", "violations_total", "invalid_rows", "valid_share")} == {
        "rows": 10, "passed": False, "violations_total": 2, "invalid_rows": 10, "valid_share": 0.0,
    }


def test_validate_columns_checks_decoded_columns_like_a_file():
    data = b"amount,country\n5,DE\n-2,XX\n,FR\n"
    schema = _schema({"name": "amount", "type": "numeric", "min": 0}, {"name": "country", "type": "categorical", "categories": ["DE", "FR"]})

    decoded = validate_columns({"amount": np.array([5.0, -2.0, np.nan]), "country": np.array(["DE", "XX", "FR"])}, schema.to_dict())

    assert decoded == validate(read_table(data), schema)
    assert _found(decoded) == {
        ("amount", "below_min"): (1, ((2, -2.0),)),
        ("amount", "null_share"): (1, ((3, None),)),
        ("country", "unknown_category"): (1, ((2, "XX"),)),
    }


@pytest.mark.parametrize(
    "columns, words",
    [
        ({"a": np.array([1.0, 2.0]), "b": np.array(["x"])}, "differ in length"),
        ({"a": np.array([{"x": 1}], dtype=object)}, "str values"),
        ({"a": np.zeros((2, 2))}, "one value per row"),
    ],
)
def test_validate_columns_refuses_unusable_columns(columns, words):
    with pytest.raises(ValidationInputError, match=words):
        validate_columns(columns, _schema({"name": "a", "type": "numeric"}))


REFERENCE = (
    b"amount,age,smoker,country,user,note\n"
    b"12.5,30,true,DE,u1,hello\n"
    b"3.25,41,false,FR,u2,\n"
    b"100,,true,DE,u3,hello\n"
    b",25,false,,u4,again\n"
    b"7,60,,IT,u5,more\n"
)


def test_infer_schema_types_ranges_categories_and_rounded_up_null_shares():
    schema = infer_schema(read_table(REFERENCE), max_categories=3)

    assert schema.to_dict() == {
        "columns": [
            {"name": "amount", "type": "numeric", "required": True, "nullable_share": 0.2, "min": 3.25, "max": 100,
             "categories": None, "allow_new_categories": False},
            {"name": "age", "type": "integer", "required": True, "nullable_share": 0.2, "min": 25, "max": 60,
             "categories": None, "allow_new_categories": False},
            {"name": "smoker", "type": "boolean", "required": True, "nullable_share": 0.2, "min": None, "max": None,
             "categories": None, "allow_new_categories": False},
            {"name": "country", "type": "categorical", "required": True, "nullable_share": 0.2, "min": None, "max": None,
             "categories": ["DE", "FR", "IT"], "allow_new_categories": False},
            {"name": "user", "type": "categorical", "required": True, "nullable_share": 0.0, "min": None, "max": None,
             "categories": None, "allow_new_categories": False},  # 5 distinct > max_categories 3: any string
            {"name": "note", "type": "categorical", "required": True, "nullable_share": 0.2, "min": None, "max": None,
             "categories": ["again", "hello", "more"], "allow_new_categories": False},  # 3 distinct: "" (missing) is no category
        ],
        "allow_extra_columns": False,
    }


def test_infer_schema_rounds_null_shares_up_to_whole_percent_and_widens_ranges_by_slack():
    data = b"x,k\n" + b"".join(b",%d\n" % i if i < 3 else b"%d.5,%d\n" % (i, i) for i in range(1, 301))  # 3 of 300 x missing

    schema = infer_schema(read_table(data), slack=0.1)

    x, k = schema.columns
    assert x.nullable_share == 0.01 and k.nullable_share == 0.0
    assert (x.min, x.max) == pytest.approx((3.5 - 29.7, 300.5 + 29.7))  # range 297, widened by 10 % on each side
    assert (k.type, k.min, k.max) == ("integer", -29.0, 330.0)  # 1 - 29.9 floored, 300 + 29.9 ceiled
    assert infer_schema(read_table(b"x,y\n,1\n1.5,2\n2,3\n")).columns[0].nullable_share == 0.34  # 1/3 rounded up


@pytest.mark.parametrize("seed", [0, 1])
def test_inferred_schema_validates_its_own_reference(seed):
    rng = np.random.default_rng(seed)
    n = 2000
    lines = ["num,int,flag,cat,free"]
    for i in range(n):
        num = "" if rng.random() < 0.013 else f"{rng.normal(50, 20):.4f}"
        cat = "" if rng.random() < 0.07 else rng.choice(["a", "b", "c", "d"])
        lines.append(f"{num},{rng.integers(-5, 500)},{rng.choice(['true', 'false'])},{cat},text-{i}")
    table = read_table("\n".join(lines).encode())

    report = validate(table, infer_schema(table))

    assert report.passed and report.violations == () and report.invalid_rows == 0 and report.valid_share == 1.0
    assert report.columns_checked == 5


def test_schema_dict_round_trips_through_json():
    data = {
        "columns": [
            {"name": "age", "type": "integer", "required": True, "nullable_share": 0.05, "min": 0, "max": 120,
             "categories": None, "allow_new_categories": False},
            {"name": "score", "type": "numeric", "required": False, "nullable_share": 1.0, "min": -0.5, "max": None,
             "categories": None, "allow_new_categories": False},
            {"name": "country", "type": "categorical", "required": True, "nullable_share": 0.0, "min": None, "max": None,
             "categories": ["DE", "FR"], "allow_new_categories": True},
            {"name": "ok", "type": "boolean", "required": True, "nullable_share": 0.0, "min": None, "max": None,
             "categories": None, "allow_new_categories": False},
        ],
        "allow_extra_columns": False,
    }

    schema = SchemaSpec.from_dict(json.loads(json.dumps(data)))

    assert schema.to_dict() == data
    assert SchemaSpec.from_dict(schema.to_dict()) == schema
    assert schema.columns[2] == ColumnSchema(name="country", type="categorical", categories=("DE", "FR"), allow_new_categories=True)


def test_schema_defaults_for_a_short_hand_written_dict():
    schema = SchemaSpec.from_dict({"columns": [{"name": "x", "type": "numeric"}]})

    assert schema.allow_extra_columns is True
    assert schema.columns[0].to_dict() == {
        "name": "x", "type": "numeric", "required": True, "nullable_share": 0.0, "min": None, "max": None,
        "categories": None, "allow_new_categories": False,
    }


@pytest.mark.parametrize(
    "columns, words",
    [
        ([{"name": "x", "type": "float"}], "Column 'x': unknown 'type' 'float'"),
        ([{"name": "x", "type": "numeric", "min": 5, "max": 1}], r"Column 'x': 'min' \(5\) is greater than 'max' \(1\)"),
        ([{"name": "x", "type": "numeric", "nullable_share": 1.5}], "Column 'x': 'nullable_share' must be a share from 0 to 1"),
        ([{"name": "x", "type": "numeric", "nullable_share": -0.1}], "Column 'x': 'nullable_share'"),
        ([{"name": "x", "type": "numeric"}, {"name": "x", "type": "integer"}], r"Column 'x': the name is used twice \(columns 1 and 2\)"),
        ([{"name": "x", "type": "numeric", "nullable": 0.1}], "Column 'x': unknown key.*'nullable'"),
        ([{"type": "numeric"}], "Column 1: 'name'"),
        ([{"name": "x", "type": "numeric"}, {"name": "y"}], "Column 'y': 'type' is missing"),
        ([{"name": "x", "type": "numeric", "categories": ["a"]}], "Column 'x': 'categories' applies to categorical"),
        ([{"name": "x", "type": "categorical", "categories": [1, 2]}], "Column 'x': 'categories' must hold non-empty strings"),
        ([{"name": "x", "type": "categorical", "categories": ["a", "a"]}], "Column 'x': 'categories' lists 'a' more than once"),
        ([{"name": "x", "type": "categorical", "min": 0}], "Column 'x': 'min' applies to numeric"),
        ([{"name": "x", "type": "numeric", "max": "10"}], "Column 'x': 'max' must be a finite number"),
        ([{"name": "x", "type": "numeric", "required": "yes"}], "Column 'x': 'required' must be true or false"),
        ([], "'columns' must be a non-empty list"),
        (["x"], "Column 1: each column must be an object"),
    ],
)
def test_bad_schema_dicts_raise_schema_error_naming_the_problem(columns, words):
    with pytest.raises(SchemaError, match=words):
        SchemaSpec.from_dict({"columns": columns})


def test_bad_schema_top_level_keys_raise_schema_error():
    with pytest.raises(SchemaError, match="unknown key.*'allow_extra'"):
        SchemaSpec.from_dict({"columns": [{"name": "x", "type": "numeric"}], "allow_extra": True})
    with pytest.raises(SchemaError, match="allow_extra_columns"):
        SchemaSpec.from_dict({"columns": [{"name": "x", "type": "numeric"}], "allow_extra_columns": "no"})


@pytest.mark.parametrize("data, words", [(b"", "empty"), (b"  \n", "empty"), (b"a,b\n1,2,3\n", "CSV"), (b"a,b\n", "no rows")])
def test_unreadable_files_fail_before_validation_with_a_table_error(data, words):
    schema = _schema({"name": "a", "type": "numeric"})

    with pytest.raises(TableError, match=words):
        validate(read_table(data), schema)
