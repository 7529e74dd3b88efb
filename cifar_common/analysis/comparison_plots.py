"""Figures comparing two runs on the same test set (matplotlib, no display)."""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Sequence

import numpy as np

from cifar_common.analysis.comparison import class_names_for
from cifar_common.plots import draw_matrix, plt, save_figure, style_epoch_axis

COLOUR_A, COLOUR_B = "tab:blue", "tab:orange"


def short_title(prefix: str, label: str) -> str:
    return textwrap.fill(f"{prefix}: {label}", width=48, break_on_hyphens=False)


def plot_confusions(conf_a: np.ndarray, conf_b: np.ndarray, label_a: str, label_b: str, path: Path,
                    class_names: Sequence[str] | None = None) -> None:
    """A's and B's confusion matrices on one colour scale, and B − A on a diverging scale centred on 0."""
    conf_a, conf_b = np.asarray(conf_a), np.asarray(conf_b)
    names = class_names if class_names is not None else class_names_for(len(conf_a))
    difference = conf_b - conf_a
    # One scale for both, so the same shade means the same count in either panel.
    vmax = max(int(conf_a.max()), int(conf_b.max()), 1)
    limit = max(int(np.abs(difference).max()), 1)
    fig, axes = plt.subplots(1, 3, figsize=(22, 7.2), layout="constrained")
    draw_matrix(axes[0], conf_a, names, short_title("A", label_a), vmin=0, vmax=vmax)
    image = draw_matrix(axes[1], conf_b, names, short_title("B", label_b), vmin=0, vmax=vmax)
    fig.colorbar(image, ax=axes[:2].tolist(), shrink=0.8, label="images")
    image = draw_matrix(axes[2], difference, names, "B − A (red: B has more, blue: B has fewer)",
                        cmap="RdBu_r", vmin=-limit, vmax=limit)
    fig.colorbar(image, ax=axes[2], shrink=0.8, label="images, B − A")
    save_figure(fig, path)


def plot_curves(history_a: dict[str, np.ndarray], history_b: dict[str, np.ndarray], label_a: str, label_b: str,
                path: Path) -> None:
    """Loss and accuracy of both runs against the epoch: training solid, validation dashed."""
    fig, (loss_ax, accuracy_ax) = plt.subplots(1, 2, figsize=(14, 5.3))
    for ax, metric in ((loss_ax, "loss"), (accuracy_ax, "accuracy")):
        for history, side, colour in ((history_a, "A", COLOUR_A), (history_b, "B", COLOUR_B)):
            epochs = np.asarray(history["epoch"])
            ax.plot(epochs, history[metric], color=colour, linestyle="-", label=f"{side} training")
            ax.plot(epochs, history[f"val_{metric}"], color=colour, linestyle="--", label=f"{side} validation")
        ax.set_title(metric.capitalize())
    style_epoch_axis(loss_ax, "Loss", None)
    style_epoch_axis(accuracy_ax, "Accuracy", (0.0, 1.0))
    fig.suptitle(f"A: {label_a}    B: {label_b}", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)


def plot_recall(recall_a: Sequence[float | None], recall_b: Sequence[float | None], label_a: str, label_b: str,
                path: Path, class_names: Sequence[str] | None = None) -> None:
    """Per-class recall of both runs side by side, and below it the change B − A."""
    recall_a, recall_b = as_floats(recall_a), as_floats(recall_b)
    names = class_names if class_names is not None else class_names_for(len(recall_a))
    change = recall_b - recall_a
    x = np.arange(len(names))
    width = 0.38
    # The change is a few points where recall is tens of points, so it gets its own axis.
    fig, (recall_ax, change_ax) = plt.subplots(2, 1, figsize=(11, 7.5), sharex=True,
                                               gridspec_kw={"height_ratios": [2, 1]})
    recall_ax.bar(x - width / 2, recall_a, width, color=COLOUR_A, label=f"A: {label_a}")
    recall_ax.bar(x + width / 2, recall_b, width, color=COLOUR_B, label=f"B: {label_b}")
    recall_ax.set_ylim(0, 1.25)  # headroom above 1 for the legend
    recall_ax.set_yticks(np.linspace(0, 1, 6))
    recall_ax.set_ylabel("Recall")
    recall_ax.set_title("Per-class recall (share of each true class predicted right)")
    recall_ax.grid(True, axis="y")
    recall_ax.legend(fontsize=8, loc="upper center")
    change_ax.bar(x, change, 0.6, color=np.where(change >= 0, "tab:green", "tab:red"))
    change_ax.axhline(0, color="black", linewidth=0.8)
    limit = max(float(np.nanmax(np.abs(change), initial=0.0)), 0.01) * 1.15
    change_ax.set_ylim(-limit, limit)
    change_ax.set_ylabel("Recall change, B − A")
    change_ax.grid(True, axis="y")
    change_ax.set_xticks(x, names, rotation=30, ha="right")
    fig.tight_layout()
    save_figure(fig, path)


def as_floats(values: Sequence[float | None]) -> np.ndarray:
    """None (a class with no images, as JSON stores it) becomes nan, which draws no bar."""
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)

