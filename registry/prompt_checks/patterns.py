"""The regular expressions a prompt file brings (a `regex` criterion's `pattern`, a safety check's `deny` list).

They run on RE2 (google-re2), whose matching time is linear in the text: Python's `re` backtracks,
and a pattern such as `^(a+)+$` on forty a's and a `!` would hold a worker for ever. RE2 has no
backreferences and no lookarounds (no linear-time engine can have them); a pattern using them is
refused, at import and at run time, with the reason. Other differences from Python's `re`: `\\d`,
`\\w`, `\\s` and `\\b` are ASCII only (`\\pL`, `\\p{N}` match other scripts), and `$` without the m
flag matches only at the very end (not before a final newline).

The text is capped too (MAX_TEXT_CHARS): an output longer than that fails the check with the reason,
rather than being checked on a prefix, which would let a deny pattern past anything after the cap.
"""

from __future__ import annotations

import re
from functools import lru_cache

import re2

from .criteria import shorten
from .results import CheckError

MAX_TEXT_CHARS = 100_000
FLAGS = "imsx"

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # a refused pattern is reported to its author, not logged by RE2 to stderr
_BACKREFERENCE = re.compile(r"invalid escape sequence: \\[1-9]|invalid perl operator: \(\?P$")
_LOOKAROUND = re.compile(r"invalid perl operator: \(\?<?[=!]")


def _strip_verbose(pattern: str) -> str:
    """The x flag (RE2 has none): whitespace and #-comments dropped, except escaped or inside a [...] class."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            out.append(ch)
            # a ] right after [ or [^ is a literal, not the end of the class
            j = i + 1 + (pattern[i + 1 : i + 2] == "^")
            if pattern[j : j + 1] == "]":
                out.append(pattern[i + 1 : j + 1])
                i = j + 1
            else:
                i += 1
            continue
        elif ch.isspace():
            i += 1
            continue
        elif ch == "#":
            end = pattern.find("\n", i)
            i = len(pattern) if end < 0 else end + 1
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def compile_pattern(pattern: str, flags: str = ""):
    """`pattern` compiled by RE2 with Python-style flags (letters of imsx). Raises CheckError saying why it cannot run."""
    if not isinstance(flags, str) or set(flags) - set(FLAGS):
        raise CheckError(f"`flags` must be letters of {FLAGS!r}, not {flags!r}")
    return _compile(pattern, flags)


@lru_cache(maxsize=256)
def _compile(pattern: str, flags: str):
    source = _strip_verbose(pattern) if "x" in flags else pattern
    if not _encodes(source):
        raise CheckError(f"/{shorten(pattern)}/ is not a valid regular expression: it holds a lone surrogate (not text)")
    inline = "".join(sorted(set(flags) - {"x"}))
    try:
        return re2.compile(f"(?{inline}){source}" if inline else source, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        if _BACKREFERENCE.search(reason) and ("(?P=" in pattern or "invalid escape" in reason):
            uses = "a backreference (\\1, (?P=name))"
        elif _LOOKAROUND.search(reason):
            uses = "a lookahead or lookbehind ((?=...), (?!...), (?<=...), (?<!...))"
        else:
            raise CheckError(f"/{shorten(pattern)}/ is not a valid regular expression: {reason}") from None
        raise CheckError(
            f"/{shorten(pattern)}/ uses {uses}, which RE2 lacks (patterns run on RE2 so that matching takes linear time)"
        ) from None


def _encodes(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def matchable(text: str) -> str:
    """`text` as RE2 can read it (UTF-8): a lone surrogate (JSON's "\\ud800" decodes to one) becomes "?", so every
    other character keeps its offset."""
    return text if text.isascii() or _encodes(text) else text.encode("utf-8", "replace").decode("utf-8")


def check_text_length(text: str) -> str | None:
    """The reason a regex check fails on `text` because of its length, or None when it fits."""
    if len(text) > MAX_TEXT_CHARS:
        return f"the output is {len(text):,} characters; regular expressions check at most {MAX_TEXT_CHARS:,}"
    return None
