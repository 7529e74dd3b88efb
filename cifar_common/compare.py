"""Compare two finished runs (Keras or Lightning) on the same test set.

    python -m cifar_common.compare RUN_A RUN_B [--out DIR]

Writes comparison.json, comparison.md, confusion.png, curves.png and recall.png to a new folder
(default: `comparisons/<A>-vs-<B>` next to RUN_B; a suffix is added rather than overwrite an
earlier comparison). Needs neither TensorFlow nor torch: it only reads the run folders.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cifar_common.analysis.comparison import compare_runs
from cifar_common.analysis.comparison_page import terminal_table, write_comparison
from cifar_common.errors import exits_cleanly_on_user_error
from cifar_common.rundir.folder import new_folder, read_run


def compare_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="compare", description=__doc__.splitlines()[0])
    parser.add_argument("run_a", type=Path, metavar="RUN_A", help="first run folder (A)")
    parser.add_argument("run_b", type=Path, metavar="RUN_B", help="second run folder (B); differences read B − A")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: comparisons/<A>-vs-<B> beside RUN_B); "
                             "if it exists, a new one with a numeric suffix is made")
    return parser


def default_out(run_a: Path, run_b: Path) -> Path:
    run_a, run_b = run_a.resolve(), run_b.resolve()
    return run_b.parent / "comparisons" / f"{run_a.name}-vs-{run_b.name}"


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = compare_parser().parse_args(argv)
    run_a, run_b = read_run(args.run_a), read_run(args.run_b)
    result = compare_runs(run_a, run_b)  # raises before any folder is made if the test sets differ
    wanted = args.out if args.out is not None else default_out(args.run_a, args.run_b)
    out = new_folder(wanted.parent, wanted.name)
    write_comparison(result, run_a, run_b, out)
    print(terminal_table(result))
    print(f"comparison folder {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
