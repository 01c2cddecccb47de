"""Rewrite the generated regions of README.md and book/10_faq.md from results/ and benchmarks/results/.

    python scripts/render_docs.py            # rewrite
    python scripts/render_docs.py --check    # exit 1 and name the pages that disagree with the files
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from xdtutor.docs import update

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report pages that are out of date")
    args = parser.parse_args(argv)
    stale = update(ROOT, check=args.check)
    for path in stale:
        print(f"{'out of date' if args.check else 'rewrote'}: {path.relative_to(ROOT)}", file=sys.stderr)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
