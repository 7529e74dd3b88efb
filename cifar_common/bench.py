"""`make bench`: the port's training and inference speed against Keras and against the machine's ceiling.

    python -m cifar_common.bench                              # float32, writes reports/bench.json
    python -m cifar_common.bench --precisions 32-true bf16-mixed --steps 5
    python -m cifar_common.bench --fit                        # `make bench-fit`: real epochs, side by side

Every configuration runs in its own process on the same synthetic batch: Keras on TensorFlow, Keras
on its torch backend (`KERAS_BACKEND=torch`), the port under Lightning's Trainer and a bare PyTorch
loop. Keras never shares a process with the port (one import order of TensorFlow and torch crashes),
so peak memory is per configuration. Beside them, in the same invocation: the fp32 matrix-multiply
rate of numpy and of torch (the faster is the ceiling) and the model's FLOPs, counted by
`torch.utils.flop_counter` on the network and checked against a hand count (2 FLOP per multiply-add,
training = 3 x forward). Ratios and shares come from one invocation: compare them, not absolute
figures across runs or machines.

`--fit` times whole epochs on the real data instead: the second epoch (the first includes tracing
and warm-up) of each framework's `fit`, validation included, alternating Keras, port, port, Keras.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from cifar_common.data import resolve_data_dir
from cifar_common.errors import UserError, exits_cleanly_on_user_error
from cifar_common.paths import REPO_ROOT, REPORTS_DIR
from cifar_common.spec.config import DatasetConfig

RESULT_PREFIX = "BENCH "  # the line the driver reads among the frameworks' own output
PRECISIONS = ("32-true", "bf16-mixed")
KERAS_BACKENDS = ("tensorflow", "torch")
FLOP_PER_MULTIPLY_ADD = 2
TRAIN_OVER_FORWARD = 3  # backward = the gradient of the input and of the weights, each one forward's worth
MATMUL_SIDE = 2048  # square fp32 matrices: large enough for the BLAS to reach its peak, ~0.25 s each here
TRIALS = ("compiled", "frozen", "threads")  # the port's workers of what was tried for speed (docs/speed.md)
FIT_ORDER = ("keras", "port", "port", "keras")  # alternating, so a drift in the machine's load hits both


@dataclass(frozen=True)
class Settings:
    batch_size: int = 256
    warmup: int = 3
    steps: int = 5
    repeats: int = 5
    seed: int = 0


def add_settings_flags(parser: argparse.ArgumentParser, defaults: Settings = Settings()) -> None:
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=value,
                            help=f"(default: {value})")


def settings_from(args: argparse.Namespace) -> Settings:
    settings = Settings(**{name: getattr(args, name) for name in asdict(Settings())})
    for name, value in asdict(settings).items():
        if value < (0 if name in ("warmup", "seed") else 1):
            raise UserError(f"--{name.replace('_', '-')} {value}: must be at least "
                            f"{0 if name in ('warmup', 'seed') else 1}")
    return settings


def settings_args(settings: Settings) -> list[str]:
    return [arg for name, value in asdict(settings).items() for arg in (f"--{name.replace('_', '-')}", str(value))]


def synthetic_batch(settings: Settings, dataset: DatasetConfig = DatasetConfig()) -> tuple[np.ndarray, np.ndarray]:
    """One fixed batch: float32 NHWC pixels in [0, 1] and integer labels, the same for every worker."""
    rng = np.random.default_rng(settings.seed)
    side = dataset.image_size
    images = rng.random((settings.batch_size, side, side, dataset.channels), dtype=np.float32)
    labels = rng.integers(0, dataset.num_classes, settings.batch_size)
    return images, labels


# ---- the timing rule -------------------------------------------------------------------------------

def window_seconds(run_steps: Callable[[int], None], settings: Settings) -> list[float]:
    """Seconds of each of `repeats` windows of `steps` steps, after `warmup` untimed steps.

    `run_steps(n)` runs n steps and returns once they are done (on a GPU, after synchronising).
    """
    run_steps(settings.warmup)
    seconds = []
    for _ in range(settings.repeats):
        started = time.perf_counter()
        run_steps(settings.steps)
        seconds.append(time.perf_counter() - started)
    return seconds


def images_per_second(run_steps: Callable[[int], None], settings: Settings) -> list[float]:
    """Images/s of each timed window."""
    return [settings.steps * settings.batch_size / s for s in window_seconds(run_steps, settings)]


def interleaved_images_per_second(runs: dict[str, Callable[[int], None]], settings: Settings) -> dict[str, list[float]]:
    """Images/s of each variant's windows, the variants' windows taking turns, so that a change in the
    machine's load reaches all of them alike: the rule for comparing two ways of running one step."""
    for run_steps in runs.values():
        run_steps(settings.warmup)
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(settings.repeats):
        for name, run_steps in runs.items():
            started = time.perf_counter()
            run_steps(settings.steps)
            seconds[name].append(time.perf_counter() - started)
    return {name: [settings.steps * settings.batch_size / s for s in values] for name, values in seconds.items()}


