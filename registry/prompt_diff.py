"""Side-by-side line diff of two texts (difflib), for the prompt version page. No Django."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class DiffRow:
    tag: str  # "equal", "replace", "delete", "insert"
    left_no: int | None
    left: str
    right_no: int | None
    right: str


def side_by_side(old: str, new: str) -> list[DiffRow]:
    """Rows pairing the lines of `old` (left) and `new` (right); changed lines carry their tag."""
    a, b = old.splitlines(), new.splitlines()
    rows: list[DiffRow] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        for k in range(max(i2 - i1, j2 - j1)):
            i, j = i1 + k, j1 + k
            left = (i + 1, a[i]) if i < i2 else (None, "")
            right = (j + 1, b[j]) if j < j2 else (None, "")
            row_tag = tag if tag != "replace" else ("replace" if left[0] and right[0] else ("delete" if left[0] else "insert"))
            rows.append(DiffRow(row_tag, left[0], left[1], right[0], right[1]))
    return rows


def settings_text(version) -> str:
    """The non-text settings of a prompt version as lines, so they diff like the rest."""
    lines = [f"model: {version.llm_model}", f"temperature: {version.temperature}", f"max_tokens: {version.max_tokens}"]
    lines += [f"eval_criteria[{i}]: {json.dumps(c, sort_keys=True)}" for i, c in enumerate(version.eval_criteria)]
    if version.tags:
        lines.append(f"tags: {', '.join(version.tags)}")
    return "\n".join(lines)
