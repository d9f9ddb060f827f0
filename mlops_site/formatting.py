"""The one way a figure is written for people, on every page and in every message."""


def number_text(value) -> str:
    """At most 4 significant digits, no trailing zeros, `—` for a missing figure; text as it is.

    12345.0 reads as 12345, not 1.234e+04 (counts, latencies, costs in cents).
    """
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return str(value)
    text = f"{value:.4g}"
    return f"{value:.4f}".rstrip("0").rstrip(".") if "e" in text and abs(value) >= 1 else text
