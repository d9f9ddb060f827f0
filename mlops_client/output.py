"""Human output shared by the commands: aligned tables, short times, indented JSON."""

from __future__ import annotations

import json
from typing import Any


def cell(value: Any, width: int = 60) -> str:
    if value is None or value == "":
        return "-"
    text = " ".join(str(value).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def when(value: str | None) -> str:
    return value[:16].replace("T", " ") if value else "-"


def table(headers: list[str], rows: list[list[Any]], empty: str) -> None:
    if not rows:
        print(empty)
        return
    cells = [headers] + [[cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    for row in cells:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def print_json(body: Any) -> None:
    print(json.dumps(body, indent=2, sort_keys=False))


def version_label(number: int | None) -> str:
    return f"v{number}" if number else "-"
