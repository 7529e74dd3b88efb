"""The results page's figures: every full-budget run overlaid per variant, baseline against dropout, and the
confusion matrices across seeds."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from cifar_common.analysis.bands import is_full_budget_tutorial
from cifar_common.data import CLASS_NAMES
from cifar_common.plots import draw_matrix, plt, save_figure, style_epoch_axis
from cifar_common.rundir.folder import Run

COLOURS = {"keras": "tab:red", "lightning": "tab:blue"}
VARIANTS = ("baseline", "dropout")


def full_budget(recorded: Sequence[Run], variant: str) -> list[Run]:
    return [run for run in recorded if run.metrics["variant"] == variant and is_full_budget_tutorial(run)]


def plot_variant_curves(recorded: Sequence[Run], out_dir: Path) -> None:
    """val_accuracy and val_loss of every 31-epoch run, one row per variant, coloured by framework."""
    fig, axes = plt.subplots(len(VARIANTS), 2, figsize=(14, 5 * len(VARIANTS)), squeeze=False)
    for row, variant in zip(axes, VARIANTS):
        members = full_budget(recorded, variant)
        for ax, metric in zip(row, ("val_accuracy", "val_loss")):
            for framework, colour in COLOURS.items():
                for i, run in enumerate(r for r in members if r.metrics["framework"] == framework):
                    ax.plot(run.history["epoch"], run.history[metric], color=colour, alpha=0.7,
                            label=framework if i == 0 else None)
            ax.set_title(f"{variant}: {metric} ({len(members)} runs)")
            style_epoch_axis(ax, metric, (0.0, 1.0) if metric == "val_accuracy" else None)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out_dir / "curves.png")


def plot_overfitting(recorded: Sequence[Run], out_dir: Path) -> None:
    """Training loss (solid) and val_loss (dashed), baseline against dropout, one panel per framework."""
    fig, axes = plt.subplots(1, len(COLOURS), figsize=(14, 5), sharey=True, squeeze=False)
    for ax, framework in zip(axes[0], COLOURS):
        for variant, colour in zip(VARIANTS, ("tab:orange", "tab:green")):
            members = [r for r in full_budget(recorded, variant) if r.metrics["framework"] == framework]
            for i, run in enumerate(members):
                ax.plot(run.history["epoch"], run.history["loss"], color=colour, alpha=0.7,
                        label=f"{variant} training" if i == 0 else None)
                ax.plot(run.history["epoch"], run.history["val_loss"], color=colour, alpha=0.7, linestyle="--",
                        label=f"{variant} validation" if i == 0 else None)
        ax.set_title(f"{framework}: loss, baseline against dropout")
        style_epoch_axis(ax, "loss", None)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out_dir / "overfitting.png")


def plot_confusion_across_seeds(confusion: dict, path: Path) -> None:
    """Mean row-normalised confusion (%) of each framework over its seeds, and port − Keras per cell as a Welch t
    (cells with no spread on either side are left blank)."""
    keras, port = np.array(confusion["keras_mean"]), np.array(confusion["port_mean"])
    fig, axes = plt.subplots(1, 3, figsize=(22, 7))
    draw_matrix(axes[0], 100 * keras, CLASS_NAMES, f"Keras, mean of {confusion['keras_n']} seeds (% of the row)",
                vmin=0, vmax=100)
    draw_matrix(axes[1], 100 * port, CLASS_NAMES, f"port, mean of {confusion['port_n']} seeds (% of the row)",
                vmin=0, vmax=100)
    if "cells" in confusion:
        t = np.array([[np.nan if v is None else v for v in row] for row in confusion["cells"]["t"]])
        limit = max(4.0, float(np.nanmax(np.abs(t)))) if np.isfinite(t).any() else 4.0
        image = draw_matrix(axes[2], np.ma.masked_invalid(t), CLASS_NAMES,
                            "port − Keras, Welch t per cell (blank: no spread)", cmap="RdBu_r", vmin=-limit,
                            vmax=limit, fmt="{:+.1f}")
        fig.colorbar(image, ax=axes[2], fraction=0.046)
    else:
        axes[2].set_axis_off()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path)