def matmul_gflops(multiply: Callable[[], None], side: int = MATMUL_SIDE,
                  settings: Settings = Settings(warmup=1, steps=2, repeats=5)) -> list[float]:
    """GFLOP/s of each timed window of `multiply()`, one product of two side x side matrices."""
    def run_steps(n: int) -> None:
        for _ in range(n):
            multiply()
    flops = FLOP_PER_MULTIPLY_ADD * side ** 3 * settings.steps
    return [flops / s / 1e9 for s in window_seconds(run_steps, settings)]


def peak_host_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


# ---- FLOPs: the hand count -------------------------------------------------------------------------

def conv2d_multiply_adds(in_channels: int, out_channels: int, kernel: tuple[int, int],
                         output_size: tuple[int, int]) -> int:
    """Multiply-adds of one image through a conv layer: one kernel window per output value."""
    return output_size[0] * output_size[1] * out_channels * in_channels * kernel[0] * kernel[1]


def dense_multiply_adds(in_features: int, out_features: int) -> int:
    return in_features * out_features


def training_flops(forward_flops: float) -> float:
    """The convention: a training step costs the forward plus a backward of twice the forward."""
    return TRAIN_OVER_FORWARD * forward_flops


# ---- records the workers print -----------------------------------------------------------------------

def emit(kind: str, record: dict) -> None:
    print(RESULT_PREFIX + json.dumps({"kind": kind, **record}), flush=True)


@dataclass(frozen=True)
class Result:
    name: str  # e.g. "keras/tensorflow train float32"
    task: str  # "train" or "inference"
    precision: str
    rates: list[float]  # images/s of each timed window
    peak_mib: float
    threads: int  # the framework's intra-op threads
    notes: dict = field(default_factory=dict)

    def emit(self) -> None:
        emit("speed", {**asdict(self), "images_per_second": statistics.median(self.rates),
                       "min": min(self.rates), "max": max(self.rates)})


def parse_results(stdout: str) -> list[dict]:
    return [json.loads(line[len(RESULT_PREFIX):]) for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]


def of_kind(records: list[dict], kind: str) -> list[dict]:
    return [r for r in records if r["kind"] == kind]


# ---- the arithmetic on the records -------------------------------------------------------------------

def ceiling(records: list[dict]) -> dict:
    """The fastest library's median fp32 matmul rate: the reference every row's share is taken of."""
    return max(of_kind(records, "matmul"), key=lambda r: r["gflops"])


def achieved_gflops(images_per_second: float, flops_per_image: float) -> float:
    return images_per_second * flops_per_image / 1e9


def share_of_ceiling(images_per_second: float, flops_per_image: float, ceiling_gflops: float) -> float:
    return achieved_gflops(images_per_second, flops_per_image) / ceiling_gflops


def add_ratios_and_shares(records: list[dict]) -> list[dict]:
    """Each speed row with its ratio to each Keras backend's row of the same task, GFLOP/s and share."""
    speed = of_kind(records, "speed")
    flops = of_kind(records, "flops")[0]
    top = ceiling(records)["gflops"]
    keras = {(r["notes"]["backend"], r["task"]): r["images_per_second"] for r in speed if r["name"].startswith("keras")}
    rows = []
    for r in speed:
        per_image = flops["train_per_image"] if r["task"] == "train" else flops["forward_per_image"]
        rows.append({**r, **{f"x_keras_{backend}": r["images_per_second"] / keras[backend, r["task"]]
                             for backend in KERAS_BACKENDS if (backend, r["task"]) in keras},
                     "gflops": achieved_gflops(r["images_per_second"], per_image),
                     "share_of_ceiling": share_of_ceiling(r["images_per_second"], per_image, top)})
    return rows


