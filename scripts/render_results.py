"""Rewrite the tables of results/<name>.md from results/<name>.json (hand-written notes kept).

After a change to how xdtutor.report writes a results table, re-render the committed files instead of
editing them by hand; notes under the tables are carried over, marked for re-reading when the
numbers above them changed (xdtutor.report.keep_notes).

    python scripts/render_results.py            # rewrite
    python scripts/render_results.py --check    # exit 1 and name the files that are out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from xdtutor.report import refresh_markdown
from xdtutor.results import Results
from xdtutor.utils import atomic_write

ROOT = Path(__file__).resolve().parents[1]


def results_files(folder: Path) -> list[Path]:
    """The experiment results in ``folder`` (other JSON there — benchmarks, tuning — is not)."""
    found = []
    for path in sorted(folder.glob("*.json")):
        d = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(d, dict) and {"name", "methods", "runs"} <= set(d):
            found.append(path)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report the files that are out of date")
    parser.add_argument("--folder", type=Path, default=ROOT / "results")
    args = parser.parse_args(argv)
    stale = []
    for path in results_files(args.folder):
        md = path.with_suffix(".md")
        text = refresh_markdown(Results.load(path), md)
        if md.exists() and md.read_text(encoding="utf-8") == text:
            continue
        stale.append(md)
        if not args.check:
            with atomic_write(md, "w") as fh:
                fh.write(text)
    for md in stale:
        print(f"{'out of date' if args.check else 'rewrote'}: {md.name}", file=sys.stderr)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
