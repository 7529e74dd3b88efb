"""The tutorial's figures, drawn the same way for both frameworks (matplotlib, no display)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MultipleLocator  # noqa: E402

from cifar_common.rundir.atomic import write_atomically  # noqa: E402


def save_figure(fig: plt.Figure, path: Path) -> None:
    write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png"))
    plt.close(fig)


def style_epoch_axis(ax: plt.Axes, ylabel: str, ylim: tuple[float, float] | None) -> None:
    """Major ticks every 5 epochs, minor every epoch, grid and legend, as in the tutorial."""
    ax.set_xlabel("Epoch")
    ax.set_ylabel(ylabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.xaxis.set_major_locator(MultipleLocator(5))
    ax.xaxis.set_minor_locator(MultipleLocator(1))
    ax.grid(True)
    if ax.get_legend_handles_labels()[0]:
        ax.legend()


def plot_metric(history: dict[str, Sequence[float]], metric: str, ylim: tuple[float, float], path: Path,
                title: str = "") -> None:
    """Training and validation curve of one metric (`loss` or `accuracy`) against the epoch."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    epochs = np.asarray(history["epoch"])
    ax.plot(epochs, history[metric], label=f"Training {metric}")
    ax.plot(epochs, history[f"val_{metric}"], label=f"Validation {metric}")
    ax.set_title(title or metric.capitalize())
    style_epoch_axis(ax, metric.capitalize(), ylim)
    save_figure(fig, path)


def plot_history(history: dict[str, Sequence[float]], plots_dir: Path, title: str = "") -> None:
    plot_metric(history, "loss", (0.0, 5.0), plots_dir / "loss.png", f"{title} loss".strip())
    plot_metric(history, "accuracy", (0.0, 1.0), plots_dir / "accuracy.png", f"{title} accuracy".strip())


def plot_predictions(images: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray,
                     class_names: Sequence[str], path: Path, rows: int = 3, cols: int = 6) -> None:
    """The first rows × cols test images titled `truth : predicted`, green when right, red when wrong."""
    fig, axes = plt.subplots(rows, cols, figsize=(2 * cols, 2.3 * rows))
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= len(images):
            continue
        ax.imshow(images[i])
        right = y_true[i] == y_pred[i]
        ax.set_title(f"{class_names[y_true[i]]} : {class_names[y_pred[i]]}",
                     color="green" if right else "red", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def draw_matrix(ax: plt.Axes, matrix: np.ndarray, class_names: Sequence[str], title: str,
                cmap: str = "Blues", vmin: float | None = None, vmax: float | None = None, fmt: str = "{:.0f}"):
    """An annotated heatmap, rows = truth, columns = predicted; `fmt` writes each cell's value."""
    image = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax)
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, class_names, rotation=45, ha="right")
    ax.set_yticks(ticks, class_names)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("Truth")
    ax.set_title(title)
    lo, hi = image.get_clim()
    for (r, c), value in np.ndenumerate(matrix):
        if not np.isfinite(value):  # a cell with no value (e.g. masked) stays blank
            continue
        # White text on the strong end of the scale, black elsewhere.
        strong = abs(value - (lo + hi) / 2) > (hi - lo) / 4 if cmap != "Blues" else value > (lo + hi) / 2
        ax.text(c, r, fmt.format(value), ha="center", va="center", fontsize=7,
                color="white" if strong else "black")
    return image


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], path: Path, title: str = "Confusion matrix") -> None:
    fig, ax = plt.subplots(figsize=(8, 7))
    image = draw_matrix(ax, matrix, class_names, title)
    fig.colorbar(image, ax=ax, fraction=0.046)
    fig.tight_layout()
    save_figure(fig, path)
