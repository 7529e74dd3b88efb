"""Global switches and shared fixtures of the parity harness: the one data-folder guard, the one way to
run a command as a user does, and the one small port run the resume and fault tests share.

Import order matters: TensorFlow first, then anything that loads Triton (creating any torch
optimizer does) segfaults the process. conftest.py is imported before every test module, so
importing torch and torch._dynamo here makes the suite safe in any test order.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402  (must precede TensorFlow)
import torch._dynamo  # noqa: E402,F401  (loads the compiler stack before TensorFlow can)
from cifar_common.data import ENV_VAR, Cifar10, load_cifar10, to_unit_float  # noqa: E402
from cifar_common.paths import REPO_ROOT, REPORTS_DIR  # noqa: E402
from parity_tests.cli_runs import SMALL_RUN_ARGS, only_run_dir  # noqa: E402

# The numerical core, `make test-fast` (`pytest -m fast`): the port against Keras layer by layer, step by
# step and image by image, in-process, without the end-to-end runs.
FAST_MODULES = {"test_forward", "test_gradients", "test_optimizer", "test_lockstep", "test_batchnorm", "test_dropout",
                "test_initialisation", "test_split", "test_metrics", "test_data_parity", "test_weight_transfer",
                "test_architecture", "test_compare", "test_import_rule", "test_records"}

# Parity runs in strict float32 on both sides (TF32 would change the numbers on GPUs).
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.set_float32_matmul_precision("highest")


def pytest_collection_modifyitems(items):
    for item in items:  # `-m fast` replaces pyproject's `-m`: the opt-in measurements must not become fast
        opt_in = item.get_closest_marker("report") or item.get_closest_marker("full_budget")
        if item.module.__name__.rsplit(".", 1)[-1] in FAST_MODULES and not opt_in:
            item.add_marker(pytest.mark.fast)


@pytest.fixture(scope="session")
def cifar_dir() -> Path:
    """The real CIFAR-10 folder, from $CIFAR10_DIR (`make test` in CI sets it to the offline copy): the
    one guard of every test that reads the data or starts a run."""
    if not os.environ.get(ENV_VAR):
        pytest.fail(f"set {ENV_VAR} to a cifar-10-batches-py folder: the parity tests use the real data",
                    pytrace=False)
    return Path(os.environ[ENV_VAR])


@pytest.fixture(scope="session")
def cifar(cifar_dir) -> Cifar10:
    """The real CIFAR-10, read once per session."""
    return load_cifar10(cifar_dir)


@pytest.fixture(scope="session")
def test_images(cifar) -> np.ndarray:
    """512 real test images as float32 NHWC in [0, 1], as Keras sees them."""
    return to_unit_float(cifar.x_test[:512])


RunCli = Callable[..., "subprocess.CompletedProcess | subprocess.Popen"]


@pytest.fixture(scope="session")
def run_cli(cifar_dir) -> RunCli:
    """`run_cli(*python_args, cwd=..., timeout=..., log=None)` runs `python *python_args` (e.g. `"-m",
    "lightning_impl.fit", "--epochs", "1"`) as a user starts it: this checkout first on the path, from
    the repository root unless `cwd` says otherwise, TensorFlow's start-up log quiet. It waits and
    returns the CompletedProcess (text stdout and stderr); with `log`, it returns the running Popen at
    once, its stdout and stderr going to that file."""
    def run(*python_args: str, cwd: Path = REPO_ROOT, timeout: float = 600, log: Path | None = None):
        command = [sys.executable, *python_args]
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
        if log is None:
            return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        with log.open("w") as output:
            return subprocess.Popen(command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT, text=True)
    return run


@pytest.fixture(scope="session")
def small_port_run(run_cli, tmp_path_factory) -> Path:
    """One uninterrupted port run of SMALL_RUN_ARGS (read only): the history and weights every
    interrupted, damaged or resumed run of the same arguments must end with."""
    out = tmp_path_factory.mktemp("small-port-run")
    finished = run_cli("-m", "lightning_impl.fit", *SMALL_RUN_ARGS, "--out", str(out))
    assert finished.returncode == 0, finished.stderr[-3000:]
    return only_run_dir(out)


@pytest.fixture(scope="session")
def report_dir() -> Path:
    """Where opt-in measurement tests write their committed results."""
    REPORTS_DIR.mkdir(exist_ok=True)
    return REPORTS_DIR
