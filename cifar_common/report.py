"""Rebuild the results page and everything behind it from the recorded runs in reports/runs/ alone.

    python -m cifar_common.report                       # rebuild reports/ from reports/runs/
    python -m cifar_common.report --take-in runs/full   # first copy new finished runs into reports/runs/
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cifar_common.analysis import bands
from cifar_common.analysis.results import PAGE, build, take_in
from cifar_common.errors import exits_cleanly_on_user_error
from cifar_common.paths import REPORTS_DIR


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="parity_report", description=__doc__.splitlines()[0])
    parser.add_argument("--reports", type=Path, default=REPORTS_DIR,
                        help="the reports folder holding runs/ (default: the repository's reports/; "
                             "it exists only in a clone)")
    parser.add_argument("--take-in", type=Path, nargs="*", default=[], metavar="RUNS",
                        help="folders of run folders (e.g. runs/full) whose finished runs are copied in first")
    args = parser.parse_args(argv)
    taken = take_in([path for path in args.take_in if path.is_dir()], args.reports / "runs")
    for name in taken:
        print(f"recorded {name}")
    result = build(args.reports)
    print("\n".join(bands.markdown_table(result["groups"])))
    print(f"results page {args.reports / PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
