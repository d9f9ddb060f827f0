"""A prompts folder like the ones teams keep in git (summarize, classify, config.yaml), written by the tests themselves."""

from pathlib import Path

import pytest

SUMMARIZE = """name: summarize
version: {n}
model: claude-sonnet-4
temperature: 0.3
max_tokens: 500
system: |
  You are a concise summarizer. Extract key points from the given text.
  Return exactly {bullets} bullet points, each under 20 words.
template: |
  Summarize the following text:

  {{text}}
eval_criteria:
- name: bullet_count
  type: format_check
  expected: {bullets}
- name: relevance
  type: llm_judge
  threshold: 0.8
"""

CLASSIFY = """name: classify
version: 1
model: gpt-4o-mini
temperature: 0
template: "Label the ticket as bug, question or praise: {ticket}"
eval_criteria:
- name: label_in_set
  type: custom_label_check
  allowed: [bug, question, praise]
"""


def brief_folder() -> dict[str, str]:
    return {
        "summarize/v1.yaml": SUMMARIZE.format(n=1, bullets=5),
        "summarize/v2.yaml": SUMMARIZE.format(n=2, bullets=3),
        "summarize/v3.yaml": SUMMARIZE.format(n=3, bullets=3).replace("temperature: 0.3", "temperature: 0.2"),
        "summarize/eval_set.jsonl": '{"input": {"text": "The meeting moved to Tuesday."}, "expected": "- moved to Tuesday"}\n'
        '{"input": {"text": "Sales grew 4% in Q3."}, "expected": "- sales up 4%"}\n',
        "classify/v1.yaml": CLASSIFY,
        "config.yaml": "classify:\n  prod: 1\nsummarize:\n  dev: 3\n  staging: 2\n  prod: 2\n",
    }


def write_folder(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def prompts_dir(tmp_path):
    return write_folder(tmp_path / "prompts", brief_folder())
