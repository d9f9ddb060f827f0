"""Outputs recorded earlier: from the eval set's rows or a responses file (JSON lines). No network, no Django."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .base import Completion, ProviderError, ResponsesInvalid, amount_or_none, count_or_none


class ReplayProvider:
    """Outputs recorded earlier, by row index (int keys) or row id (str keys); no network.

    A recorded value is the output text, or a mapping with `output` and optionally
    `latency_ms`, `cost_usd`, `input_tokens`, `output_tokens`. Without a recorded
    latency or cost, the Completion says None (checks on them are not run).
    """

    def __init__(self, responses: Mapping[int | str, Any] | Sequence[Any]):
        items = responses.items() if isinstance(responses, Mapping) else enumerate(responses)
        # int keys are row positions, anything else a row id (compared as text)
        self._recorded = {("index", k) if isinstance(k, int) else ("id", str(k)): v for k, v in items if v is not None}

    @classmethod
    def from_rows(cls, rows: Sequence[Mapping]) -> ReplayProvider:
        """The `response` (else `output`) field of each eval-set row, by row index."""
        recorded = {}
        for index, row in enumerate(rows):
            key = next((k for k in ("response", "output") if isinstance(row, Mapping) and k in row), None)
            if key:
                recorded[index] = row[key]
        return cls(recorded)

    @classmethod
    def from_jsonl(cls, text: str) -> ReplayProvider:
        """A responses file: one JSON object a line with `index` (0-based row) or `id` (the row's id), and `output`."""
        recorded: dict[int | str, Any] = {}
        problems = []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                problems.append(f"line {number}: not valid JSON ({exc})")
                continue
            if not isinstance(record, dict) or not isinstance(record.get("output"), str):
                problems.append(f"line {number}: needs an `output` text")
                continue
            if isinstance(record.get("id"), (str, int)) and not isinstance(record["id"], bool):
                key = str(record["id"])
            elif isinstance(record.get("index"), int) and not isinstance(record["index"], bool) and record["index"] >= 0:
                key = record["index"]
            else:
                problems.append(f"line {number}: needs an `id` (text) or an `index` (0-based row number)")
                continue
            if key in recorded:
                problems.append(f"line {number}: a second output for {'id' if isinstance(key, str) else 'index'} {key!r}")
                continue
            recorded[key] = record
        if problems:
            raise ResponsesInvalid("; ".join(problems[:20]) + (f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""))
        return cls(recorded)

    def complete(
        self, *, system: str, prompt: str, model: str, temperature: float, max_tokens: int | None, timeout: float,
        index: int | None = None, row_id: str | None = None,
    ) -> Completion:
        record = self._recorded.get(("id", str(row_id))) if row_id is not None else None
        if record is None and index is not None:
            record = self._recorded.get(("index", index))
        where = f"row {index}" + (f" (id {row_id!r})" if row_id is not None else "")
        if record is None:
            raise ProviderError(f"{where} has no recorded response (no `response` or `output`, no responses-file line)", kind="no_response")
        output = record.get("output", record.get("response")) if isinstance(record, Mapping) else record
        if not isinstance(output, str):
            raise ProviderError(f"the recorded response of {where} is {type(output).__name__}, not text", kind="bad_answer")
        extra = record if isinstance(record, Mapping) else {}
        return Completion(
            text=output, latency_ms=amount_or_none(extra.get("latency_ms")), input_tokens=count_or_none(extra.get("input_tokens")),
            output_tokens=count_or_none(extra.get("output_tokens")), cost_usd=amount_or_none(extra.get("cost_usd")), raw=record,
        )
