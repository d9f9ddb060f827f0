"""Importing a prompts folder (atomic, idempotent) and exporting it back."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from mlops_site.exceptions import Conflict, DomainError, TooLarge, ValidationFailed
from mlops_site.roles import EDITOR, require_role

from .. import prompt_files, prompt_templates
from ..models import AuditAction, EvalSet, PromotionRequest, PromotionStatus, Prompt, PromptDeployment, PromptVersion, WebhookEvent
from .audit import audit_record, get_or_create_locked
from .promotions import promotion_request_create
from .webhooks import webhooks_fire

MAX_ARCHIVE_MEMBERS = 20_000


@dataclass
class ImportResult:
    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    requested: list[dict] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


def _invalid(problems: list[prompt_files.Problem]) -> ValidationFailed:
    error = ValidationFailed(
        "Invalid prompt files: " + "; ".join(map(str, problems[:10])) + (f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""),
        fields={p.file: [f"line {p.line}: {p.message}" if p.line else p.message] for p in problems},
    )
    error.extra["problems"] = [{"file": p.file, "line": p.line, "message": p.message} for p in problems]
    return error


def prompts_import(*, files: Mapping[str, bytes | str], actor) -> ImportResult:
    """Sync a prompts folder: new version files and eval sets are created, unchanged ones are left alone.

    All or nothing: an invalid file is a 400 naming file and line; a changed file
    under an existing version number is a 409 naming it (versions are immutable).
    What config.yaml says an environment should run becomes a promotion request
    (moved at once only where no approval is needed), never a silent move.
    """
    require_role(actor, EDITOR, "Importing prompts")
    files = _strip_prompts_folder(files)
    files, already_known, known_eval_sets = _drop_known_files(files)
    try:
        folder = prompt_files.parse_folder(
            files, max_file_bytes=settings.MLOPS_PROMPT_MAX_FILE_BYTES, max_eval_set_bytes=settings.MLOPS_EVAL_SET_MAX_BYTES
        )
    except prompt_files.FolderInvalid as exc:
        raise _invalid(exc.problems) from None
    result = ImportResult(unchanged=already_known, ignored=list(folder.ignored))
    with transaction.atomic():
        prompts = {name: get_or_create_locked(Prompt, name=name, actor=actor) for name in sorted(set(folder.prompts) | set(folder.eval_sets))}
        changed: list[str] = []
        for name, prompt in prompts.items():
            if name in known_eval_sets:
                eval_set = EvalSet.objects.get(pk=known_eval_sets[name])
            else:
                eval_set = _import_eval_set(prompt, folder.eval_sets.get(name), actor, result)
            existing = {v.version: v for v in PromptVersion.objects.filter(prompt=prompt, version__in=list(folder.prompts.get(name, {})))}
            for number, spec in sorted(folder.prompts.get(name, {}).items()):
                if number in existing:
                    if existing[number].sha256 == spec.sha256:
                        result.unchanged.append(spec.path)
                    else:
                        changed.append(spec.path)
                    continue
                _create_version(prompt, spec, eval_set, actor)
                result.created.append(spec.path)
        if changed:
            raise Conflict(
                f"Changed under an existing version number (versions are immutable; add a new vN.yaml instead): {', '.join(changed)}",
                code="version_changed",
                extra={"files": changed},
            )
        if folder.config is not None:
            _apply_config(folder.config, actor, result)
    return result


def _drop_known_files(files: Mapping[str, bytes | str]) -> tuple[dict, list[str], dict[str, int]]:
    """Set aside version files and eval sets whose exact bytes are already registered.

    They were validated when first imported and are immutable since, so a
    re-import of an unchanged folder parses nothing but what changed. Returns
    (files still to parse, unchanged paths, {prompt: id of its known eval set}).
    """
    names = {p.split("/", 1)[0] for p in files if isinstance(p, str) and "/" in p}
    known_versions = {
        (n, v): sha for n, v, sha in PromptVersion.objects.filter(prompt__name__in=names).values_list("prompt__name", "version", "sha256")
    }
    known_eval_sets = {(n, sha): pk for n, sha, pk in EvalSet.objects.filter(prompt__name__in=names).values_list("prompt__name", "sha256", "pk")}
    if not known_versions and not known_eval_sets:
        return dict(files), [], {}
    remaining, unchanged, eval_set_ids = {}, [], {}
    for raw_path, body in files.items():
        path = prompt_files.normalise_path(raw_path)
        parts = path.split("/") if path else []
        if len(parts) == 2:
            try:
                text = body if isinstance(body, str) else body.decode("utf-8")
            except UnicodeDecodeError:
                text = None
            if text is not None:
                sha = prompt_files.sha256_text(text)
                match = prompt_files.VERSION_FILE_RE.fullmatch(parts[1])
                if match and known_versions.get((parts[0], int(match.group(1)))) == sha:
                    unchanged.append(path)
                    continue
                if parts[1] == prompt_files.EVAL_SET_FILE and (parts[0], sha) in known_eval_sets:
                    unchanged.append(path)
                    eval_set_ids[parts[0]] = known_eval_sets[(parts[0], sha)]
                    continue
        remaining[raw_path] = body
    return remaining, unchanged, eval_set_ids


def _import_eval_set(prompt: Prompt, spec: prompt_files.EvalSetSpec | None, actor, result: ImportResult) -> EvalSet | None:
    """The eval set new versions of `prompt` are evaluated with: the folder's (new or known), else the latest."""
    if spec is None:
        return EvalSet.objects.filter(prompt=prompt).order_by("-version").first()
    known = EvalSet.objects.filter(prompt=prompt, sha256=spec.sha256).first()
    if known is not None:
        result.unchanged.append(spec.path)
        return known
    last = EvalSet.objects.filter(prompt=prompt).order_by("-version").values_list("version", flat=True).first() or 0
    eval_set = EvalSet.objects.create(prompt=prompt, version=last + 1, sha256=spec.sha256, row_count=spec.rows, content=spec.source, created_by=actor)
    audit_record(
        actor=actor, action=AuditAction.EVAL_SET_IMPORTED, subject=f"prompt:{prompt.name}", reason=f"eval set v{eval_set.version}",
        extra={"eval_set_version": eval_set.version, "rows": spec.rows, "sha256": spec.sha256},
    )
    result.created.append(spec.path)
    return eval_set


