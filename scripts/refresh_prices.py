"""Refresh the shipped LLM price table: a dated, trimmed snapshot of LiteLLM's price map.

    python scripts/refresh_prices.py                 # pip download --no-deps litellm, read its bundled map
    python scripts/refresh_prices.py PATH.json       # a model_prices_and_context_window.json already on disk
    python scripts/refresh_prices.py PATH.whl        # a litellm wheel already on disk
    options: --date YYYY-MM-DD (default: today, UTC), --out DIR (default: monitoring/data)

Writes monitoring/data/litellm_prices_<date>.json: only the entries priced per token (both
input_cost_per_token and output_cost_per_token) and, in each, only the fields the control plane
reads (monitoring/pricing.py, SNAPSHOT_FIELDS), so the file stays small. The newest snapshot in
monitoring/data is what `import_prices --defaults` loads, in force from the date in its name;
older snapshots may be deleted (their prices stay in the database). Review the diff before
committing: these are list prices, not your contract's.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitoring.pricing import SNAPSHOT_FIELDS, snapshot_trim  # noqa: E402 (the path above first)

MAP_IN_WHEEL = "litellm/model_prices_and_context_window_backup.json"


def _map_from_wheel(wheel: Path) -> dict:
    with zipfile.ZipFile(wheel) as archive:
        return json.loads(archive.read(MAP_IN_WHEEL))


def _download_map() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", tmp, "litellm"], check=True)
        wheels = sorted(Path(tmp).glob("litellm-*.whl"))
        if not wheels:
            raise SystemExit("pip download found no litellm wheel")
        return _map_from_wheel(wheels[-1])


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "source", nargs="?", help="a LiteLLM price map (.json) or a litellm wheel (.whl); default: download the latest wheel"
    )
    parser.add_argument("--date", help="the snapshot's date, YYYY-MM-DD (default: today, UTC)")
    parser.add_argument("--out", default=str(ROOT / "monitoring" / "data"), help="directory to write the snapshot to")
    args = parser.parse_args(argv)
    day = date.fromisoformat(args.date) if args.date else datetime.now(UTC).date()
    if args.source is None:
        data = _download_map()
    elif args.source.endswith(".whl"):
        data = _map_from_wheel(Path(args.source))
    else:
        data = json.loads(Path(args.source).read_text())
    trimmed = snapshot_trim(data)
    out = Path(args.out) / f"litellm_prices_{day:%Y-%m-%d}.json"
    out.write_text(json.dumps(trimmed, indent=0, sort_keys=True, separators=(",", ":")) + "\n")
    print(f"{out}: {len(trimmed)} models priced per token (fields: {', '.join(SNAPSHOT_FIELDS)})")
    return out


if __name__ == "__main__":
    main()
