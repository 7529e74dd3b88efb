"""Compare two records of the same training steps (Keras's and the port's): one row per step, a verdict.

A record per step holds the loss and, keyed "<layer>/<variable>[/<slot>]" in Keras's layout, every
gradient, every variable after the update and every optimizer slot (keras_reference.stepping and
lightning_impl.stepping make them). Tolerances, and where they come from (docs/parity.md, measured):
- float64, every step: every loss, gradient, variable and slot within FLOAT64_ATOL. In float64 two
  implementations of the same formulas agree to rounding (measured at most 6.7e-16 on tiny models);
  a different formula (epsilon placement, weight-decay form) misses by 1e-6 or more.
- float32, the first step: every variable within FLOAT32_ATOL + FLOAT32_UPDATE_RTOL x the largest
  change Keras's step made to that variable. Float32 gradients of the same weights already differ
  (both frameworks round), and optimizers that divide by the gradient's size carry that into the update.
  Later float32 steps drift apart for rounding alone (reports/drift.csv): their losses are reported only.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

FLOAT64_ATOL = 1e-10
FLOAT32_ATOL = 1e-6
FLOAT32_UPDATE_RTOL = 1e-3
# Each side's float32 first step carries its own rounding error, measured per element against the same
# step taken in float64 by the same side; the port may differ from Keras by both, twice over
# (ROUNDING_FACTOR). It matters where the gradient is small or mostly rounding noise (a bias just before
# BatchNorm has a true gradient of 0; Adam and RMSprop divide by the gradient's size). Elements whose
# float64 gradients differ between the sides are judged by the float64 steps only: real images put exact
# ties into max-pooling, which each framework routes to another element, both valid.
ROUNDING_FACTOR = 2.0
TOLERANCE_SOURCES = {
    "float64": f"every loss, gradient, variable and slot within {FLOAT64_ATOL:g} (two implementations of the "
               f"same formulas agree to ~1e-15 in float64; docs/parity.md)",
    "float32": f"first step: every variable within {FLOAT32_ATOL:g} + {FLOAT32_UPDATE_RTOL:g} x the size of "
               f"Keras's update of it, plus {ROUNDING_FACTOR:g} x both sides' float32 rounding of it (against each "
               f"side's float64 step); elements whose gradient goes through a max-pooling tie are judged in "
               f"float64 only (docs/parity.md); later steps: "
               f"reported only (rounding alone makes them drift: reports/drift.csv)",
}


@dataclass(frozen=True)
class Worst:
    """The largest absolute difference over a set of arrays, where it is, and its tolerance."""
    name: str
    difference: float
    tolerance: float

    @property
    def ok(self) -> bool:
        return self.difference <= self.tolerance  # NaN-safe: a NaN difference fails


@dataclass(frozen=True)
class StepRow:
    dtype: str
    step: int  # 1-based
    keras_loss: float
    port_loss: float
    loss: Worst
    gradient: Worst
    variable: Worst
    slot: Worst | None
    judged: bool  # float32 steps after the first are reported, not judged

    @property
    def ok(self) -> bool:
        if not self.judged:
            return True
        checks = [self.variable] if self.dtype == "float32" else [self.loss, self.gradient, self.variable, self.slot]
        return all(check.ok for check in checks if check is not None)


def largest_difference(expected: dict[str, np.ndarray], actual: dict[str, np.ndarray],
                       tolerances: dict[str, float | np.ndarray]) -> Worst:
    """The worst element by difference over tolerance (a tolerance per variable or per element); a key
    missing on either side, or shapes that differ, is a NaN difference."""
    worst = None
    for name in sorted(set(expected) | set(actual)):
        tolerance = np.broadcast_to(np.asarray(tolerances.get(name, 0.0), np.float64), np.shape(expected.get(name, 0.0)))
        if name in expected and name in actual and np.shape(expected[name]) == np.shape(actual[name]) \
                and np.size(expected[name]):
            difference = np.abs(np.asarray(expected[name], np.float64) - np.asarray(actual[name], np.float64))
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(np.isnan(difference), np.inf, difference / tolerance)
            at = np.unravel_index(int(np.argmax(np.nan_to_num(ratio, nan=np.inf))), difference.shape)
            candidate = Worst(name, float(difference[at]), float(tolerance[at]))
            if np.isnan(difference).any():
                candidate = Worst(name, math.nan, float(tolerance[at]))
        else:
            candidate = Worst(name, math.nan, 0.0)
        worst = _worse(worst, candidate)
    return worst or Worst("-", 0.0, 0.0)


def _worse(a: Worst | None, b: Worst) -> Worst:
    """The one further beyond its tolerance: NaN first, then difference over tolerance, then difference."""
    def badness(w: Worst) -> tuple[float, float]:
        if math.isnan(w.difference):
            return math.inf, math.inf
        return (w.difference / w.tolerance if w.tolerance else (math.inf if w.difference else 0.0)), w.difference
    return b if a is None or badness(b) > badness(a) else a


def _largest(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)), initial=0.0))


def float32_variable_tolerances(start: dict[str, np.ndarray], keras_first: dict[str, Any],
                                port_first: dict[str, Any] | None = None,
                                float64_first: tuple[dict[str, Any], dict[str, Any]] | None = None
                                ) -> dict[str, float | np.ndarray]:
    """Per variable: FLOAT32_ATOL + FLOAT32_UPDATE_RTOL x the largest change Keras's first step made to it;
    with `float64_first` (Keras's and the port's records of the same step in float64), per element, plus
    ROUNDING_FACTOR x both sides' float32 rounding of it, and none (inf) where the float64 gradients differ."""
    tolerances: dict[str, float | np.ndarray] = {}
    for name, after in keras_first["variables"].items():
        if name not in start:
            continue
        tolerances[name] = FLOAT32_ATOL + FLOAT32_UPDATE_RTOL * _largest(after, start[name])
        if float64_first is None or port_first is None:
            continue
        keras64, port64 = float64_first
        rounding = (np.abs(np.asarray(after, np.float64) - keras64["variables"][name])
                    + np.abs(np.asarray(port_first["variables"][name], np.float64) - port64["variables"][name]))
        tolerances[name] = tolerances[name] + ROUNDING_FACTOR * rounding
        if name in keras64["gradients"]:
            tie = ~(np.abs(np.asarray(keras64["gradients"][name], np.float64) - port64["gradients"][name]) <= FLOAT64_ATOL)
            tolerances[name] = np.where(tie, math.inf, tolerances[name])
    return tolerances


