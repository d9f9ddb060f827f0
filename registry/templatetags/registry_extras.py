from django import template

register = template.Library()


@register.filter
def pairs(mapping) -> list[tuple]:
    """`{% for k, v in d|pairs %}`: a dict's items, sorted by key.

    Never `d.items` in a template: Django looks up the KEY "items" first, so a
    metric named "items" would break the page.
    """
    return sorted(mapping.items()) if isinstance(mapping, dict) else []
