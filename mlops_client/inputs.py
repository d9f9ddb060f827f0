"""Local input, checked before any request: JSON objects, files to upload, prompts folders, version numbers."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from .client import UsageError


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise _DuplicateKey(f"duplicate key {key!r}")
        seen[key] = value
    return seen


def _non_finite(value: Any, path: str) -> list[str]:
    if isinstance(value, float) and not math.isfinite(value):
        return [path or "(top level)"]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _non_finite(v, f"{path}.{k}" if path else k)]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _non_finite(v, f"{path}[{i}]")]
    return []


def load_json_object(option: str, value: str) -> dict:
    """A JSON object from a file path, `-` (stdin) or inline text starting with `{`.

    Refused here, before any request: unreadable files, invalid JSON, duplicate
    keys, and NaN / Infinity (which Python's json module would accept, and
    numbers too large for a float, which it would turn into Infinity).
    """
    if value == "-":
        source, text = f"{option} (stdin)", sys.stdin.read()
    elif value.lstrip().startswith("{"):
        source, text = f"{option} (inline JSON)", value
    else:
        source = f"{option} {value}"
        try:
            text = Path(value).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise UsageError(f"{option}: no such file: {value}")
        except UnicodeDecodeError:
            raise UsageError(f"{source}: not UTF-8 text.")
        except OSError as exc:
            raise UsageError(f"{option}: cannot read {value}: {exc.strerror or exc}")
    try:
        # NaN / Infinity parse to floats here so the check below can name their keys.
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=float)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{source}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}.")
    except _DuplicateKey as exc:
        raise UsageError(f"{source}: invalid JSON: {exc}.")
    if not isinstance(data, dict):
        raise UsageError(f"{source}: must be a JSON object ({{...}}), not {type(data).__name__}.")
    bad = _non_finite(data, "")
    if bad:
        raise UsageError(f"{source}: numbers must be finite, NaN and Infinity are not allowed: {', '.join(bad)}.")
    return data


def existing_file(option: str, value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise UsageError(f"{option}: no such file: {value}" if not path.exists() else f"{option}: not a regular file: {value}")
    return path


def read_folder(value: str) -> dict[str, bytes]:
    """Every regular file under the folder `value`, by its path relative to it with `/`.

    Hidden files and folders (`.git`, `.DS_Store`) are skipped; a symbolic link
    or any other special file below the folder is refused (exit 2) rather than
    followed: what is imported is exactly what is in the folder.
    """
    root = Path(value)
    if not root.is_dir():
        raise UsageError(f"{value}: no such folder." if not root.exists() else f"{value}: not a folder.")
    files: dict[str, bytes] = {}

    def walk(folder: str, prefix: str) -> None:
        try:
            with os.scandir(folder) as found:
                entries = sorted(found, key=lambda e: e.name)
        except OSError as exc:
            raise UsageError(f"cannot read the folder {folder}: {exc.strerror or exc}.")
        for entry in entries:
            if entry.name.startswith("."):
                continue
            relative, shown = prefix + entry.name, os.path.join(value, prefix + entry.name)
            try:
                relative.encode("utf-8")
            except UnicodeEncodeError:
                raise UsageError(f"{shown!r}: the file name is not UTF-8.")
            if entry.is_symlink():
                raise UsageError(f"{shown} is a symbolic link; links are not followed, copy the file into the folder instead.")
            if entry.is_dir(follow_symlinks=False):
                walk(entry.path, relative + "/")
            elif entry.is_file(follow_symlinks=False):
                try:
                    files[relative] = Path(entry.path).read_bytes()
                except OSError as exc:
                    raise UsageError(f"cannot read {shown}: {exc.strerror or exc}.")
            else:
                raise UsageError(f"{shown} is not a regular file (a socket, pipe or device).")

    walk(str(root), "")
    if not files:
        raise UsageError(f"{value}: no files to import (hidden files and folders are skipped).")
    return files


def version_arg(value: str) -> str:
    """argparse type of `--version`: a number from 1, or `latest`."""
    if value == "latest" or (value.isascii() and value.isdigit() and int(value) >= 1):
        return value
    raise argparse.ArgumentTypeError(f"expected a version number or 'latest', got {value!r}")


def add_canary_arguments(parser: argparse.ArgumentParser, stage: str) -> None:
    """`--canary [--policy NAME]` of the promote commands."""
    parser.add_argument("--canary", action="store_true", help=f"roll out in stages once approved (to {stage} only) instead of moving at once")
    parser.add_argument("--policy", metavar="NAME", help="with --canary: the rollout policy (default: default)")


def canary_fields(args: argparse.Namespace) -> dict:
    """`--canary [--policy NAME]` as the promotion request's strategy and policy; --policy alone is a usage error."""
    if args.policy and not args.canary:
        raise UsageError("--policy goes with --canary.")
    return {"strategy": "canary", "policy": args.policy or ""} if args.canary else {}
