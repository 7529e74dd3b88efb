"""Compare two finished runs (Keras or Lightning) on the same test set.

    python -m cifar_common.compare RUN_A RUN_B [--out DIR]

Writes comparison.json, comparison.md, confusion.png, curves.png and recall.png to a new folder
(default: `comparisons/<A>-vs-<B>` next to RUN_B; a suffix is added rather than overwrite an
earlier comparison). Needs neither TensorFlow nor torch: it only reads the run folders.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cifar_common import comparison_plots, markdown, runs
from cifar_common.compare_stats import compare_runs
from cifar_common.errors import UserError, exits_cleanly_on_user_error

SIGNIFICANCE = 0.05


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


def reading(result: dict[str, Any]) -> str:
    """One sentence saying what McNemar's test shows."""
    b, c, p = result["mcnemar_b"], result["mcnemar_c"], result["mcnemar_p"]
    if p >= SIGNIFICANCE:
        return f"No evidence the two differ at the 5% level (p = {p:.3g})."
    better = "A" if b > c else "B"
    return (f"The two differ at the 5% level (p = {p:.3g}): {better} is right more often on the "
            f"{b + c} images only one of them gets right ({max(b, c)} to {min(b, c)}).")


def fmt(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def fmt_interval(interval: list[float]) -> str:
    return f"[{interval[0]:.4f}, {interval[1]:.4f}]"


def fmt_change(value: float | None) -> str:
    return "—" if value is None else f"{value:+.4f}"


def fmt_late(late: dict[str, Any] | None) -> str:
    if late is None:
        return "—"
    return f"{late['mean']:.4f} ± {fmt(late['std'])} ({late['epochs']} ep)"


def headline_rows(result: dict[str, Any]) -> list[tuple[str, str, str, str, str, str]]:
    return [(side.upper(), result[f"label_{side}"], fmt(result[f"accuracy_{side}"]),
             fmt_interval(result[f"interval_{side}"]), fmt(result[f"final_val_accuracy_{side}"]),
             fmt_late(result[f"late_val_accuracy_{side}"]))
            for side in ("a", "b")]


def pairs_lines(pairs: list[dict[str, Any]]) -> list[str]:
    if not pairs:
        return ["- no image was misclassified"]
    return [f"- {pair['truth']} predicted as {pair['predicted']}: {pair['count']} images" for pair in pairs]


def markdown_report(result: dict[str, Any]) -> str:
    n = result["test_images"]
    lines = [f"# Comparison: A vs B on {n} test images", "",
             f"- **A**: {result['label_a']} — `{result['path_a']}`",
             f"- **B**: {result['label_b']} — `{result['path_b']}`", "",
             "## Accuracy", ""]
    lines += markdown.table(["run", "label", "test accuracy", "95% interval (Wilson)", "final val accuracy",
                             "val accuracy, last epochs (mean ± std)"], headline_rows(result))
    lines += ["", "Accuracy is computed from each run's saved predictions. The last column shows how much "
              "val accuracy moves from epoch to epoch at the end of each run: a final-epoch difference "
              "smaller than that is not a difference between the runs.", "",
              "## Do they differ?", "",
              f"- Agreement: both predict the same class on {100 * result['agreement']:.2f}% of the images.",
              f"- McNemar's exact test: b = {result['mcnemar_b']} images only A gets right, "
              f"c = {result['mcnemar_c']} only B gets right, two-sided p = {result['mcnemar_p']:.4g}.",
              f"- {reading(result)}",
              "- McNemar's test asks whether these two trained networks differ, not whether the code that "
              "trained them does: two runs of one framework that differ only in seed usually differ by it "
              "too. Read it beside such a same-framework pair."]
    lines += stored_confusion_notes(result)
    for side in ("a", "b"):
        lines += ["", f"## Most confused pairs, {side.upper()}", ""] + pairs_lines(result[f"confused_pairs_{side}"])
    lines += ["", "## Per-class recall", ""]
    recall_rows = [[name, fmt(a), fmt(b), fmt_change(change)] for name, a, b, change in
                   zip(result["class_names"], result["recall_a"], result["recall_b"], result["recall_change"])]
    lines += markdown.table(["class", "A", "B", "B − A"], recall_rows)
    lines += ["", "## Figures", "",
              "![Confusion matrices of A and B and their difference](confusion.png)", "",
              "![Loss and accuracy curves of both runs](curves.png)", "",
              "![Per-class recall and its change](recall.png)", ""]
    return "\n".join(lines)


def stored_confusion_notes(result: dict[str, Any]) -> list[str]:
    return [f"- Note: {side.upper()}'s own confusion.csv does not match its saved predictions; "
            "this report uses the predictions." for side in ("a", "b")
            if not result[f"stored_confusion_matches_{side}"]]


def terminal_table(result: dict[str, Any]) -> str:
    rows = headline_rows(result)
    width = max(len(label) for _, label, *_ in rows)
    lines = [f"   {'run':<{width}}  accuracy  95% interval      final val acc  val acc, last epochs"]
    lines += [f"{side}  {label:<{width}}  {acc:<8}  {interval}  {val:<13}  {late}"
              for side, label, acc, interval, val, late in rows]
    lines.append(f"agreement {fmt(result['agreement'])}   McNemar b={result['mcnemar_b']} "
                 f"c={result['mcnemar_c']} p={result['mcnemar_p']:.4g}")
    lines.append(reading(result))
    return "\n".join(lines)


def write_comparison(result: dict[str, Any], run_a: runs.Run, run_b: runs.Run, out: Path,
                     figures: bool = True) -> None:
    names = result["class_names"]
    runs.write_text(out / "comparison.json", json.dumps(result, indent=2, allow_nan=False) + "\n")
    runs.write_text(out / "comparison.md", markdown_report(result))
    if not figures:
        return
    comparison_plots.plot_confusions(result["confusion_a"], result["confusion_b"], result["label_a"],
                                     result["label_b"], out / "confusion.png", names)
    comparison_plots.plot_curves(run_a.history, run_b.history, result["label_a"], result["label_b"],
                                 out / "curves.png")
    comparison_plots.plot_recall(result["recall_a"], result["recall_b"], result["label_a"], result["label_b"],
                                 out / "recall.png", names)


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = compare_parser().parse_args(argv)
    run_a, run_b = runs.read_run(args.run_a), runs.read_run(args.run_b)
    result = compare_runs(run_a, run_b)  # raises before any folder is made if the test sets differ
    wanted = args.out if args.out is not None else default_out(args.run_a, args.run_b)
    out = runs.new_folder(wanted.parent, wanted.name)
    write_comparison(result, run_a, run_b, out)
    print(terminal_table(result))
    print(f"comparison folder {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
