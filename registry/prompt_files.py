"""Reading a prompts folder as teams keep it in git, with the file and line of every problem.

    prompts/
      summarize/v1.yaml  v2.yaml  eval_set.jsonl
      classify/v1.yaml
      config.yaml            # which version each environment runs

Nothing here touches the database: `parse_folder` turns file texts into frozen
specs or raises FolderInvalid listing every problem found. The schema of a
version file is a DRF serializer; YAML is composed (not constructed) first, so
each key keeps its line, duplicate keys are caught, and aliases are refused
(a YAML bomb expands through aliases; prompts never need them).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from rest_framework import serializers

from mlops_site.parsers import too_deep

from .prompt_checks import CheckError, gate_name_problem
from .prompt_checks.patterns import compile_pattern
from .prompt_templates import TemplateInvalid, template_placeholders

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
VERSION_FILE_RE = re.compile(r"v([1-9][0-9]{0,8})\.ya?ml")
ENVIRONMENTS = ("dev", "staging", "prod")
EVAL_SET_FILE = "eval_set.jsonl"
CONFIG_FILE = "config.yaml"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Problem:
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


class FolderInvalid(ValueError):
    """One or more files are invalid; `problems` lists each with file and line."""

    def __init__(self, problems: list[Problem]):
        super().__init__("; ".join(map(str, problems[:20])) + (f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""))
        self.problems = problems


@dataclass(frozen=True)
class PromptSpec:
    name: str
    version: int
    path: str
    source: str  # the file's text, exactly as imported: export writes it back byte for byte
    sha256: str
    data: dict  # the validated fields


@dataclass(frozen=True)
class EvalSetSpec:
    prompt: str
    path: str
    source: str
    sha256: str
    rows: int


@dataclass(frozen=True)
class Folder:
    prompts: dict[str, dict[int, PromptSpec]] = field(default_factory=dict)
    eval_sets: dict[str, EvalSetSpec] = field(default_factory=dict)
    config: dict[str, dict[str, int]] | None = None
    config_source: str | None = None
    ignored: tuple[str, ...] = ()


# --- YAML with lines --------------------------------------------------------------------------


class _YamlProblem(ValueError):
    def __init__(self, line: int | None, message: str):
        super().__init__(message)
        self.line, self.message = line, message


def _construct(node, lines: dict[tuple, int], path: tuple, seen: set[int]):
    if id(node) in seen:
        raise _YamlProblem(node.start_mark.line + 1, "YAML aliases (*name) are not allowed")
    seen.add(id(node))
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise _YamlProblem(key_node.start_mark.line + 1, "mapping keys must be plain scalars")
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _YamlProblem(key_node.start_mark.line + 1, "YAML merge keys (<<) are not allowed")
            key = key_node.value
            if key in out:
                raise _YamlProblem(key_node.start_mark.line + 1, f"duplicate key {key!r}")
            out[key] = _construct(value_node, lines, (*path, key), seen)
            lines[(*path, key)] = key_node.start_mark.line + 1
            if isinstance(value_node, yaml.ScalarNode) and value_node.style in ("|", ">"):
                # A block scalar's text starts on the line after its indicator.
                lines[(*path, key, "@text")] = value_node.start_mark.line + 2
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(item, lines, (*path, i), seen) for i, item in enumerate(node.value)]
    try:
        return yaml.constructor.SafeConstructor().construct_object(node)
    except yaml.YAMLError as exc:
        raise _YamlProblem(node.start_mark.line + 1, f"bad value: {exc}") from None


def _yaml_children(node):
    if isinstance(node, yaml.MappingNode):
        return [value for _, value in node.value]
    if isinstance(node, yaml.SequenceNode):
        return node.value
    return None


def load_yaml(text: str) -> tuple[Any, dict[tuple, int]]:
    """Parse one YAML document; returns (value, line of each key path). Raises _YamlProblem."""
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise _YamlProblem(mark.line + 1 if mark else None, f"invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise _YamlProblem(None, f"invalid YAML: {exc}") from None
    if node is None:
        return None, {}
    # Composed nodes nest as deeply as the text; _construct recurses, so the depth is checked first.
    if problem := too_deep(node, _yaml_children):
        raise _YamlProblem(node.start_mark.line + 1, problem)
    lines: dict[tuple, int] = {}
    return _construct(node, lines, (), set()), lines


# --- the schema of a version file -----------------------------------------------------------------


class EvalCriterionSchema(serializers.Serializer):
    """`{name, type, expected | threshold, ...}`. Unknown types and extra keys are kept, not dropped; a gate figure's
    name (format_valid, relevance, safety) is only for a criterion of the family that produces that figure."""

    name = serializers.CharField(max_length=200)
    type = serializers.CharField(max_length=100)

    def to_internal_value(self, data):
        if not isinstance(data, dict):
            raise serializers.ValidationError("each criterion must be a mapping with name and type")
        validated = super().to_internal_value(data)
        if "threshold" in data and (isinstance(data["threshold"], bool) or not isinstance(data["threshold"], (int, float))):
            raise serializers.ValidationError({"threshold": ["must be a number"]})
        if errors := _pattern_errors(data):
            raise serializers.ValidationError(errors)
        if problem := gate_name_problem(validated["name"], validated["type"]):
            raise serializers.ValidationError({"name": [problem]})
        return {**data, **validated}


def _pattern_error(pattern: str, flags: str = "") -> list[str] | None:
    try:
        compile_pattern(pattern, flags)
    except CheckError as exc:
        return [str(exc)]
    return None


def _pattern_errors(criterion: dict) -> dict:
    """The regexes a criterion brings, compiled now as the run will (RE2): one that cannot run is refused here, by key."""
    errors: dict = {}
    if criterion.get("type") == "regex" and isinstance(pattern := criterion.get("pattern"), str):
        flags = criterion.get("flags", "")
        if error := _pattern_error("", flags):
            errors["flags"] = error
        elif error := _pattern_error(pattern, flags):
            errors["pattern"] = error
    if criterion.get("type") == "safety" and isinstance(deny := criterion.get("deny"), list):
        if bad := {i: error for i, pattern in enumerate(deny) if isinstance(pattern, str) and (error := _pattern_error(pattern))}:
            errors["deny"] = bad
    return errors


class PromptVersionSchema(serializers.Serializer):
    name = serializers.RegexField(NAME_RE.pattern, max_length=128)
    version = serializers.IntegerField(min_value=1, max_value=999_999_999)
    model = serializers.CharField(max_length=200)
    temperature = serializers.FloatField(min_value=0, max_value=2, required=False, default=1.0)
    max_tokens = serializers.IntegerField(min_value=1, max_value=10_000_000, required=False, allow_null=True, default=None)
    system = serializers.CharField(allow_blank=True, trim_whitespace=False, required=False, default="")
    template = serializers.CharField(trim_whitespace=False)
    eval_criteria = EvalCriterionSchema(many=True, required=False, default=list)
    description = serializers.CharField(allow_blank=True, required=False, default="")
    tags = serializers.ListField(child=serializers.CharField(max_length=100), required=False, default=list)
    metadata = serializers.DictField(required=False, default=dict)

    def validate_template(self, value):
        try:
            template_placeholders(value)
        except TemplateInvalid as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value

    def validate(self, attrs):
        unknown = sorted(set(self.initial_data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({k: ["unknown field (allowed: " + ", ".join(self.fields) + ")"] for k in unknown})
        for value in ("temperature", "max_tokens"):
            raw = self.initial_data.get(value)
            if isinstance(raw, (bool, str)):
                raise serializers.ValidationError({value: ["must be a number, not " + type(raw).__name__]})
        return attrs


def _schema_problems(path: str, errors, lines: dict[tuple, int], prefix: tuple = ()) -> list[Problem]:
    problems = []
    if isinstance(errors, dict):
        for key, value in errors.items():
            sub = prefix if key == "non_field_errors" else (*prefix, key)
            problems += _schema_problems(path, value, lines, sub)
    elif isinstance(errors, list) and errors and all(isinstance(e, (dict, list)) for e in errors):
        for i, value in enumerate(errors):
            if value:
                problems += _schema_problems(path, value, lines, (*prefix, i))
    else:
        line = next((lines[p] for p in (prefix, prefix[:-1], prefix[:-2], ()) if p in lines), None)
        label = ".".join(map(str, prefix)) or "file"
        problems += [Problem(path, line, f"{label}: {message}") for message in (errors if isinstance(errors, list) else [errors])]
    return problems


# --- files ------------------------------------------------------------------------------------------


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _decode(path: str, raw: bytes | str, limit: int, problems: list[Problem]) -> str | None:
    size = len(raw.encode("utf-8")) if isinstance(raw, str) else len(raw)
    if size > limit:
        problems.append(Problem(path, None, f"file is {size} bytes; the limit is {limit}"))
        return None
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problems.append(Problem(path, None, f"not UTF-8 text ({exc.reason} at byte {exc.start})"))
        return None


def normalise_path(path: str) -> str | None:
    """The path relative to the prompts folder, or None if it escapes it or is absolute."""
    if not isinstance(path, str) or not path or "\\" in path or "\x00" in path or path.startswith("/"):
        return None
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts) or not parts:
        return None
    return "/".join(parts)


def _parse_version(path: str, text: str, name: str, number: int, problems: list[Problem]) -> PromptSpec | None:
    try:
        data, lines = load_yaml(text)
    except _YamlProblem as exc:
        problems.append(Problem(path, exc.line, exc.message))
        return None
    if not isinstance(data, dict):
        problems.append(Problem(path, 1, "a version file must be a YAML mapping (name, version, model, template, ...)"))
        return None
    schema = PromptVersionSchema(data=data)
    if not schema.is_valid():
        errors = dict(schema.errors)
        if "template" in errors and isinstance(data.get("template"), str) and ("template", "@text") in lines:
            # Point at the template line that holds the bad placeholder, not at the key.
            for offset, text_line in enumerate(data["template"].splitlines()):
                try:
                    template_placeholders(text_line)
                except TemplateInvalid:
                    problems.extend(Problem(path, lines[("template", "@text")] + offset, f"template: {m}") for m in errors.pop("template"))
                    break
        problems.extend(_schema_problems(path, errors, lines))
        return None
    valid = dict(schema.validated_data)
    if valid["name"] != name:
        problems.append(Problem(path, lines.get(("name",)), f"name {valid['name']!r} does not match the folder {name!r}"))
    if valid["version"] != number:
        problems.append(Problem(path, lines.get(("version",)), f"version {valid['version']} does not match the file name v{number}"))
    valid["eval_criteria"] = [dict(c) for c in valid["eval_criteria"]]
    return PromptSpec(name=name, version=number, path=path, source=text, sha256=sha256_text(text), data=valid)


def _parse_eval_set(path: str, text: str, name: str, problems: list[Problem]) -> EvalSetSpec | None:
    rows = 0
    before = len(problems)
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError) as exc:
            problems.append(Problem(path, number, f"not valid JSON: {'nested too deeply' if isinstance(exc, RecursionError) else exc}"))
            continue
        if problem := too_deep(row):
            problems.append(Problem(path, number, problem))
            continue
        if not isinstance(row, dict):
            problems.append(Problem(path, number, "each line must be a JSON object"))
            continue
        rows += 1
        if len(problems) - before >= 50:
            problems.append(Problem(path, None, "more errors not shown"))
            break
    if len(problems) > before:
        return None
    return EvalSetSpec(prompt=name, path=path, source=text, sha256=sha256_text(text), rows=rows)


def parse_config(text: str, problems: list[Problem]) -> dict[str, dict[str, int]] | None:
    """`config.yaml`: `{prompt: {dev|staging|prod: version}}`."""
    try:
        data, lines = load_yaml(text)
    except _YamlProblem as exc:
        problems.append(Problem(CONFIG_FILE, exc.line, exc.message))
        return None
    if data is None:
        return {}
    if not isinstance(data, dict):
        problems.append(Problem(CONFIG_FILE, 1, "config.yaml must map prompt names to {environment: version}"))
        return None
    config: dict[str, dict[str, int]] = {}
    for name, envs in data.items():
        line = lines.get((name,))
        if not isinstance(name, str) or not NAME_RE.fullmatch(name):
            problems.append(Problem(CONFIG_FILE, line, f"{name!r} is not a valid prompt name"))
            continue
        if not isinstance(envs, dict):
            problems.append(Problem(CONFIG_FILE, line, f"{name}: expected a mapping of environment to version"))
            continue
        config[name] = {}
        for env, version in envs.items():
            env_line = lines.get((name, env), line)
            if env not in ENVIRONMENTS:
                problems.append(Problem(CONFIG_FILE, env_line, f"{name}: unknown environment {env!r} (use {', '.join(ENVIRONMENTS)})"))
            elif isinstance(version, bool) or not isinstance(version, int) or version < 1:
                problems.append(Problem(CONFIG_FILE, env_line, f"{name}.{env}: version must be a positive whole number"))
            else:
                config[name][env] = version
    return config


def parse_folder(files: Mapping[str, bytes | str], *, max_file_bytes: int, max_eval_set_bytes: int) -> Folder:
    """Validate every file of a prompts folder; raise FolderInvalid with all problems, or return the specs."""
    problems: list[Problem] = []
    prompts: dict[str, dict[int, PromptSpec]] = {}
    eval_sets: dict[str, EvalSetSpec] = {}
    ignored: list[str] = []
    config = config_source = None
    for raw_path in sorted(files, key=str):
        path = normalise_path(raw_path)
        if path is None:
            problems.append(Problem(str(raw_path), None, "path escapes the prompts folder or is absolute"))
            continue
        parts = path.split("/")
        if any(p.startswith(".") for p in parts):
            ignored.append(path)
            continue
        if parts == [CONFIG_FILE]:
            config_source = _decode(path, files[raw_path], max_file_bytes, problems)
            if config_source is not None:
                config = parse_config(config_source, problems)
            continue
        if len(parts) != 2:
            ignored.append(path)
            continue
        name, filename = parts
        match = VERSION_FILE_RE.fullmatch(filename)
        if not match and filename != EVAL_SET_FILE:
            ignored.append(path)
            continue
        if not NAME_RE.fullmatch(name):
            problems.append(Problem(path, None, f"folder name {name!r} is not a valid prompt name"))
            continue
        limit = max_eval_set_bytes if filename == EVAL_SET_FILE else max_file_bytes
        text = _decode(path, files[raw_path], limit, problems)
        if text is None:
            continue
        if filename == EVAL_SET_FILE:
            spec = _parse_eval_set(path, text, name, problems)
            if spec:
                eval_sets[name] = spec
            continue
        number = int(match.group(1))
        if number in prompts.get(name, {}):
            problems.append(Problem(path, None, f"version {number} of {name} is given twice ({prompts[name][number].path})"))
            continue
        spec = _parse_version(path, text, name, number, problems)
        if spec:
            prompts.setdefault(name, {})[number] = spec
    if problems:
        raise FolderInvalid(problems)
    return Folder(prompts=prompts, eval_sets=eval_sets, config=config, config_source=config_source, ignored=tuple(ignored))


def config_text(config: Mapping[str, Mapping[str, int]]) -> str:
    """The canonical config.yaml: prompts sorted by name, environments in dev, staging, prod order."""
    out = []
    for name in sorted(config):
        envs = config[name]
        if not envs:
            continue
        out.append(f"{name}:")
        out += [f"  {env}: {envs[env]}" for env in ENVIRONMENTS if env in envs]
    return "\n".join(out) + ("\n" if out else "")


def read_folder(root) -> dict[str, bytes]:
    """Every regular file under `root`, by its path relative to it (links are not followed)."""
    root = Path(root)
    if not root.is_dir():
        raise FolderInvalid([Problem(str(root), None, "not a folder")])
    files: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink():
            raise FolderInvalid([Problem(str(path.relative_to(root)), None, "links are not followed; copy the file instead")])
        if path.is_file():
            files[path.relative_to(root).as_posix()] = path.read_bytes()
    return files
