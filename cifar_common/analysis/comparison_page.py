"""A comparison of two runs written out: comparison.json, comparison.md and its figures (confusion.png,
curves.png, recall.png), and the short table `python -m cifar_common.compare` prints."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from cifar_common.analysis import comparison_plots
from cifar_common.markdown import fmt, fmt_change, fmt_interval, fmt_late, table
from cifar_common.rundir.atomic import write_text
from cifar_common.rundir.folder import Run

SIGNIFICANCE = 0.05


def reading(result: dict[str, Any]) -> str:
    """One sentence saying what McNemar's test shows."""
    b, c, p = result["mcnemar_b"], result["mcnemar_c"], result["mcnemar_p"]
    if p >= SIGNIFICANCE:
        return f"No evidence the two differ at the 5% level (p = {p:.3g})."
    better = "A" if b > c else "B"
    return (f"The two differ at the 5% level (p = {p:.3g}): {better} is right more often on the "
            f"{b + c} images only one of them gets right ({max(b, c)} to {min(b, c)}).")


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
    lines += table(["run", "label", "test accuracy", "95% interval (Wilson)", "final val accuracy",
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
    lines += table(["class", "A", "B", "B − A"], recall_rows)
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


def write_comparison(result: dict[str, Any], run_a: Run, run_b: Run, out: Path,
                     figures: bool = True) -> None:
    names = result["class_names"]
    write_text(out / "comparison.json", json.dumps(result, indent=2, allow_nan=False) + "\n")
    write_text(out / "comparison.md", markdown_report(result))
    if not figures:
        return
    comparison_plots.plot_confusions(result["confusion_a"], result["confusion_b"], result["label_a"],
                                     result["label_b"], out / "confusion.png", names)
    comparison_plots.plot_curves(run_a.history, run_b.history, result["label_a"], result["label_b"],
                                 out / "curves.png")
    comparison_plots.plot_recall(result["recall_a"], result["recall_b"], result["label_a"], result["label_b"],
                                 out / "recall.png", names)
