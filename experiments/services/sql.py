"""SQL fragments the experiment services share, written once per database (SQLite and PostgreSQL)."""

from __future__ import annotations

from django.db import connection


def table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def column(model, field: str) -> str:
    return connection.ops.quote_name(model._meta.get_field(field).column)


def utc_day(expression: str) -> str:
    """The UTC calendar day of a timestamp column, as the DateField of the same day is stored.

    SQLite keeps Django's timestamps as UTC text ("YYYY-MM-DD HH:MM:SS[.ffffff]"), so the day is its first
    ten characters (substr is much cheaper than date() on millions of rows); PostgreSQL converts explicitly,
    whatever the session's time zone.
    """
    if connection.vendor == "sqlite":
        return f"substr({expression}, 1, 10)"
    return f"(({expression}) AT TIME ZONE 'UTC')::date"


def placeholders(rows: int, columns: int) -> str:
    row = "(" + ", ".join(["%s"] * columns) + ")"
    return ", ".join([row] * rows)


def one_of_group(expression: str) -> str:
    """A column that is constant within each group of a GROUP BY, read once per group.

    SQLite takes a bare column from the group's rows (a documented SQLite feature, and a fifth cheaper than MIN() in
    the analysis' inner loop); PostgreSQL needs an aggregate, MIN() of identical values.
    """
    return expression if connection.vendor == "sqlite" else f"MIN({expression})"