def trainer_overhead(rows: list[dict]) -> dict[str, float]:
    """Lightning's training time over the bare loop's, minus 1, per precision."""
    rate = {r["name"]: r["images_per_second"] for r in rows}
    return {p: rate[f"bare torch train {p}"] / rate[f"lightning train {p}"] - 1
            for p in PRECISIONS if f"lightning train {p}" in rate and f"bare torch train {p}" in rate}


def paired_ratios(rows: list[dict]) -> dict[str, float]:
    """For each row timed in turns with a default way of running (the trials), the median over windows of
    its rate over the default's: "X compiled / X eager". Pairing window by window cancels the drift of a
    shared machine's load."""
    rates = {r["name"]: r["rates"] for r in rows}
    return {f"{r['name']} / {r['notes']['against']}":
            statistics.median(a / b for a, b in zip(r["rates"], rates[r["notes"]["against"]]))
            for r in rows if "against" in r.get("notes", {})}


def table(rows: list[dict]) -> str:
    header = (f"{'configuration':<36}{'images/s':>9}{'min':>7}{'max':>7}{'× K/TF':>8}{'× K/torch':>10}"
              f"{'GFLOP/s':>9}{'ceiling':>8}{'threads':>8}{'peak MiB':>9}")
    lines = [header]
    for r in rows:
        lines.append(f"{r['name']:<36}{r['images_per_second']:>9.0f}{r['min']:>7.0f}{r['max']:>7.0f}"
                     f"{r.get('x_keras_tensorflow', float('nan')):>8.2f}{r.get('x_keras_torch', float('nan')):>10.2f}"
                     f"{r['gflops']:>9.1f}{r['share_of_ceiling']:>8.0%}{r['threads']:>8}{r['peak_mib']:>9.0f}")
    return "\n".join(lines)


def fit_comparison(records: list[dict]) -> dict:
    """Second-epoch seconds of each framework's runs, their means and the port/Keras ratio."""
    second = {name: [r["epoch_seconds"][1] for r in of_kind(records, "epochs") if r["framework"] == name]
              for name in ("keras", "port")}
    if not second["keras"] or not second["port"]:
        raise UserError("the fit comparison needs at least one run of each framework")
    means = {name: statistics.fmean(values) for name, values in second.items()}
    return {"second_epoch_seconds": second, "mean_second_epoch_seconds": means,
            "port_over_keras": means["port"] / means["keras"]}


# ---- the driver ------------------------------------------------------------------------------------

THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")


def thread_env(threads: int | None) -> dict[str, str]:
    """The variables torch (OpenMP, MKL), numpy (OpenBLAS) and TensorFlow read their intra-op threads from."""
    return {} if threads is None else {name: str(threads) for name in THREAD_VARIABLES}


def run_worker(command: list[str], label: str, env: dict[str, str] | None = None) -> list[dict]:
    print(f"running {label} ...", file=sys.stderr, flush=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, env=env)
    found = parse_results(result.stdout)
    if result.returncode != 0 or not found:
        raise UserError(f"{label} failed (exit status {result.returncode}):\n{result.stderr[-2000:]}")
    return found


def keras_worker(backend: str, arguments: list[str], env: dict[str, str]) -> tuple[list[str], str, dict[str, str]]:
    """Keras's worker on one backend: the command, its label and its environment."""
    return ([sys.executable, "-m", "keras_reference.bench", *arguments], f"keras/{backend}",
            {**env, "KERAS_BACKEND": backend})


def speed_records(settings: Settings, precisions: list[str], accelerator: str, dropout: bool,
                  trials: bool, threads: int | None = None, rounds: int = 1) -> list[dict]:
    """Every worker's records; with several rounds the sequence runs again in reverse, then forward, ...,
    and each row pools its windows over the rounds (a load that drifts meets every row alike)."""
    common = [*settings_args(settings), *(["--dropout"] if dropout else [])]
    port = [sys.executable, "-m", "lightning_impl.bench", "--accelerator", accelerator]
    env = thread_env(threads)
    workers = [([sys.executable, "-m", "cifar_common.bench", "--worker", "matmul"], "numpy matmul", env),
               ([*port, "--worker", "machine"], "torch matmul and FLOP count", env),
               *(keras_worker(backend, common, env) for backend in KERAS_BACKENDS),
               *(([*port, *common, "--worker", worker, "--precision", precision], f"{worker} {precision}", env)
                 for precision in precisions for worker in ("lightning", "bare", *(TRIALS if trials else ())))]
    records = []
    for round_index in range(rounds):
        for command, label, worker_env in (workers if round_index % 2 == 0 else workers[::-1]):
            records += run_worker(command, f"{label}, round {round_index + 1} of {rounds}", worker_env)
    return pooled(records)


