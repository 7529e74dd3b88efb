"""`make bench`: the port's training and inference speed against Keras and the machine's ceiling; `--fit`
(`make bench-fit`): real epochs. Each configuration runs in its own process (Keras on TensorFlow and on
its torch backend, the port under Lightning's Trainer and in a bare loop; never Keras beside the port) on
one synthetic batch, beside the fp32 matmul rate of numpy and torch (the faster is the ceiling) and the
model's FLOPs (torch's counter and the hand count from the architecture's shapes). `--fit` times each
`fit`'s second epoch with its validation, Keras, port, port, Keras. Compare ratios within one invocation.
What was tried and dropped (torch.compile, a frozen graph, bf16-mixed, pooled rounds) is in docs/speed.md.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from cifar_common.bench.timing import (MATMUL_SIDE, PRECISION, RESULT_PREFIX, Settings, add_settings_flags, emit,
                                       matmul_gflops, settings_from)
from cifar_common.data import resolve_data_dir
from cifar_common.errors import UserError, exits_cleanly_on_user_error
from cifar_common.paths import REPO_ROOT, REPORTS_DIR
from cifar_common.rundir.atomic import write_text
from cifar_common.rundir.metrics_json import cpu_model, portable_command
from cifar_common.spec.fit_flags import positive_int

KERAS_BACKENDS = ("tensorflow", "torch")
FIT_ORDER = ("keras", "port", "port", "keras")  # alternating, so a drift in the machine's load hits both
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TF_NUM_INTRAOP_THREADS")


def of_kind(records: list[dict], kind: str) -> list[dict]:
    return [r for r in records if r["kind"] == kind]


def run_worker(module: str, args: list[str], label: str, threads: int | None, keras_backend: str | None = None
               ) -> list[dict]:
    """`python -m module args` in its own process; the records it printed. `threads` sets the variables torch
    (OpenMP, MKL), numpy (OpenBLAS) and TensorFlow read their intra-op threads from."""
    print(f"running {label} ...", file=sys.stderr, flush=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **({"KERAS_BACKEND": keras_backend} if keras_backend else {}),
           **({name: str(threads) for name in THREAD_VARIABLES} if threads else {})}
    result = subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, cwd=REPO_ROOT,
                            env=env)
    found = [json.loads(line[len(RESULT_PREFIX):]) for line in result.stdout.splitlines()
             if line.startswith(RESULT_PREFIX)]
    if result.returncode != 0 or not found:
        raise UserError(f"{label} failed (exit status {result.returncode}):\n{result.stderr[-2000:]}")
    return found


def with_ratios_and_shares(records: list[dict]) -> list[dict]:
    """Each speed row with its ratio to each Keras backend's row of the same task, GFLOP/s and share of the
    ceiling (the fastest library's median fp32 matmul rate)."""
    speed, flops = of_kind(records, "speed"), of_kind(records, "flops")[0]
    top = max(r["gflops"] for r in of_kind(records, "matmul"))
    keras = {(r["notes"]["backend"], r["task"]): r["images_per_second"] for r in speed if r["name"].startswith("keras")}
    rows = []
    for r in speed:
        gflops = r["images_per_second"] * flops[f"{'train' if r['task'] == 'train' else 'forward'}_per_image"] / 1e9
        rows.append({**r, **{f"x_keras_{backend}": r["images_per_second"] / keras[backend, r["task"]]
                             for backend in KERAS_BACKENDS if (backend, r["task"]) in keras},
                     "gflops": gflops, "share_of_ceiling": gflops / top})
    return rows


def table(rows: list[dict]) -> str:
    lines = [f"{'configuration':<36}{'images/s':>9}{'min':>7}{'max':>7}{'× K/TF':>8}{'× K/torch':>10}"
             f"{'GFLOP/s':>9}{'ceiling':>8}{'threads':>8}{'peak MiB':>9}"]
    for r in rows:
        lines.append(f"{r['name']:<36}{r['images_per_second']:>9.0f}{r['min']:>7.0f}{r['max']:>7.0f}"
                     f"{r.get('x_keras_tensorflow', float('nan')):>8.2f}{r.get('x_keras_torch', float('nan')):>10.2f}"
                     f"{r['gflops']:>9.1f}{r['share_of_ceiling']:>8.0%}{r['threads']:>8}{r['peak_mib']:>9.0f}")
    return "\n".join(lines)


def machine(records: list[dict]) -> dict:
    """What the run measured on: the CPU's model name (as run folders record it), cores and every row's threads."""
    return {"cpu": cpu_model(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
            "threads": {r.get("name") or f"{r['kind']} {r.get('library') or r.get('framework', '')}".strip():
                        r["threads"] for r in records if "threads" in r}}


def run_speed(args: argparse.Namespace, settings: Settings, command: str) -> dict:
    common = [*(f"--{k.replace('_', '-')}={v}" for k, v in asdict(settings).items()), *(["--dropout"] * args.dropout)]
    port = ["--accelerator", args.accelerator]
    records = run_worker("cifar_common.bench", ["--worker", "matmul"], "numpy matmul", args.threads)
    records += run_worker("lightning_impl.bench", [*port, "--worker", "machine"], "torch matmul and FLOP count",
                          args.threads)
    for backend in KERAS_BACKENDS:
        records += run_worker("keras_reference.bench", common, f"keras/{backend}", args.threads, backend)
    for worker in ("lightning", "bare"):
        records += run_worker("lightning_impl.bench", [*port, *common, "--worker", worker], worker, args.threads)
    rows, flops = with_ratios_and_shares(records), of_kind(records, "flops")[0]
    top = max(of_kind(records, "matmul"), key=lambda r: r["gflops"])
    for m in of_kind(records, "matmul"):
        print(f"fp32 matmul {MATMUL_SIDE}x{MATMUL_SIDE}, {m['library']} ({m['blas']}): {m['gflops']:.1f} GFLOP/s "
              f"(windows {min(m['windows']):.1f}-{max(m['windows']):.1f}, {m['threads']} threads)")
    print(f"ceiling: {top['library']} matmul, {top['gflops']:.1f} GFLOP/s")
    print(f"model: {flops['forward_per_image'] / 1e6:.1f} MFLOP forward and {flops['train_per_image'] / 1e6:.1f} "
          f"MFLOP per trained image (torch.utils.flop_counter); hand count from the shapes "
          f"{flops['hand_forward_per_image'] / 1e6:.1f} and {flops['hand_train_per_image'] / 1e6:.1f}")
    print(table(rows))
    rate = {r["name"]: r["images_per_second"] for r in rows}  # Lightning's time over the bare loop's, minus 1
    overhead = {PRECISION: rate[f"bare torch train {PRECISION}"] / rate[f"lightning train {PRECISION}"] - 1}
    print(f"Lightning Trainer over the bare loop, {PRECISION}: {overhead[PRECISION]:+.1%}")
    return {"date": datetime.date.today().isoformat(), "machine": machine(records), "accelerator": args.accelerator,
            "settings": asdict(settings), "dropout": args.dropout, "command": command,
            "matmul": of_kind(records, "matmul"), "ceiling": top, "flops": flops,
            "versions": {**flops["versions"], **{k: v for r in rows if r["name"].startswith("keras")
                                                 for k, v in r["notes"].items() if k != "backend"}},
            "results": rows, "lightning_overhead_over_bare": overhead}


def run_fit(args: argparse.Namespace, settings: Settings, command: str) -> dict:
    data_dir = str(resolve_data_dir(args.data_dir))  # a bad folder fails here, in one line, before any worker
    common = ["--fit", "--batch-size", str(settings.batch_size), "--data-dir", data_dir,
              *(["--dropout"] if args.dropout else []), *(["--subset", str(args.subset)] if args.subset else [])]
    records = []
    for run, framework in enumerate(FIT_ORDER, 1):
        module, backend = ("keras_reference.bench", "tensorflow") if framework == "keras" else (
            "lightning_impl.bench", None)
        records += run_worker(module, common, f"{framework} fit, run {run} of {len(FIT_ORDER)}", args.threads, backend)
    second = {name: [r["epoch_seconds"][1] for r in records if r["framework"] == name] for name in ("keras", "port")}
    means = {name: statistics.fmean(values) for name, values in second.items()}
    for r in records:
        print(f"{r['framework']:<6} epochs {', '.join(f'{s:.1f}' for s in r['epoch_seconds'])} s "
              f"({r['train_images']} training and {r['val_images']} validation images)")
    print(f"second epoch: Keras {means['keras']:.1f} s, port {means['port']:.1f} s, "
          f"port/Keras {means['port'] / means['keras']:.2f}")
    return {"date": datetime.date.today().isoformat(), "machine": machine(records), "command": command,
            "dropout": args.dropout, "runs": records, "second_epoch_seconds": second,
            "mean_second_epoch_seconds": means, "port_over_keras": means["port"] / means["keras"]}


def numpy_matmul_worker() -> None:
    rng = np.random.default_rng(0)
    a, b = (rng.random((MATMUL_SIDE, MATMUL_SIDE), dtype=np.float32) for _ in range(2))
    windows = matmul_gflops(lambda: a @ b)
    blas = (np.show_config(mode="dicts") or {}).get("Build Dependencies", {}).get("blas", {}).get("name", "unknown")
    threads = int(os.environ.get("OPENBLAS_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS") or os.cpu_count())
    emit("matmul", {"library": "numpy", "gflops": statistics.median(windows), "windows": windows,
                    "threads": threads, "blas": blas})


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cifar_common.bench", description=__doc__.splitlines()[0])
    p.add_argument("--accelerator", default="cpu", choices=("cpu", "gpu"), help="the port's device (default: cpu)")
    p.add_argument("--dropout", action="store_true", help="time the dropout variant (default: baseline)")
    p.add_argument("--threads", type=positive_int, help="intra-op threads of every framework and of numpy "
                                               "(default: each one's own, one per core)")
    p.add_argument("--fit", action="store_true", help="time real epochs instead (make bench-fit)")
    p.add_argument("--data-dir", help="with --fit: the CIFAR-10 folder (default: $CIFAR10_DIR or the cache)")
    p.add_argument("--subset", type=positive_int, help="with --fit: the first N training images only (default: all)")
    p.add_argument("--out", type=Path, help="the JSON written (default: reports/bench.json or bench-fit.json)")
    p.add_argument("--worker", choices=("matmul",), help=argparse.SUPPRESS)
    add_settings_flags(p)
    return p


@exits_cleanly_on_user_error
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parser().parse_args(argv)
    settings = settings_from(args)
    if args.worker == "matmul":
        numpy_matmul_worker()
        return 0
    command = portable_command("python -m cifar_common.bench", argv)
    report = (run_fit if args.fit else run_speed)(args, settings, command)
    # reports/ in a clone; the current folder in an installed copy, which has no reports/
    out = args.out or (REPORTS_DIR if REPORTS_DIR.is_dir() else Path.cwd()) / f"bench{'-fit' if args.fit else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, json.dumps(report, indent=2) + "\n")
    print(f"written {out}")
    return 0