def _create_version(prompt: Prompt, spec: prompt_files.PromptSpec, eval_set: EvalSet | None, actor) -> PromptVersion:
    data = spec.data
    version = PromptVersion.objects.create(
        prompt=prompt,
        version=spec.version,
        file_name=spec.path.rsplit("/", 1)[-1],
        llm_model=data["model"],
        temperature=data["temperature"],
        max_tokens=data["max_tokens"],
        system=data["system"],
        template=data["template"],
        placeholders=prompt_templates.template_placeholders(data["template"]),
        eval_criteria=data["eval_criteria"],
        description=data["description"],
        tags=data["tags"],
        metadata=data["metadata"],
        source=spec.source,
        sha256=spec.sha256,
        eval_set=eval_set,
        created_by=actor,
    )
    imported = audit_record(
        actor=actor, action=AuditAction.PROMPT_IMPORTED, subject=f"prompt:{prompt.name}", version=spec.version,
        reason=data["description"][:500], extra={"file": spec.path, "sha256": spec.sha256, "eval_set_version": eval_set.version if eval_set else None},
    )
    webhooks_fire(imported, WebhookEvent.VERSION_REGISTERED)
    return version


def _apply_config(config: dict[str, dict[str, int]], actor, result: ImportResult) -> None:
    versions = {
        (v.prompt.name, v.version): v
        for v in PromptVersion.objects.select_related("prompt").filter(prompt__name__in=list(config))
    }
    missing = [f"{name}.{env}: v{n}" for name, envs in config.items() for env, n in envs.items() if (name, n) not in versions]
    if missing:
        raise ValidationFailed(
            "config.yaml names versions that do not exist: " + ", ".join(missing), fields={prompt_files.CONFIG_FILE: [f"unknown version {m}" for m in missing]}
        )
    running = {(d.prompt.name, d.environment): d.version_id for d in PromptDeployment.objects.select_related("prompt").filter(prompt__name__in=list(config))}
    pending = set(
        PromotionRequest.objects.filter(prompt__name__in=list(config), status=PromotionStatus.PENDING).values_list(
            "prompt__name", "to_stage", "prompt_version_id"
        )
    )
    for name, envs in sorted(config.items()):
        for env in prompt_files.ENVIRONMENTS:
            if env not in envs:
                continue
            version = versions[(name, envs[env])]
            entry = {"prompt": name, "environment": env, "version": version.version}
            if running.get((name, env)) == version.pk:
                continue
            if (name, env, version.pk) in pending:
                result.requested.append({**entry, "status": "already pending"})
                continue
            try:
                promotion = promotion_request_create(version=version, to_stage=env, reason="config.yaml asks for this version", actor=actor)
            except Conflict as exc:
                if exc.code != "already_pending":
                    raise
                result.requested.append({**entry, "status": "already pending"})
                continue
            result.requested.append({**entry, "promotion_id": promotion.pk, "status": promotion.status})


