import functools

from django import template
from django.urls import reverse

from mlops_site.formatting import number_text

register = template.Library()


@register.filter
def pairs(mapping) -> list[tuple]:
    """`{% for k, v in d|pairs %}`: a dict's items, sorted by key.

    Never `d.items` in a template: Django looks up the KEY "items" first, so a
    metric named "items" would break the page.
    """
    return sorted(mapping.items()) if isinstance(mapping, dict) else []


@functools.cache
def _models_prefix() -> str:
    return reverse("registry:model-list")


@register.filter
def model_url(name: str) -> str:
    """Same as {% url 'registry:model-detail' name %}, at a fraction of the cost in long tables.

    Model names are restricted to URL-safe characters ([A-Za-z0-9._-]), so no quoting is needed.
    """
    return f"{_models_prefix()}{name}/"


@register.filter
def version_url(name: str, version: int) -> str:
    """Same as {% url 'registry:version-detail' name version %}."""
    return f"{_models_prefix()}{name}/versions/{version}/"


@register.filter
def metric_pairs(mapping) -> list[tuple[str, str]]:
    """A metrics dict's items sorted by key, each value written by number_text."""
    return [(k, number_text(v)) for k, v in pairs(mapping)]


@functools.cache
def _prompts_prefix() -> str:
    return reverse("registry:prompt-list")


@register.filter
def prompt_url(name: str) -> str:
    """Same as {% url 'registry:prompt-detail' name %}."""
    return f"{_prompts_prefix()}{name}/"


@register.filter
def prompt_version_url(name: str, version: int) -> str:
    """Same as {% url 'registry:prompt-version-detail' name version %}."""
    return f"{_prompts_prefix()}{name}/versions/{version}/"


@register.filter
def target_url(promotion) -> str:
    """The page of the version a promotion request moves (model or prompt)."""
    if promotion.kind == "model":
        return version_url(promotion.subject_name, promotion.target.version)
    return prompt_version_url(promotion.subject_name, promotion.target.version)


@register.filter
def four_eyes(promotion, user) -> str:
    """Why `user` may not approve `promotion` ("" when they may): its requester or its version's author."""
    from registry.services import four_eyes_refusal

    return four_eyes_refusal(promotion, user)


def _shown(value) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, float):
        return number_text(value)
    if isinstance(value, list):
        return ", ".join(_shown(v) for v in value) or "—"
    return str(value)


@register.filter
def audit_changes(extra) -> list[tuple[str, str, str]]:
    """(field, before, after) of each field an audit event's `extra.before` / `extra.after` differ in, in words:
    what a price, budget, silence, reference or rule change changed. A field only after (something created) has "—" before."""
    if not isinstance(extra, dict):
        return []
    before, after = extra.get("before"), extra.get("after")
    before = before if isinstance(before, dict) else {}
    after = after if isinstance(after, dict) else {}
    return [
        (key, _shown(before.get(key)), _shown(after.get(key)))
        for key in sorted(set(before) | set(after), key=lambda k: (k not in after, k))
        if before.get(key) != after.get(key)
    ]
