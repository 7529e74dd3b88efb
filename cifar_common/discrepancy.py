"""Per-layer discrepancy tables: where two frameworks' arrays differ, and by how much.

One row per named array pair: shape, largest absolute and relative difference, where the
largest absolute difference sits, the tolerance and a verdict. NaNs are never hidden: an array
with a NaN or an infinity fails its row. The first failing row is the answer a user needs.
The relative difference is taken only where the reference is larger than the absolute tolerance
(near zero it says nothing); a row with no such element shows "-".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np


@dataclass(frozen=True)
class Row:
    name: str
    shape: tuple[int, ...]
    max_abs: float
    max_rel: float | None  # None: no reference value above atol
    where: tuple[int, ...]
    atol: float
    rtol: float
    ok: bool
    note: str = ""


def compare_pair(name: str, a: np.ndarray, b: np.ndarray, atol: float, rtol: float = 0.0) -> Row:
    """Row for `a` (reference) against `b`: ok when |a - b| <= atol + rtol * |a| everywhere."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return Row(name, a.shape, np.inf, np.inf, (), atol, rtol, False, f"shapes {a.shape} vs {b.shape}")
    if a.size == 0:
        return Row(name, a.shape, 0.0, 0.0, (), atol, rtol, True)
    non_finite = int((~np.isfinite(a)).sum() + (~np.isfinite(b)).sum())
    diff = np.abs(a - b)
    diff[~(np.isfinite(a) & np.isfinite(b))] = np.inf
    where = np.unravel_index(int(np.argmax(diff)), a.shape)
    significant = np.abs(a) > atol  # False at NaN: a non-finite reference shows in max_abs and the note
    max_rel = float((diff[significant] / np.abs(a[significant])).max()) if significant.any() else None
    ok = non_finite == 0 and bool(np.all(diff <= atol + rtol * np.abs(a)))
    note = f"{non_finite} non-finite values" if non_finite else ""
    return Row(name, a.shape, float(diff.max()), max_rel, tuple(int(i) for i in where), atol, rtol, ok, note)


def compare_pairs(pairs: Mapping[str, tuple[np.ndarray, np.ndarray]], atol: float,
                  rtol: float = 0.0) -> list[Row]:
    return [compare_pair(name, a, b, atol, rtol) for name, (a, b) in pairs.items()]


def format_table(rows: Iterable[Row], title: str = "") -> str:
    """One aligned line per row, columns as wide as their longest entry (long layer names included)."""
    rows = list(rows)
    header = ("layer", "shape", "max abs diff", "max rel diff", "where", "atol", "rtol", "ok")
    cells = [(r.name, str(r.shape), f"{r.max_abs:.3e}", "-" if r.max_rel is None else f"{r.max_rel:.3e}",
              str(r.where), f"{r.atol:.0e}", f"{r.rtol:.0e}", ("ok" if r.ok else "FAIL") + (f"  ({r.note})" if r.note else ""))
             for r in rows]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(header) - 1)]
    right = (False, False, True, True, False, True, True)  # numbers right-aligned

    def line(values: tuple[str, ...]) -> str:
        fitted = [v.rjust(w) if r else v.ljust(w) for v, w, r in zip(values, widths, right)]
        return "  ".join([*fitted, values[-1]])

    lines = [title] if title else []
    lines += [line(header), "-" * len(line(header))]
    lines += [line(c) for c in cells]
    failing = [r.name for r in rows if not r.ok]
    lines.append(f"first difference beyond tolerance: {failing[0]}" if failing else "all within tolerance")
    return "\n".join(lines)


def all_ok(rows: Iterable[Row]) -> bool:
    return all(r.ok for r in rows)