# --- archives ---------------------------------------------------------------------------------------------


def archive_files(data: bytes, *, filename: str = "") -> dict[str, bytes]:
    """The files of a .tar.gz / .zip upload of a prompts folder.

    Only regular files are read; links and devices are refused; the total
    uncompressed size is capped (a zip bomb stops at the cap, not in memory), and
    so is the number of members, directories included.
    """
    limit = settings.MLOPS_PROMPT_ARCHIVE_MAX_BYTES
    files: dict[str, bytes] = {}
    total = members = 0

    too_large = TooLarge(f"The archive unpacks to more than {limit} bytes or {MAX_ARCHIVE_MEMBERS} files.")

    def count() -> None:
        # Every member counts, directories too: an archive of empty directories is no cheaper to walk.
        nonlocal members
        members += 1
        if members > MAX_ARCHIVE_MEMBERS:
            raise too_large

    def take(name: str, declared: int, read) -> None:
        # The declared size first, then what was really read (a header can lie; read() stops at limit + 1).
        nonlocal total
        if total + declared > limit:
            raise too_large
        body = read()
        total += len(body)
        if total > limit:
            raise too_large
        files[name] = body

    try:
        if zipfile.is_zipfile(io.BytesIO(data)):
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for info in archive.infolist():
                    count()
                    if info.is_dir():
                        continue
                    if (info.external_attr >> 16) & 0o170000 == 0o120000:
                        raise ValidationFailed(f"{info.filename}: links are not allowed in the archive.")
                    take(info.filename, info.file_size, lambda i=info: archive.open(i).read(limit + 1))
        else:
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as archive:
                for member in archive:
                    count()
                    if member.isdir():
                        continue
                    if not member.isfile():
                        raise ValidationFailed(f"{member.name}: only regular files are allowed in the archive (no links or devices).")
                    take(member.name, member.size, lambda m=member: archive.extractfile(m).read(limit + 1))
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise ValidationFailed(f"Not a readable .tar.gz or .zip archive{f' ({filename})' if filename else ''}: {exc}") from None
    # "./a" -> "a" only; "../a" stays as it is, and parse_folder refuses it.
    return {(n[2:] if n.startswith("./") else n): body for n, body in files.items()}


def _strip_prompts_folder(files: Mapping[str, bytes | str]) -> Mapping[str, bytes | str]:
    """A folder sent with its top `prompts/` directory means the same as its contents (JSON and archives alike)."""
    if files and all(isinstance(n, str) and n.startswith("prompts/") for n in files):
        return {n[len("prompts/"):]: body for n, body in files.items()}
    return files


# --- export -----------------------------------------------------------------------------------------------


def prompts_export(*, names: list[str] | None = None) -> dict[str, str]:
    """The folder layout again: every version file as imported, the latest eval set, config.yaml from what runs now."""
    prompts = Prompt.objects.all() if not names else Prompt.objects.filter(name__in=names)
    out: dict[str, str] = {}
    for version in PromptVersion.objects.filter(prompt__in=prompts).select_related("prompt").order_by("prompt__name", "version"):
        out[f"{version.prompt.name}/{version.file_name}"] = version.source
    latest: dict[int, EvalSet] = {}
    for eval_set in EvalSet.objects.filter(prompt__in=prompts).select_related("prompt").order_by("prompt_id", "version"):
        latest[eval_set.prompt_id] = eval_set
    for eval_set in latest.values():
        out[f"{eval_set.prompt.name}/{prompt_files.EVAL_SET_FILE}"] = eval_set.content
    config: dict[str, dict[str, int]] = {}
    for deployment in PromptDeployment.objects.filter(prompt__in=prompts).select_related("prompt", "version"):
        config.setdefault(deployment.prompt.name, {})[deployment.environment] = deployment.version.version
    if config:
        out[prompt_files.CONFIG_FILE] = prompt_files.config_text(config)
    return out


def import_error_summary(exc: DomainError) -> str:
    """One line per problem, for the command line."""
    problems = exc.extra.get("problems")
    if problems:
        return "\n".join(f"{p['file']}:{p['line']}: {p['message']}" if p["line"] else f"{p['file']}: {p['message']}" for p in problems)
    return exc.message