def compare_steps(keras: list[dict[str, Any]], port: list[dict[str, Any]], start: dict[str, np.ndarray],
                  dtype: str, float64_first: tuple[dict[str, Any], dict[str, Any]] | None = None) -> list[StepRow]:
    """One row per step. `start`: every variable before the first step, in Keras's keys and layout;
    `float64_first` (float32 only): Keras's and the port's records of the same first step in float64."""
    rows = []
    for index, (k, p) in enumerate(zip(keras, port)):
        judged = dtype == "float64" or index == 0
        if dtype == "float64":
            every = lambda record: {name: FLOAT64_ATOL for name in record}
            variable_tolerances = every(k["variables"])
        else:
            every = lambda record: {name: math.inf for name in record}
            variable_tolerances = (float32_variable_tolerances(start, k, p, float64_first) if index == 0
                                   else every(k["variables"]))
        loss = Worst("loss", abs(k["loss"] - p["loss"]), FLOAT64_ATOL if dtype == "float64" else math.inf)
        rows.append(StepRow(
            dtype, index + 1, k["loss"], p["loss"], loss,
            largest_difference(k["gradients"], p["gradients"], every(k["gradients"])),
            largest_difference(k["variables"], p["variables"], variable_tolerances),
            largest_difference(k["slots"], p["slots"], every(k["slots"])) if (k["slots"] or p["slots"]) else None,
            judged))
    if len(keras) != len(port):
        raise ValueError(f"{len(keras)} Keras steps, {len(port)} port steps")
    return rows


def all_ok(rows: list[StepRow]) -> bool:
    return bool(rows) and all(row.ok for row in rows)


def _cell(worst: Worst | None) -> str:
    if worst is None:
        return "-"
    bound = "" if math.isinf(worst.tolerance) else f" (tol {worst.tolerance:.1e})"
    return f"{worst.difference:.2e} {worst.name}{bound}"


def format_steps(rows: list[StepRow], title: str) -> str:
    """The per-step table: both losses, the largest gradient, variable and slot difference, verdict."""
    lines = [title, f"{'dtype':8} {'step':>4} {'keras loss':>14} {'port loss':>14}  largest differences",]
    for row in rows:
        verdict = "ok" if row.ok and row.judged else ("reported" if not row.judged else "FAIL")
        lines.append(f"{row.dtype:8} {row.step:>4} {row.keras_loss:>14.8f} {row.port_loss:>14.8f}  "
                     f"gradient {_cell(row.gradient)}; variable {_cell(row.variable)}; slot {_cell(row.slot)}  {verdict}")
    return "\n".join(lines)


def rows_as_json(rows: list[StepRow]) -> list[dict[str, Any]]:
    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        return value
    return [clean({**asdict(row), "ok": row.ok}) for row in rows]
