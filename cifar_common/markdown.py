"""The one markdown table writer every report uses, and the number formats its cells share."""
from __future__ import annotations

from typing import Any, Sequence


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A GitHub markdown table as lines; every cell is already formatted text."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def fmt(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def fmt_change(value: float | None) -> str:
    return "—" if value is None else f"{value:+.4f}"


def fmt_interval(interval: Sequence[float]) -> str:
    return f"[{interval[0]:.4f}, {interval[1]:.4f}]"


def fmt_std(summary: dict[str, Any]) -> str:
    """`mean ± std` of a summary with keys mean and std (std None for one value)."""
    return f"{summary['mean']:.4f} ± {'n/a' if summary['std'] is None else format(summary['std'], '.4f')}"


def fmt_late(late: dict[str, Any] | None) -> str:
    """`mean ± std (n ep)` of the late-epoch val_accuracy."""
    if late is None:
        return "—"
    return f"{late['mean']:.4f} ± {fmt(late['std'])} ({late['epochs']} ep)"


def fmt_minutes(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 60:.1f} min"


def fmt_welch(welch: dict[str, Any] | None) -> str:
    """A difference of means with its Welch interval: `+0.0012 [-0.0040, +0.0064]`."""
    if welch is None:
        return "needs 2 runs a side"
    low, high = welch["interval"]
    return f"{welch['difference']:+.4f} [{low:+.4f}, {high:+.4f}]"