def pooled(records: list[dict]) -> list[dict]:
    """One record per speed row and per matmul library, their windows joined over rounds, in first-seen order;
    the FLOP count once."""
    merged: dict[tuple, dict] = {}
    for r in records:
        key = (r["kind"], r.get("name") or r.get("library"))
        if key not in merged:
            merged[key] = {**r, **({"rates": list(r["rates"])} if "rates" in r else {}),
                           **({"windows": list(r["windows"])} if "windows" in r else {})}
        elif r["kind"] == "speed":
            merged[key]["rates"] += r["rates"]
        elif r["kind"] == "matmul":
            merged[key]["windows"] += r["windows"]
    for r in merged.values():
        if r["kind"] == "speed":
            r.update(images_per_second=statistics.median(r["rates"]), min=min(r["rates"]), max=max(r["rates"]))
        elif r["kind"] == "matmul":
            r["gflops"] = statistics.median(r["windows"])
    return list(merged.values())


def fit_records(batch_size: int, dropout: bool, data_dir: str | None, subset: int | None,
                threads: int | None = None) -> list[dict]:
    common = ["--batch-size", str(batch_size), *(["--dropout"] if dropout else []),
              *(["--data-dir", data_dir] if data_dir else []), *(["--subset", str(subset)] if subset else [])]
    records = []
    for run, framework in enumerate(FIT_ORDER, 1):
        if framework == "keras":
            command, label, env = keras_worker("tensorflow", ["--fit", *common], thread_env(threads))
        else:
            command, label, env = ([sys.executable, "-m", "lightning_impl.bench", "--worker", "fit", *common], "port",
                                   thread_env(threads))
        records += run_worker(command, f"{label} fit, run {run} of {len(FIT_ORDER)}", env)
    return records


