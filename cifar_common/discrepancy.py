"""Per-layer discrepancy tables: where two frameworks' arrays differ, and by how much.

One row per named array pair: shape, largest absolute and relative difference, where the
largest absolute difference sits, the tolerance and a verdict. NaNs are never hidden: an array
with a NaN or an infinity fails its row. The first failing row is the answer a user needs.
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
    max_rel: float
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
    with np.errstate(divide="ignore", invalid="ignore"):  # relative to the larger magnitude: finite at zeros
        rel = np.where(diff == 0, 0.0, diff / np.maximum(np.abs(a), np.abs(b)))
    ok = non_finite == 0 and bool(np.all(diff <= atol + rtol * np.abs(a)))
    note = f"{non_finite} non-finite values" if non_finite else ""
    return Row(name, a.shape, float(diff.max()), float(np.nanmax(rel)), tuple(int(i) for i in where),
               atol, rtol, ok, note)


def compare_pairs(pairs: Mapping[str, tuple[np.ndarray, np.ndarray]], atol: float,
                  rtol: float = 0.0) -> list[Row]:
    return [compare_pair(name, a, b, atol, rtol) for name, (a, b) in pairs.items()]


def format_table(rows: Iterable[Row], title: str = "") -> str:
    rows = list(rows)
    header = f"{'layer':<16} {'shape':<18} {'max abs diff':>12} {'max rel diff':>12} {'where':<16} " \
             f"{'atol':>8} {'rtol':>8}  ok"
    lines = [title] if title else []
    lines += [header, "-" * len(header)]
    for r in rows:
        lines.append(f"{r.name:<16} {str(r.shape):<18} {r.max_abs:>12.3e} {r.max_rel:>12.3e} "
                     f"{str(r.where):<16} {r.atol:>8.0e} {r.rtol:>8.0e}  {'ok' if r.ok else 'FAIL'}"
                     + (f"  ({r.note})" if r.note else ""))
    failing = [r.name for r in rows if not r.ok]
    lines.append(f"first difference beyond tolerance: {failing[0]}" if failing else "all within tolerance")
    return "\n".join(lines)


def all_ok(rows: Iterable[Row]) -> bool:
    return all(r.ok for r in rows)
