"""A prompt evaluation run: the version over its eval set through a provider, checked row by row.

The provider is `replay` (the responses recorded in the eval set, or typed in with the request: such a
run is shown but never counts for a gate) or `openai` (any OpenAI-compatible API, MLOPS_LLM_BASE_URL / MLOPS_LLM_API_KEY / MLOPS_LLM_MODEL).
llm_judge criteria use a judge only when MLOPS_JUDGE_MODEL is set; otherwise they are "not run",
and a gate on them fails as never run. The built-in safety check (PII) always runs.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from django.conf import settings
from django.utils.module_loading import import_string

from .. import prompt_checks, providers, selectors
from ..models import Evaluation, EvaluationRow, EvidenceOrigin
from ..prompt_templates import RenderError, render


def _rows(evaluation: Evaluation) -> list[dict]:
    rows = []
    for number, line in enumerate(selectors.eval_set_lines(eval_set=evaluation.prompt_version.eval_set), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise providers.ResponsesInvalid(f"eval set line {number} is not JSON: {exc}") from None
    return rows


def _typed_responses(options: dict):
    """The responses typed in with the request (a JSON-lines text, or outputs by row), or None: replay the eval set's."""
    responses = options.get("responses")
    return responses if isinstance(responses, str) or responses else None


def prompt_run_origin(options: dict) -> str:
    """How a prompt run with these options gets its outputs: the provider, the eval set's recorded outputs, or typed-in ones."""
    if options.get("provider", "replay") != "replay":
        return EvidenceOrigin.PROVIDER_RUN
    return EvidenceOrigin.TYPED_REPLAY if _typed_responses(options) is not None else EvidenceOrigin.RECORDED_REPLAY


def _provider(evaluation: Evaluation, rows: list[dict]) -> providers.Provider:
    options = evaluation.options
    if options.get("provider", "replay") == "replay":
        responses = _typed_responses(options)
        if isinstance(responses, str):
            return providers.ReplayProvider.from_jsonl(responses)
        if isinstance(responses, dict):  # JSON keys are strings: "3" means row index 3, anything else a row id
            responses = {int(k) if str(k).isdigit() else k: v for k, v in responses.items()}
        return providers.ReplayProvider(responses) if responses is not None else providers.ReplayProvider.from_rows(rows)
    return providers.OpenAICompatibleProvider(settings.MLOPS_LLM_BASE_URL, settings.MLOPS_LLM_API_KEY, model_override=settings.MLOPS_LLM_MODEL or None,
                                              pricing=_pricing())


def _pricing():
    """The price of one LLM call, (model, input tokens, output tokens) -> USD or None, from the price table the
    monitoring app keeps: settings.MLOPS_LLM_PRICING names a factory (registry imports no higher app; settings wire it)."""
    return import_string(settings.MLOPS_LLM_PRICING)() if getattr(settings, "MLOPS_LLM_PRICING", "") else None


def _judge() -> providers.LLMJudge | None:
    if not (settings.MLOPS_JUDGE_MODEL and settings.MLOPS_LLM_BASE_URL):
        return None
    return providers.LLMJudge(providers.OpenAICompatibleProvider(settings.MLOPS_LLM_BASE_URL, settings.MLOPS_LLM_API_KEY, pricing=_pricing()),
                              settings.MLOPS_JUDGE_MODEL)


def _cost(results, judge: providers.LLMJudge | None) -> dict:
    """The evaluation's cost: its calls to the prompt's LLM (the rows' costs) and, apart, the judge's calls, both priced with
    the same table. A part is None when some call in it has no cost; the total only when both parts are known."""
    rows = None if any(r.cost_usd is None for r in results if r.output is not None) else sum(r.cost_usd or 0.0 for r in results)
    judge_usd = 0.0 if judge is None or not judge.calls else judge.cost_usd
    return {
        "rows_usd": rows, "judge_usd": judge_usd, "total_usd": None if rows is None or judge_usd is None else rows + judge_usd,
        "judge_model": judge.model if judge is not None else None, "judge_calls": judge.calls if judge is not None else 0,
        "judge_input_tokens": judge.input_tokens if judge is not None else 0, "judge_output_tokens": judge.output_tokens if judge is not None else 0,
    }


def run_prompt_evaluation(evaluation: Evaluation) -> tuple[dict, dict, list[EvaluationRow]]:
    """The gate figures, the per-criterion summary and one EvaluationRow per eval-set row."""
    version = evaluation.prompt_version
    rows = _rows(evaluation)
    if not rows:
        raise providers.ResponsesInvalid("The eval set has no rows.")

    def rendered(variables) -> tuple[str, str]:
        try:
            return version.system, render(version.template, variables)  # the system text is sent as written (as the render API does)
        except RenderError as exc:
            raise ValueError(str(exc)) from None

    criteria = prompt_checks.with_default_safety(version.eval_criteria)
    judge = _judge()
    results = providers.run_eval(
        rows=rows, render=rendered, criteria=criteria, provider=_provider(evaluation, rows), judge=judge, model=version.llm_model,
        temperature=version.temperature, max_tokens=version.max_tokens, timeout=min(float(evaluation.options.get("timeout_s", settings.MLOPS_LLM_TIMEOUT_S)), settings.MLOPS_LLM_TIMEOUT_S),
    )
    summaries = prompt_checks.summarize(results)
    figures = {name: value for name, value in prompt_checks.gate_figures(summaries).items() if value is not None}
    details = {
        "provider": evaluation.options.get("provider", "replay"), "judge": settings.MLOPS_JUDGE_MODEL or None, "rows": len(rows),
        "criteria": [asdict(s) for s in summaries.values()],
        "not_run": sorted(name for name, value in prompt_checks.gate_figures(summaries).items() if value is None),
        "rows_with_errors": sum(1 for r in results if r.error),
        "cost": _cost(results, judge),
    }
    stored = [
        EvaluationRow(
            evaluation=evaluation, index=r.index, input=r.input if isinstance(r.input, dict) else {"value": r.input},
            output=r.output or "", expected=r.expected if isinstance(r.expected, str) else json.dumps(r.expected),
            checks=[asdict(c) for c in r.checks], latency_ms=r.latency_ms, cost_usd=r.cost_usd, error=r.error,
        )
        for r in results
    ]
    return figures, details, stored