def machine(records: list[dict]) -> dict:
    return {"processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "threads": {record_label(r): r["threads"] for r in records if "threads" in r}}


def record_label(record: dict) -> str:
    """A record's name: a speed row's own, else its kind and library or framework, and its place in the run."""
    if "name" in record:
        return record["name"]
    return " ".join([record["kind"], record.get("library") or record.get("framework", "")]).strip()


def command_line(argv: list[str] | None) -> str:
    return " ".join(["python -m cifar_common.bench", *(argv if argv is not None else sys.argv[1:])])


def speed_report(rows: list[dict], records: list[dict], settings: Settings, dropout: bool, accelerator: str,
                 command: str, rounds: int = 1) -> dict:
    return {
        "date": datetime.date.today().isoformat(), "machine": machine(records), "accelerator": accelerator,
        "settings": asdict(settings), "dropout": dropout, "command": command,
        "rounds": rounds,
        "matmul": of_kind(records, "matmul"), "ceiling": ceiling(records), "flops": of_kind(records, "flops")[0],
        "versions": {**of_kind(records, "flops")[0]["versions"],
                     **{k: v for r in of_kind(records, "speed") if r["name"].startswith("keras")
                        for k, v in r["notes"].items() if k != "backend"}},
        "results": rows, "lightning_overhead_over_bare": trainer_overhead(rows), "trials": paired_ratios(rows),
    }


def print_speed(report: dict) -> None:
    top, flops = report["ceiling"], report["flops"]
    for m in report["matmul"]:
        print(f"fp32 matmul {MATMUL_SIDE}x{MATMUL_SIDE}, {m['library']} ({m['blas']}): {m['gflops']:.1f} GFLOP/s "
              f"(windows {min(m['windows']):.1f}-{max(m['windows']):.1f}, {m['threads']} threads)")
    print(f"ceiling: {top['library']} matmul, {top['gflops']:.1f} GFLOP/s")
    print(f"model: {flops['forward_per_image'] / 1e6:.1f} MFLOP forward and {flops['train_per_image'] / 1e6:.1f} "
          f"MFLOP per trained image (torch.utils.flop_counter); hand count {flops['hand_forward_per_image'] / 1e6:.1f} "
          f"and {flops['hand_train_per_image'] / 1e6:.1f} (2 FLOP per multiply-add, training = 3 x forward)")
    print(table(report["results"]))
    for precision, overhead in report["lightning_overhead_over_bare"].items():
        print(f"Lightning Trainer over the bare loop, {precision}: {overhead:+.1%}")
    for pair, ratio in report["trials"].items():
        print(f"tried: {pair} = {ratio:.2f} (median of the paired windows)")


def default_out(fit: bool) -> Path:
    """reports/ in a clone; the current folder in an installed copy, which has no reports/."""
    return (REPORTS_DIR if REPORTS_DIR.is_dir() else Path.cwd()) / ("bench-fit.json" if fit else "bench.json")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cifar_common.bench", description=__doc__.splitlines()[0])
    p.add_argument("--precisions", nargs="+", default=["32-true"], choices=PRECISIONS,
                   help="the port's precisions (default: 32-true; bf16-mixed needs bfloat16 units to be fast)")
    p.add_argument("--accelerator", default="cpu", choices=("cpu", "gpu"), help="the port's device (default: cpu)")
    p.add_argument("--dropout", action="store_true", help="time the dropout variant (default: baseline)")
    p.add_argument("--trials", action="store_true",
                   help="add what was tried for speed, each against eager with the windows taking turns: "
                        "torch.compile, a frozen TorchScript graph (oneDNN fusion), 1 thread")
    p.add_argument("--threads", type=int, help="intra-op threads of every framework and of numpy "
                                               "(default: each one's own, one per core)")
    p.add_argument("--rounds", type=int, default=1,
                   help="run the workers this many times, alternating their order, and pool each row's windows "
                        "(default: 1; use 2 or more on a shared machine)")
    p.add_argument("--fit", action="store_true", help="time real epochs instead (make bench-fit)")
    p.add_argument("--data-dir", help="with --fit: the CIFAR-10 folder (default: $CIFAR10_DIR or the cache)")
    p.add_argument("--subset", type=int, help="with --fit: the first N training images only (default: all)")
    p.add_argument("--out", type=Path, help="the JSON file written (default: reports/bench.json, "
                                            "with --fit reports/bench-fit.json)")
    p.add_argument("--worker", choices=("matmul",), help=argparse.SUPPRESS)
    add_settings_flags(p)
    return p


def numpy_matmul_worker() -> None:
    rng = np.random.default_rng(0)
    a, b = (rng.random((MATMUL_SIDE, MATMUL_SIDE), dtype=np.float32) for _ in range(2))
    windows = matmul_gflops(lambda: a @ b)
    emit("matmul", {"library": "numpy", "gflops": statistics.median(windows), "windows": windows,
                    "threads": openblas_threads(), "blas": blas_name()})


def openblas_threads() -> int:
    """OpenBLAS's thread count: its environment variables, else one per core."""
    return int(os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or os.cpu_count())


def blas_name() -> str:
    config = np.show_config(mode="dicts") or {}
    return config.get("Build Dependencies", {}).get("blas", {}).get("name", "unknown")


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = settings_from(args)
    if args.worker == "matmul":
        numpy_matmul_worker()
        return 0
    for flag, value in (("--subset", args.subset), ("--threads", args.threads), ("--rounds", args.rounds)):
        if value is not None and value < 1:
            raise UserError(f"{flag} {value}: must be at least 1")
    out = args.out or default_out(args.fit)
    if args.fit:
        data_dir = str(resolve_data_dir(args.data_dir))  # a bad folder fails here, in one line, before any worker
        records = fit_records(settings.batch_size, args.dropout, data_dir, args.subset, args.threads)
        report = {"date": datetime.date.today().isoformat(), "machine": machine(records),
                  "command": command_line(argv), "dropout": args.dropout, "runs": records, **fit_comparison(records)}
        for r in records:
            print(f"{r['framework']:<6} epochs {', '.join(f'{s:.1f}' for s in r['epoch_seconds'])} s "
                  f"({r['train_images']} training and {r['val_images']} validation images)")
        means = report["mean_second_epoch_seconds"]
        print(f"second epoch: Keras {means['keras']:.1f} s, port {means['port']:.1f} s, "
              f"port/Keras {report['port_over_keras']:.2f}")
    else:
        records = speed_records(settings, args.precisions, args.accelerator, args.dropout, args.trials, args.threads,
                                args.rounds)
        report = speed_report(add_ratios_and_shares(records), records, settings, args.dropout, args.accelerator,
                              command_line(argv), args.rounds)
        print_speed(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
